//! cms-xmpp-exporter: re-enacts a Cisco Meeting Server Callbridge registering with its XMPP
//! server (SRV → addresses → TCP → TLS → certificate → XEP-0114 handshake) and exports every
//! step on `/metrics`.
//!
//! Data flows one way: **config → probe → one report per run → the record → views**.
//!
//! - [`config`] reads and validates the YAML (every problem at once); `config::web` the
//!   `--web.config.file`. `address` holds the plain address types config, probe and views use.
//! - [`supervisor`] builds a [`probe::TargetProbe`] per target (and [`modules`] for
//!   `/probe?module=`), runs one `scheduler` loop per target, and swaps them on reload;
//!   `runner` runs a target one run at a time, shares the run in progress with whoever asks,
//!   and turns every finished run into its record (the store's, or its own for a module's).
//! - [`probe`] runs one cycle (`target`): `component_flow` and `client_flow` (the `watch`),
//!   built from `steps` and one file per step (the DNS steps in a room of their own, `dns`:
//!   `srv`, `resolve`, the resolvers in `lookups`, validated by `dnssec` where a target asks,
//!   TLSA records matched by `dane`); it returns a [`probe::TargetReport`], which
//!   names its target by a [`probe::Subject`], and never touches metrics.
//! - [`store`] keeps the record: per target the latest report, history, counters and what is
//!   remembered across probes, and what it derives once per report (findings, servers that
//!   left, what changed for the log).
//! - Views read the record: [`metrics`] (`/metrics`, `/probe`), `page` (the status page),
//!   [`diagnosis`] (the `probe` command, `/probe?debug=true`, JSON); `http` serves them, with
//!   `web` (TLS and users in force), `auth` and `admission` (the connection cap).
//! - `service_manager` tells systemd (`Type=notify`) when the exporter is ready (as
//!   `/-/ready`), reloading and stopping.
#![forbid(unsafe_code)]

mod address;
mod admission;
mod auth;
pub mod config;
mod crypto;
pub mod diagnosis;
#[cfg(test)]
mod fixtures;
mod http;
pub mod metrics;
pub mod modules;
mod page;
pub mod probe;
mod runner;
mod scheduler;
mod service_manager;
pub mod store;
pub mod supervisor;
mod watcher;
mod web;

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
pub use crate::http::{WebOptions, DEFAULT_MAX_CONNECTIONS};
use crate::probe::dns::ResolverSetupError;
use crate::probe::tls::TlsSetupError;
use crate::supervisor::Supervisor;

/// How long shutdown waits for in-flight HTTP work before abandoning it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Resolver(#[from] ResolverSetupError),
    /// `field` names the target (`targets[N] (NAME)`) or module (`modules.NAME`).
    #[error("{field}: TLS setup failed")]
    Tls {
        field: String,
        #[source]
        source: TlsSetupError,
    },
    #[error("the web config")]
    Web(#[source] crate::config::ConfigError),
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
        matches!(
            self,
            RunError::Tls { .. } | RunError::Resolver(_) | RunError::Web(_)
        )
    }
}

/// The running exporter: probes on their intervals and the HTTP endpoint.
pub struct Running {
    local_addr: SocketAddr,
    supervisor: Arc<Supervisor>,
    stop_http: watch::Sender<bool>,
    http: JoinHandle<()>,
}

/// Prepares every target, binds the listener, and starts probing. Everything that can be
/// wrong with the configuration fails here, before the port is bound.
pub async fn run(config: Config, web: WebOptions) -> Result<Running, RunError> {
    let probes = supervisor::prepare(&config)?;
    let web_config = config::web::load_optional(web.config_file.as_ref()).map_err(RunError::Web)?;
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
    let web_state = web::Web::new(web.config_file.clone(), web_config);
    let supervisor = Arc::new(Supervisor::start(&config, probes, web_state));
    let (stop_http, http_stopped) = watch::channel(false);
    warn_if_short_of_file_descriptors(&config, &web);
    let http = tokio::spawn(http::serve(listener, supervisor.clone(), web, http_stopped));
    tracing::info!(address = %local_addr, targets = config.targets.len(), "serving /metrics");
    Ok(Running {
        local_addr,
        supervisor,
        stop_http,
        http,
    })
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops probing and serving, within a bounded time.
    pub async fn shutdown(self) {
        let _ = self.stop_http.send(true);
        self.supervisor.shutdown().await;
        if tokio::time::timeout(SHUTDOWN_GRACE, self.http)
            .await
            .is_err()
        {
            tracing::warn!("the HTTP server did not stop in time");
        }
    }

    /// Runs until SIGTERM or SIGINT, reloading on SIGHUP, then shuts down; tells systemd
    /// (`Type=notify`) when it is ready (as `/-/ready`), reloading, and stopping.
    pub async fn until_signal(self) -> std::io::Result<()> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let store = self.supervisor.store.clone();
        let first_probes = service_manager::first_probes_done(&store);
        tokio::pin!(first_probes);
        let mut ready = false;
        loop {
            tokio::select! {
                _ = terminate.recv() => break tracing::info!("SIGTERM received, shutting down"),
                _ = interrupt.recv() => break tracing::info!("SIGINT received, shutting down"),
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP received, reloading the configuration");
                    // Before the first READY, systemd waits for that one alone.
                    if ready {
                        service_manager::reloading();
                    }
                    // A failed reload is logged and keeps the old configuration.
                    let _ = self.supervisor.reload().await;
                    if ready {
                        service_manager::reloaded();
                    }
                }
                () = &mut first_probes, if !ready => {
                    ready = true;
                    service_manager::ready();
                }
            }
        }
        service_manager::stopping();
        self.shutdown().await;
        Ok(())
    }
}

/// Probes the configured targets (or only `only`) once, concurrently, for the `probe`
/// command: the record of each one's run, in the config's order. `None` when `only` names no
/// configured target.
pub async fn probe_once(
    config: &Config,
    only: Option<&str>,
) -> Result<Option<Vec<Arc<store::TargetState>>>, RunError> {
    let runners: Vec<_> = supervisor::prepare(config)?
        .runners
        .into_iter()
        .filter(|r| only.is_none_or(|name| r.target().name == name))
        .collect();
    if runners.is_empty() {
        return Ok(None);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, runner) in runners.into_iter().enumerate() {
        tasks.spawn(async move { (index, runner.run_shared().await) });
    }
    let mut records = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(record) = joined {
            records.push(record);
        }
    }
    records.sort_by_key(|(index, _)| *index);
    Ok(Some(records.into_iter().map(|(_, r)| r).collect()))
}

/// GETs `url` (plain `http://host:port/path`) and succeeds on status 200: the container
/// health check, which needs no shell or curl.
pub async fn healthcheck(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0; 64];
        let read = stream.read(&mut head).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..read]).into_owned())
    };
    let head = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("{url}: no answer within 5s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{url}: {status}"))
    }
}

/// Raises the soft limit on open files to the hard limit, as Go programs do at start: every
/// probe and every HTTP connection is a socket. Returns the limit before and after.
pub fn raise_file_limit() -> std::io::Result<(u64, u64)> {
    let (before, _) = rlimit::Resource::NOFILE.get()?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok((before, after))
}

/// File descriptors the exporter may want at once: HTTP connections, probes (each a socket and
/// a resolver's), the watches' kept sessions (a socket each, for good), and room for the files
/// it reads.
fn warn_if_short_of_file_descriptors(config: &Config, web: &WebOptions) {
    let sessions = config.targets.iter().filter(|t| t.watch.is_some()).count() as u64;
    let wanted =
        web.max_connections as u64 + 4 * config.max_concurrent_probes as u64 + sessions + 64;
    if let Ok((soft, _)) = rlimit::Resource::NOFILE.get() {
        if soft < wanted {
            tracing::warn!(
                limit = soft,
                wanted,
                "the open-files limit is below what --web.max-connections, \
                 max_concurrent_probes and the watches' kept sessions may use: raise the limit \
                 or lower them"
            );
        }
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
