// Row 'DNSSEC (dns.dnssec) and DANE: signed answers and TLSA records' of the certificates-dns dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(14, 'DNSSEC (dns.dnssec) and DANE: signed answers and TLSA records', 48),
    lib.panel('table', 15, 'DNSSEC state per answer', 0, 49, 10, 8) + {
      description: "cms_xmpp_dnssec_info: secure, insecure (a zone proven unsigned: not an error) or bogus (the step fails with dnssec_bogus; alert CmsXmppDnssecBogus) for the SRV answer (server empty) and each server's A/AAAA answer.",
      targets: [
        q.instant('max by (target, server, state) (cms_xmpp_dnssec_info{SELECTOR, target=~"$target", server=~"$server|"})', '__auto', 'A') + { format: 'table' },
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.table.custom,
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'thresholds' },
        },
        overrides: [
          {
            matcher: { id: 'byName', options: 'State' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      secure: { text: 'secure', color: 'green', index: 0 },
                      insecure: { text: 'insecure (unsigned zone)', color: 'yellow', index: 1 },
                      bogus: { text: 'BOGUS', color: 'red', index: 2 },
                    },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
        ],
      },
      transformations: [
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, Value: true },
            indexByName: { target: 0, server: 1, state: 2 },
            renameByName: { target: 'Target', server: 'Server', state: 'State' },
          },
        },
      ],
    },
    lib.panel('timeseries', 16, 'DNSSEC signatures: days left', 10, 49, 7, 8) + {
      description: 'cms_xmpp_dnssec_signature_expiry_timestamp_seconds: days until the first signature (RRSIG) of the answers a target relies on expires. Signers refresh days ahead; a line falling toward 0 means the signer stopped (alert CmsXmppDnssecSignaturesExpiring).',
      targets: [
        q.range('(min by (target) (cms_xmpp_dnssec_signature_expiry_timestamp_seconds{SELECTOR, target=~"$target"}) - time()) / 86400', '{{target}}'),
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.timeseries.custom,
          unit: 'd',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'palette-classic' },
        },
        overrides: [],
      },
    },
    lib.panel('table', 17, 'DANE per server', 17, 49, 7, 8) + {
      description: 'cms_xmpp_dane_valid: for a server of a secure SRV answer with secure TLSA records, whether one of them matches the chain it sends (alert CmsXmppDaneMismatch; `probe` lists each record and what it matched). A Callbridge checks no DANE: a mismatch does not stop registration.',
      targets: [
        q.instant('max by (target, server) (cms_xmpp_dane_valid{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'A') + { format: 'table' },
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.table.custom,
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'thresholds' },
        },
        overrides: [
          {
            matcher: { id: 'byName', options: 'DANE' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      '0': { text: 'NOT valid', color: 'red', index: 0 },
                      '1': { text: 'valid', color: 'green', index: 1 },
                    },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
        ],
      },
      transformations: [
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true },
            indexByName: { target: 0, server: 1, Value: 2 },
            renameByName: { target: 'Target', server: 'Server', Value: 'DANE' },
          },
        },
      ],
    },
  ],
}
