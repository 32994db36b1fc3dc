//! One probe cycle of a target: the component flow and, when configured, the client flow,
//! side by side inside one deadline; and what probing a target needs, built once per config.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::client_flow;
use super::component_flow::{ComponentFlow, ComponentRun};
use super::dns::Lookups;
use super::kdf::SaltedPasswords;
use super::tls::TlsClient;
use super::{Subject, TargetReport};
use crate::config::{FanOut, Target};

/// A target with what probing it needs, built once per config load.
pub struct TargetProbe {
    pub target: Arc<Target>,
    /// Who its reports are about.
    pub subject: Arc<Subject>,
    /// The component flow, with the lookups and fan-out the client flow uses too.
    components: Arc<ComponentFlow>,
    /// The client path's TLS client, when the target watches components over TLS.
    watch_tls: Option<TlsClient>,
    /// The watch's SCRAM derivations, kept for the life of this config.
    salted: SaltedPasswords,
    /// Held while a probe runs. Shared by every target with the same component name: an XMPP
    /// server must never see the name twice at once, or it answers `conflict`.
    exclusive: Arc<tokio::sync::Mutex<()>>,
    /// Shared by every target: bounds the probes (sockets, handshakes) running at once.
    slots: Arc<Semaphore>,
    /// A kept session watches the components (`crate::watcher`): the cycles do not log in.
    watch_kept: AtomicBool,
}

impl TargetProbe {
    pub fn new(
        target: Arc<Target>,
        lookups: Lookups,
        fan_out: FanOut,
        tls: Option<TlsClient>,
        watch_tls: Option<TlsClient>,
        exclusive: Arc<tokio::sync::Mutex<()>>,
        slots: Arc<Semaphore>,
    ) -> TargetProbe {
        TargetProbe {
            subject: Arc::new(Subject::of(&target)),
            components: Arc::new(ComponentFlow {
                target: target.clone(),
                lookups,
                fan_out,
                tls,
            }),
            target,
            watch_tls,
            salted: SaltedPasswords::default(),
            exclusive,
            slots,
            watch_kept: AtomicBool::new(false),
        }
    }

    /// From now on a kept session watches this target's components: its cycles log in no more.
    pub fn keep_watch(&self) {
        self.watch_kept.store(true, Ordering::Relaxed);
    }

    /// What a login of this target's watch needs.
    pub fn client(&self) -> client_flow::Client<'_> {
        client_flow::Client {
            lookups: &self.components.lookups,
            fan_out: self.components.fan_out,
            tls: self.watch_tls.as_ref(),
            salted: &self.salted,
        }
    }

    /// The cap on probes (and logins) running at once, shared by every target.
    pub fn slots(&self) -> &Semaphore {
        &self.slots
    }

    /// One probe cycle, waiting for any other run under this component name to finish first,
    /// then for a free slot; the deadline starts once it runs.
    pub async fn run_exclusive(self: &Arc<Self>) -> TargetReport {
        let _running = self.exclusive.lock().await;
        // The semaphore is never closed, so acquiring only fails in theory.
        let _slot = self.slots.acquire().await;
        probe_target(self.clone()).await
    }

    #[cfg(test)]
    pub fn tls(&self) -> Option<&TlsClient> {
        self.components.tls.as_ref()
    }
}

/// One probe cycle of one target: the component flow and, when configured, the client flow,
/// side by side inside one deadline.
pub async fn probe_target(probe: Arc<TargetProbe>) -> TargetReport {
    let started = SystemTime::now();
    let clock = Instant::now();
    let deadline = clock + probe.target.timeout;
    let client_flow = async {
        let watch = probe.target.watch.as_ref()?;
        if probe.watch_kept.load(Ordering::Relaxed) {
            return None;
        }
        Some(Arc::new(
            client_flow::probe(&probe.client(), watch, deadline).await,
        ))
    };
    let (components, watch) = tokio::join!(probe.components.run(deadline), client_flow);
    let ComponentRun {
        srv,
        srv_dnssec,
        srv_skipped,
        servers,
    } = components;
    TargetReport {
        subject: probe.subject.clone(),
        started,
        duration: clock.elapsed(),
        srv,
        srv_dnssec,
        srv_skipped,
        servers,
        expected_steps: probe.components.expected_steps(),
        watch,
    }
}
