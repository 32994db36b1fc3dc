// Row 'Certificates (step cert) and TLS (step tls)' of the certificates-dns dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(1, 'Certificates (step cert) and TLS (step tls)', 0),
    lib.panel('table', 2, 'Certificate checks per server', 0, 1, 24, 7) + {
      description: "One row per XMPP server: do the certificate's SANs cover the XMPP domain and the server FQDN (a Callbridge needs both), does the chain lead to a trusted root, when does it expire, and the TLS version and cipher of the last handshake (CMS 2.3+ needs TLS 1.2 or newer). Values are the last seen, also for a server that is now unreachable.",
      targets: [
        q.instant('max by (target, server) (cms_xmpp_cert_san_covered{SELECTOR, role="domain", target=~"$target", server=~"$server"})', '__auto', 'A') + { format: 'table' },
        q.instant('max by (target, server) (cms_xmpp_cert_san_covered{SELECTOR, role="fqdn", target=~"$target", server=~"$server"})', '__auto', 'B') + { format: 'table' },
        q.instant('max by (target, server) (cms_xmpp_cert_trusted{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'C') + { format: 'table' },
        q.instant('max by (target, server) (cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"}) * 1000', '__auto', 'D') + { format: 'table' },
        q.instant('(max by (target, server) (cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"}) - time()) / 86400', '__auto', 'E') + { format: 'table' },
        q.instant('max by (target, server, version, cipher) (cms_xmpp_tls_info{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'F') + { format: 'table' },
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
            matcher: { id: 'byName', options: 'Domain in SAN' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      '0': { text: 'NO', color: 'red', index: 0 },
                      '1': { text: 'yes', color: 'green', index: 1 },
                    },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
          {
            matcher: { id: 'byName', options: 'FQDN in SAN' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      '0': { text: 'NO', color: 'red', index: 0 },
                      '1': { text: 'yes', color: 'green', index: 1 },
                    },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Trusted' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      '0': { text: 'NO', color: 'red', index: 0 },
                      '1': { text: 'yes', color: 'green', index: 1 },
                    },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Expires' },
            properties: [{ id: 'unit', value: 'dateTimeFromNow' }],
          },
          {
            matcher: { id: 'byName', options: 'Days left' },
            properties: [
              { id: 'unit', value: 'suffix: days' },
              { id: 'decimals', value: 1 },
              {
                id: 'thresholds',
                value: {
                  mode: 'absolute',
                  steps: lib.certExpirySteps(config),
                },
              },
              { id: 'custom.cellOptions', value: { type: 'color-text' } },
            ],
          },
        ],
      },
      options: {
        showHeader: true,
        cellHeight: 'sm',
        footer: { show: false, reducer: ['sum'], countRows: false, fields: '' },
        sortBy: [{ displayName: 'Days left', desc: false }],
      },
      transformations: [
        { id: 'merge', options: {} },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, 'Value #F': true },
            indexByName: {
              target: 0,
              server: 1,
              'Value #A': 2,
              'Value #B': 3,
              'Value #C': 4,
              'Value #D': 5,
              'Value #E': 6,
              version: 7,
              cipher: 8,
            },
            renameByName: {
              target: 'Target',
              server: 'Server',
              'Value #A': 'Domain in SAN',
              'Value #B': 'FQDN in SAN',
              'Value #C': 'Trusted',
              'Value #D': 'Expires',
              'Value #E': 'Days left',
              version: 'TLS version',
              cipher: 'Cipher',
            },
          },
        },
      ],
    },
    lib.panel('table', 3, 'SAN coverage: names checked', 0, 8, 10, 8) + {
      description: 'The names each certificate must cover: role domain is the XMPP domain, role fqdn the server FQDN (or tls.server_name). NO here means step cert fails with cert_name_mismatch.',
      targets: [
        q.instant('max by (target, server, role, name) (cms_xmpp_cert_san_covered{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'A') + { format: 'table' },
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
            matcher: { id: 'byName', options: 'Covered' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      '0': { text: 'NO', color: 'red', index: 0 },
                      '1': { text: 'yes', color: 'green', index: 1 },
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
            indexByName: { target: 0, server: 1, role: 2, name: 3, Value: 4 },
            renameByName: { target: 'Target', server: 'Server', role: 'Role', name: 'Name', Value: 'Covered' },
          },
        },
      ],
    },
    lib.panel('table', 4, 'Certificate details', 10, 8, 14, 8) + {
      description: 'Subject, issuer, serial, SANs and SHA-256 fingerprint of the leaf certificate each server presents (cms_xmpp_cert_info). Compare with openssl s_client (docs/runbook.md).',
      targets: [
        q.instant('max by (target, server, subject, issuer, serial, sans) (cms_xmpp_cert_info{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'A') + { format: 'table' },
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.table.custom,
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
      transformations: [
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, Value: true },
            indexByName: { target: 0, server: 1, subject: 2, sans: 3, issuer: 4, serial: 5 },
            renameByName: {
              target: 'Target',
              server: 'Server',
              subject: 'Subject',
              sans: 'SANs',
              issuer: 'Issuer',
              serial: 'Serial',
            },
          },
        },
      ],
    },
    lib.panel('timeseries', 5, 'Certificate days left', 0, 16, 12, 8) + {
      description: "Days until each server's certificate expires; the lines are the alert thresholds (%s days warning, %s days critical)." % [config.thresholds.certExpiryWarningDays, config.thresholds.certExpiryCriticalDays],
      targets: [
        q.range('(cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"} - time()) / 86400', '{{server}} ({{target}})'),
      ],
      fieldConfig: {
        defaults: {
          custom: {
            drawStyle: 'line',
            lineInterpolation: 'linear',
            lineWidth: 1,
            fillOpacity: 10,
            gradientMode: 'none',
            showPoints: 'never',
            pointSize: 4,
            spanNulls: false,
            axisPlacement: 'auto',
            axisLabel: '',
            axisBorderShow: false,
            axisCenteredZero: false,
            axisColorMode: 'text',
            axisSoftMin: 0,
            barAlignment: 0,
            insertNulls: false,
            scaleDistribution: { type: 'linear' },
            stacking: { group: 'A', mode: 'none' },
            hideFrom: { legend: false, tooltip: false, viz: false },
            thresholdsStyle: { mode: 'line' },
          },
          unit: 'suffix: days',
          mappings: [],
          thresholds: {
            mode: 'absolute',
            steps: [
              { color: 'red', value: null },
              { color: 'orange', value: config.thresholds.certExpiryCriticalDays },
              { color: 'green', value: config.thresholds.certExpiryWarningDays },
            ],
          },
          color: { mode: 'palette-classic' },
        },
        overrides: [],
      },
    },
    lib.panel('state-timeline', 6, 'Certificate trusted and names covered', 12, 16, 12, 8) + {
      description: 'Per server: cms_xmpp_cert_trusted (the chain leads to a trusted root) and the lowest cms_xmpp_cert_san_covered (the SANs cover both the XMPP domain and the server FQDN), as last seen.',
      targets: [
        q.range('max by (target, server) (cms_xmpp_cert_trusted{SELECTOR, target=~"$target", server=~"$server"})', '{{target}} {{server}} trusted'),
        q.range('min by (target, server) (cms_xmpp_cert_san_covered{SELECTOR, target=~"$target", server=~"$server"})', '{{target}} {{server}} names covered', 'B'),
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults['state-timeline'].custom,
          unit: 'none',
          mappings: [
            {
              type: 'value',
              options: {
                '0': { text: 'FAILING', color: 'red', index: 0 },
                '1': { text: 'OK', color: 'green', index: 1 },
              },
            },
          ],
          thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
    },
    lib.panel('timeseries', 12, 'Chain days left (the certificate that ends it)', 0, 24, 12, 8) + {
      description: 'Days until the chain each server sends stops being valid: the earliest end among the certificates of the verified path (legend: position 0 is the leaf, 1 the certificate that issued it, ...). An intermediate that ends first shows here while the leaf still has months (alert CmsXmppCertificateChainExpiring).',
      targets: [
        q.range('(cms_xmpp_cert_chain_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"} - time()) / 86400', '{{server}} ({{target}}) position {{position}}'),
      ],
      fieldConfig: {
        defaults: {
          custom: {
            drawStyle: 'line',
            lineInterpolation: 'linear',
            lineWidth: 1,
            fillOpacity: 10,
            gradientMode: 'none',
            showPoints: 'never',
            pointSize: 4,
            spanNulls: false,
            axisPlacement: 'auto',
            axisLabel: '',
            axisBorderShow: false,
            axisCenteredZero: false,
            axisColorMode: 'text',
            axisSoftMin: 0,
            barAlignment: 0,
            insertNulls: false,
            scaleDistribution: { type: 'linear' },
            stacking: { group: 'A', mode: 'none' },
            hideFrom: { legend: false, tooltip: false, viz: false },
            thresholdsStyle: { mode: 'line' },
          },
          unit: 'suffix: days',
          mappings: [],
          thresholds: {
            mode: 'absolute',
            steps: [
              { color: 'red', value: null },
              { color: 'orange', value: config.thresholds.certExpiryCriticalDays },
              { color: 'green', value: config.thresholds.certExpiryWarningDays },
            ],
          },
          color: { mode: 'palette-classic' },
        },
        overrides: [],
      },
    },
    lib.panel('table', 13, 'TLS findings', 12, 24, 12, 8) + {
      description: "What does not fail a step yet but should be fixed (cms_xmpp_finding_info; docs/metrics.md, Findings): chain_incomplete, chain_order, self_signed, leaf_differs, legacy_tls, ocsp_revoked, ocsp_stale, ocsp_invalid, dane_mismatch, dane_unusable_records, dane_tlsa_bogus, client_cert_not_requested. The exporter's `/probe?target=T&debug=true` says which certificate and what to do. Empty when all is well.",
      targets: [
        q.instant('max by (target, server, finding) (cms_xmpp_finding_info{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'A') + { format: 'table' },
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.table.custom,
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
      transformations: [
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, Value: true },
            indexByName: { target: 0, server: 1, finding: 2 },
            renameByName: { target: 'Target', server: 'Server', finding: 'Finding' },
          },
        },
      ],
    },
  ],
}
