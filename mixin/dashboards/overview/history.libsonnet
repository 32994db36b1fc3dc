// Row 'History' of the overview dashboard.
local lib = import '../lib.libsonnet';

function(config) {
  local q = lib.queries(config),

  panels: [
    lib.row(10, 'History', 18),
    lib.panel('state-timeline', 11, 'Registration per target', 0, 19, 24, 5) + {
      description: 'cms_xmpp_probe_success over time: OK when at least one server completed every step.',
      targets: [
        q.range('max by (target) (cms_xmpp_probe_success{SELECTOR, target=~"$target"})', '{{target}}'),
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
    lib.panel('state-timeline', 12, 'Server up per server', 0, 24, 24, 10) + {
      description: 'cms_xmpp_server_up: OK when the server completed every step of the probe, FAILING when a step failed (cms_xmpp_failing_step_info and the table above name it).',
      targets: [
        q.range('max by (target, server) (cms_xmpp_server_up{SELECTOR, target=~"$target", server=~"$server"})', '{{target}} {{server}}'),
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
  ],
}
