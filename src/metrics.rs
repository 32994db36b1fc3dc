//! Turns probe reports into Prometheus series. Owns every metric name; `docs/metrics.md` is
//! the contract for them.
//!
//! Series that carry changing label values (the failing step, `_info` series) are replaced,
//! not accumulated, and every series of a server that leaves the SRV answer is removed: the
//! bookkeeping below remembers what was set so that it can be taken away.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::config::{ServerSource, Target, TlsMode};
use crate::probe::{Origin, Reason, Server, ServerReport, Step, StepRecord, TargetReport};

pub const PREFIX: &str = "cms_xmpp";
/// 1 ms to 10 s: DNS on a LAN answers in about a millisecond, a timed-out step takes seconds.
const STEP_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The `server` label of target-level steps (the SRV lookup comes before any server).
const NO_SERVER: &str = "";

struct Families {
    probe_success: IntGaugeVec,
    probes_total: IntCounterVec,
    probe_duration: GaugeVec,
    last_probe: GaugeVec,
    interval: GaugeVec,
    timeout: GaugeVec,
    target_info: IntGaugeVec,
    srv_records: IntGaugeVec,
    server_up: IntGaugeVec,
    step_success: IntGaugeVec,
    step_duration: HistogramVec,
    step_last_duration: GaugeVec,
    failures_total: IntCounterVec,
    failing_step: IntGaugeVec,
    last_success: GaugeVec,
    server_info: IntGaugeVec,
    address_info: IntGaugeVec,
    cert_not_after: GaugeVec,
    cert_not_before: GaugeVec,
    cert_trusted: IntGaugeVec,
    cert_san_covered: IntGaugeVec,
    cert_info: IntGaugeVec,
    tls_info: IntGaugeVec,
    reload_successful: IntGaugeVec,
    reload_timestamp: GaugeVec,
}

/// What was set for one server (or for the target-level SRV step), so it can be replaced or
/// removed later.
#[derive(Default)]
struct ServerSeries {
    failing: Option<Vec<String>>,
    info: Option<Vec<String>>,
    address: Option<Vec<String>>,
    cert_info: Option<Vec<String>>,
    tls_info: Option<Vec<String>>,
    san: Vec<Vec<String>>,
}

#[derive(Default)]
struct TargetSeries {
    info: Vec<String>,
    srv: Option<ServerSeries>,
    servers: HashMap<String, ServerSeries>,
}

pub struct Metrics {
    registry: Registry,
    families: Families,
    targets: Mutex<HashMap<String, TargetSeries>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot register metric")]
pub struct MetricsError(#[source] prometheus::Error);

fn name(suffix: &str) -> String {
    format!("{PREFIX}_{suffix}")
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let reg = Registrar(&registry);
        let families = Families {
            probe_success: reg.int_gauge("probe_success", "1 when at least one server of the target completed every step of the last probe.", &["target"])?,
            probes_total: reg.int_counter("probes_total", "Probe cycles run for the target.", &["target"])?,
            probe_duration: reg.gauge("probe_duration_seconds", "How long the last probe cycle of the target took, all servers included.", &["target"])?,
            last_probe: reg.gauge("last_probe_timestamp_seconds", "When the last probe cycle of the target finished (Unix time).", &["target"])?,
            interval: reg.gauge(
                "probe_interval_seconds",
                "The target's configured probe interval; staleness alerts compare last_probe_timestamp_seconds with it.",
                &["target"],
            )?,
            timeout: reg.gauge(
                "probe_timeout_seconds",
                "The target's configured whole-probe deadline.",
                &["target"],
            )?,
            target_info: reg.int_gauge(
                "target_info",
                "A configured target: its XMPP domain, component name, server address (empty for SRV) and TLS mode.",
                &["target", "domain", "component", "server_address", "tls_mode"],
            )?,
            srv_records: reg.int_gauge("srv_records", "Servers in the last SRV answer for _xmpp-component._tcp.<domain> (0 when the lookup failed).", &["target"])?,
            server_up: reg.int_gauge("server_up", "1 when the server completed every step of the last probe.", &["target", "server"])?,
            step_success: reg.int_gauge("step_success", "1 when the step succeeded in the last probe; 0 when it failed or was not reached.", &["target", "server", "step"])?,
            step_duration: reg.register(
                HistogramVec::new(
                    HistogramOpts::new(name("step_duration_seconds"), "Duration of each step that ran.")
                        .buckets(STEP_BUCKETS.to_vec()),
                    &["target", "server", "step"],
                )
                .map_err(MetricsError)?,
            )?,
            step_last_duration: reg.gauge("step_last_duration_seconds", "Duration of the step in the last probe; 0 when it was not reached.", &["target", "server", "step"])?,
            failures_total: reg.int_counter("probe_failures_total", "Failed probes of a server, by the step that failed and why.", &["target", "server", "step", "reason"])?,
            failing_step: reg.int_gauge("failing_step_info", "1 for the step that failed in the last probe and its reason; absent when the last probe succeeded.", &["target", "server", "step", "reason"])?,
            last_success: reg.gauge("last_success_timestamp_seconds", "When the server last completed every step (Unix time).", &["target", "server"])?,
            server_info: reg.int_gauge("server_info", "A server of the target: from the SRV answer (with RFC 2782 priority and weight) or the configuration.", &["target", "server", "source", "priority", "weight", "preferred"])?,
            address_info: reg.int_gauge("server_address_info", "The address that accepted the TCP connection in the last probe.", &["target", "server", "address"])?,
            cert_not_after: reg.gauge("cert_not_after_timestamp_seconds", "End of the server certificate's validity (Unix time), as last seen.", &["target", "server"])?,
            cert_not_before: reg.gauge("cert_not_before_timestamp_seconds", "Start of the server certificate's validity (Unix time), as last seen.", &["target", "server"])?,
            cert_trusted: reg.int_gauge("cert_trusted", "1 when the server certificate chains to a trusted root (judged apart from expiry and names).", &["target", "server"])?,
            cert_san_covered: reg.int_gauge("cert_san_covered", "1 when the certificate's SANs cover the name a Callbridge requires: the XMPP domain (role=domain) and the server FQDN (role=fqdn).", &["target", "server", "role", "name"])?,
            cert_info: reg.int_gauge("cert_info", "The server's leaf certificate, as last seen.", &["target", "server", "subject", "issuer", "serial", "sha256", "sans"])?,
            tls_info: reg.int_gauge("tls_info", "The TLS version and cipher suite negotiated in the last successful TLS handshake.", &["target", "server", "version", "cipher"])?,
            reload_successful: reg.int_gauge("config_last_reload_successful", "1 when the last configuration load succeeded.", &[])?,
            reload_timestamp: reg.gauge("config_last_reload_success_timestamp_seconds", "When the configuration was last loaded successfully (Unix time).", &[])?,
        };
        reg.int_gauge(
            "build_info",
            "Version of the exporter; always 1.",
            &["version"],
        )?
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
        Ok(Metrics {
            registry,
            families,
            targets: Mutex::new(HashMap::new()),
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    pub fn config_loaded(&self, ok: bool) {
        let f = &self.families;
        f.reload_successful
            .with_label_values::<&str>(&[])
            .set(i64::from(ok));
        if ok {
            f.reload_timestamp
                .with_label_values::<&str>(&[])
                .set(unix_seconds(SystemTime::now()));
        }
    }

    /// Creates the target's series before its first probe, so dashboards and alerts see
    /// zeros, not gaps.
    pub fn register_target(&self, target: &Target, expected_steps: &[Step]) {
        let f = &self.families;
        let name = target.name.as_str();
        f.probe_success.with_label_values(&[name]).set(0);
        f.probes_total.with_label_values(&[name]).inc_by(0);
        f.interval
            .with_label_values(&[name])
            .set(target.interval.as_secs_f64());
        f.timeout
            .with_label_values(&[name])
            .set(target.timeout.as_secs_f64());
        let mut targets = self.targets.lock().expect("metrics lock");
        let series = targets.entry(target.name.clone()).or_default();
        series.info = target_info(target);
        f.target_info
            .with_label_values(&with_ids(&[], &series.info))
            .set(1);
        match &target.servers {
            ServerSource::Srv => {
                f.srv_records.with_label_values(&[name]).set(0);
                let mut srv = ServerSeries::default();
                self.zero_steps(name, NO_SERVER, &mut srv, &[Step::Srv]);
                series.srv = Some(srv);
            }
            ServerSource::Static { host, port } => {
                let server = Server {
                    host: host.clone(),
                    port: *port,
                    origin: Origin::Static,
                };
                let label = server.label();
                let mut server_series = ServerSeries::default();
                f.server_up.with_label_values(&[name, &label]).set(0);
                self.zero_steps(name, &label, &mut server_series, expected_steps);
                self.set_server_info(name, &label, &mut server_series, &server);
                series.servers.insert(label, server_series);
            }
        }
    }

    /// Removes every series of a target that is no longer configured.
    pub fn remove_target(&self, target: &str) {
        let f = &self.families;
        let Some(series) = self.targets.lock().expect("metrics lock").remove(target) else {
            return;
        };
        for (label, server) in &series.servers {
            self.remove_server(target, label, server);
        }
        let _ = f
            .target_info
            .remove_label_values(&with_ids(&[], &series.info));
        if let Some(srv) = &series.srv {
            self.remove_server(target, NO_SERVER, srv);
            let _ = f.srv_records.remove_label_values(&[target]);
        }
        let _ = f.probe_success.remove_label_values(&[target]);
        let _ = f.probes_total.remove_label_values(&[target]);
        let _ = f.probe_duration.remove_label_values(&[target]);
        let _ = f.last_probe.remove_label_values(&[target]);
        let _ = f.interval.remove_label_values(&[target]);
        let _ = f.timeout.remove_label_values(&[target]);
    }

    pub fn record(&self, report: &TargetReport) {
        let f = &self.families;
        let target = report.target.as_str();
        f.probes_total.with_label_values(&[target]).inc();
        f.probe_success
            .with_label_values(&[target])
            .set(i64::from(report.success()));
        f.probe_duration
            .with_label_values(&[target])
            .set(report.duration.as_secs_f64());
        f.last_probe
            .with_label_values(&[target])
            .set(unix_seconds(report.started + report.duration));

        let mut targets = self.targets.lock().expect("metrics lock");
        let series = targets.entry(report.target.clone()).or_default();
        if let Some(srv) = &report.srv {
            f.srv_records
                .with_label_values(&[target])
                .set(report.servers.len() as i64);
            let srv_series = series.srv.get_or_insert_with(ServerSeries::default);
            self.record_steps(
                target,
                NO_SERVER,
                srv_series,
                &[Step::Srv],
                std::slice::from_ref(srv),
            );
        }

        let current: BTreeSet<String> = report.servers.iter().map(|s| s.server.label()).collect();
        series.servers.retain(|label, server| {
            let keep = current.contains(label);
            if !keep {
                self.remove_server(target, label, server);
            }
            keep
        });
        for server in &report.servers {
            let label = server.server.label();
            let server_series = series.servers.entry(label.clone()).or_default();
            self.record_server(
                target,
                &label,
                server_series,
                server,
                &report.expected_steps,
            );
        }
    }

    fn record_server(
        &self,
        target: &str,
        label: &str,
        series: &mut ServerSeries,
        report: &ServerReport,
        expected: &[Step],
    ) {
        let f = &self.families;
        let ids = [target, label];
        let up = report.up(expected);
        f.server_up.with_label_values(&ids).set(i64::from(up));
        if up {
            f.last_success
                .with_label_values(&ids)
                .set(unix_seconds(SystemTime::now()));
        }
        self.record_steps(target, label, series, expected, &report.steps);
        self.set_server_info(target, label, series, &report.server);
        if let Some(address) = report.address {
            replace(
                &f.address_info,
                &ids,
                &mut series.address,
                Some(vec![address.to_string()]),
            );
        }
        if let Some(tls) = &report.tls {
            let labels = vec![tls.version.clone(), tls.cipher.clone()];
            replace(&f.tls_info, &ids, &mut series.tls_info, Some(labels));
        }
        if let Some(cert) = &report.cert {
            f.cert_not_after
                .with_label_values(&ids)
                .set(cert.not_after as f64);
            f.cert_not_before
                .with_label_values(&ids)
                .set(cert.not_before as f64);
            f.cert_trusted
                .with_label_values(&ids)
                .set(i64::from(cert.trusted));
            let labels = vec![
                cert.subject.clone(),
                cert.issuer.clone(),
                cert.serial.clone(),
                cert.sha256.clone(),
                cert.sans.join(","),
            ];
            replace(&f.cert_info, &ids, &mut series.cert_info, Some(labels));
            let san: Vec<Vec<String>> = cert
                .coverage
                .iter()
                .map(|c| vec![c.role.as_str().to_owned(), c.name.clone()])
                .collect();
            if san != series.san {
                for old in series.san.drain(..) {
                    let _ = f
                        .cert_san_covered
                        .remove_label_values(&with_ids(&ids, &old));
                }
            }
            for (labels, coverage) in san.iter().zip(&cert.coverage) {
                f.cert_san_covered
                    .with_label_values(&with_ids(&ids, labels))
                    .set(i64::from(coverage.covered));
            }
            series.san = san;
        }
    }

    /// Step success, durations, failure counter and the failing-step series.
    fn record_steps(
        &self,
        target: &str,
        label: &str,
        series: &mut ServerSeries,
        expected: &[Step],
        records: &[StepRecord],
    ) {
        let f = &self.families;
        for step in expected {
            let ids = [target, label, step.as_str()];
            let record = records.iter().find(|r| r.step == *step);
            let seconds = record.map_or(0.0, |r| r.duration.as_secs_f64());
            f.step_success
                .with_label_values(&ids)
                .set(i64::from(record.is_some_and(|r| r.result.is_ok())));
            f.step_last_duration.with_label_values(&ids).set(seconds);
            if record.is_some() {
                f.step_duration.with_label_values(&ids).observe(seconds);
            }
        }
        let failure = records
            .iter()
            .find_map(|r| r.result.as_ref().err().map(|e| (r.step, e.reason)));
        if let Some((step, reason)) = failure {
            f.failures_total
                .with_label_values(&[target, label, step.as_str(), reason.as_str()])
                .inc();
        }
        let failing = failure
            .map(|(step, reason)| vec![step.as_str().to_owned(), reason.as_str().to_owned()]);
        replace(
            &f.failing_step,
            &[target, label],
            &mut series.failing,
            failing,
        );
    }

    fn zero_steps(&self, target: &str, label: &str, series: &mut ServerSeries, steps: &[Step]) {
        self.record_steps(target, label, series, steps, &[]);
    }

    fn set_server_info(
        &self,
        target: &str,
        label: &str,
        series: &mut ServerSeries,
        server: &Server,
    ) {
        let labels = match server.origin {
            Origin::Srv {
                priority,
                weight,
                preferred,
            } => vec![
                "srv".to_owned(),
                priority.to_string(),
                weight.to_string(),
                preferred.to_string(),
            ],
            Origin::Static => vec![
                "static".to_owned(),
                String::new(),
                String::new(),
                "true".to_owned(),
            ],
        };
        replace(
            &self.families.server_info,
            &[target, label],
            &mut series.info,
            Some(labels),
        );
    }

    fn remove_server(&self, target: &str, label: &str, series: &ServerSeries) {
        let f = &self.families;
        let ids = [target, label];
        // Removing a series that was never set is a no-op, so every possible one is named.
        for step in Step::ALL {
            let step_ids = [target, label, step.as_str()];
            let _ = f.step_success.remove_label_values(&step_ids);
            let _ = f.step_duration.remove_label_values(&step_ids);
            let _ = f.step_last_duration.remove_label_values(&step_ids);
        }
        for (step, reason) in Step::ALL.iter().flat_map(|s| Reason::ALL.map(|r| (s, r))) {
            let _ = f.failures_total.remove_label_values(&[
                target,
                label,
                step.as_str(),
                reason.as_str(),
            ]);
        }
        let optional = [
            (&f.failing_step, &series.failing),
            (&f.server_info, &series.info),
            (&f.address_info, &series.address),
            (&f.cert_info, &series.cert_info),
            (&f.tls_info, &series.tls_info),
        ];
        for (family, labels) in optional {
            if let Some(labels) = labels {
                let _ = family.remove_label_values(&with_ids(&ids, labels));
            }
        }
        for labels in &series.san {
            let _ = f
                .cert_san_covered
                .remove_label_values(&with_ids(&ids, labels));
        }
        let _ = f.server_up.remove_label_values(&ids);
        let _ = f.last_success.remove_label_values(&ids);
        let _ = f.cert_not_after.remove_label_values(&ids);
        let _ = f.cert_not_before.remove_label_values(&ids);
        let _ = f.cert_trusted.remove_label_values(&ids);
    }
}

/// The labels of `target_info`, in order.
fn target_info(target: &Target) -> Vec<String> {
    let server_address = match &target.servers {
        ServerSource::Srv => String::new(),
        ServerSource::Static { host, port } => Server {
            host: host.clone(),
            port: *port,
            origin: Origin::Static,
        }
        .label(),
    };
    let tls_mode = match target.tls.mode {
        TlsMode::Direct => "direct",
        TlsMode::None => "none",
    };
    vec![
        target.name.clone(),
        target.domain.clone(),
        target.component.clone(),
        server_address,
        tls_mode.to_owned(),
    ]
}

/// Sets a value-1 series whose labels may change, removing the series it replaces.
fn replace(
    family: &IntGaugeVec,
    ids: &[&str],
    current: &mut Option<Vec<String>>,
    new: Option<Vec<String>>,
) {
    if *current != new {
        if let Some(old) = current.take() {
            let _ = family.remove_label_values(&with_ids(ids, &old));
        }
    }
    if let Some(labels) = &new {
        family.with_label_values(&with_ids(ids, labels)).set(1);
    }
    *current = new;
}

fn with_ids<'a>(ids: &[&'a str], rest: &'a [String]) -> Vec<&'a str> {
    ids.iter()
        .copied()
        .chain(rest.iter().map(String::as_str))
        .collect()
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Creates and registers families under the common prefix.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn register<T: prometheus::core::Collector + Clone + 'static>(
        &self,
        vec: T,
    ) -> Result<T, MetricsError> {
        self.0
            .register(Box::new(vec.clone()))
            .map_err(MetricsError)?;
        Ok(vec)
    }

    fn int_gauge(
        &self,
        suffix: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        self.register(
            IntGaugeVec::new(Opts::new(name(suffix), help), labels).map_err(MetricsError)?,
        )
    }

    fn gauge(&self, suffix: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, MetricsError> {
        self.register(GaugeVec::new(Opts::new(name(suffix), help), labels).map_err(MetricsError)?)
    }

    fn int_counter(
        &self,
        suffix: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        self.register(
            IntCounterVec::new(Opts::new(name(suffix), help), labels).map_err(MetricsError)?,
        )
    }
}
