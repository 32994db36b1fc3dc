local render = import '../lib/render.libsonnet';

{
  local alert = render.bind($._config),

  prometheusAlerts+:: {
    groups+: [
      // Is the exporter itself running and probing?
      {
        name: 'cms-xmpp-exporter',
        rules: [
          {
            alert: 'CmsXmppExporterDown',
            expr: alert.promql('max without (replica) (up{SELECTOR} == 0)'),
            'for': '2m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The cms-xmpp-exporter cannot be scraped, so nobody checks whether Callbridges can register with XMPP.'),
              description: alert.template(|||
                Prometheus has failed to scrape the exporter {{ $labels.instance }} (job {{ $labels.job }})
                for more than 2 minutes (up = {{ $value }}). No target, server or step of the
                Callbridge to XMPP registration is being checked: failures would go unnoticed.
              |||),
              runbook_url: alert.runbook('CmsXmppExporterDown'),
            },
          },
          {
            alert: 'CmsXmppMetricsAbsent',
            expr: alert.promql('max without (replica) (absent(cms_xmpp_probe_success{SELECTOR}))'),
            'for': '10m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('Prometheus holds no cms_xmpp_probe_success series, so no Callbridge to XMPP registration is being checked.'),
              // The selector as written in the rules (not a query's escaped copy): what the
              // user compares with their scrape job's name. Placed after template(), which
              // would read a selector containing SELECTOR as its marker.
              description: alert.template(|||
                absent(cms_xmpp_probe_success{%(selector)s}) = {{ $value }} for more than 10
                minutes: no target reports whether a Callbridge could register. The exporter is
                not scraped (scrape job missing, or named so that the rules' selector
                `%(selector)s` does not match it: set the mixin's _config.selector; service
                discovery lost it) or its configuration has no target.
              |||) % $._config,
              runbook_url: alert.runbook('CmsXmppMetricsAbsent'),
            },
          },
          {
            alert: 'CmsXmppProbeStale',
            expr: alert.promql(|||
              max without (replica) (
                time() - cms_xmpp_last_probe_timestamp_seconds{SELECTOR}
                  > cms_xmpp_probe_interval_seconds{SELECTOR} * on () group_left cms_xmpp:threshold:probe_stale_intervals
              )
            |||),
            'for': '2m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The exporter has stopped probing target {{ $labels.target }}; its metrics show an old result.'),
              description: alert.template(|||
                The last probe cycle of target {{ $labels.target }} on {{ $labels.instance }} finished
                {{ $value | humanizeDuration }} ago, more than
                {{ with query "cms_xmpp:threshold:probe_stale_intervals" }}{{ . | first | value }}{{ end }}
                times its interval of
                {{ with query (printf "cms_xmpp_probe_interval_seconds{SELECTOR,target=%q,instance=%q}" $labels.target $labels.instance) }}{{ . | first | value | humanizeDuration }}{{ end }}.
                The probe loop is stuck: cms_xmpp_probe_success and every server, step and reason
                series still show the result of that old probe.
              |||),
              runbook_url: alert.runbook('CmsXmppProbeStale'),
            },
          },
        ],
      },
    ],
  },
}
