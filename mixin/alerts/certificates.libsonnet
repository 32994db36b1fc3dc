local render = import '../lib/render.libsonnet';

{
  local alert = render.bind($._config),
  // Descriptions that an alert's warning and critical rules (or two roles) share.
  local certificateExpiring = alert.template(|||
    The certificate that server {{ $labels.server }} of target {{ $labels.target }}
    presents expires in {{ $value | humanizeDuration }}
    ({{ with query (printf "cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ . | first | value | humanizeTimestamp }}{{ end }};
    {{ with query (printf "cms_xmpp_cert_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ with . | first }}subject {{ .Labels.subject }}, serial {{ .Labels.serial }}{{ end }}{{ end }}).
    Then step cert fails with reason cert_expired and no Callbridge registers with this server.
  |||),
  local chainExpiring = alert.template(|||
    Server {{ $labels.server }} of target {{ $labels.target }} sends a chain whose
    certificate {{ $labels.position }} (an intermediate or the root; 0 is the leaf) expires in
    {{ $value | humanizeDuration }}, before the leaf does. When it expires, Callbridges
    cannot register through this server (step cert fails with cert_expired for an
    intermediate), though the leaf is still valid. `/probe?target={{ $labels.target }}&debug=true`
    on the exporter lists the chain.
  |||),
  local clientCertificateExpiring = alert.template(|||
    The client certificate that target {{ $labels.target }} presents (tls.client_cert_file,
    the Callbridge's certificate on a C2W link) expires in {{ $value | humanizeDuration }}.
    When it has expired, the server refuses it: step tls fails with reason
    client_cert_rejected, and the Callbridge whose certificate it is loses its link too.
  |||),
  local sanMissing = alert.template(|||
    The Subject Alternative Names of the certificate that server {{ $labels.server }} of
    target {{ $labels.target }} presents do not cover {{ $labels.name }} (role
    {{ $labels.role }}, cms_xmpp_cert_san_covered = {{ $value }}); they are:
    {{ with query (printf "cms_xmpp_cert_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ (. | first).Labels.sans }}{{ end }}.
    A Callbridge needs both the XMPP domain and the server FQDN there: step cert fails
    with reason cert_name_mismatch and the Callbridge reports certificate errors.
  |||),

  prometheusAlerts+:: {
    groups+: [
      // The certificate the XMPP server presents on the component port (step cert).
      {
        name: 'cms-xmpp-certificates',
        rules: [
          {
            alert: 'CmsXmppCertificateExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_warning_days)
                and
                cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR} - time()
                  >= on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_critical_days)
              )
            |||),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('The certificate of XMPP server {{ $labels.server }} (target {{ $labels.target }}) expires in less than {{ with query "cms_xmpp:threshold:cert_expiry_warning_days" }}{{ . | first | value }}{{ end }} days.'),
              description: certificateExpiring,
              runbook_url: alert.runbook('CmsXmppCertificateExpiring'),
            },
          },
          {
            alert: 'CmsXmppCertificateExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_critical_days)
                and
                cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR} - time() >= 0
              )
            |||),
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The certificate of XMPP server {{ $labels.server }} (target {{ $labels.target }}) expires in less than {{ with query "cms_xmpp:threshold:cert_expiry_critical_days" }}{{ . | first | value }}{{ end }} days.'),
              description: certificateExpiring,
              runbook_url: alert.runbook('CmsXmppCertificateExpiring'),
            },
          },
          {
            alert: 'CmsXmppCertificateExpired',
            expr: alert.promql('max without (replica) (time() - cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR} > 0)'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The certificate of XMPP server {{ $labels.server }} (target {{ $labels.target }}) has expired; Callbridges cannot register with it.'),
              description: alert.template(|||
                The certificate that server {{ $labels.server }} of target {{ $labels.target }} presents
                expired {{ $value | humanizeDuration }} ago
                ({{ with query (printf "cms_xmpp_cert_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ with . | first }}subject {{ .Labels.subject }}, serial {{ .Labels.serial }}{{ end }}{{ end }}).
                Step cert fails with reason cert_expired: a Callbridge rejects the TLS session to
                this server and cannot register through it.
              |||),
              runbook_url: alert.runbook('CmsXmppCertificateExpired'),
            },
          },
          // The chain ends when its first certificate expires: often an intermediate, while the
          // leaf (CmsXmppCertificateExpiring) has months left. Position 0 is the leaf's own alert.
          {
            alert: 'CmsXmppCertificateChainExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_cert_chain_not_after_timestamp_seconds{SELECTOR, position!="0"} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_warning_days)
                and
                cms_xmpp_cert_chain_not_after_timestamp_seconds{SELECTOR, position!="0"} - time()
                  >= on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_critical_days)
              )
            |||),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('Certificate {{ $labels.position }} of the chain that XMPP server {{ $labels.server }} (target {{ $labels.target }}) sends expires in less than {{ with query "cms_xmpp:threshold:cert_expiry_warning_days" }}{{ . | first | value }}{{ end }} days.'),
              description: chainExpiring,
              runbook_url: alert.runbook('CmsXmppCertificateChainExpiring'),
            },
          },
          {
            alert: 'CmsXmppCertificateChainExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_cert_chain_not_after_timestamp_seconds{SELECTOR, position!="0"} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_critical_days)
              )
            |||),
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('Certificate {{ $labels.position }} of the chain that XMPP server {{ $labels.server }} (target {{ $labels.target }}) sends expires in less than {{ with query "cms_xmpp:threshold:cert_expiry_critical_days" }}{{ . | first | value }}{{ end }} days, or has expired.'),
              description: chainExpiring,
              runbook_url: alert.runbook('CmsXmppCertificateChainExpiring'),
            },
          },
          // The certificate the exporter presents as a client (tls.client_cert_file): a copy of
          // the Callbridge's own on a C2W link (protocol: tls). When it expires, the server refuses
          // it (step tls, reason client_cert_rejected) and so does the Callbridge's peer.
          {
            alert: 'CmsXmppClientCertificateExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_client_cert_not_after_timestamp_seconds{SELECTOR} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_warning_days)
                and
                cms_xmpp_client_cert_not_after_timestamp_seconds{SELECTOR} - time()
                  >= on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_critical_days)
              )
            |||),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('The client certificate of target {{ $labels.target }} expires in less than {{ with query "cms_xmpp:threshold:cert_expiry_warning_days" }}{{ . | first | value }}{{ end }} days.'),
              description: clientCertificateExpiring,
              runbook_url: alert.runbook('CmsXmppClientCertificateExpiring'),
            },
          },
          {
            alert: 'CmsXmppClientCertificateExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_client_cert_not_after_timestamp_seconds{SELECTOR} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:cert_expiry_critical_days)
              )
            |||),
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The client certificate of target {{ $labels.target }} expires in less than {{ with query "cms_xmpp:threshold:cert_expiry_critical_days" }}{{ . | first | value }}{{ end }} days, or has expired.'),
              description: clientCertificateExpiring,
              runbook_url: alert.runbook('CmsXmppClientCertificateExpiring'),
            },
          },
          {
            alert: 'CmsXmppCertificateNotYetValid',
            expr: alert.promql('max without (replica) (max by (job, instance, target, server) (cms_xmpp_failing_step_info{SELECTOR, step="cert", reason="cert_not_yet_valid"}) == 1)'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The certificate of XMPP server {{ $labels.server }} (target {{ $labels.target }}) is not valid yet; Callbridges cannot register with it.'),
              description: alert.template(|||
                The certificate that server {{ $labels.server }} of target {{ $labels.target }} presents
                is not valid yet
                ({{ with query (printf "cms_xmpp_cert_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ with . | first }}subject {{ .Labels.subject }}, serial {{ .Labels.serial }}{{ end }}{{ end }};
                `/probe?target={{ $labels.target }}&debug=true` on the exporter prints its validity). Step cert
                fails with reason cert_not_yet_valid: the certificate was installed too early, or a
                clock is wrong.
              |||),
              runbook_url: alert.runbook('CmsXmppCertificateNotYetValid'),
            },
          },
          {
            alert: 'CmsXmppCertificateUntrusted',
            expr: alert.promql('max without (replica) (cms_xmpp_cert_trusted{SELECTOR} == 0)'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The certificate of XMPP server {{ $labels.server }} (target {{ $labels.target }}) does not chain to a trusted root.'),
              description: alert.template(|||
                The certificate chain that server {{ $labels.server }} of target {{ $labels.target }}
                presents does not lead to a trusted root (cms_xmpp_cert_trusted = {{ $value }};
                {{ with query (printf "cms_xmpp_cert_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ with . | first }}subject {{ .Labels.subject }}, issuer {{ .Labels.issuer }}{{ end }}{{ end }}).
                Step cert fails with reason cert_untrusted: a Callbridge that trusts the same roots
                rejects the TLS session and cannot register through this server.
              |||),
              runbook_url: alert.runbook('CmsXmppCertificateUntrusted'),
            },
          },
          {
            alert: 'CmsXmppCertificateSanMissingDomain',
            expr: alert.promql('max without (replica) (cms_xmpp_cert_san_covered{SELECTOR, role="domain"} == 0)'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The certificate of XMPP server {{ $labels.server }} (target {{ $labels.target }}) lacks the XMPP domain {{ $labels.name }} in its SANs.'),
              description: sanMissing,
              runbook_url: alert.runbook('CmsXmppCertificateSanMissingDomain'),
            },
          },
          {
            alert: 'CmsXmppCertificateSanMissingFqdn',
            expr: alert.promql('max without (replica) (cms_xmpp_cert_san_covered{SELECTOR, role="fqdn"} == 0)'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The certificate of XMPP server {{ $labels.server }} (target {{ $labels.target }}) lacks the server FQDN {{ $labels.name }} in its SANs.'),
              description: sanMissing,
              runbook_url: alert.runbook('CmsXmppCertificateSanMissingFqdn'),
            },
          },
          {
            alert: 'CmsXmppCertificateChanged',
            expr: alert.promql('max without (replica) (count by (job, instance, target, server) (max_over_time(cms_xmpp_cert_info{SELECTOR}[1h])) > 1)'),
            labels: { severity: 'info' },
            annotations: {
              summary: alert.template('XMPP server {{ $labels.server }} (target {{ $labels.target }}) presented a new certificate within the last hour.'),
              description: alert.template(|||
                Server {{ $labels.server }} of target {{ $labels.target }} presented {{ $value }}
                different certificates in the last hour (step cert). Now:
                {{ with query (printf "cms_xmpp_cert_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ with . | first }}subject {{ .Labels.subject }}, issuer {{ .Labels.issuer }}, serial {{ .Labels.serial }}, SANs {{ .Labels.sans }}{{ end }}{{ end }}.
                Informational: if registration broke at the same time, the new certificate is the
                first suspect.
              |||),
              runbook_url: alert.runbook('CmsXmppCertificateChanged'),
            },
          },
          {
            alert: 'CmsXmppCertificateWeak',
            expr: alert.promql('max without (replica) (max by (job, instance, target, server) (cms_xmpp_failing_step_info{SELECTOR, step="cert", reason="cert_weak"}) == 1)'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('The certificate chain of XMPP server {{ $labels.server }} (target {{ $labels.target }}) uses a key or signature too weak to verify.'),
              description: alert.template(|||
                Server {{ $labels.server }} of target {{ $labels.target }} sends a chain with an RSA
                key under 2048 bits or a SHA-1 (or MD5) signature: step cert fails with reason
                cert_weak. Current TLS libraries cannot verify such a chain, so Callbridges and other
                clients may not register through this server. `/probe?target={{ $labels.target }}&debug=true`
                on the exporter names the certificate.
              |||),
              runbook_url: alert.runbook('CmsXmppCertificateWeak'),
            },
          },
          {
            alert: 'CmsXmppCertificateRevoked',
            expr: alert.promql('max without (replica) (cms_xmpp_finding_info{SELECTOR, finding="ocsp_revoked"} == 1)'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('XMPP server {{ $labels.server }} (target {{ $labels.target }}) staples an OCSP response saying its certificate is revoked.'),
              description: alert.template(|||
                The OCSP response that server {{ $labels.server }} of target {{ $labels.target }}
                staples, signed by the certificate's issuer, says the certificate is revoked
                ({{ with query (printf "cms_xmpp_cert_info{SELECTOR,target=%q,server=%q,instance=%q}" $labels.target $labels.server $labels.instance) }}{{ with . | first }}subject {{ .Labels.subject }}, serial {{ .Labels.serial }}{{ end }}{{ end }}).
                A Callbridge does not check revocation and still registers, but clients that do
                refuse the certificate: replace it now.
              |||),
              runbook_url: alert.runbook('CmsXmppCertificateRevoked'),
            },
          },
          // What does not fail a step yet: a chain that works only with an intermediate in the
          // probe's trust, out of order, a self-signed leaf, TLS 1.0/1.1 accepted (when checked), a
          // stale or invalid stapled OCSP response. One alert per server and finding.
          {
            alert: 'CmsXmppTlsFinding',
            expr: alert.promql('max without (replica) (cms_xmpp_finding_info{SELECTOR, finding=~"chain_incomplete|chain_order|self_signed|legacy_tls|ocsp_stale|ocsp_invalid|client_cert_not_requested"} == 1)'),
            'for': '1h',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('Server {{ $labels.server }} (target {{ $labels.target }}) has a TLS finding, {{ $labels.finding }}, that does not stop registration (or the TLS link) yet.'),
              description: alert.template(|||
                The probe of server {{ $labels.server }} of target {{ $labels.target }} reports
                {{ $labels.finding }} (docs/metrics.md, Findings): registration (or the TLS link) still works, but
                another client, the next renewal or the next CMS release may not.
                `/probe?target={{ $labels.target }}&debug=true` on the exporter says which certificate and
                what to do.
              |||),
              runbook_url: alert.runbook('CmsXmppTlsFinding'),
            },
          },
          // The leaf changed (a new not-after) on some of a target's servers and not on the others
          // for an hour: renewed on one node only; the others will expire first.
          {
            alert: 'CmsXmppCertificateRenewedOnSomeServers',
            expr: alert.promql(|||
              max without (replica) (
                count by (job, instance, target) (changes(cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR}[1d]) > 0)
                  < on (job, instance, target)
                count by (job, instance, target) (cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR})
              )
            |||),
            'for': '1h',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('The certificate of target {{ $labels.target }} was renewed on {{ $value }} of its XMPP servers only.'),
              description: alert.template(|||
                Within the last day the leaf certificate changed on {{ $value }} server(s) of target
                {{ $labels.target }} and, an hour later, not on the others. The certificates' ends now:
                {{ range query (printf "cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR,target=%q,instance=%q}" $labels.target $labels.instance) | sortByLabel "server" }}{{ .Labels.server }} {{ .Value | humanizeTimestamp }}; {{ end -}}
                A server that was not renewed expires first, and Callbridges lose it then.
              |||),
              runbook_url: alert.runbook('CmsXmppCertificateRenewedOnSomeServers'),
            },
          },
        ],
      },
    ],
  },
}
