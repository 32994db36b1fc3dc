// The template variables both dashboards offer.
local lib = import 'lib.libsonnet';

function(config) {
  target: lib.labelVariable(
    config,
    'target',
    'Target',
    'The `target` label: one configured target of the exporter (one Callbridge view of an XMPP service).',
    'cms_xmpp_probe_success{SELECTOR}',
  ),
  server: lib.labelVariable(
    config,
    'server',
    'XMPP server',
    'The `server` label (fqdn:port) of the selected targets. The target-level srv step has no server and is shown whatever is selected here.',
    'cms_xmpp_server_up{SELECTOR, target=~"$target"}',
  ),
  step: {
    type: 'custom',
    name: 'step',
    label: 'Step',
    description: 'Timed steps of the Callbridge to XMPP signal flow, in order (docs/metrics.md#steps); cert is judged in memory and has no duration.',
    query: 'srv,resolve,connect,tls,stream,handshake',
    multi: true,
    includeAll: true,
    allValue: '.*',
    hide: 0,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
  },
  component: lib.labelVariable(
    config,
    'component',
    'Callbridge',
    "The `component` label: a production component JID that a target's watch pings (one row each).",
    'cms_xmpp_component_registered{SELECTOR, target=~"$target"}',
  ),
}
