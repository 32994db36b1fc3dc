local render = import '../lib/render.libsonnet';

{
  local alert = render.bind($._config),
  // Descriptions that an alert's warning and critical rules (or two roles) share.
  local signaturesExpiring = alert.template(|||
    The first signature (RRSIG) of the DNS answers target {{ $labels.target }} relies on
    expires in {{ $value | humanizeDuration }}. Signers refresh signatures days before
    they expire: the zone's signer has stopped re-signing it. When the signature expires,
    the answer turns bogus and every validating resolver answers SERVFAIL.
  |||),

  prometheusAlerts+:: {
    groups+: [
      // DNSSEC, for targets that validate (dns.dnssec): the answers a validating resolver would
      // refuse, and signatures about to run out (then every validating resolver answers SERVFAIL).
      {
        name: 'cms-xmpp-dnssec',
        rules: [
          {
            alert: 'CmsXmppDnssecBogus',
            expr: alert.promql('max without (replica) (cms_xmpp_dnssec_info{SELECTOR, state="bogus"}) == 1'),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('DNSSEC validation fails for {{ if $labels.server }}the answers of server {{ $labels.server }}{{ else }}the SRV answer{{ end }} of target {{ $labels.target }}.'),
              description: alert.template(|||
                For more than 5 minutes the {{ if $labels.server }}A/AAAA or TLSA answer of server {{ $labels.server }}{{ else }}SRV answer{{ end }}
                of target {{ $labels.target }} has failed DNSSEC validation (bogus). Every
                validating resolver answers SERVFAIL for it, the Callbridge's too where its DNS
                validates: a bogus SRV or A/AAAA answer and it can no longer find its XMPP servers
                (reason dnssec_bogus), a bogus TLSA answer and DANE-validating peers refuse the
                server.
                {{ range query (printf "cms_xmpp_failing_step_info{SELECTOR,target=%q,instance=%q,reason=\"dnssec_bogus\"}" $labels.target $labels.instance) -}}
                Failing: step {{ .Labels.step }}{{ if .Labels.server }} of server {{ .Labels.server }}{{ end }}.
                {{ end -}}
                `/probe?target={{ $labels.target }}&debug=true` on the exporter says why (expired signature, missing key, …).
              |||),
              runbook_url: alert.runbook('CmsXmppDnssecBogus'),
            },
          },
          {
            alert: 'CmsXmppDnssecSignaturesExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_dnssec_signature_expiry_timestamp_seconds{SELECTOR} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:dnssec_expiry_warning_days)
                and
                cms_xmpp_dnssec_signature_expiry_timestamp_seconds{SELECTOR} - time()
                  >= on () group_left () (86400 * cms_xmpp:threshold:dnssec_expiry_critical_days)
              )
            |||),
            'for': '30m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('A DNSSEC signature target {{ $labels.target }} relies on expires in less than {{ with query "cms_xmpp:threshold:dnssec_expiry_warning_days" }}{{ . | first | value }}{{ end }} days.'),
              description: signaturesExpiring,
              runbook_url: alert.runbook('CmsXmppDnssecSignaturesExpiring'),
            },
          },
          {
            alert: 'CmsXmppDnssecSignaturesExpiring',
            expr: alert.promql(|||
              max without (replica) (
                cms_xmpp_dnssec_signature_expiry_timestamp_seconds{SELECTOR} - time()
                  < on () group_left () (86400 * cms_xmpp:threshold:dnssec_expiry_critical_days)
              )
            |||),
            'for': '30m',
            labels: { severity: 'critical' },
            annotations: {
              summary: alert.template('A DNSSEC signature target {{ $labels.target }} relies on expires in less than {{ with query "cms_xmpp:threshold:dnssec_expiry_critical_days" }}{{ . | first | value }}{{ end }} day.'),
              description: signaturesExpiring,
              runbook_url: alert.runbook('CmsXmppDnssecSignaturesExpiring'),
            },
          },
          // DANE (RFC 7673), for the servers of a secure SRV answer that publish TLSA records:
          // none matches the chain the server sends. A Callbridge does not check DANE, other XMPP
          // peers and the observatories do: the classic "renewed the certificate, forgot the TLSA".
          {
            alert: 'CmsXmppDaneMismatch',
            expr: alert.promql('max without (replica) (cms_xmpp_dane_valid{SELECTOR} == 0)'),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('No TLSA record of XMPP server {{ $labels.server }} (target {{ $labels.target }}) matches the certificate it serves.'),
              description: alert.template(|||
                For more than 15 minutes server {{ $labels.server }} of target {{ $labels.target }}
                has served a chain that none of its DNSSEC-signed TLSA records matches
                {{- range query (printf "cms_xmpp_finding_info{SELECTOR,target=%q,server=%q,instance=%q,finding=~\"dane_.*\"}" $labels.target $labels.server $labels.instance) }} ({{ .Labels.finding }}){{ end }}.
                DANE-validating peers refuse it; a Callbridge, which does not check DANE, still
                registers. `/probe?target={{ $labels.target }}&debug=true` on the exporter lists the records
                and what each matched.
              |||),
              runbook_url: alert.runbook('CmsXmppDaneMismatch'),
            },
          },
          // DANE: the server's TLSA answer fails DNSSEC validation. A Callbridge asks for no TLSA
          // record and is not affected (not a registration's page); DANE-validating peers refuse
          // to connect.
          {
            alert: 'CmsXmppDaneTlsaBogus',
            expr: alert.promql('max without (replica) (cms_xmpp_finding_info{SELECTOR, finding="dane_tlsa_bogus"} == 1)'),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: alert.template('The TLSA records of XMPP server {{ $labels.server }} (target {{ $labels.target }}) fail DNSSEC validation.'),
              description: alert.template(|||
                For more than 15 minutes the TLSA answer of server {{ $labels.server }} of target
                {{ $labels.target }} has been bogus: DANE-validating peers refuse to connect to it.
                A Callbridge asks for no TLSA record and still registers.
                `curl -s "$EXPORTER/probe?target={{ $labels.target }}&debug=true"` says which
                signature and why.
              |||),
              runbook_url: alert.runbook('CmsXmppDaneTlsaBogus'),
            },
          },
        ],
      },
    ],
  },
}
