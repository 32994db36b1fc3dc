//! `/metrics` from the record: the store's snapshot turned into series when scraped. A server
//! that leaves the SRV answer, or a target that is removed, simply stops appearing. Owns every
//! metric name; `docs/metrics.md` is the contract.
//!
//! Each family's series are written once, into a [`Sink`]: `prometheus` families for the
//! [`Collector`] (which `/probe` encodes with `prometheus::TextEncoder`), or exposition text
//! for `/metrics`, where a target's text is written when its state changes and reused by every
//! scrape until then. A test proves the two ways byte for byte equal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::Encoder;

use crate::config::{ServerSource, Target};
use crate::probe::{
    unix_seconds, CertFacts, Endpoint, Failure, Origin, Server, ServerReport, Staple, Step,
    StepRecord, TargetReport, WatchReport,
};
use crate::store::{
    ConfigStatus, Durations, FailureKey, Seen, Snapshot, TargetState, STEP_BUCKETS,
};

/// A metric of the contract: its name, help, type, labels and where its series come from.
pub struct MetricDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
    source: Source,
}

/// Exporter-level series describe the exporter (and are left out of `/probe`, which answers
/// for one run); target series describe one target's state.
#[derive(Clone, Copy)]
enum Source {
    Exporter(fn(&mut dyn Sink, &ConfigStatus)),
    Target(fn(&mut dyn Sink, &TargetState)),
}

macro_rules! metric {
    ($id:ident, $name:literal, $kind:ident, [$($label:literal),*], $series:ident, $help:literal) => {
        metric!(@ $id, $name, $kind, [$($label),*], Source::Target($series), $help);
    };
    (exporter $id:ident, $name:literal, $kind:ident, [$($label:literal),*], $series:ident, $help:literal) => {
        metric!(@ $id, $name, $kind, [$($label),*], Source::Exporter($series), $help);
    };
    (@ $id:ident, $name:literal, $kind:ident, [$($label:literal),*], $source:expr, $help:literal) => {
        pub const $id: MetricDef = MetricDef {
            name: concat!("cms_xmpp_", $name),
            help: $help,
            kind: MetricType::$kind,
            labels: &[$($label),*],
            source: $source,
        };
    };
}

metric!(exporter BUILD_INFO, "build_info", GAUGE, ["version"], build_info,
    "The exporter's version.");
metric!(exporter CONFIG_RELOAD_SUCCESSFUL, "config_last_reload_successful", GAUGE, [],
    reload_successful, "1 when the last configuration load succeeded.");
metric!(exporter CONFIG_RELOAD_TIMESTAMP, "config_last_reload_success_timestamp_seconds", GAUGE,
    [], reload_timestamp, "When the configuration last loaded successfully (Unix time).");
metric!(exporter DISCARDED_CYCLES, "exporter_discarded_cycles_total", COUNTER, [],
    discarded_cycles,
    "Probe cycles discarded because the exporter ran out of file descriptors or socket buffers.");
metric!(
    PROBE_SUCCESS,
    "probe_success",
    GAUGE,
    ["target"],
    probe_success,
    "1 when at least one server of the target completed every step of the last probe."
);
metric!(
    PROBES_TOTAL,
    "probes_total",
    COUNTER,
    ["target"],
    probes_total,
    "Probe cycles run for the target."
);
metric!(
    PROBE_DURATION,
    "probe_duration_seconds",
    GAUGE,
    ["target"],
    probe_duration,
    "How long the last probe cycle of the target took, all servers included."
);
metric!(
    LAST_PROBE,
    "last_probe_timestamp_seconds",
    GAUGE,
    ["target"],
    last_probe,
    "When the last probe cycle of the target finished (Unix time)."
);
metric!(
    PROBE_INTERVAL,
    "probe_interval_seconds",
    GAUGE,
    ["target"],
    probe_interval,
    "The target's configured probe interval."
);
metric!(
    TARGET_INFO,
    "target_info",
    GAUGE,
    [
        "target",
        "domain",
        "component",
        "server_address",
        "tls_mode"
    ],
    target_info,
    "A configured target: XMPP domain, component name, server address (empty for SRV), TLS mode."
);
metric!(
    SRV_RECORDS,
    "srv_records",
    GAUGE,
    ["target"],
    srv_records,
    "Servers in the last SRV answer for _xmpp-component._tcp.<domain> (0 when it failed), probed or not."
);
metric!(
    SRV_TRUNCATED,
    "srv_truncated",
    GAUGE,
    ["target"],
    srv_truncated,
    "Servers of the last SRV answer left unprobed (beyond dns.max_servers_per_target); absent when none."
);
metric!(
    SERVER_UP,
    "server_up",
    GAUGE,
    ["target", "server"],
    server_up,
    "1 when the server completed every step of the last probe."
);
metric!(
    STEP_LAST_DURATION,
    "step_last_duration_seconds",
    GAUGE,
    ["target", "server", "step"],
    step_last_duration,
    "Duration of each step that ran in the last probe."
);
metric!(
    STEP_DURATION,
    "step_duration_seconds",
    HISTOGRAM,
    ["target", "server", "step"],
    step_duration,
    "Duration of each step that ran (metrics.step_histograms)."
);
metric!(
    FAILURES_TOTAL,
    "probe_failures_total",
    COUNTER,
    ["target", "server", "step", "reason"],
    failures_total,
    "Failed probes of a server, by the step that failed and why."
);
metric!(
    FAILING_STEP,
    "failing_step_info",
    GAUGE,
    ["target", "server", "step", "reason"],
    failing_step,
    "The step that failed in the last probe, and why; absent when it succeeded."
);
metric!(
    LAST_SUCCESS,
    "last_success_timestamp_seconds",
    GAUGE,
    ["target", "server"],
    last_success,
    "When the server last completed every step (Unix time)."
);
metric!(
    SERVER_INFO,
    "server_info",
    GAUGE,
    [
        "target",
        "server",
        "source",
        "priority",
        "weight",
        "preferred",
        "address"
    ],
    server_info,
    "A server of the target: its origin (SRV priority, weight) and the address that accepted TCP."
);
metric!(
    CERT_NOT_AFTER,
    "cert_not_after_timestamp_seconds",
    GAUGE,
    ["target", "server"],
    cert_not_after,
    "End of the server certificate's validity (Unix time), as last seen."
);
metric!(
    CERT_CHAIN_NOT_AFTER,
    "cert_chain_not_after_timestamp_seconds",
    GAUGE,
    ["target", "server", "position"],
    cert_chain_not_after,
    "End of the validity of the chain the server sends: the earliest of its certificates', with that certificate's position (0 = the leaf), as last seen."
);
metric!(
    CERT_TRUSTED,
    "cert_trusted",
    GAUGE,
    ["target", "server"],
    cert_trusted,
    "1 when the certificate chains to a trusted root (judged apart from expiry and names)."
);
metric!(
    CERT_SAN_COVERED,
    "cert_san_covered",
    GAUGE,
    ["target", "server", "role", "name"],
    cert_san_covered,
    "1 when the certificate's SANs cover the name a Callbridge requires."
);
metric!(
    CERT_INFO,
    "cert_info",
    GAUGE,
    ["target", "server", "subject", "issuer", "serial", "sans"],
    cert_info,
    "The server certificate as last seen."
);
metric!(
    CERT_OCSP_NEXT_UPDATE,
    "cert_ocsp_next_update_timestamp_seconds",
    GAUGE,
    ["target", "server", "status"],
    cert_ocsp_next_update,
    "When the OCSP response the server staples is to be replaced (Unix time), with its status; absent when none is stapled."
);
metric!(
    FINDING,
    "finding_info",
    GAUGE,
    ["target", "server", "finding"],
    finding,
    "1 per thing worth fixing that does not fail a step yet (see docs/metrics.md); absent when none."
);
metric!(
    TLS_INFO,
    "tls_info",
    GAUGE,
    ["target", "server", "version", "cipher"],
    tls_info,
    "The TLS version and cipher of the last completed handshake."
);
metric!(
    WATCH_SUCCESS,
    "watch_success",
    GAUGE,
    ["target"],
    watch_success,
    "1 when the monitoring user logged in and pinged the components (targets with a watch)."
);
metric!(
    WATCH_STEP_LAST_DURATION,
    "watch_step_last_duration_seconds",
    GAUGE,
    ["target", "server", "step"],
    watch_step_last_duration,
    "Duration of each step of the monitoring user's login that ran in the last probe."
);
metric!(
    WATCH_FAILURES_TOTAL,
    "watch_failures_total",
    COUNTER,
    ["target", "server", "step", "reason"],
    watch_failures_total,
    "Failed logins of the monitoring user, by server, the step that failed and why."
);
metric!(
    WATCH_FAILING_STEP,
    "watch_failing_step_info",
    GAUGE,
    ["target", "server", "step", "reason"],
    watch_failing_step,
    "The login step that failed in the last probe, and why; absent when it succeeded."
);
metric!(
    COMPONENT_REGISTERED,
    "component_registered",
    GAUGE,
    ["target", "component"],
    component_registered,
    "1 when the component answered the last ping: it holds a connection to the XMPP server."
);
metric!(
    COMPONENT_PING,
    "component_ping_seconds",
    GAUGE,
    ["target", "component"],
    component_ping,
    "Round trip of the component's last answer to a ping."
);
metric!(
    COMPONENT_FAILING,
    "component_failing_info",
    GAUGE,
    ["target", "component", "reason"],
    component_failing,
    "Why the component did not answer the last ping; absent when it did."
);

/// Every metric, in the order of the exposition.
pub const ALL: [&MetricDef; 34] = [
    &BUILD_INFO,
    &CONFIG_RELOAD_SUCCESSFUL,
    &CONFIG_RELOAD_TIMESTAMP,
    &DISCARDED_CYCLES,
    &PROBE_SUCCESS,
    &PROBES_TOTAL,
    &PROBE_DURATION,
    &LAST_PROBE,
    &PROBE_INTERVAL,
    &TARGET_INFO,
    &SRV_RECORDS,
    &SRV_TRUNCATED,
    &SERVER_UP,
    &STEP_LAST_DURATION,
    &STEP_DURATION,
    &FAILURES_TOTAL,
    &FAILING_STEP,
    &LAST_SUCCESS,
    &SERVER_INFO,
    &CERT_NOT_AFTER,
    &CERT_CHAIN_NOT_AFTER,
    &CERT_TRUSTED,
    &CERT_SAN_COVERED,
    &CERT_INFO,
    &CERT_OCSP_NEXT_UPDATE,
    &FINDING,
    &TLS_INFO,
    &WATCH_SUCCESS,
    &WATCH_STEP_LAST_DURATION,
    &WATCH_FAILURES_TOTAL,
    &WATCH_FAILING_STEP,
    &COMPONENT_REGISTERED,
    &COMPONENT_PING,
    &COMPONENT_FAILING,
];

/// The `server` label of the target-level SRV step, which comes before any server.
const NO_SERVER: &str = "";

// ---- where each family's series come from ----

fn build_info(sink: &mut dyn Sink, _: &ConfigStatus) {
    sink.number(&[env!("CARGO_PKG_VERSION")], 1.0);
}

fn discarded_cycles(sink: &mut dyn Sink, config: &ConfigStatus) {
    sink.number(&[], config.discarded_cycles as f64);
}

fn reload_successful(sink: &mut dyn Sink, config: &ConfigStatus) {
    sink.number(&[], flag(config.successful));
}

fn reload_timestamp(sink: &mut dyn Sink, config: &ConfigStatus) {
    if let Some(at) = config.last_success {
        sink.number(&[], timestamp(at));
    }
}

fn probe_success(sink: &mut dyn Sink, state: &TargetState) {
    let success = state.latest.as_deref().is_some_and(TargetReport::success);
    sink.number(&[&state.target.name], flag(success));
}

fn probes_total(sink: &mut dyn Sink, state: &TargetState) {
    sink.number(&[&state.target.name], state.probes as f64);
}

fn probe_duration(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        sink.number(&[&state.target.name], seconds(report.duration));
    }
}

fn last_probe(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        sink.number(&[&state.target.name], timestamp(report.finished()));
    }
}

/// Only for a scheduled target: a module's run comes when Prometheus asks, and is as fresh as
/// the scrape that asked (a run that hangs fails the scrape: `up` says so).
fn probe_interval(sink: &mut dyn Sink, state: &TargetState) {
    if state.target.requested {
        return;
    }
    let interval = state.target.interval.as_secs_f64();
    sink.number(&[&state.target.name], interval);
}

fn target_info(sink: &mut dyn Sink, state: &TargetState) {
    let t = &state.target;
    let server_address = match &t.servers {
        ServerSource::Srv => String::new(),
        ServerSource::Static(server) => server.to_string(),
    };
    let labels = [
        t.name.as_str(),
        &t.domain,
        &t.component,
        &server_address,
        t.tls_mode.as_str(),
    ];
    sink.number(&labels, 1.0);
}

fn srv_records(sink: &mut dyn Sink, state: &TargetState) {
    if state.target.servers == ServerSource::Srv {
        let found = state
            .latest
            .as_ref()
            .map_or(0, |r| r.servers.len() + r.srv_skipped);
        sink.number(&[&state.target.name], found as f64);
    }
}

fn srv_truncated(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = state.latest.as_ref().filter(|r| r.srv_skipped > 0) {
        sink.number(&[&state.target.name], report.srv_skipped as f64);
    }
}

fn server_up(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        let up = s.report.up(&s.target_report.expected_steps);
        sink.number(&[s.target, &s.label], flag(up));
    }
}

fn step_last_duration(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        last_durations(
            sink,
            &state.target.name,
            report.srv.as_ref(),
            &report.servers,
        );
    }
}

fn step_duration(sink: &mut dyn Sink, state: &TargetState) {
    for ((server, step), histogram) in &state.histograms {
        let server = server_label(server.as_ref());
        sink.histogram(&[&state.target.name, &server, step.as_str()], histogram);
    }
}

fn failures_total(sink: &mut dyn Sink, state: &TargetState) {
    failure_counts(sink, &state.target.name, &state.failures);
}

fn failing_step(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        failing(sink, &state.target.name, report.failures());
    }
}

fn last_success(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        if let Some(at) = s.seen.last_success {
            sink.number(&[s.target, &s.label], timestamp(at));
        }
    }
}

fn server_info(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        let (source, priority, weight, preferred) = match s.report.server.origin {
            Origin::Srv {
                priority,
                weight,
                preferred,
            } => ("srv", priority.to_string(), weight.to_string(), preferred),
            Origin::Static => ("static", String::new(), String::new(), true),
        };
        let address = s.seen.address.map(|a| a.to_string()).unwrap_or_default();
        let preferred = if preferred { "true" } else { "false" };
        let labels = [
            s.target, &s.label, source, &priority, &weight, preferred, &address,
        ];
        sink.number(&labels, 1.0);
    }
}

fn cert_not_after(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        sink.number(&[s.target, &s.label], cert.not_after as f64);
    }
}

fn cert_chain_not_after(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        if let Some(earliest) = cert.earliest_expiry() {
            let position = earliest.position.to_string();
            sink.number(&[s.target, &s.label, &position], earliest.not_after as f64);
        }
    }
}

fn cert_trusted(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        sink.number(&[s.target, &s.label], flag(cert.trusted));
    }
}

fn cert_san_covered(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        for coverage in &cert.coverage {
            let labels = [s.target, &s.label, coverage.role.as_str(), &coverage.name];
            sink.number(&labels, flag(coverage.covered));
        }
    }
}

fn cert_info(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        let sans = cert.sans.join(",");
        let labels = [
            s.target,
            &s.label,
            &cert.subject,
            &cert.issuer,
            &cert.serial,
            &sans,
        ];
        sink.number(&labels, 1.0);
    }
}

fn cert_ocsp_next_update(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        if let Some(Staple::Response(stapled)) = &cert.ocsp {
            if let Some(next) = stapled.next_update {
                sink.number(&[s.target, &s.label, stapled.status.as_str()], next as f64);
            }
        }
    }
}

fn finding(sink: &mut dyn Sink, state: &TargetState) {
    let seen: Vec<_> = servers(state).collect();
    let presented: Vec<_> = seen
        .iter()
        .map(|s| crate::probe::Presented {
            server: &s.report.server.endpoint,
            cert: s.seen.cert.as_deref(),
            legacy_tls: s.report.legacy_tls.as_ref(),
        })
        .collect();
    for (server, finding) in crate::probe::findings(&presented) {
        let server = server.to_string();
        sink.number(&[&state.target.name, &server, finding.kind.as_str()], 1.0);
    }
}

fn tls_info(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        if let Some(tls) = s.seen.tls {
            let labels = [s.target, &s.label, &tls.version_name(), &tls.cipher_name()];
            sink.number(&labels, 1.0);
        }
    }
}

fn watch_success(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(watch) = watch(state) {
        sink.number(&[&state.target.name], flag(watch.success()));
    }
}

fn watch_step_last_duration(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(watch) = watch(state) {
        last_durations(sink, &state.target.name, watch.srv.as_ref(), &watch.servers);
    }
}

fn watch_failures_total(sink: &mut dyn Sink, state: &TargetState) {
    failure_counts(sink, &state.target.name, &state.watch_failures);
}

fn watch_failing_step(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(watch) = watch(state) {
        failing(sink, &state.target.name, watch.failures());
    }
}

/// Every listed component has a value: 0 also when the login failed and nothing was pinged.
fn component_registered(sink: &mut dyn Sink, state: &TargetState) {
    let Some(config) = &state.target.watch else {
        return;
    };
    let Some(watch) = watch(state) else { return };
    for component in &config.components {
        let registered = watch
            .pings
            .iter()
            .any(|p| &p.component == component && p.registered());
        sink.number(&[&state.target.name, component], flag(registered));
    }
}

fn component_ping(sink: &mut dyn Sink, state: &TargetState) {
    for ping in watch(state).into_iter().flat_map(|w| &w.pings) {
        if let Ok(round_trip) = ping.result {
            sink.number(&[&state.target.name, &ping.component], seconds(round_trip));
        }
    }
}

fn component_failing(sink: &mut dyn Sink, state: &TargetState) {
    for ping in watch(state).into_iter().flat_map(|w| &w.pings) {
        if let Err(failure) = &ping.result {
            let labels = [
                state.target.name.as_str(),
                &ping.component,
                failure.reason.as_str(),
            ];
            sink.number(&labels, 1.0);
        }
    }
}

// ---- shared by the component flow and the client path ----

fn last_durations(
    sink: &mut dyn Sink,
    target: &str,
    srv: Option<&StepRecord>,
    servers: &[ServerReport],
) {
    if let Some(srv) = srv {
        sink.number(
            &[target, NO_SERVER, srv.step.as_str()],
            seconds(srv.duration),
        );
    }
    for server in servers {
        let label = server.server.to_string();
        for record in server.steps.iter().filter(|r| r.step.timed()) {
            let labels = [target, &label, record.step.as_str()];
            sink.number(&labels, seconds(record.duration));
        }
    }
}

fn failure_counts(sink: &mut dyn Sink, target: &str, counts: &BTreeMap<FailureKey, u64>) {
    for ((server, step, reason), count) in counts {
        let server = server_label(server.as_ref());
        let labels = [target, &server, step.as_str(), reason.as_str()];
        sink.number(&labels, *count as f64);
    }
}

fn failing<'a>(
    sink: &mut dyn Sink,
    target: &str,
    failures: impl Iterator<Item = (Option<&'a Server>, Step, &'a Failure)>,
) {
    for (server, step, failure) in failures {
        let server = server_label(server.map(|s| &s.endpoint));
        let labels = [target, &server, step.as_str(), failure.reason.as_str()];
        sink.number(&labels, 1.0);
    }
}

// ---- walking a target's state ----

/// A server of a target's latest report, with what is remembered of it.
struct ServerView<'a> {
    target: &'a str,
    label: String,
    report: &'a ServerReport,
    target_report: &'a TargetReport,
    seen: &'a Seen,
}

fn servers(state: &TargetState) -> impl Iterator<Item = ServerView<'_>> {
    state.latest.as_deref().into_iter().flat_map(move |report| {
        report.servers.iter().filter_map(move |server| {
            Some(ServerView {
                target: &state.target.name,
                label: server.server.to_string(),
                report: server,
                target_report: report,
                // Every server of the latest report is remembered (`TargetState::after`).
                seen: state.seen(&server.server.endpoint)?,
            })
        })
    })
}

fn watch(state: &TargetState) -> Option<&WatchReport> {
    state.latest.as_ref()?.watch.as_ref()
}

/// Servers with the certificate they last presented.
fn certificates(state: &TargetState) -> impl Iterator<Item = (ServerView<'_>, Arc<CertFacts>)> {
    servers(state).filter_map(|s| {
        let cert = s.seen.cert.clone()?;
        Some((s, cert))
    })
}

fn server_label(server: Option<&Endpoint>) -> String {
    server.map(Endpoint::to_string).unwrap_or_default()
}

fn flag(value: bool) -> f64 {
    f64::from(u8::from(value))
}

/// A duration to the microsecond: finer digits only cost bytes.
fn seconds(duration: std::time::Duration) -> f64 {
    duration.as_micros() as f64 / 1e6
}

/// Unix time to the millisecond, likewise.
fn timestamp(at: std::time::SystemTime) -> f64 {
    (unix_seconds(at) * 1000.0).round() / 1000.0
}

mod exposition;

pub use exposition::{render, write, Exposition, Sink, TargetText, Texts};

#[cfg(test)]
mod tests;
