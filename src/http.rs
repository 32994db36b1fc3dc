//! The HTTP endpoints: `/metrics` for Prometheus, `/` for people, `/probe` for a debug run,
//! `/-/healthy`, `/-/ready` and `POST /-/reload` for orchestration.

use std::convert::Infallible;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, VARY,
    WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::admission::Admission;
use crate::diagnosis::{render_text, Style};
use crate::metrics::{self, Exposition, TargetText, Texts};
use crate::store::{ExporterStatus, Snapshot, Store};
use crate::supervisor::{OnDemand, Supervisor, PROBE_SPACING};

/// A connection that has not sent a whole request head within this is closed; so is one idle
/// this long between requests (hyper times both with the same clock).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
/// Scrapes within this moment share one rendering: Prometheus pairs, a person with curl.
const RENDER_FRESH_FOR: Duration = Duration::from_secs(1);

/// `/metrics` rendered at most once per moment, on the blocking thread so that a large
/// exposition never holds up a probe, and one rendering at a time however many scrapes wait.
/// Plain text and gzip are each made from the same snapshot when first asked for: Prometheus
/// only ever asks for gzip, which is written from the targets' texts without a plain copy.
pub struct Renderer {
    store: Arc<Store>,
    last: Mutex<Option<Rendered>>,
    /// Each target's series text, written by the first rendering that sees its new state.
    texts: Arc<Texts>,
}

/// Writes a snapshot (with its targets' texts) as the body a scrape gets.
type Encode = fn(&Snapshot, &[Arc<TargetText>]) -> Bytes;

struct Rendered {
    at: Instant,
    /// A reload shows at once, whatever the age of the rendering.
    status: ExporterStatus,
    snapshot: Snapshot,
    plain: Option<Bytes>,
    gzip: Option<Bytes>,
}

impl Renderer {
    pub fn new(store: Arc<Store>) -> Renderer {
        Renderer {
            store,
            last: Mutex::new(None),
            texts: Arc::default(),
        }
    }

    /// The exposition, gzip-compressed when `gzip`.
    pub async fn render(&self, gzip: bool) -> Result<Bytes, tokio::task::JoinError> {
        let mut last = self.last.lock().await;
        let status = self.store.exporter_status();
        let fresh = last
            .as_ref()
            .is_some_and(|r| r.at.elapsed() < RENDER_FRESH_FOR && r.status == status);
        if !fresh {
            *last = Some(Rendered {
                at: Instant::now(),
                status,
                snapshot: self.store.snapshot(),
                plain: None,
                gzip: None,
            });
        }
        let rendered = last.as_mut().expect("set above");
        let (cached, make): (_, Encode) = if gzip {
            (&mut rendered.gzip, compress)
        } else {
            (&mut rendered.plain, |snapshot, texts| {
                Bytes::from(metrics::render(snapshot, texts))
            })
        };
        if cached.is_none() {
            let snapshot = rendered.snapshot.clone();
            let texts = self.texts.clone();
            let made = tokio::task::spawn_blocking(move || make(&snapshot, &texts.of(&snapshot)));
            *cached = Some(made.await?);
        }
        Ok(cached.clone().expect("made above"))
    }
}

fn compress(snapshot: &Snapshot, texts: &[Arc<TargetText>]) -> Bytes {
    // The fastest level: exposition text shrinks more than tenfold even so. The buffer
    // gathers the many small writes of the targets' texts.
    let encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, encoder);
    let written = metrics::write(snapshot, texts, &mut buffered)
        .and_then(|()| buffered.into_inner().map_err(|e| e.into_error()))
        .and_then(GzEncoder::finish);
    // Writing into memory cannot fail.
    Bytes::from(written.unwrap_or_default())
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let quality = parts
                .find_map(|p| p.strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            name.eq_ignore_ascii_case("gzip") && quality > 0.0
        })
}

/// Prometheus's own default for `--web.max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: u16 = 512;

/// How the HTTP endpoint is served; fixed at start, but for the web config file's contents.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// `--web.config.file`: TLS and basic authentication, re-read on every reload.
    pub config_file: Option<PathBuf>,
    /// Connections kept open at once (`--web.max-connections`).
    pub max_connections: usize,
    /// `POST /-/reload` over HTTP (`--web.enable-lifecycle`); SIGHUP reloads regardless.
    pub enable_lifecycle: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            config_file: None,
            max_connections: usize::from(DEFAULT_MAX_CONNECTIONS),
            enable_lifecycle: false,
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    supervisor: Arc<Supervisor>,
    options: WebOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let admission = Admission::new(options.max_connections);
    let lifecycle = if options.enable_lifecycle {
        Lifecycle::On
    } else {
        Lifecycle::Off
    };
    let renderer = Arc::new(Renderer::new(supervisor.store.clone()));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(ticket) = admission.admit() else {
            tracing::debug!("HTTP connection refused: every connection is serving a request");
            continue;
        };
        let supervisor = supervisor.clone();
        let renderer = renderer.clone();
        let served = supervisor.web.current();
        tokio::spawn(async move {
            let slot = ticket.slot();
            let auth = served.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let (supervisor, renderer, slot, auth) = (
                    supervisor.clone(),
                    renderer.clone(),
                    slot.clone(),
                    auth.clone(),
                );
                async move {
                    slot.request_started();
                    let response = if auth.auth.allows(request.headers().get(AUTHORIZATION)).await {
                        // Without users to authenticate, only the pod itself may reload.
                        let lifecycle = match lifecycle {
                            Lifecycle::On if !auth.auth.required() && !is_loopback(peer.ip()) => {
                                Lifecycle::LoopbackOnly
                            }
                            lifecycle => lifecycle,
                        };
                        respond(request, &supervisor, &renderer, lifecycle).await
                    } else {
                        unauthorized()
                    };
                    slot.request_done();
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = async {
                match &served.tls {
                    None => serve_connection(stream, service).await,
                    // The handshake counts against the same clock as a request head.
                    Some(acceptor) => {
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => serve_connection(tls, service).await,
                            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = connection => {}
                () = ticket.evicted() => tracing::debug!("idle HTTP connection closed to make room"),
            }
        });
    }
}

/// One HTTP/1.1 connection over `io`, plain or TLS.
async fn serve_connection<I, S>(io: I, service: S)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<Full<Bytes>>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = body(StatusCode::UNAUTHORIZED, TEXT, "authentication required\n");
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"cms-xmpp-exporter\""),
    );
    response
}

/// `POST /-/reload`: a reload, when the lifecycle API is on and this client may use it.
async fn reload(supervisor: &Supervisor, lifecycle: Lifecycle) -> Response<Full<Bytes>> {
    match lifecycle {
        Lifecycle::Off => body(
            StatusCode::FORBIDDEN,
            TEXT,
            "the lifecycle API is off: start with --web.enable-lifecycle, or send SIGHUP\n",
        ),
        Lifecycle::LoopbackOnly => body(
            StatusCode::FORBIDDEN,
            TEXT,
            "/-/reload answers only clients on this host (loopback) unless the web config \
             requires basic authentication; or send SIGHUP\n",
        ),
        Lifecycle::On => match supervisor.reload().await {
            Ok(()) => body(StatusCode::OK, TEXT, "reloaded\n"),
            Err(error) => body(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!(
                    "reload failed, the previous configuration keeps running: {}\n",
                    crate::error_chain(&error)
                ),
            ),
        },
    }
}

/// Whether `POST /-/reload` may be served to this request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// `--web.enable-lifecycle` is not set.
    Off,
    On,
    /// Set, but the request comes from another host and no web config authenticates it.
    LoopbackOnly,
}

/// A client on this host (the pod): 127.0.0.0/8, ::1, or either mapped into IPv6.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

async fn respond(
    request: Request<Incoming>,
    supervisor: &Supervisor,
    renderer: &Renderer,
    lifecycle: Lifecycle,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    match (request.uri().path(), read) {
        ("/metrics", true) => metrics(request.headers(), renderer).await,
        ("/-/healthy", true) => body(StatusCode::OK, TEXT, "OK\n"),
        ("/-/ready", true) if supervisor.store.ready() => body(StatusCode::OK, TEXT, "ready\n"),
        ("/-/ready", true) => body(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "not ready: waiting for the first probe of every target\n",
        ),
        ("/-/reload", _) if method == Method::POST || method == Method::PUT => {
            reload(supervisor, lifecycle).await
        }
        ("/probe", true) => {
            let query = request.uri().query().unwrap_or("");
            probe(query, request.headers(), supervisor).await
        }
        ("/", true) => {
            // A fleet's page is megabytes of HTML: built off the async workers, like /metrics.
            let snapshot = supervisor.store.snapshot();
            match tokio::task::spawn_blocking(move || crate::page::render(&snapshot)).await {
                Ok(page) => body(StatusCode::OK, HTML, page),
                Err(error) => {
                    tracing::error!(%error, "rendering the status page failed");
                    body(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        TEXT,
                        "rendering the page failed\n",
                    )
                }
            }
        }
        ("/metrics" | "/-/healthy" | "/-/ready" | "/probe" | "/", false) | ("/-/reload", true) => {
            body(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                format!("{method} is not allowed here\n"),
            )
        }
        _ => body(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; see / for the status page and /metrics\n",
        ),
    }
}

/// What Prometheus' scrape timeout leaves for the run (as blackbox_exporter's
/// `timeout_offset`): the answer must be written before Prometheus gives up.
const SCRAPE_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// `/probe?target=NAME`: runs the target now and answers with its series after that run, as
/// its record then has them (like blackbox_exporter, without the exporter's own); with `debug=true`, the step-by-step report first.
/// `/probe?module=M&target=DOMAIN` (or `target=HOST:PORT&domain=DOMAIN`) probes a target the
/// configuration does not list, with module M's settings.
async fn probe(query: &str, headers: &HeaderMap, supervisor: &Supervisor) -> Response<Full<Bytes>> {
    let Some(name) = query_param(query, "target") else {
        return body(
            StatusCode::BAD_REQUEST,
            TEXT,
            "the target parameter is required: /probe?target=NAME (or module=M&target=DOMAIN)\n",
        );
    };
    let debug = query_param(query, "debug").is_some_and(|v| v == "true" || v == "1");
    let found = match query_param(query, "module") {
        Some(module) => {
            let domain = query_param(query, "domain");
            let timeout = scrape_timeout(headers);
            match supervisor
                .probe_module(&module, &name, domain.as_deref(), timeout)
                .await
            {
                Ok(found) => Some(found),
                // The answer echoes nothing of the request.
                Err(error) => {
                    return body(StatusCode::BAD_REQUEST, TEXT, format!("{error}\n"));
                }
            }
        }
        None => supervisor.probe_now(&name).await,
    };
    // The answer names no other target: the port may be reachable by anyone.
    let Some(answer) = found else {
        return body(StatusCode::NOT_FOUND, TEXT, "unknown target\n");
    };
    let (record, age) = match answer {
        OnDemand::Ran { record, age } => (record, age),
        OnDemand::Busy { waited } => {
            return body(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!(
                    "no run of this target finished within {}: the exporter's probes are busy\n",
                    humantime::format_duration(waited)
                ),
            )
        }
    };
    let text = debug.then(|| {
        let mut text = String::new();
        if let Some(age) = age {
            text.push_str(&format!(
                "The last run, {:.1} s ago: runs of one target are at least {} apart.\n\n",
                age.as_secs_f64(),
                humantime::format_duration(PROBE_SPACING)
            ));
        }
        text.push_str(&render_text(&record, Style::new(false)));
        text
    });
    let exposition = Exposition::single(record);
    let Some(mut text) = text else {
        return body(StatusCode::OK, EXPOSITION, exposition);
    };
    text.push_str("\nThe target's series after this run:\n\n");
    text.push_str(&String::from_utf8_lossy(&exposition));
    body(StatusCode::OK, TEXT, text)
}

async fn metrics(headers: &HeaderMap, renderer: &Renderer) -> Response<Full<Bytes>> {
    let gzip = accepts_gzip(headers);
    let mut response = match renderer.render(gzip).await {
        Ok(exposition) => body(StatusCode::OK, EXPOSITION, exposition),
        Err(error) => {
            tracing::error!(%error, "rendering /metrics failed");
            return body(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                "rendering the metrics failed; see the exporter's log\n",
            );
        }
    };
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// A query parameter, percent-decoded.
/// `X-Prometheus-Scrape-Timeout-Seconds` less the margin; `None` without a usable header.
fn scrape_timeout(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get("x-prometheus-scrape-timeout-seconds")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let timeout = Duration::try_from_secs_f64(seconds).ok()?;
    Some(timeout.saturating_sub(SCRAPE_TIMEOUT_MARGIN))
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn body(
    status: StatusCode,
    content_type: &'static str,
    content: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(content.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param("target=cms%20london&debug=true", "target").as_deref(),
            Some("cms london")
        );
        assert_eq!(
            query_param("debug&target=a+b", "target").as_deref(),
            Some("a b")
        );
        assert_eq!(query_param("debug", "debug").as_deref(), Some(""));
        assert_eq!(query_param("target=50%", "target").as_deref(), Some("50%"));
        assert_eq!(query_param("target=%zz", "target").as_deref(), Some("%zz"));
        assert_eq!(query_param("x=1", "target"), None);
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            accepts_gzip(&headers)
        };
        assert!(accepts("gzip"));
        assert!(accepts("identity, GZIP;q=0.5"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.000"));
        assert!(!accepts("deflate, br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn only_this_host_counts_as_loopback() {
        let loopback = ["127.0.0.1", "127.4.5.6", "::1", "::ffff:127.0.0.1"];
        let elsewhere = [
            "10.213.77.2",
            "192.0.2.1",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "fe80::1",
            // IPv4-compatible (deprecated), not mapped: not this host.
            "::127.0.0.1",
        ];
        for ip in loopback {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in elsewhere {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }
}
