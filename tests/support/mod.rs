//! Hermetic in-process peers for integration tests: a test CA, an authoritative DNS
//! server and an XEP-0114 component server. Everything listens on loopback only and
//! stops when dropped.

pub mod component;
pub mod dns;
pub mod exporter;
pub mod pki;

use std::time::Duration;

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `deadline`.
pub async fn wait_for<F: FnMut() -> bool>(what: &str, deadline: Duration, mut condition: F) {
    let give_up = tokio::time::Instant::now() + deadline;
    while !condition() {
        if tokio::time::Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
