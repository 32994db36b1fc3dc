//! The exporter against in-process peers that speak the real protocols: an authoritative DNS
//! server (real DNS messages), XEP-0114 component servers (real TLS, real XML) and a test CA.
//! One test binary, so that a helper no test uses is reported as dead code.

#[path = "../support/mod.rs"]
mod support;

mod chain;
mod contract;
mod dane;
mod dnssec;
mod dnssec_corpus;
mod exposition;
mod hardening;
mod isolation;
mod keytrap;
mod layout;
mod modules;
mod operations;
mod peers;
mod probe;
mod service_manager;
mod snippets;
mod tls_link;
mod watch;
mod watch_session;
mod web;

use support::exporter::{Binary, Lab};

/// The exporter binary that cargo built for these tests.
const BINARY: &str = env!("CARGO_BIN_EXE_cms-xmpp-exporter");

/// Writes `config` to the lab and starts the binary on it, logging everything (trace).
async fn spawn_traced(lab: &Lab, config: &str) -> Binary {
    std::fs::write(lab.path("config.yaml"), config).unwrap();
    Binary::spawn(BINARY, &lab.path("config.yaml"), &["--log-level", "trace"]).await
}
