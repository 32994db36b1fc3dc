// Row 'Live registration (watch): is each production Callbridge connected to XMPP' of the overview dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(20, 'Live registration (watch): is each production Callbridge connected to XMPP', 64),
    lib.panel('stat', 21, 'Callbridges registered', 0, 65, 4, 5) + {
      description: "Watched components that answered the monitoring user's last ping (cms_xmpp_component_registered), of all that are listed. A component of a target whose login fails counts as not registered: see the login panel.",
      targets: [
        q.instant('sum(cms_xmpp_component_registered{SELECTOR, target=~"$target"})', 'registered'),
        q.instant('count(cms_xmpp_component_registered{SELECTOR, target=~"$target"})', 'listed', 'B'),
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
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'value',
        graphMode: 'none',
        justifyMode: 'auto',
        orientation: 'auto',
        textMode: 'auto',
        wideLayout: true,
        showPercentChange: false,
      },
    },
    lib.panel('state-timeline', 22, 'Monitoring login per target', 4, 65, 10, 5) + {
      description: 'cms_xmpp_watch_success over time: OK when the monitoring user logged in and pinged the components. FAILING means we are blind (CmsXmppWatchLoginFailing); cms_xmpp_watch_failing_step_info says where.',
      targets: [
        q.range('max by (target) (cms_xmpp_watch_success{SELECTOR, target=~"$target"})', '{{target}}'),
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
    lib.panel('timeseries', 23, 'Login step durations', 14, 65, 10, 5) + {
      description: "cms_xmpp_watch_step_last_duration_seconds: each step of the monitoring user's login (srv, resolve, connect, starttls, tls, sasl, bind), the slowest of the selected targets.",
      targets: [
        q.range('max by (step) (cms_xmpp_watch_step_last_duration_seconds{SELECTOR, target=~"$target"})', '{{step}}'),
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
