// What a user of the mixin changes, in one place. Override it from your own jsonnet:
//
//   (import 'mixin.libsonnet') + {   // jsonnet -J <this directory>, or vendored with jb
//     _config+:: {
//       selector: 'job="xmpp-monitoring"',  // your scrape job, whatever its name
//       runbookUrl: 'https://git.example.com/ops/cms-xmpp-exporter/blob/main/docs/runbook.md',
//       thresholds+:: { certExpiryWarningDays: 30 },
//     },
//   }
//
// The committed alerts/cms-xmpp.rules.yml and dashboards/*.json are this file's defaults
// (`python3 mixin/build.py` writes them; CI fails when they differ).
{
  _config+:: {
    // An alert's critical range lies inside its warning range.
    assert self.thresholds.certExpiryCriticalDays < self.thresholds.certExpiryWarningDays :
           '_config.thresholds: certExpiryCriticalDays must be below certExpiryWarningDays',
    assert self.thresholds.dnssecExpiryCriticalDays < self.thresholds.dnssecExpiryWarningDays :
           '_config.thresholds: dnssecExpiryCriticalDays must be below dnssecExpiryWarningDays',

    // PromQL label matchers that select the exporter's series: `up` of its scrape job(s) for
    // CmsXmppExporterDown, and every cms_xmpp_* series in the alerts, their descriptions'
    // queries and the dashboards. It must select at least one label (it also stands alone,
    // `up{<selector>}`). The default keeps the old convention, a job name matching
    // .*cms.*xmpp.* (cms-xmpp-exporter, cms-xmpp-fleet); with a job of another name, set it
    // (`job="xmpp-monitoring"`), or CmsXmppMetricsAbsent fires: it then sees no series.
    selector: 'job=~".*cms.*xmpp.*"',

    // Where docs/runbook.md lives for you: every alert's runbook_url is this plus
    // `#<alert name in lowercase>`, and the dashboards link to it.
    runbookUrl: 'https://github.com/OWNER/cms-xmpp-exporter/blob/main/docs/runbook.md',

    // The values PromQL reads: each becomes a constant recording rule
    // (cms_xmpp:threshold:<name in snake case>) that the alerts join against and print in
    // their descriptions. The `for:` durations and range windows are in the alert files
    // (mixin/alerts/*.libsonnet), each next to the alert whose description names it.
    thresholds+:: {
      // CmsXmppCertificate(Chain)Expiring, CmsXmppClientCertificateExpiring.
      certExpiryWarningDays: 21,
      certExpiryCriticalDays: 7,
      // CmsXmppDnssecSignaturesExpiring. Signers refresh signatures days before they expire
      // (BIND 5 of 14, Knot a quarter of their life): one with less left than this means the
      // signer has stopped.
      dnssecExpiryWarningDays: 3,
      dnssecExpiryCriticalDays: 1,
      // CmsXmppProbeStale: this many times the target's interval without a finished probe.
      probeStaleIntervals: 3,
      // CmsXmppFlapping: failed probes of one server within an hour.
      flappingFailuresPerHour: 3,
      // CmsXmppStepLatencyHigh: the p95 of each step's last durations over 15 minutes, in
      // seconds; a step without a value here is not alerted on. `cert` is judged in memory
      // and has no duration series; `client_cert` (a TLS link's wait for the verdict on its
      // client certificate) lasts 1 s on a healthy server that issues no session ticket, so
      // it has none.
      stepLatencyP95Seconds: {
        srv: 1,
        resolve: 1,
        connect: 1,
        tls: 1,
        stream: 1,
        handshake: 1,
      },
    },

    // Grafana: the dashboards' tags, the refresh and time range they open with.
    dashboardTags: ['cms-xmpp', 'cisco-meeting-server', 'xmpp'],
    dashboardRefresh: '1m',
    dashboardFrom: 'now-6h',
  },
}
