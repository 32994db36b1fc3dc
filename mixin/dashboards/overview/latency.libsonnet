// Row 'Latency and failures' of the overview dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(13, 'Latency and failures', 34),
    lib.panel('timeseries', 14, 'Step latency: $step', 0, 35, 6, 7) + {
      description: "p50 / p95 / p99 over 15 minutes of the step's last durations (cms_xmpp_step_last_duration_seconds), the slowest of the selected targets and servers. The dashed red line is the step's p95 alert threshold of CmsXmppStepLatencyHigh (the recording rule cms_xmpp:threshold:step_latency_p95_seconds, the mixin's _config). The cert step is judged in memory and has no duration.",
      repeat: 'step',
      repeatDirection: 'h',
      maxPerRow: 4,
      targets: [
        q.range('max(quantile_over_time(0.50, cms_xmpp_step_last_duration_seconds{SELECTOR, target=~"$target", server=~"$server|", step=~"$step"}[15m]))', 'p50'),
        q.range('max(quantile_over_time(0.95, cms_xmpp_step_last_duration_seconds{SELECTOR, target=~"$target", server=~"$server|", step=~"$step"}[15m]))', 'p95', 'B'),
        q.range('max(quantile_over_time(0.99, cms_xmpp_step_last_duration_seconds{SELECTOR, target=~"$target", server=~"$server|", step=~"$step"}[15m]))', 'p99', 'C'),
        q.range('max(cms_xmpp:threshold:step_latency_p95_seconds{step=~"$step"})', 'p95 threshold', 'D'),
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
            thresholdsStyle: { mode: 'off' },
          },
          unit: 's',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'palette-classic' },
        },
        overrides: [{
          matcher: { id: 'byName', options: 'p95 threshold' },
          properties: [
            { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
            { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
            { id: 'custom.fillOpacity', value: 0 },
          ],
        }],
      },
      options: {
        legend: { displayMode: 'list', placement: 'bottom', showLegend: true, calcs: [] },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
    },
    lib.panel('timeseries', 15, 'Failure rate by reason', 0, 42, 12, 8) + {
      description: "Failed probes per minute by reason (cms_xmpp_probe_failures_total; one per failed server per cycle). See the runbook's failure reasons.",
      targets: [
        q.range('sum by (reason) (rate(cms_xmpp_probe_failures_total{SELECTOR, target=~"$target", server=~"$server|"}[$__rate_interval])) * 60', '{{reason}}'),
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.timeseries.custom,
          unit: 'cpm',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'palette-classic' },
          links: [
            {
              title: 'Runbook: failure reasons',
              url: config.runbookUrl + '#failure-reasons',
              targetBlank: true,
            },
          ],
        },
        overrides: [],
      },
    },
    lib.panel('timeseries', 16, 'Failure rate by step', 12, 42, 12, 8) + {
      description: 'Failed probes per minute by the step that failed: where in the signal flow the registration breaks.',
      targets: [
        q.range('sum by (step) (rate(cms_xmpp_probe_failures_total{SELECTOR, target=~"$target", server=~"$server|"}[$__rate_interval])) * 60', '{{step}}'),
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults.timeseries.custom,
          unit: 'cpm',
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          color: { mode: 'palette-classic' },
        },
        overrides: [],
      },
    },
    lib.panel('timeseries', 17, 'Time since last success per server', 0, 50, 12, 8) + {
      description: 'How long ago each server last completed every step (cms_xmpp_last_success_timestamp_seconds).',
      targets: [
        q.range('time() - cms_xmpp_last_success_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"}', '{{target}} {{server}}'),
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
    lib.panel('timeseries', 18, 'Probe cycle duration', 12, 50, 12, 8) + {
      description: "Duration of the last probe cycle of each target, all servers included (cms_xmpp_probe_duration_seconds). Near the target's timeout means a step is timing out.",
      targets: [
        q.range('cms_xmpp_probe_duration_seconds{SELECTOR, target=~"$target"}', '{{target}}'),
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
    lib.panel('bargauge', 19, 'Certificate days left per server', 0, 58, 24, 6) + {
      description: 'Days until the leaf certificate each server presents expires (warning below %s, critical below %s). Details on Certificates & DNS.' % [config.thresholds.certExpiryWarningDays, config.thresholds.certExpiryCriticalDays],
      targets: [
        q.instant('(cms_xmpp_cert_not_after_timestamp_seconds{SELECTOR, target=~"$target", server=~"$server"} - time()) / 86400', '{{server}} ({{target}})'),
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
          links: [
            {
              title: 'Certificates & DNS',
              url: '/d/cms-xmpp-certificates-dns/cms-xmpp-certificates-and-dns?${__url_time_range}&${target:queryparam}&${server:queryparam}',
            },
          ],
          min: 0,
        },
        overrides: [],
      },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        orientation: 'horizontal',
        displayMode: 'gradient',
        showUnfilled: true,
        valueMode: 'color',
        namePlacement: 'auto',
        sizing: 'auto',
        minVizHeight: 16,
        minVizWidth: 8,
        maxVizHeight: 300,
      },
    },
  ],
}
