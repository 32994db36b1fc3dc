// Row 'Callbridge $component' of the overview dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(24, 'Callbridge $component', 70) + { repeat: 'component' },
    lib.panel('stat', 25, '$component now', 0, 71, 4, 5) + {
      description: 'Whether $component answered the last ping (cms_xmpp_component_registered): REGISTERED, or NOT REGISTERED when the XMPP server routed nothing to it (reason in cms_xmpp_component_failing_info).',
      targets: [
        q.instant('min(cms_xmpp_component_registered{SELECTOR, target=~"$target", component=~"$component"})', 'registered'),
      ],
      fieldConfig: {
        defaults: {
          unit: 'none',
          mappings: [
            {
              type: 'value',
              options: {
                '0': { text: 'NOT REGISTERED', color: 'red', index: 0 },
                '1': { text: 'REGISTERED', color: 'green', index: 1 },
              },
            },
          ],
          thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
    },
    lib.panel('state-timeline', 26, '$component registered over time', 4, 71, 10, 5) + {
      description: 'cms_xmpp_component_registered of $component per target: a red stretch is a time web users could not sign in through this Callbridge.',
      targets: [
        q.range('max by (target) (cms_xmpp_component_registered{SELECTOR, target=~"$target", component=~"$component"})', '{{target}}'),
      ],
      fieldConfig: {
        defaults: {
          custom: lib.defaults['state-timeline'].custom,
          unit: 'none',
          mappings: [
            {
              type: 'value',
              options: {
                '0': { text: 'NOT REGISTERED', color: 'red', index: 0 },
                '1': { text: 'REGISTERED', color: 'green', index: 1 },
              },
            },
          ],
          thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] },
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
    },
    lib.panel('timeseries', 27, '$component ping round trip', 14, 71, 10, 5) + {
      description: "cms_xmpp_component_ping_seconds: the round trip of $component's last answer to the monitoring user's ping, through the XMPP server; absent while it does not answer.",
      targets: [
        q.range('max by (target) (cms_xmpp_component_ping_seconds{SELECTOR, target=~"$target", component=~"$component"})', '{{target}}'),
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
      options: {
        legend: { displayMode: 'list', placement: 'bottom', showLegend: true, calcs: [] },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
    },
  ],
}
