// What a Callbridge checks before it registers: the SRV record, the servers' addresses,
// DNSSEC and DANE, the certificate on the component port, and the TLS links (C2W).
local lib = import 'lib.libsonnet';
local variables = import 'variables.libsonnet';

function(config)
  local vars = variables(config);
  lib.dashboard(
    config,
    uid='cms-xmpp-certificates-dns',
    title='CMS XMPP: certificates and DNS',
    description="What a Callbridge checks before it registers: the SRV record _xmpp-component._tcp.<domain>, the servers' addresses, and the certificate on the component port (SANs with the XMPP domain and the server FQDN, trust, expiry, TLS 1.2+).",
    links=[
      lib.dashboardLink('Overview', '/d/cms-xmpp-overview/cms-xmpp-registration-overview', 'Can a Callbridge register? Status, failing step, latency'),
      lib.runbookLink(config),
    ],
    variables=[lib.datasourceVariable, vars.target, vars.server],
    rows=[
      import 'certificates-dns/certificates.libsonnet',
      import 'certificates-dns/dns.libsonnet',
      import 'certificates-dns/dnssec-dane.libsonnet',
      import 'certificates-dns/tls-links.libsonnet',
    ],
  )
