local render = import '../lib/render.libsonnet';

{
  local alert = render.bind($._config),

  prometheusAlerts+:: {
    groups+: [
      // Can a Callbridge register? Steps srv, resolve, connect, tls, cert, stream, handshake.
      {
        name: 'cms-xmpp-registration',
        rules: [
          {
            alert: 'CmsXmppRegistrationFailing',
            expr: alert.promql('max without (replica) (cms_xmpp_probe_success{SELECTOR}) == 0'),
            'for': '3m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('No XMPP server of target {{ $labels.target }} accepts a Callbridge registration; web users cannot sign in.'),
              description: alert.template(|||
                For more than 3 minutes no server of target {{ $labels.target }} completed every
                step up to the XEP-0114 handshake (cms_xmpp_probe_success = {{ $value }}). Failing:
                {{ range query (printf "cms_xmpp_failing_step_info{SELECTOR,target=%q,instance=%q}" $labels.target $labels.instance) | sortByLabel "server" -}}
                server {{ or .Labels.server "(none, target level)" }} at step {{ .Labels.step }} with reason {{ .Labels.reason }};
                {{ else -}}
                no failing step reported yet (no probe has finished since the exporter started);
                {{ end -}}
                last success
                {{ with query (printf "time() - max(cms_xmpp_last_success_timestamp_seconds{SELECTOR,target=%q,instance=%q})" $labels.target $labels.instance) }}{{ . | first | value | humanizeDuration }} ago{{ else }}never since the exporter started{{ end }}.
              |||),
              runbook_url: alert.runbook('CmsXmppRegistrationFailing'),
            },
          },
          {
            alert: 'CmsXmppResiliencyDegraded',
            expr: alert.promql(|||
              max without (replica) (cms_xmpp_server_up{SELECTOR}) == 0
              and on (job, instance, target) max without (replica) (cms_xmpp_probe_success{SELECTOR}) == 1
            |||),
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('XMPP server {{ $labels.server }} of target {{ $labels.target }} is down; Callbridges still register through the others, without a spare.'),
              description: alert.template(|||
                Server {{ $labels.server }} of target {{ $labels.target }} has failed every probe for
                more than 5 minutes (cms_xmpp_server_up = {{ $value }}), at
                {{ range query (printf "cms_xmpp_failing_step_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) -}}
                step {{ .Labels.step }} with reason {{ .Labels.reason }}
                {{- else -}}
                an unknown step (no cms_xmpp_failing_step_info)
                {{- end }}.
                {{ with query (printf "sum(cms_xmpp_server_up{SELECTOR,target=%q,instance=%q})" $labels.target $labels.instance) }}{{ . | first | value }}{{ end }}
                of
                {{ with query (printf "count(cms_xmpp_server_up{SELECTOR,target=%q,instance=%q})" $labels.target $labels.instance) }}{{ . | first | value }}{{ end }}
                servers are up: registration still works, but a Callbridge that fails over to
                {{ $labels.server }} will not register.
              |||),
              runbook_url: alert.runbook('CmsXmppResiliencyDegraded'),
            },
          },
          {
            alert: 'CmsXmppSrvLookupFailing',
            // Without the reason: a lookup that fails for another reason keeps the same alert.
            expr: alert.promql('max without (replica) (max by (job, instance, target) (cms_xmpp_failing_step_info{SELECTOR, step="srv"}) == 1)'),
            'for': '3m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The SRV lookup of _xmpp-component._tcp for target {{ $labels.target }} fails, so a Callbridge finds no XMPP server.'),
              description: alert.template(|||
                For more than 3 minutes the lookup of
                _xmpp-component._tcp.{{ with query (printf "cms_xmpp_target_info{SELECTOR,target=%q,instance=%q}" $labels.target $labels.instance) }}{{ (. | first).Labels.domain }}{{ else }}<domain of target {{ $labels.target }}>{{ end }}
                for target {{ $labels.target }} has failed (step srv) with reason
                {{ with query (printf "cms_xmpp_failing_step_info{SELECTOR,target=%q,step=\"srv\",instance=%q}" $labels.target $labels.instance) }}{{ (. | first).Labels.reason }}{{ else }}unknown (not probed yet){{ end }}.
                The exporter found
                {{ with query (printf "cms_xmpp_srv_records{SELECTOR,target=%q,instance=%q}" $labels.target $labels.instance) }}{{ . | first | value }}{{ end }}
                servers and has no server to probe until the lookup works again; a Callbridge that
                (re)connects now cannot find any XMPP server.
              |||),
              runbook_url: alert.runbook('CmsXmppSrvLookupFailing'),
            },
          },
          {
            alert: 'CmsXmppSrvServerVanished',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_srv_records{SELECTOR} < max_over_time(cms_xmpp_srv_records{SELECTOR}[1h])
                and cms_xmpp_srv_records{SELECTOR} > 0
              )
            |||),
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('An XMPP server of target {{ $labels.target }} disappeared from the _xmpp-component._tcp SRV answer.'),
              description: alert.template(|||
                The number of servers in the SRV answer of target {{ $labels.target }} (step srv) fell
                to {{ $value }}, from
                {{ with query (printf "max_over_time(cms_xmpp_srv_records{SELECTOR,target=%q,instance=%q}[1h])" $labels.target $labels.instance) }}{{ . | first | value }}{{ end }}
                within the last hour. Callbridges can no longer fail over to the missing server and
                the exporter has removed its series (so no server-down alert names it). Servers
                now:
                {{ range query (printf "cms_xmpp_server_info{SELECTOR,target=%q,instance=%q}" $labels.target $labels.instance) | sortByLabel "server" -}}
                {{ .Labels.server }} (priority {{ .Labels.priority }}, weight {{ .Labels.weight }});
                {{ end -}}
                the alert clears one hour after the change.
              |||),
              runbook_url: alert.runbook('CmsXmppSrvServerVanished'),
            },
          },
          {
            alert: 'CmsXmppStepLatencyHigh',
            expr: alert.promql(|||
              max without (replica) (
                quantile_over_time(0.95, cms_xmpp_step_last_duration_seconds{SELECTOR}[15m])
                > on (step) group_left cms_xmpp:threshold:step_latency_p95_seconds
              )
            |||),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('Step {{ $labels.step }} of the XMPP registration of target {{ $labels.target }} is slow.'),
              description: alert.template(|||
                The 95th percentile of the last durations of step {{ $labels.step }} on server
                {{ or $labels.server "(none, target level)" }} of target {{ $labels.target }} has been
                {{ $value | humanizeDuration }} over the last 15 minutes, above the threshold of
                {{ with query (printf "cms_xmpp:threshold:step_latency_p95_seconds{step=%q}" $labels.step) }}{{ . | first | value | humanizeDuration }}{{ end }}
                for 15 minutes. Last probe:
                {{ with query (printf "cms_xmpp_step_last_duration_seconds{SELECTOR,target=%q,server=%q,step=%q,instance=%q}" $labels.target $labels.server $labels.step $labels.instance) }}{{ . | first | value | humanizeDuration }}{{ end }}.
                A Callbridge doing the same step waits as long, and a slower one times out (reason timeout).
              |||),
              runbook_url: alert.runbook('CmsXmppStepLatencyHigh'),
            },
          },
          {
            alert: 'CmsXmppFlapping',
            expr: alert.promql(|||
              max without (replica) (
                round(sum by (job, instance, target, server) (increase(cms_xmpp_probe_failures_total{SELECTOR}[1h])))
                  >= on () group_left cms_xmpp:threshold:flapping_failures_per_hour
                and on (job, instance, target, server)
                (
                    max_over_time(cms_xmpp_server_up{SELECTOR}[5m]) == 1
                  or
                    # The target-level SRV step (server ""): it found servers within 5 minutes.
                    max_over_time(cms_xmpp_srv_records{SELECTOR}[5m]) > 0
                )
              )
            |||),
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('The XMPP registration of target {{ $labels.target }} fails intermittently.'),
              description: alert.template(|||
                Server {{ or $labels.server "(none: the SRV lookup)" }} of target {{ $labels.target }}
                failed {{ $value }} probes in the last hour (threshold
                {{ with query "cms_xmpp:threshold:flapping_failures_per_hour" }}{{ . | first | value }}{{ end }})
                yet succeeded within the last 5 minutes. Failures by step and reason:
                {{ range query (printf "round(sum by (step, reason) (increase(cms_xmpp_probe_failures_total{SELECTOR,target=%q,server=%q,instance=%q}[1h]))) > 0" $labels.target $labels.server $labels.instance) | sortByLabel "reason" | sortByLabel "step" -}}
                {{ .Labels.step }}/{{ .Labels.reason }} {{ .Value }};
                {{ end -}}
                Callbridges reconnecting at the wrong moment fail to register.
              |||),
              runbook_url: alert.runbook('CmsXmppFlapping'),
            },
          },
        ],
      },
    ],
  },
}
