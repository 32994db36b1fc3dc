//! The exporter under test and its surroundings: a lab (test CA, secret file, DNS server),
//! `run()` on port 0, and a parsed `/metrics`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use cms_xmpp_exporter::metrics::*;

use cms_xmpp_exporter::config::Config;
use cms_xmpp_exporter::{run, Running, WebOptions};
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::PrometheusValue;
use std::process::Stdio;
use tempfile::TempDir;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::component::{Behaviour, ComponentServer, ComponentServerConfig};
use super::dns::{DnsServer, Zone};
use super::pki::{Leaf, Pki, Validity};

pub const DOMAIN: &str = "example.test";
pub const SRV_NAME: &str = "_xmpp-component._tcp.example.test";
pub const XMPP1: &str = "xmpp1.example.test";
pub const XMPP2: &str = "xmpp2.example.test";
pub const COMPONENT: &str = "probe.example.test";
pub const SECRET: &str = "probe-secret-do-not-leak-7f3a";
/// The monitoring user of a `watch`, with its password in the lab's file `password`.
pub const JID: &str = "monitor@example.test";
pub const PASSWORD: &str = "monitor-password-do-not-leak-41c9";
/// How long a test waits for the exporter to show what it expects.
pub const PATIENCE: Duration = Duration::from_secs(15);

// ---------- the lab: CA, secret file, DNS ----------

pub struct Lab {
    pub dir: TempDir,
    pub pki: Pki,
    pub dns: DnsServer,
}

impl Lab {
    pub async fn new(zone: Zone) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
        std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
        std::fs::write(dir.path().join("wrong-password"), "not-the-password\n").unwrap();
        let pki = Pki::new("cms-xmpp-exporter test CA");
        pki.write_ca(dir.path());
        Lab {
            dir,
            pki,
            dns: DnsServer::start(zone).await,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate as a CMS deployment should have it: domain and both FQDNs.
    pub fn good_leaf(&self) -> Leaf {
        self.pki.leaf(&[DOMAIN, XMPP1, XMPP2], Validity::Good)
    }

    pub async fn tls_server(&self, leaf: &Leaf, behaviour: Behaviour) -> ComponentServer {
        component_server(Some(leaf.server_config()), behaviour).await
    }

    /// Publishes two servers as the SRV answer: xmpp1 (priority 10, weight 60) and xmpp2
    /// (priority 20, weight 40), both at 127.0.0.1.
    pub fn publish_srv(&self, one: &ComponentServer, two: &ComponentServer) {
        self.dns.set_zone(
            base_zone()
                .srv(SRV_NAME, 10, 60, one.addr().port(), XMPP1)
                .srv(SRV_NAME, 20, 40, two.addr().port(), XMPP2),
        );
    }

    /// Two TLS servers with the good certificate, published as the SRV answer.
    pub async fn two_srv_servers(&self) -> (ComponentServer, ComponentServer) {
        let leaf = self.good_leaf();
        let one = self.tls_server(&leaf, Behaviour::Normal).await;
        let two = self.tls_server(&leaf, Behaviour::Normal).await;
        self.publish_srv(&one, &two);
        (one, two)
    }

    /// A target in YAML probed every second with a one-second deadline; `tls` adds lines
    /// to its `tls:` block (indented by six spaces).
    pub fn target(&self, name: &str, server_address: &str, tls: &str) -> String {
        self.timed_target(name, server_address, "1s", "1s", tls)
    }

    pub fn timed_target(
        &self,
        name: &str,
        server_address: &str,
        interval: &str,
        timeout: &str,
        tls: &str,
    ) -> String {
        format!(
            "  - name: {name}\n    domain: {DOMAIN}\n    server_address: \"{server_address}\"\n    component: {COMPONENT}\n    secret_file: {secret}\n    interval: {interval}\n    timeout: {timeout}\n    tls:\n      ca_file: {ca}\n{tls}",
            secret = self.path("secret").display(),
            ca = self.path("ca.pem").display(),
        )
    }

    /// A `watch:` block to append to a target: the monitoring user logs in at `server_address`
    /// ("" for SRV) in TLS `mode`, with the password in the lab's file `password_file`.
    pub fn watch(
        &self,
        server_address: &str,
        mode: &str,
        password_file: &str,
        components: &[&str],
    ) -> String {
        format!(
            "    watch:\n      jid: {JID}\n      password_file: {}\n      server_address: \"{server_address}\"\n      tls:\n        mode: {mode}\n        ca_file: {}\n      components: [{}]\n",
            self.path(password_file).display(),
            self.path("ca.pem").display(),
            components.join(", "),
        )
    }

    pub async fn exporter(&self, targets: &[String]) -> Exporter {
        Exporter::start(&self.config(targets)).await
    }

    /// A whole configuration around `targets`, asking the lab's DNS server.
    pub fn config(&self, targets: &[String]) -> String {
        format!(
            "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{}\"]\ntargets:\n{}",
            self.dns.addr(),
            targets.concat()
        )
    }
}

pub async fn component_server(
    tls: Option<Arc<rustls::ServerConfig>>,
    behaviour: Behaviour,
) -> ComponentServer {
    ComponentServer::start(ComponentServerConfig {
        tls,
        components: vec![(COMPONENT.to_owned(), SECRET.to_owned())],
        behaviour,
        tls_delay: None,
    })
    .await
}

/// A zone where both XMPP servers resolve to 127.0.0.1.
pub fn base_zone() -> Zone {
    Zone::new()
        .a(XMPP1, Ipv4Addr::LOCALHOST)
        .a(XMPP2, Ipv4Addr::LOCALHOST)
}

/// A loopback port where nothing listens.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

pub fn server(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

// ---------- the exporter and its /metrics ----------

fn lifecycle() -> WebOptions {
    WebOptions {
        enable_lifecycle: true,
        ..WebOptions::default()
    }
}

pub struct Exporter {
    pub running: Option<Running>,
    pub addr: SocketAddr,
}

impl Exporter {
    /// With the lifecycle API on, so that tests can POST /-/reload.
    pub async fn start(yaml: &str) -> Exporter {
        Exporter::start_with(yaml, lifecycle()).await
    }

    pub async fn start_with(yaml: &str, web: WebOptions) -> Exporter {
        let config = Config::parse(yaml, std::path::Path::new("test.yaml"))
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{yaml}"));
        Exporter::run(config, web).await
    }

    /// Loads the configuration from a file, so that reloads re-read it.
    pub async fn start_file(path: &std::path::Path) -> Exporter {
        let config = Config::load(path).unwrap_or_else(|e| panic!("test config invalid: {e}"));
        Exporter::run(config, lifecycle()).await
    }

    async fn run(config: Config, web: WebOptions) -> Exporter {
        let running = run(config, web).await.expect("exporter starts");
        let addr = running.local_addr();
        Exporter {
            running: Some(running),
            addr,
        }
    }

    pub async fn scrape(&self) -> Scrape {
        let body = http_get(self.addr, "/metrics").await;
        Scrape::parse(&body)
    }

    /// Polls /metrics until `condition` holds; panics with `what` and the last scrape.
    pub async fn wait(&self, what: &str, condition: impl Fn(&Scrape) -> bool) -> Scrape {
        let give_up = tokio::time::Instant::now() + PATIENCE;
        loop {
            let scrape = self.scrape().await;
            if condition(&scrape) {
                return scrape;
            }
            if tokio::time::Instant::now() >= give_up {
                panic!(
                    "timed out waiting for {what}; last /metrics:\n{}",
                    scrape.relevant()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the target has completed `cycles` probe cycles.
    pub async fn cycles(&self, target: &str, cycles: f64) -> Scrape {
        self.wait(&format!("{cycles} probe cycles of {target}"), |s| {
            s.value(&PROBES_TOTAL, &[("target", target)]) >= Some(cycles)
        })
        .await
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// One HTTP/1.1 request; returns the status code and the body.
pub async fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let response = http_exchange(addr, method, path, "").await;
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

pub struct HttpResponse {
    pub status: u16,
    /// Header lines as sent, lowercase.
    pub head: String,
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request with extra header lines (each ending in CRLF); the raw answer.
pub async fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect to exporter");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n{headers}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    HttpResponse {
        status,
        head,
        body: response[split + 4..].to_vec(),
    }
}

/// The real binary on a free loopback port. Its stderr log is read up to the line that names
/// its address, then drained in the background so that a busy log never blocks it.
pub struct Binary {
    pub child: Child,
    pub exporter: Exporter,
    log: tokio::task::JoinHandle<String>,
}

impl Binary {
    /// `binary` is `env!("CARGO_BIN_EXE_cms-xmpp-exporter")`, which only tests and benchmarks
    /// can name. The log level must show info lines, where the address is.
    pub async fn spawn(binary: &str, config: &std::path::Path, extra: &[&str]) -> Binary {
        Binary::spawn_via(&[], binary, config, extra).await
    }

    /// Like [`Binary::spawn`], run by a wrapper command (`prlimit …`, say).
    pub async fn spawn_via(
        wrapper: &[&str],
        binary: &str,
        config: &std::path::Path,
        extra: &[&str],
    ) -> Binary {
        let (program, args) = match wrapper {
            [program, args @ ..] => (*program, args),
            [] => (binary, &[][..]),
        };
        let mut command = Command::new(program);
        command.args(args);
        if !wrapper.is_empty() {
            command.arg(binary);
        }
        let mut child = command
            .args([
                "--config",
                config.to_str().unwrap(),
                "--listen-address",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut log = String::new();
        let find = async {
            loop {
                let mut line = String::new();
                assert!(
                    stderr.read_line(&mut line).await.unwrap() > 0,
                    "exporter exited early:\n{log}"
                );
                log.push_str(&line);
                // Text (`address=ADDR`) or JSON (`"address":"ADDR"`) logs.
                let address = line
                    .split("address")
                    .nth(1)
                    .map(|rest| rest.trim_start_matches(['=', '"', ':']))
                    .and_then(|rest| rest.split(['"', ' ', ',']).next())
                    .and_then(|a| a.parse().ok());
                if let Some(address) = address {
                    return address;
                }
            }
        };
        let addr = tokio::time::timeout(PATIENCE, find)
            .await
            .expect("the exporter logs its address");
        let log = tokio::spawn(async move {
            let _ = stderr.read_to_string(&mut log).await;
            log
        });
        Binary {
            child,
            exporter: Exporter {
                running: None,
                addr,
            },
            log,
        }
    }

    /// Sends the signal `name` (HUP, TERM…) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {name} {pid}");
    }

    /// Kills the process and returns its whole log.
    pub async fn killed_log(mut self) -> String {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
        self.log().await
    }

    /// The whole log, once the process has exited (signal or kill it first).
    pub async fn log(self) -> String {
        self.log.await.expect("the log reader")
    }
}

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let (status, body) = http_request(addr, "GET", path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A text exposition, read by a real parser (openmetrics-parser's Prometheus grammar, which
/// resolves escapes and rejects malformed lines). Histograms are flattened into their
/// `_bucket`, `_sum` and `_count` samples.
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let exposition = parse_prometheus(text)
            .unwrap_or_else(|e| panic!("not a valid exposition ({e:?}):\n{text}"));
        let mut samples = Vec::new();
        for family in exposition.families.values() {
            for sample in family.iter_samples() {
                let labels: Vec<(String, String)> = sample
                    .get_labelset()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let name = family.family_name.clone();
                let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                    let mut labels = labels.clone();
                    labels.extend(extra.map(|(k, v)| (k.to_owned(), v)));
                    samples.push(Sample {
                        name: format!("{name}{suffix}"),
                        labels,
                        value,
                    });
                };
                match &sample.value {
                    PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => {
                        push("", None, n.as_f64())
                    }
                    PrometheusValue::Counter(c) => push("", None, c.value.as_f64()),
                    PrometheusValue::Histogram(h) => {
                        for bucket in &h.buckets {
                            let le = if bucket.upper_bound.is_infinite() {
                                "+Inf".to_owned()
                            } else {
                                bucket.upper_bound.to_string()
                            };
                            push("_bucket", Some(("le", le)), bucket.count.as_f64());
                        }
                        push("_sum", None, h.sum.map_or(0.0, |n| n.as_f64()));
                        push("_count", None, h.count.unwrap_or(0) as f64);
                    }
                    PrometheusValue::Summary(_) => panic!("the exporter serves no summary"),
                }
            }
        }
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of `metric` whose labels include every pair in `labels`.
    pub fn find(&self, metric: &MetricDef, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.find_named(metric.name, labels)
    }

    /// Samples named `name` (a histogram's `_count`, say) with every pair in `labels`.
    pub fn find_named(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect()
    }

    pub fn value(&self, metric: &MetricDef, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(metric, labels).as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!("{} {labels:?} is ambiguous: {many:?}", metric.name),
        }
    }

    pub fn label(&self, metric: &MetricDef, labels: &[(&str, &str)], key: &str) -> Option<String> {
        let found = self.find(metric, labels);
        let sample = found.first()?;
        sample
            .labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Whether any series carries `value` in any label.
    pub fn mentions(&self, value: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.labels.iter().any(|(_, v)| v == value))
    }

    pub fn relevant(&self) -> String {
        self.text
            .lines()
            .filter(|l| l.starts_with("cms_xmpp_") && !l.contains("_bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The step that failed in the last probe of a server, and why.
pub fn failing(scrape: &Scrape, target: &str, server: &str) -> Option<(String, String)> {
    let ids = [("target", target), ("server", server)];
    let step = scrape.label(&FAILING_STEP, &ids, "step")?;
    let reason = scrape.label(&FAILING_STEP, &ids, "reason")?;
    Some((step, reason))
}

/// Runs one target against a lab and waits until its server fails at `step` with `reason`.
pub async fn expect_failure(
    lab: &Lab,
    target: String,
    server: &str,
    step: &str,
    reason: &str,
) -> Scrape {
    let exporter = lab.exporter(&[target]).await;
    let scrape = exporter
        .wait(&format!("{server} failing at {step} with {reason}"), |s| {
            failing(s, "t", server) == Some((step.to_owned(), reason.to_owned()))
        })
        .await;
    assert_eq!(scrape.value(&PROBE_SUCCESS, &[("target", "t")]), Some(0.0));
    assert_eq!(
        scrape
            .value(
                &FAILURES_TOTAL,
                &[("target", "t"), ("step", step), ("reason", reason)]
            )
            .map(|v| v >= 1.0),
        Some(true),
        "failure counter for {step}/{reason}"
    );
    exporter.stop().await;
    scrape
}
