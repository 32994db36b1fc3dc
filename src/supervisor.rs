//! Owns the probing side of the exporter: builds a probe per target, runs their loops, and
//! swaps them on reload. A bad new configuration is rejected and the old one keeps running.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::config::{Config, ConfigError, Protocol, TlsMode, TlsSettings, Watch};
use crate::modules::{ModuleError, ModuleProbe, Modules};
use crate::probe::tls::TlsClient;
use crate::probe::{dns, TargetProbe};
use crate::runner::Runner;
use crate::store::{Store, TargetChanges, TargetState};
use crate::watcher::Watchers;
use crate::web::Web;
use crate::{scheduler, RunError};

/// How long stopping the probe loops may take before they are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Requests for a target within this of its last run get that run's result.
pub const PROBE_SPACING: Duration = Duration::from_secs(5);

/// What a request for a run outside the schedule gets.
pub enum OnDemand {
    /// The record after a run; `age` when it is the last run's, finished that long ago.
    Ran {
        record: Arc<TargetState>,
        age: Option<Duration>,
    },
    /// No run finished within the request's patience: the probes are saturated.
    Busy { waited: Duration },
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the configuration was not loaded from a file, so there is nothing to re-read")]
    NoFile,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] RunError),
    #[error("the reload was interrupted")]
    Interrupted(#[source] tokio::task::JoinError),
}

pub struct Supervisor {
    source: Option<PathBuf>,
    pub store: Arc<Store>,
    /// The HTTP endpoint's TLS and users, re-read with the configuration.
    pub web: Web,
    /// The running configuration's targets; swapped at once on reload, so readers never wait.
    runners: RwLock<Arc<[Arc<Runner>]>>,
    /// The running configuration's modules, for `/probe?module=`; swapped likewise.
    modules: RwLock<Arc<Modules>>,
    /// The running loops. Held only by reload and shutdown, which it serialises.
    loops: Mutex<Loops>,
    /// The kept sessions of the targets' watches; they outlive a reload that leaves them
    /// unchanged. Updated under `loops`.
    watchers: std::sync::Mutex<Watchers>,
}

struct Loops {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Builds what every target needs to probe: one resolver, one TLS client per distinct set of
/// TLS settings, one lock per component name and the shared cap on running probes. Everything
/// `serve` prepares before binding, so `check-config` runs it too.
pub fn prepare(config: &Config) -> Result<Prepared, RunError> {
    // A single DNS request may take the shortest target deadline; each step is cut at its own
    // target's deadline anyway.
    let request_timeout = config
        .targets
        .iter()
        .map(|t| t.timeout)
        .chain(config.modules.values().map(|m| m.timeout()))
        .min()
        .unwrap_or(crate::config::DEFAULT_TIMEOUT);
    let validate =
        config.targets.iter().any(|t| t.dnssec) || config.modules.values().any(|m| m.dnssec());
    let resolvers = dns::Resolvers::new(&config.dns, request_timeout, validate)?;
    let slots = Arc::new(Semaphore::new(config.max_concurrent_probes));
    let mut locks: HashMap<String, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
    let mut clients = Clients::default();
    let mut runners = Vec::with_capacity(config.targets.len());
    for (index, target) in config.targets.iter().enumerate() {
        let field = || format!("targets[{index}] ({})", target.name);
        let mut client_for = |settings| clients.get(settings, field);
        let tls = match target.tls_mode {
            TlsMode::None => None,
            TlsMode::Direct => Some(client_for(&target.tls)?),
        };
        let watch_tls = target
            .watch
            .as_ref()
            .and_then(Watch::tls_settings)
            .map(&mut client_for)
            .transpose()?;
        // A tls target sends no component name: nothing for it to wait on.
        let lock = match target.protocol {
            Protocol::XmppComponent => locks
                .entry(target.component.to_ascii_lowercase())
                .or_default()
                .clone(),
            Protocol::Tls => Arc::default(),
        };
        runners.push(Arc::new(Runner::new(Arc::new(TargetProbe::new(
            target.clone(),
            resolvers.lookups(target.dnssec),
            config.dns.fan_out,
            tls,
            watch_tls,
            lock,
            slots.clone(),
        )))));
    }
    let mut modules = BTreeMap::new();
    for (name, module) in &config.modules {
        let field = || format!("modules.{name}");
        let mut client_for = |settings| clients.get(settings, field);
        let tls = match module.tls_mode() {
            TlsMode::None => None,
            TlsMode::Direct => Some(client_for(module.tls_settings())?),
        };
        let watch_tls = module.watch_tls_settings().map(client_for).transpose()?;
        let module = module.clone();
        modules.insert(
            name.clone(),
            ModuleProbe {
                module,
                tls,
                watch_tls,
            },
        );
    }
    let modules = Modules::new(modules, resolvers, config.dns.fan_out, slots, locks);
    Ok(Prepared {
        runners,
        modules: Arc::new(modules),
    })
}

/// One TLS client per distinct set of trust settings, shared by whoever has them.
#[derive(Default)]
struct Clients<'c> {
    built: Vec<(&'c TlsSettings, TlsClient)>,
}

impl<'c> Clients<'c> {
    /// The client for `settings`, built the first time; `field` names who asked, for errors.
    fn get(
        &mut self,
        settings: &'c TlsSettings,
        field: impl Fn() -> String,
    ) -> Result<TlsClient, RunError> {
        if let Some((_, client)) = self.built.iter().find(|(s, _)| s.same_trust(settings)) {
            return Ok(client.clone());
        }
        let client = TlsClient::new(settings).map_err(|source| RunError::Tls {
            field: field(),
            source,
        })?;
        self.built.push((settings, client.clone()));
        Ok(client)
    }
}

/// What a configuration runs: its targets, and its modules for requests.
pub struct Prepared {
    pub runners: Vec<Arc<Runner>>,
    pub modules: Arc<Modules>,
}

impl Supervisor {
    /// Starts the loops of prepared probes.
    pub fn start(config: &Config, prepared: Prepared, web: Web) -> Supervisor {
        let Prepared { runners, modules } = prepared;
        let store = Arc::new(Store::default());
        keep_watches(&runners);
        let (loops, _) = spawn(&runners, config, &store);
        let mut watchers = Watchers::default();
        // Nothing ran before: nothing to stop.
        let _ = watchers.update(&probes(&runners), &store);
        store.config_loaded(true);
        Supervisor {
            source: config.source.clone(),
            store,
            web,
            runners: RwLock::new(runners.into()),
            modules: RwLock::new(modules),
            loops: Mutex::new(loops),
            watchers: std::sync::Mutex::new(watchers),
        }
    }

    /// Re-reads the configuration file (and the secrets it names). On any problem the running
    /// configuration stays and `config_last_reload_successful` drops to 0.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let result = self.load().await;
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(error) => {
                self.store.config_loaded(false);
                tracing::error!(
                    error = %crate::error_chain(error),
                    "configuration reload failed; the previous configuration keeps running"
                );
            }
        }
        result
    }

    async fn load(&self) -> Result<(), ReloadError> {
        let path = self.source.clone().ok_or(ReloadError::NoFile)?;
        let mut loops = self.loops.lock().await;
        // Files are read and TLS material parsed off the async workers; nothing that runs is
        // touched until the new configuration is known to be good.
        let web_file = self.web.file().cloned();
        let (config, Prepared { runners, modules }, web) = tokio::task::spawn_blocking(move || {
            let config = Config::load(&path)?;
            let prepared = prepare(&config)?;
            let web = crate::config::web::load_optional(web_file.as_ref())?;
            Ok::<_, ReloadError>((config, prepared, web))
        })
        .await
        .map_err(ReloadError::Interrupted)??;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        // The store keeps serving the old targets' state until the new loops replace it.
        stop(std::mem::replace(&mut *loops, idle())).await;
        keep_watches(&runners);
        let (running, changes) = spawn(&runners, &config, &self.store);
        *loops = running;
        let stopping = self.watchers().update(&probes(&runners), &self.store);
        stopping.stop().await;
        log_changes(&changes);
        *self.runners.write().expect("runners lock") = runners.into();
        *self.modules.write().expect("modules lock") = modules;
        self.web.apply(web);
        self.store.config_loaded(true);
        Ok(())
    }

    pub fn targets(&self) -> Arc<[Arc<Runner>]> {
        self.runners.read().expect("runners lock").clone()
    }

    pub fn modules(&self) -> Arc<Modules> {
        self.modules.read().expect("modules lock").clone()
    }

    /// Runs one target for a request, outside its schedule: the run in progress is shared
    /// (the schedule's, or another request's), and a run that finished less than
    /// [`PROBE_SPACING`] ago answers instead of a new one, so requests cannot multiply logins
    /// at the XMPP server nor hold up the schedule.
    pub async fn probe_now(&self, name: &str) -> Option<OnDemand> {
        let runner = self
            .targets()
            .iter()
            .find(|r| r.target().name == name)
            .cloned()?;
        Some(on_demand(runner).await)
    }

    /// Like [`Supervisor::probe_now`], for a target that a request names with a module.
    pub async fn probe_module(
        &self,
        module: &str,
        target: &str,
        domain: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<OnDemand, ModuleError> {
        let runner = self.modules().probe(module, target, domain, timeout)?;
        Ok(on_demand(runner).await)
    }

    pub async fn shutdown(&self) {
        let mut loops = self.loops.lock().await;
        let old = std::mem::replace(&mut *loops, idle());
        let sessions = self.watchers().shutdown();
        tokio::join!(stop(old), sessions.stop());
    }

    fn watchers(&self) -> std::sync::MutexGuard<'_, Watchers> {
        self.watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A run for a request: a run ends by its timeout, plus a close of at most a second, unless it
/// waits for a free slot behind many others.
async fn on_demand(runner: Arc<Runner>) -> OnDemand {
    let patience = runner.target().timeout + Duration::from_secs(2);
    let run = tokio::time::timeout(patience, runner.run_or_recent(PROBE_SPACING)).await;
    match run {
        Ok((record, age)) => OnDemand::Ran { record, age },
        Err(_) => OnDemand::Busy { waited: patience },
    }
}

/// The targets with a watch keep a session (see [`Watchers`]): their cycles log in no more.
fn keep_watches(runners: &[Arc<Runner>]) {
    for runner in runners.iter().filter(|r| r.target().watch.is_some()) {
        runner.probe.keep_watch();
    }
}

fn probes(runners: &[Arc<Runner>]) -> Vec<Arc<TargetProbe>> {
    runners.iter().map(|r| r.probe.clone()).collect()
}

/// No loops: what stands while loops are replaced, and after shutdown.
fn idle() -> Loops {
    Loops {
        stop: watch::channel(false).0,
        tasks: JoinSet::new(),
    }
}

/// Starts a loop per target and gives the store the new set of targets.
fn spawn(runners: &[Arc<Runner>], config: &Config, store: &Arc<Store>) -> (Loops, TargetChanges) {
    let targets: Vec<_> = runners
        .iter()
        .map(|r| (r.target().clone(), r.probe.subject.clone()))
        .collect();
    let changes = store.set_targets(&targets, config.metrics.step_histograms);
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for runner in runners {
        let into = store.clone();
        runner.record_with(Box::new(move |target, report| {
            scheduler::record(&into, target, report)
        }));
        let target = runner.target();
        let first = scheduler::first_probe_offset(&target.name, runners.len(), target.interval);
        tasks.spawn(scheduler::run_target(
            runner.clone(),
            first,
            stopped.clone(),
        ));
    }
    (Loops { stop, tasks }, changes)
}

/// A reload says which targets start afresh; the kept ones go on silently.
fn log_changes(changes: &TargetChanges) {
    for target in &changes.changed {
        tracing::info!(
            target = target.as_str(),
            "target settings changed: its counters, history and readiness start afresh"
        );
    }
    for target in &changes.added {
        tracing::info!(target = target.as_str(), "target added");
    }
    for target in &changes.removed {
        tracing::info!(target = target.as_str(), "target removed");
    }
    tracing::debug!(
        kept = changes.kept.len(),
        "targets with unchanged settings keep their record"
    );
}

async fn stop(loops: Loops) {
    let Loops { stop, mut tasks } = loops;
    let _ = stop.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("probe loops did not stop in time; abandoning them");
        tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn targets_with_the_same_tls_settings_share_one_client() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one.pem"), dir.path().join("two.pem"));
        std::fs::write(&one, ca_pem("one")).unwrap();
        std::fs::write(&two, ca_pem("two")).unwrap();
        let target = |name: &str, tls: String| {
            format!("  - name: {name}\n    domain: example.com\n    component: {name}.example.com\n    secret: s\n    tls:\n{tls}")
        };
        let ca = |path: &std::path::Path| format!("      ca_file: {}\n", path.display());
        let yaml = format!(
            "targets:\n{}{}{}{}",
            target("a", ca(&one)),
            target("b", ca(&one)),
            target("c", ca(&two)),
            target("plain", "      mode: none\n".into()),
        );
        let config = Config::parse(&yaml, std::path::Path::new("test.yaml")).unwrap();
        let runners = prepare(&config).unwrap().runners;
        let client = |i: usize| runners[i].probe.tls().expect("a TLS target");
        assert!(client(0).is(client(1)), "a and b trust the same CA");
        assert!(!client(0).is(client(2)), "c trusts another");
        assert!(runners[3].probe.tls().is_none());
    }
}
