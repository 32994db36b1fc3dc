// The mixin with a scrape job of the user's own name, their runbook's address and a longer
// certificate warning: what mixin/README.md shows. mixin/check.sh builds it, runs
// own-job.test.yml on its rules and mixin/tests/output.py on the whole output.
(import '../mixin.libsonnet') + {
  _config+:: {
    selector: 'job="xmpp-monitoring"',
    runbookUrl: 'https://git.example.com/ops/cms-xmpp-exporter/blob/main/docs/runbook.md',
    thresholds+:: { certExpiryWarningDays: 45 },
  },
}
