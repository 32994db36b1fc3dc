local render = import '../lib/render.libsonnet';

{
  local alert = render.bind($._config),

  prometheusAlerts+:: {
    groups+: [
      // Is each production Callbridge registered right now? The client path (a target's `watch`):
      // a monitoring user logs in and pings each Callbridge's component JID.
      {
        name: 'cms-xmpp-live-registration',
        rules: [
          {
            alert: 'CmsXmppCallbridgeNotRegistered',
            // Only while the login works: when it does not, nothing was pinged and
            // CmsXmppWatchLoginFailing says that we are blind.
            // The kept session sees a disconnect within 5 s; a minute lets a Callbridge that
            // reconnects on its own (after an XMPP server restart) do so without a page.
            expr: alert.promql(|||
              max without (replica) (cms_xmpp_component_registered{SELECTOR}) == 0
              and on (job, instance, target) max without (replica) (cms_xmpp_watch_success{SELECTOR}) == 1
            |||),
            'for': '1m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('Callbridge {{ $labels.component }} (target {{ $labels.target }}) is not connected to its XMPP server; web users cannot sign in through it.'),
              description: alert.template(|||
                For more than a minute the XMPP server of target {{ $labels.target }} has routed
                nothing to {{ $labels.component }}: the monitoring user's pings got
                {{ with query (printf "cms_xmpp_component_failing_info{SELECTOR,target=%q,component=%q,instance=%q}" $labels.target $labels.component $labels.instance) }}reason {{ (. | first).Labels.reason }}{{ else }}no answer{{ end }}
                (cms_xmpp_component_registered = {{ $value }}) while the login itself works. The
                Callbridge is down, has lost its XMPP connection (restart, partition, a shared
                secret changed after a reset) or another node holds its name.
              |||),
              runbook_url: alert.runbook('CmsXmppCallbridgeNotRegistered'),
            },
          },
          {
            alert: 'CmsXmppWatchLoginFailing',
            expr: alert.promql('max without (replica) (cms_xmpp_watch_success{SELECTOR}) == 0'),
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('The monitoring user of target {{ $labels.target }} cannot log in, so nobody sees whether its Callbridges are registered.'),
              description: alert.template(|||
                For more than 5 minutes the monitoring user of target {{ $labels.target }} has not
                logged in (cms_xmpp_watch_success = {{ $value }}), failing at
                {{ range query (printf "cms_xmpp_watch_failing_step_info{SELECTOR,target=%q,instance=%q}" $labels.target $labels.instance) | sortByLabel "server" -}}
                server {{ or .Labels.server "(none, target level)" }} step {{ .Labels.step }} with reason {{ .Labels.reason }};
                {{ else -}}
                an unknown step;
                {{ end -}}
                no Callbridge of this target is pinged, so CmsXmppCallbridgeNotRegistered cannot fire.
              |||),
              runbook_url: alert.runbook('CmsXmppWatchLoginFailing'),
            },
          },
        ],
      },
    ],
  },
}
