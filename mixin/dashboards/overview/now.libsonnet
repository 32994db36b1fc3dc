// Row 'Now' of the overview dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(1, 'Now', 0),
    lib.panel('stat', 2, 'Targets registering', 0, 1, 4, 4) + {
      description: 'Targets where at least one XMPP server completed every step in the last probe (cms_xmpp_probe_success).',
      targets: [
        q.instant('sum(cms_xmpp_probe_success{SELECTOR, target=~"$target"})', 'registering'),
      ],
      fieldConfig: {
        defaults: {
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
    },
    lib.panel('stat', 3, 'Targets failing', 4, 1, 4, 4) + {
      description: 'Targets where no XMPP server completes the handshake: a Callbridge cannot register, web users cannot sign in (alert CmsXmppRegistrationFailing).',
      targets: [
        q.instant('count(cms_xmpp_probe_success{SELECTOR, target=~"$target"} == 0) or vector(0)', 'failing'),
      ],
      fieldConfig: {
        defaults: {
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'red', value: 1 }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
    },
    lib.panel('stat', 4, 'Servers up / total', 8, 1, 4, 4) + {
      description: 'XMPP servers that completed every step in the last probe, and all servers the selected targets probe (from SRV or static).',
      targets: [
        q.instant('sum(cms_xmpp_server_up{SELECTOR, target=~"$target", server=~"$server"})', 'up'),
        q.instant('count(cms_xmpp_server_up{SELECTOR, target=~"$target", server=~"$server"})', 'total', 'B'),
      ],
      fieldConfig: {
        defaults: {
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'blue', value: null }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
    },
    lib.panel('stat', 5, 'Registration success ratio', 12, 1, 4, 4) + {
      description: "Share of the dashboard's time range in which the selected targets could register (mean of cms_xmpp_probe_success).",
      targets: [
        q.instant('avg(avg_over_time(cms_xmpp_probe_success{SELECTOR, target=~"$target"}[$__range]))', 'success'),
      ],
      fieldConfig: {
        defaults: {
          unit: 'percentunit',
          mappings: [],
          thresholds: {
            mode: 'absolute',
            steps: [
              { color: 'red', value: null },
              { color: 'orange', value: 0.99 },
              { color: 'green', value: 0.999 },
            ],
          },
          color: { mode: 'thresholds' },
          decimals: 2,
        },
        overrides: [],
      },
    },
    lib.panel('stat', 6, 'Soonest certificate expiry', 16, 1, 4, 4) + {
      description: 'Days left on the certificate that expires first among the selected servers (warning below %s days, critical below %s).' % [config.thresholds.certExpiryWarningDays, config.thresholds.certExpiryCriticalDays],
      targets: [
        q.instant('min((cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"} - time()) / 86400)', 'days left'),
      ],
      fieldConfig: {
        defaults: {
          unit: 'suffix: days',
          mappings: [],
          thresholds: {
            mode: 'absolute',
            steps: lib.certExpirySteps(config),
          },
          color: { mode: 'thresholds' },
          decimals: 1,
        },
        overrides: [],
      },
    },
    lib.panel('stat', 7, 'Exporter', 20, 1, 4, 4) + {
      description: 'Can Prometheus scrape the exporter (up of the scrape job matching .*cms.*xmpp.*)?',
      targets: [
        q.instant('up{SELECTOR}', '{{instance}}'),
      ],
      fieldConfig: {
        defaults: {
          unit: 'none',
          mappings: [
            {
              type: 'value',
              options: {
                '0': { text: 'DOWN', color: 'red', index: 0 },
                '1': { text: 'up', color: 'green', index: 1 },
              },
            },
          ],
          thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
    },
    lib.panel('table', 8, 'Targets now', 0, 5, 24, 7) + {
      description: "One row per target: can a Callbridge register now; if not, one failing server with its step and reason (all of them in 'Failing steps now'); time since any server last completed every step; servers up of total; days left on the first certificate to expire; age of the last probe (stale above 3 intervals).",
      targets: [
        q.instant('max by (target) (cms_xmpp_probe_success{SELECTOR, target=~"$target"})', '__auto', 'A') + { format: 'table' },
        q.instant('time() - max by (target) (cms_xmpp_last_success_timestamp_seconds{SELECTOR, target=~"$target"})', '__auto', 'B') + { format: 'table' },
        q.instant('sum by (target) (cms_xmpp_server_up{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'C') + { format: 'table' },
        q.instant('count by (target) (cms_xmpp_server_up{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'D') + { format: 'table' },
        q.instant('min by (target) ((cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"} - time()) / 86400)', '__auto', 'E') + { format: 'table' },
        q.instant('topk by (target) (1, max by (target, server, step, reason) (cms_xmpp_failing_step_info{SELECTOR, target=~"$target", server=~"$server|"}))', '__auto', 'F') + { format: 'table' },
        q.instant('time() - max by (target) (cms_xmpp_last_probe_timestamp_seconds{SELECTOR, target=~"$target"})', '__auto', 'G') + { format: 'table' },
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
            matcher: { id: 'byName', options: 'Status' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      '0': { text: 'FAILING', color: 'red', index: 0 },
                      '1': { text: 'OK', color: 'green', index: 1 },
                    },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Failing step' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      srv: { text: 'srv (flow step 4: SRV lookup)', index: 0 },
                      resolve: { text: 'resolve (flow step 5: A/AAAA lookup)', index: 1 },
                      connect: { text: 'connect (flow step 6: TCP connect)', index: 2 },
                      tls: { text: 'tls (flow step 7: TLS 1.2+ handshake)', index: 3 },
                      cert: { text: 'cert (flow step 8: certificate, SANs)', index: 4 },
                      stream: { text: 'stream (flow step 9: component stream)', index: 5 },
                      handshake: { text: 'handshake (flow steps 9-10: name + secret)', index: 6 },
                    },
                  },
                ],
              },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Reason' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      nxdomain: { text: 'nxdomain: the name does not exist', index: 0 },
                      no_records: { text: 'no_records: no SRV / A / AAAA records', index: 1 },
                      servfail: { text: 'servfail: DNS server answered SERVFAIL', index: 2 },
                      dns_error: {
                        text: 'dns_error: other DNS failure (REFUSED, unreachable DNS)',
                        index: 3,
                      },
                      dns_timeout: { text: 'dns_timeout: no DNS answer in time', index: 4 },
                      srv_unavailable: {
                        text: "srv_unavailable: SRV target is '.': service not offered",
                        index: 5,
                      },
                      refused: { text: 'refused: TCP connection refused', index: 6 },
                      unreachable: { text: 'unreachable: no route to the server', index: 7 },
                      timeout: { text: 'timeout: step did not finish in time', index: 8 },
                      tls_handshake: { text: 'tls_handshake: TLS handshake failed', index: 9 },
                      tls_version: { text: 'tls_version: no TLS 1.2+ version or cipher in common', index: 10 },
                      cert_untrusted: { text: 'cert_untrusted: certificate chain not trusted', index: 11 },
                      cert_expired: { text: 'cert_expired: certificate expired', index: 12 },
                      cert_not_yet_valid: { text: 'cert_not_yet_valid: certificate not valid yet', index: 13 },
                      cert_name_mismatch: { text: 'cert_name_mismatch: SANs miss the domain or the FQDN', index: 14 },
                      not_authorized: {
                        text: 'not_authorized: wrong shared secret (CMS: authentication failure)',
                        index: 15,
                      },
                      host_unknown: {
                        text: 'host_unknown: component name not configured on the XMPP server',
                        index: 16,
                      },
                      conflict: { text: 'conflict: component name already connected', index: 17 },
                      improper_addressing: { text: "improper_addressing: server found no usable 'to'", index: 18 },
                      invalid_namespace: { text: 'invalid_namespace: not a component port', index: 19 },
                      stream_error: { text: 'stream_error: other stream error', index: 20 },
                      closed: { text: 'closed: server closed the connection', index: 21 },
                      protocol: { text: 'protocol: not a valid XEP-0114 answer', index: 22 },
                      oversized: { text: 'oversized: more than 64 KiB without completing', index: 23 },
                      cert_weak: { text: 'cert_weak: RSA < 2048 bits or SHA-1 in the chain', index: 24 },
                    },
                  },
                ],
              },
              {
                id: 'links',
                value: [
                  {
                    title: 'Runbook: failure reasons',
                    url: config.runbookUrl + '#failure-reasons',
                    targetBlank: true,
                  },
                ],
              },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Since last success' },
            properties: [{ id: 'unit', value: 's' }, { id: 'decimals', value: 0 }],
          },
          {
            matcher: { id: 'byName', options: 'Last probe' },
            properties: [{ id: 'unit', value: 's' }, { id: 'decimals', value: 0 }],
          },
          {
            matcher: { id: 'byName', options: 'Cert days left (min)' },
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
        sortBy: [{ displayName: 'Status', desc: false }],
      },
      transformations: [
        { id: 'merge', options: {} },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, 'Value #F': true },
            indexByName: {
              target: 0,
              'Value #A': 1,
              server: 2,
              step: 3,
              reason: 4,
              'Value #B': 5,
              'Value #C': 6,
              'Value #D': 7,
              'Value #E': 8,
              'Value #G': 9,
            },
            renameByName: {
              'Value #A': 'Status',
              server: 'Failing server',
              step: 'Failing step',
              reason: 'Reason',
              'Value #B': 'Since last success',
              'Value #C': 'Servers up',
              'Value #D': 'Servers total',
              'Value #E': 'Cert days left (min)',
              'Value #G': 'Last probe',
            },
          },
        },
      ],
    },
    lib.panel('table', 9, 'Failing steps now', 0, 12, 24, 6) + {
      description: 'Every server whose last probe failed, with the step of the Callbridge to XMPP signal flow that broke (flow step numbers from docs/runbook.md) and why. server is empty for the target-level SRV lookup. Empty when everything registers.',
      targets: [
        q.instant('max by (target, server, step, reason) (cms_xmpp_failing_step_info{SELECTOR, target=~"$target", server=~"$server|"})', '__auto', 'A') + { format: 'table' },
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
            matcher: { id: 'byName', options: 'Step' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      srv: { text: 'srv (flow step 4: SRV lookup)', index: 0 },
                      resolve: { text: 'resolve (flow step 5: A/AAAA lookup)', index: 1 },
                      connect: { text: 'connect (flow step 6: TCP connect)', index: 2 },
                      tls: { text: 'tls (flow step 7: TLS 1.2+ handshake)', index: 3 },
                      cert: { text: 'cert (flow step 8: certificate, SANs)', index: 4 },
                      stream: { text: 'stream (flow step 9: component stream)', index: 5 },
                      handshake: { text: 'handshake (flow steps 9-10: name + secret)', index: 6 },
                    },
                  },
                ],
              },
            ],
          },
          {
            matcher: { id: 'byName', options: 'Reason' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      nxdomain: { text: 'nxdomain: the name does not exist', index: 0 },
                      no_records: { text: 'no_records: no SRV / A / AAAA records', index: 1 },
                      servfail: { text: 'servfail: DNS server answered SERVFAIL', index: 2 },
                      dns_error: {
                        text: 'dns_error: other DNS failure (REFUSED, unreachable DNS)',
                        index: 3,
                      },
                      dns_timeout: { text: 'dns_timeout: no DNS answer in time', index: 4 },
                      srv_unavailable: {
                        text: "srv_unavailable: SRV target is '.': service not offered",
                        index: 5,
                      },
                      refused: { text: 'refused: TCP connection refused', index: 6 },
                      unreachable: { text: 'unreachable: no route to the server', index: 7 },
                      timeout: { text: 'timeout: step did not finish in time', index: 8 },
                      tls_handshake: { text: 'tls_handshake: TLS handshake failed', index: 9 },
                      tls_version: { text: 'tls_version: no TLS 1.2+ version or cipher in common', index: 10 },
                      cert_untrusted: { text: 'cert_untrusted: certificate chain not trusted', index: 11 },
                      cert_expired: { text: 'cert_expired: certificate expired', index: 12 },
                      cert_not_yet_valid: { text: 'cert_not_yet_valid: certificate not valid yet', index: 13 },
                      cert_name_mismatch: { text: 'cert_name_mismatch: SANs miss the domain or the FQDN', index: 14 },
                      not_authorized: {
                        text: 'not_authorized: wrong shared secret (CMS: authentication failure)',
                        index: 15,
                      },
                      host_unknown: {
                        text: 'host_unknown: component name not configured on the XMPP server',
                        index: 16,
                      },
                      conflict: { text: 'conflict: component name already connected', index: 17 },
                      improper_addressing: { text: "improper_addressing: server found no usable 'to'", index: 18 },
                      invalid_namespace: { text: 'invalid_namespace: not a component port', index: 19 },
                      stream_error: { text: 'stream_error: other stream error', index: 20 },
                      closed: { text: 'closed: server closed the connection', index: 21 },
                      protocol: { text: 'protocol: not a valid XEP-0114 answer', index: 22 },
                      oversized: { text: 'oversized: more than 64 KiB without completing', index: 23 },
                      cert_weak: { text: 'cert_weak: RSA < 2048 bits or SHA-1 in the chain', index: 24 },
                    },
                  },
                ],
              },
              {
                id: 'links',
                value: [
                  {
                    title: 'Runbook: failure reasons',
                    url: config.runbookUrl + '#failure-reasons',
                    targetBlank: true,
                  },
                ],
              },
            ],
          },
        ],
      },
      transformations: [
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, Value: true },
            indexByName: { target: 0, server: 1, step: 2, reason: 3 },
            renameByName: { target: 'Target', server: 'Server', step: 'Step', reason: 'Reason' },
          },
        },
      ],
      links: [{ title: 'Runbook', url: config.runbookUrl, targetBlank: true }],
    },
  ],
}
