// The thresholds of config.libsonnet as constant recording rules: the alerts join against
// them and their descriptions print them, so one value changes both. Load this group with
// the alerts, or they stay silent.
local snake(name) =
  std.join('', [if std.asciiUpper(c) == c && std.asciiLower(c) != c then '_' + std.asciiLower(c) else c for c in std.stringChars(name)]);

{
  local thresholds = $._config.thresholds,
  local constant(name, value, labels={}) =
    { record: 'cms_xmpp:threshold:' + snake(name), expr: 'vector(%s)' % value }
    + (if labels == {} then {} else { labels: labels }),

  prometheusRules+:: {
    groups+: [
      {
        name: 'cms-xmpp-thresholds',
        rules: [
          constant(name, thresholds[name])
          for name in [
            'certExpiryWarningDays',
            'certExpiryCriticalDays',
            'dnssecExpiryWarningDays',
            'dnssecExpiryCriticalDays',
            'probeStaleIntervals',
            'flappingFailuresPerHour',
          ]
        ] + [
          constant('stepLatencyP95Seconds', thresholds.stepLatencyP95Seconds[step], { step: step })
          for step in ['srv', 'resolve', 'connect', 'tls', 'stream', 'handshake']
          if std.objectHas(thresholds.stepLatencyP95Seconds, step)
        ],
      },
    ],
  },
}
