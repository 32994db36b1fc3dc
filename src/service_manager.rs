//! What systemd (`Type=notify`) is told: ready once every configured target finished its first
//! probe — what `/-/ready` says —, reloading and ready again around a SIGHUP, stopping at the
//! end. Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::store::Store;

/// How often readiness is checked until it holds: once per start, a few probes' time.
const READY_POLL: Duration = Duration::from_millis(100);

/// Resolves once every configured target has finished a probe (`/-/ready` answers 200).
pub async fn first_probes_done(store: &Store) {
    while !store.ready() {
        tokio::time::sleep(READY_POLL).await;
    }
}

pub fn ready() {
    send(&[
        NotifyState::Ready,
        NotifyState::Status("every target probed"),
    ]);
}

pub fn reloading() {
    let now = NotifyState::monotonic_usec_now();
    match now {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(error) => tracing::warn!(%error, "cannot read the monotonic clock for systemd"),
    }
}

pub fn reloaded() {
    send(&[NotifyState::Ready]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// A message the service manager cannot take is logged: the service runs on regardless (a
/// `Type=notify` unit that never hears READY fails its start, visibly).
fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}
