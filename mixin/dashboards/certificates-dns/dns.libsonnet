// Row 'DNS: SRV _xmpp-component._tcp.<domain> (step srv) and A/AAAA (step resolve)' of the certificates-dns dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(7, 'DNS: SRV _xmpp-component._tcp.<domain> (step srv) and A/AAAA (step resolve)', 32),
    lib.panel('table', 8, 'SRV targets', 0, 33, 16, 8) + {
      description: "The servers each target probes: from the SRV answer (priority and weight per RFC 2782; 'Tried first' marks the lowest-priority group a Callbridge tries first) or the static Server Address; the address that last accepted TCP; whether the server completed every step in the last probe.",
      targets: [
        q.instant('max by (target, server, source, priority, weight, preferred, address) (cms_xmpp_server_info{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'A') + { format: 'table' },
        q.instant('max by (target, server) (cms_xmpp_server_up{SELECTOR, target=~"$target", server=~"$server"})', '__auto', 'B') + { format: 'table' },
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
            matcher: { id: 'byName', options: 'Up' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: {
                      '0': { text: 'DOWN', color: 'red', index: 0 },
                      '1': { text: 'up', color: 'green', index: 1 },
                    },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
        ],
      },
      options: {
        showHeader: true,
        cellHeight: 'sm',
        footer: { show: false, reducer: ['sum'], countRows: false, fields: '' },
        sortBy: [{ displayName: 'Priority', desc: false }],
      },
      transformations: [
        { id: 'merge', options: {} },
        {
          id: 'organize',
          options: {
            excludeByName: { Time: true, 'Value #A': true },
            indexByName: {
              target: 0,
              server: 1,
              source: 2,
              priority: 3,
              weight: 4,
              preferred: 5,
              address: 6,
              'Value #B': 7,
            },
            renameByName: {
              target: 'Target',
              server: 'Server (SRV target:port)',
              source: 'Source',
              priority: 'Priority',
              weight: 'Weight',
              preferred: 'Tried first',
              address: 'Address that accepted TCP',
              'Value #B': 'Up',
            },
          },
        },
      ],
    },
    lib.panel('timeseries', 9, 'Servers in the SRV answer', 16, 33, 8, 8) + {
      description: 'cms_xmpp_srv_records: servers in the last SRV answer (0 when the lookup failed). A drop means a server vanished from DNS (alert CmsXmppSrvServerVanished).',
      targets: [
        q.range('cms_xmpp_srv_records{SELECTOR, target=~"$target"}', '{{target}}'),
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.timeseries.custom,
          unit: 'none',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'palette-classic' },
        },
        overrides: [],
      },
    },
    lib.panel('table', 10, 'DNS failures now', 0, 41, 12, 7) + {
      description: 'Targets and servers whose last probe failed at the SRV lookup (step srv, no server) or the A/AAAA lookup (step resolve), with the reason.',
      targets: [
        q.instant('max by (target, server, step, reason) (cms_xmpp_failing_step_info{SELECTOR, step=~"srv|resolve", target=~"$target", server=~"$server|"})', '__auto', 'A') + { format: 'table' },
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
                      dnssec_bogus: { text: 'dnssec_bogus: fails DNSSEC validation', index: 25 },
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
    },
    lib.panel('timeseries', 11, 'DNS lookup latency p95', 12, 41, 12, 7) + {
      description: 'p95 of the SRV lookup and the A/AAAA lookup per target (cms_xmpp_step_duration_seconds). The exporter asks DNS on every probe, without a cache.',
      targets: [
        q.range('max by (target, step) (quantile_over_time(0.95, cms_xmpp_step_last_duration_seconds{SELECTOR, step=~"srv|resolve", target=~"$target", server=~"$server|"}[15m]))', '{{target}} {{step}}'),
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.timeseries.custom,
          unit: 's',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'palette-classic' },
        },
        overrides: [],
      },
    },
  ],
}
