// The mixin's Grafana dashboards, by file name (the monitoring-mixins convention).
{
  grafanaDashboards+:: {
    'cms-xmpp-overview.json': (import 'overview.libsonnet')($._config),
    'cms-xmpp-certificates-dns.json': (import 'certificates-dns.libsonnet')($._config),
  },
}
