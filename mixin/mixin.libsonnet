// cms-xmpp-exporter's monitoring mixin (https://monitoring.mixins.dev conventions):
// prometheusRules (the thresholds), prometheusAlerts and grafanaDashboards, all from the
// `_config` of config.libsonnet. README.md says how to use it with a job name of your own.
(import 'config.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'alerts/exporter.libsonnet')
+ (import 'alerts/dnssec.libsonnet')
+ (import 'alerts/registration.libsonnet')
+ (import 'alerts/certificates.libsonnet')
+ (import 'alerts/live-registration.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
