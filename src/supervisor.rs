//! Owns the probing side of the exporter: builds a probe per target, runs their loops, and
//! swaps them on reload. A bad new configuration is rejected and the old one keeps running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinSet;

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::probe::{dns, TargetProbe, TargetReport};
use crate::status::Status;
use crate::{scheduler, RunError};

/// How long stopping the probe loops may take before they are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the configuration was not loaded from a file, so there is nothing to re-read")]
    NoFile,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] RunError),
}

pub struct Supervisor {
    source: Option<PathBuf>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
    active: Mutex<Active>,
}

struct Active {
    probes: Vec<Arc<TargetProbe>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Builds what every target needs to probe (resolver, TLS clients); fails on the first
/// target whose TLS material cannot be used.
pub fn prepare(config: &Config) -> Result<Vec<Arc<TargetProbe>>, RunError> {
    // A single DNS request may take the shortest target deadline; each step is cut at its own
    // target's deadline anyway.
    let request_timeout = config
        .targets
        .iter()
        .map(|t| t.timeout)
        .min()
        .unwrap_or(crate::config::DEFAULT_TIMEOUT);
    let resolver = dns::resolver(&config.dns, request_timeout)?;
    let mut locks: HashMap<String, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
    config
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            let lock = locks
                .entry(target.component.to_ascii_lowercase())
                .or_default()
                .clone();
            TargetProbe::new(target.clone(), resolver.clone(), lock)
                .map(Arc::new)
                .map_err(|source| RunError::Tls {
                    index,
                    target: target.name.clone(),
                    source,
                })
        })
        .collect()
}

impl Supervisor {
    /// Registers the targets' series and starts their loops.
    pub fn start(
        config: &Config,
        probes: Vec<Arc<TargetProbe>>,
        metrics: Arc<Metrics>,
    ) -> Supervisor {
        let status = Arc::new(Status::default());
        let active = spawn(probes, &metrics, &status);
        metrics.config_loaded(true);
        Supervisor {
            source: config.source.clone(),
            metrics,
            status,
            active: Mutex::new(active),
        }
    }

    /// Re-reads the configuration file (and the secrets it names). On any problem the running
    /// configuration stays and `config_last_reload_successful` drops to 0.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let result = self.load().await;
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(error) => {
                self.metrics.config_loaded(false);
                tracing::error!(
                    error = %crate::error_chain(error),
                    "configuration reload failed; the previous configuration keeps running"
                );
            }
        }
        result
    }

    async fn load(&self) -> Result<(), ReloadError> {
        let path = self.source.as_ref().ok_or(ReloadError::NoFile)?;
        // Read and prepare before touching anything that runs.
        let config = Config::load(path)?;
        let probes = prepare(&config)?;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let mut active = self.active.lock().await;
        let old = std::mem::replace(&mut *active, idle());
        stop(old.stop, old.tasks).await;
        // Counters restart with the new configuration; Prometheus' rate() handles resets.
        for probe in &old.probes {
            self.metrics.remove_target(&probe.target.name);
        }
        *active = spawn(probes, &self.metrics, &self.status);
        self.metrics.config_loaded(true);
        Ok(())
    }

    /// The probe of a configured target, for an on-demand run.
    pub async fn target(&self, name: &str) -> Option<Arc<TargetProbe>> {
        let active = self.active.lock().await;
        active
            .probes
            .iter()
            .find(|p| p.target.name == name)
            .cloned()
    }

    pub async fn targets(&self) -> Vec<Arc<TargetProbe>> {
        self.active.lock().await.probes.clone()
    }

    /// Runs one target now, outside its schedule (never alongside its scheduled probe, so the
    /// server never sees the component name twice).
    pub async fn probe_now(&self, name: &str) -> Option<(Arc<TargetProbe>, TargetReport)> {
        let probe = self.target(name).await?;
        let report = probe.run_exclusive().await;
        Some((probe, report))
    }

    pub async fn shutdown(&self) {
        let mut active = self.active.lock().await;
        let old = std::mem::replace(&mut *active, idle());
        stop(old.stop, old.tasks).await;
    }
}

/// No loops: what stands in while loops are replaced, and after shutdown.
fn idle() -> Active {
    Active {
        probes: Vec::new(),
        stop: watch::channel(false).0,
        tasks: JoinSet::new(),
    }
}

fn spawn(probes: Vec<Arc<TargetProbe>>, metrics: &Arc<Metrics>, status: &Arc<Status>) -> Active {
    let (stop, stopped) = watch::channel(false);
    for probe in &probes {
        metrics.register_target(&probe.target, &probe.expected_steps());
    }
    status.set_targets(probes.iter().map(|p| p.target.name.clone()).collect());
    let mut tasks = JoinSet::new();
    for probe in &probes {
        tasks.spawn(scheduler::run_target(
            probe.clone(),
            metrics.clone(),
            status.clone(),
            stopped.clone(),
        ));
    }
    Active {
        probes,
        stop,
        tasks,
    }
}

async fn stop(signal: watch::Sender<bool>, mut tasks: JoinSet<()>) {
    let _ = signal.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("probe loops did not stop in time; abandoning them");
        tasks.abort_all();
    }
}
