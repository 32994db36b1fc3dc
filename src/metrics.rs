//! `/metrics` from the record: the store's snapshot turned into series when scraped. A server
//! that leaves the SRV answer, or a target that is removed, simply stops appearing. Owns every
//! metric name; `docs/metrics.md` is the contract.
//!
//! Each family's series are written once, into a [`Sink`]: `prometheus` families for the
//! [`Collector`] (which `/probe` encodes with `prometheus::TextEncoder`), or exposition text
//! for `/metrics`, where a target's text is written when its state changes and reused by every
//! scrape until then. A test proves the two ways byte for byte equal. This file defines the
//! metrics; `series` says where each family's series come from, `exposition` writes them.

mod exposition;
mod series;

pub use exposition::{render, write, Exposition, Sink, TargetText, Texts};
use series::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::Encoder;

use crate::probe::{
    unix_seconds, CertFacts, Endpoint, Failure, Origin, Server, ServerReport, Staple, Step,
    StepRecord, TargetReport, WatchReport,
};
use crate::store::{
    Durations, ExporterStatus, FailureKey, Seen, Snapshot, TargetState, STEP_BUCKETS,
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
    Exporter(fn(&mut dyn Sink, &ExporterStatus)),
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
    "Probe cycles (and kept watches' logins) discarded because the exporter ran out of file descriptors or socket buffers.");
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
        "tls_mode",
        "protocol"
    ],
    target_info,
    "A configured target: XMPP domain, component name, server address (empty for SRV), TLS mode, protocol."
);
metric!(
    DNSSEC,
    "dnssec_info",
    GAUGE,
    ["target", "server", "state"],
    dnssec,
    "What DNSSEC validation said of the last answers: the SRV answer (server=\"\") and each server's addresses; targets that validate only."
);
metric!(
    DNSSEC_EXPIRY,
    "dnssec_signature_expiry_timestamp_seconds",
    GAUGE,
    ["target"],
    dnssec_expiry,
    "When the first signature of the last run's secure DNS answers (SRV, A/AAAA, TLSA) expires (Unix time)."
);
metric!(
    CLIENT_CERT_NOT_AFTER,
    "client_cert_not_after_timestamp_seconds",
    GAUGE,
    ["target"],
    client_cert_not_after,
    "End of the validity of the client certificate the target presents (Unix time); absent without one."
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
    DANE_VALID,
    "dane_valid",
    GAUGE,
    ["target", "server"],
    dane_valid,
    "1 when one of the server's secure TLSA records matches the chain it sends (DANE), as last seen; absent without usable ones."
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
    WATCH_SESSIONS_TOTAL,
    "watch_sessions_total",
    COUNTER,
    ["target"],
    watch_sessions_total,
    "Sessions the monitoring user opened (logins that worked) for a configured target's watch."
);
metric!(
    WATCH_SESSION_START,
    "watch_session_start_timestamp_seconds",
    GAUGE,
    ["target"],
    watch_session_start,
    "When the watch's current session was opened (Unix time); absent while there is none."
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
pub const ALL: [&MetricDef; 40] = [
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
    &CLIENT_CERT_NOT_AFTER,
    &DNSSEC,
    &DNSSEC_EXPIRY,
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
    &DANE_VALID,
    &CERT_INFO,
    &CERT_OCSP_NEXT_UPDATE,
    &FINDING,
    &TLS_INFO,
    &WATCH_SUCCESS,
    &WATCH_STEP_LAST_DURATION,
    &WATCH_FAILURES_TOTAL,
    &WATCH_FAILING_STEP,
    &WATCH_SESSIONS_TOTAL,
    &WATCH_SESSION_START,
    &COMPONENT_REGISTERED,
    &COMPONENT_PING,
    &COMPONENT_FAILING,
];

/// The `server` label of the target-level SRV step, which comes before any server.
const NO_SERVER: &str = "";

#[cfg(test)]
mod tests;
