// The mixin with a scrape job of the user's own name and their runbook's address: what
// mixin/README.md shows. mixin/check.sh builds it and runs own-job.test.yml on its rules.
(import '../mixin.libsonnet') + {
  _config+:: {
    selector: 'job="xmpp-monitoring"',
    runbookUrl: 'https://git.example.com/ops/cms-xmpp-exporter/blob/main/docs/runbook.md',
  },
}
