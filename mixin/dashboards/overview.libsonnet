// Can a Callbridge register? Status now, history, step latency and failures, and the live
// registration of each production Callbridge (a target's watch).
local lib = import 'lib.libsonnet';
local variables = import 'variables.libsonnet';

function(config)
  local vars = variables(config);
  lib.dashboard(
    config,
    uid='cms-xmpp-overview',
    title='CMS XMPP: registration overview',
    description='Can a Cisco Meeting Server Callbridge register with its XMPP server? cms-xmpp-exporter re-enacts the registration (SRV, A/AAAA, TCP, TLS, certificate, component stream, XEP-0114 handshake); metrics in docs/metrics.md, what to do in docs/runbook.md.',
    links=[
      lib.dashboardLink('Certificates & DNS', '/d/cms-xmpp-certificates-dns/cms-xmpp-certificates-and-dns', 'SAN coverage, trust, expiry, TLS version; SRV targets'),
      lib.runbookLink(config),
    ],
    variables=[lib.datasourceVariable, vars.target, vars.server, vars.step, vars.component],
    rows=[
      import 'overview/now.libsonnet',
      import 'overview/history.libsonnet',
      import 'overview/latency.libsonnet',
      import 'overview/watch.libsonnet',
      import 'overview/callbridge.libsonnet',
    ],
  )
