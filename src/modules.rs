//! Targets that requests name, the blackbox way: `/probe?module=NAME&target=DOMAIN` probes
//! `DOMAIN` with the module's settings. Each (module, target) gets a probe of its own, kept
//! while it is asked for, so that requests for it share runs as a configured target's do (one
//! run at a time, a recent run answering instead of a new one).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{FanOut, Module, ModuleTargetError, Protocol};
use crate::probe::dns::Resolvers;
use crate::probe::tls::TlsClient;
use crate::probe::TargetProbe;
use crate::runner::Runner;

/// Distinct (module, target) probes kept; beyond, the longest unused makes room.
pub const MAX_KEPT: usize = 4096;

/// Why a request names nothing to probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("unknown module")]
    Unknown,
    #[error(transparent)]
    Target(#[from] ModuleTargetError),
}

/// A module with the TLS clients its targets share.
pub struct ModuleProbe {
    pub module: Arc<Module>,
    pub tls: Option<TlsClient>,
    /// For the watch's login, when it uses TLS.
    pub watch_tls: Option<TlsClient>,
}

/// The configuration's modules and the probes that requests made of them.
pub struct Modules {
    modules: BTreeMap<String, ModuleProbe>,
    resolvers: Resolvers,
    fan_out: FanOut,
    slots: Arc<Semaphore>,
    /// The configured targets' component locks: a module's target with the same component
    /// name waits for them too.
    configured_locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    probes: HashMap<Key, (Arc<Runner>, Instant)>,
    locks: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
}

/// Module, target and domain, as the request spelt them.
type Key = (String, String, Option<String>);

impl Modules {
    pub fn new(
        modules: BTreeMap<String, ModuleProbe>,
        resolvers: Resolvers,
        fan_out: FanOut,
        slots: Arc<Semaphore>,
        configured_locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    ) -> Modules {
        Modules {
            modules,
            resolvers,
            fan_out,
            slots,
            configured_locks,
            kept: Mutex::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The probe of `target` (with `domain`, for a `host:port` target) under `module`, its
    /// timeout capped at `timeout`: the one kept from an earlier request when it is the same.
    pub fn probe(
        &self,
        module: &str,
        target: &str,
        domain: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Arc<Runner>, ModuleError> {
        let entry = self.modules.get(module).ok_or(ModuleError::Unknown)?;
        let wanted = entry.module.target(target, domain, timeout)?;
        let key = (
            module.to_owned(),
            target.to_owned(),
            domain.map(str::to_owned),
        );
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((runner, used)) = kept.probes.get_mut(&key) {
            if runner.target().timeout == wanted.timeout {
                *used = Instant::now();
                return Ok(runner.clone());
            }
        }
        if kept.probes.len() >= MAX_KEPT && !kept.probes.contains_key(&key) {
            let oldest = kept
                .probes
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                kept.probes.remove(&oldest);
            }
            kept.locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let name = wanted.component.to_ascii_lowercase();
        let lock = match self.configured_locks.get(&name) {
            // A tls target sends no component name: nothing for it to wait on.
            _ if wanted.protocol == Protocol::Tls => Arc::default(),
            Some(lock) => lock.clone(),
            None => match kept.locks.get(&name).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    kept.locks.insert(name, Arc::downgrade(&lock));
                    lock
                }
            },
        };
        let lookups = self.resolvers.lookups(wanted.dnssec);
        let probe = TargetProbe::new(
            Arc::new(wanted),
            lookups,
            self.fan_out,
            entry.tls.clone(),
            entry.watch_tls.clone(),
            lock,
            self.slots.clone(),
        );
        // Its own record: the runs of this (module, target) go on from each other.
        let runner = Arc::new(Runner::new(Arc::new(probe)));
        kept.probes.insert(key, (runner.clone(), Instant::now()));
        Ok(runner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn modules() -> Arc<Modules> {
        let config = Config::parse(
            "dns:\n  nameservers: [\"127.0.0.1:53\"]\nmodules:\n  cms:\n    component: \"probe.{domain}\"\n    secret: s3cret-value\n    tls: {mode: none}\n",
            std::path::Path::new("test.yaml"),
        )
        .unwrap();
        crate::supervisor::prepare(&config).unwrap().modules
    }

    #[test]
    fn the_same_request_gets_the_same_probe_and_the_longest_unused_makes_room() {
        let modules = modules();
        let probe = |target: &str| modules.probe("cms", target, None, None).unwrap();
        let first = probe("d0.example.com");
        assert!(Arc::ptr_eq(&first, &probe("d0.example.com")), "kept");
        let shorter = modules
            .probe("cms", "d0.example.com", None, Some(Duration::from_secs(1)))
            .unwrap();
        assert!(
            !Arc::ptr_eq(&first, &shorter),
            "another timeout, another probe"
        );
        assert_eq!(shorter.target().component, "probe.d0.example.com");
        let recent = probe("d1.example.com");
        for i in 2..=MAX_KEPT {
            probe(&format!("d{i}.example.com"));
            if i == MAX_KEPT / 2 {
                // Asked for again: no longer the longest unused.
                probe("d1.example.com");
            }
        }
        assert!(
            !Arc::ptr_eq(&shorter, &probe("d0.example.com")),
            "made room"
        );
        assert!(Arc::ptr_eq(&recent, &probe("d1.example.com")), "kept");
        let kept = modules.kept.lock().unwrap().probes.len();
        assert_eq!(kept, MAX_KEPT);
        assert_eq!(
            modules.probe("nosuch", "d0.example.com", None, None).err(),
            Some(ModuleError::Unknown)
        );
    }
}
