//! cms-xmpp-exporter: re-enacts a Cisco Meeting Server Callbridge registering with its XMPP
//! server (SRV → addresses → TCP → TLS → certificate → XEP-0114 handshake) and exports every
//! step on `/metrics`.
#![forbid(unsafe_code)]

pub mod config;
mod http;
pub mod metrics;
pub mod probe;
mod scheduler;

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::metrics::{Metrics, MetricsError};
use crate::probe::dns::ResolverSetupError;
use crate::probe::tls::TlsSetupError;
use crate::probe::TargetProbe;

/// How long shutdown waits for tasks to stop before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Resolver(#[from] ResolverSetupError),
    #[error("targets[{index}] ({target}): TLS setup failed")]
    Tls {
        index: usize,
        target: String,
        #[source]
        source: TlsSetupError,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// Problems the operator fixes in the configuration (exit code 2), as opposed to the
    /// environment (exit code 1).
    pub fn is_config_problem(&self) -> bool {
        matches!(self, RunError::Tls { .. } | RunError::Resolver(_))
    }
}

/// The running exporter: probes on their intervals and the HTTP endpoint.
pub struct Running {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Prepares every target, binds the listener, and starts probing. Everything that can be
/// wrong with the configuration fails here, before the port is bound.
pub async fn run(config: Config) -> Result<Running, RunError> {
    let metrics = Arc::new(Metrics::new()?);
    // A single DNS request may take the shortest target deadline; each step is cut at its
    // own target's deadline anyway.
    let request_timeout = config
        .targets
        .iter()
        .map(|t| t.timeout)
        .min()
        .unwrap_or(config::DEFAULT_TIMEOUT);
    let resolver = probe::dns::resolver(&config.dns, request_timeout)?;
    let probes = config
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            TargetProbe::new(target.clone(), resolver.clone())
                .map(Arc::new)
                .map_err(|source| RunError::Tls {
                    index,
                    target: target.name.clone(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for probe in &probes {
        metrics.register_target(&probe.target, &probe.expected_steps());
    }
    metrics.config_loaded(true);

    let listener = TcpListener::bind(config.listen_address)
        .await
        .map_err(|source| RunError::Bind {
            address: config.listen_address,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| RunError::Bind {
        address: config.listen_address,
        source,
    })?;
    let (shutdown, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(http::serve(listener, metrics.clone(), stopped.clone()));
    for probe in probes {
        tasks.spawn(scheduler::run_target(
            probe,
            metrics.clone(),
            stopped.clone(),
        ));
    }
    tracing::info!(address = %local_addr, targets = config.targets.len(), "serving /metrics");
    Ok(Running {
        local_addr,
        shutdown,
        tasks,
    })
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops probing and serving, waiting a bounded time for tasks to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("tasks did not stop in time; abandoning them");
            self.tasks.abort_all();
        }
    }

    /// Runs until SIGTERM or SIGINT, then shuts down.
    pub async fn until_signal(self) -> std::io::Result<()> {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            result = tokio::signal::ctrl_c() => {
                result?;
                tracing::info!("SIGINT received, shutting down");
            }
        }
        self.shutdown().await;
        Ok(())
    }
}

/// An error and its sources on one line, for logs and the terminal.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
