// Row 'TLS links (protocol: tls, such as C2W): handshake (step tls), client-certificate verdict (step client_cert), both certificates' of the certificates-dns dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(18, 'TLS links (protocol: tls, such as C2W): handshake (step tls), client-certificate verdict (step client_cert), both certificates', 57),
    lib.panel('timeseries', 19, 'TLS links: handshake and verdict times', 0, 58, 12, 8) + {
      description: "For each TLS link (a protocol: tls target, such as a Callbridge's C2W link to a Web Bridge 3): the handshake (step tls, milliseconds on a LAN; alert CmsXmppStepLatencyHigh judges it) and the wait for the server's verdict on the client certificate (step client_cert: milliseconds where the server issues a session ticket, 1 s of silence where it issues none, 0 under TLS 1.2 or when it asks for no certificate; no alert judges it). docs/metrics.md, TLS links.",
      targets: [
        q.range('max by (target, server, step) (cms_xmpp_step_last_duration_seconds{SELECTOR, step=~"tls|client_cert", target=~"$target", server=~"$server"}) and on (target) max by (target) (cms_xmpp_target_info{SELECTOR, protocol="tls"})', '{{server}} ({{target}}) {{step}}'),
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
    lib.panel('timeseries', 20, "TLS links: certificates' days left", 12, 58, 12, 8) + {
      description: "Days until each TLS link's certificates end: the server's leaf (the Web Bridge's c2w certificate; alert CmsXmppCertificateExpiring) and the client certificate the target presents (tls.client_cert_file, the Callbridge's own; alert CmsXmppClientCertificateExpiring).",
      targets: [
        q.range('(max by (target, server) (cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"}) and on (target) max by (target) (cms_xmpp_target_info{SELECTOR, protocol="tls"})) / 86400 - time() / 86400', '{{server}} ({{target}}) server certificate'),
        q.range('(max by (target) (cms_xmpp_client_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target"}) and on (target) max by (target) (cms_xmpp_target_info{SELECTOR, protocol="tls"})) / 86400 - time() / 86400', '{{target}} client certificate', 'B'),
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
  ],
}
