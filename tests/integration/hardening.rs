//! The exporter's own port against hostile clients: sockets held open and silent, and the
//! limits it takes from the system at start.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use crate::support::exporter::*;
use crate::support::wait_for;

/// Sockets opened so far, and open now.
#[derive(Default)]
struct Held {
    opened: AtomicUsize,
    open: AtomicUsize,
}

/// Keeps `count` connections open and silent; each one the exporter closes is opened again a
/// second later, as an attacker renews them.
fn hold_idle(addr: SocketAddr, count: usize, stop: Arc<AtomicBool>, held: Arc<Held>) {
    for _ in 0..count {
        let (stop, held) = (stop.clone(), held.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut socket) = TcpStream::connect(addr).await {
                    held.opened.fetch_add(1, Ordering::Relaxed);
                    held.open.fetch_add(1, Ordering::Relaxed);
                    let mut byte = [0u8; 1];
                    // Until the exporter closes it, or the test ends.
                    while !stop.load(Ordering::Relaxed) {
                        let read = timeout(Duration::from_millis(200), socket.read(&mut byte));
                        if let Ok(Ok(0) | Err(_)) = read.await {
                            break;
                        }
                    }
                    held.open.fetch_sub(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// One scrape over a fresh connection: whether it answered 200 within `deadline`.
async fn scrape_within(addr: SocketAddr, deadline: Duration) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response.starts_with(b"HTTP/1.1 200"))
    };
    matches!(timeout(deadline, exchange).await, Ok(Ok(true)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_never_lock_a_scraper_out() {
    // Both ends of 2,000 sockets live in this process.
    let (_, limit) = cms_xmpp_exporter::raise_file_limit().unwrap();
    assert!(
        limit >= 5000,
        "this test needs 5,000 open files; the hard limit is {limit}"
    );
    let lab = Lab::new(base_zone()).await;
    let target = lab.target("t", &server(XMPP1, closed_port().await), "");
    let exporter = lab.exporter(&[target]).await;
    // Fewer than the connection limit (512), and four times more.
    for count in [64, 2000] {
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Held::default());
        hold_idle(exporter.addr, count, stop.clone(), held.clone());
        wait_for(&format!("{count} idle sockets opened"), PATIENCE, || {
            held.opened.load(Ordering::Relaxed) >= count
        })
        .await;
        let mut answered = 0;
        for _ in 0..30 {
            answered += usize::from(scrape_within(exporter.addr, Duration::from_secs(2)).await);
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            answered, 30,
            "scrapes answered within 2 s while {count} idle sockets were held"
        );
        wait_for("the idle sockets to close", PATIENCE, || {
            held.open.load(Ordering::Relaxed) == 0
        })
        .await;
    }
    exporter.stop().await;
}

#[tokio::test]
async fn a_connection_that_says_nothing_is_closed_within_seconds() {
    let lab = Lab::new(base_zone()).await;
    let target = lab.target("t", &server(XMPP1, closed_port().await), "");
    let exporter = lab.exporter(&[target]).await;
    let mut silent = TcpStream::connect(exporter.addr).await.unwrap();
    let mut partial = TcpStream::connect(exporter.addr).await.unwrap();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHo")
        .await
        .unwrap();
    for socket in [&mut silent, &mut partial] {
        let mut rest = Vec::new();
        let closed = timeout(Duration::from_secs(8), socket.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the exporter still holds a connection after 8 s"
        );
    }
    exporter.stop().await;
}

#[tokio::test]
async fn the_open_files_limit_is_raised_to_the_hard_limit_at_start() {
    let lab = Lab::new(base_zone()).await;
    let target = lab.target("t", &server(XMPP1, closed_port().await), "");
    std::fs::write(lab.path("config.yaml"), lab.config(&[target])).unwrap();
    let binary = Binary::spawn_via(
        &["prlimit", "--nofile=256:"],
        crate::BINARY,
        &lab.path("config.yaml"),
        &[],
    )
    .await;
    let pid = binary.child.id().expect("running");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files")
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect();
    assert_eq!(
        open_files[0], open_files[1],
        "soft and hard limit: {open_files:?}"
    );
    assert_ne!(open_files[0], "256");
    let log = binary.killed_log().await;
    assert!(
        log.contains("raised the open-files limit") && log.contains("before=256"),
        "the raise is logged:\n{log}"
    );
}

/// A TLS server that starts its handshake `delay` after the TCP accept: each run takes that long.
async fn slow_server(lab: &Lab, delay: Duration) -> ComponentServer {
    ComponentServer::start(ComponentServerConfig {
        tls: Some(lab.good_leaf().server_config()),
        components: vec![(COMPONENT.to_owned(), SECRET.to_owned())],
        behaviour: Behaviour::Normal,
        tls_delay: Some(delay),
    })
    .await
}

async fn probe_status(addr: SocketAddr, target: &str) -> u16 {
    http_request(addr, "GET", &format!("/probe?target={target}"))
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_requests_share_runs_and_never_hold_up_the_schedule() {
    let lab = Lab::new(base_zone()).await;
    let slow = slow_server(&lab, Duration::from_millis(300)).await;
    let target = lab.timed_target("t", &server(XMPP1, slow.addr().port()), "1s", "1s", "");
    let exporter = lab.exporter(&[target]).await;
    exporter.cycles("t", 1.0).await;
    let (before, cycles_before) = (slow.stats().connections, cycles(&exporter.scrape().await));
    let started = std::time::Instant::now();
    // 500 requests over about 10 s, 60 at a time.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let wave: Vec<_> = (0..20)
            .map(|_| tokio::spawn(probe_status(exporter.addr, "t")))
            .collect();
        for request in wave {
            statuses.push(request.await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let scrape = exporter.scrape().await;
    let runs = slow.stats().connections - before;
    let scheduled = cycles(&scrape) - cycles_before;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The schedule's runs (one a second), and a request's at most every 5 s between them.
    let allowed = elapsed.ceil() as usize + (elapsed / 5.0).ceil() as usize + 1;
    assert!(
        runs <= allowed,
        "{} requests made {runs} runs at the server in {elapsed:.1} s (at most {allowed})",
        statuses.len()
    );
    assert!(
        scheduled >= elapsed.floor() - 1.0,
        "the schedule ran {scheduled} cycles in {elapsed:.1} s"
    );
    let last = scrape.value(&LAST_PROBE, &[("target", "t")]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        now - last < 2.5,
        "the last scheduled probe is {:.1} s old",
        now - last
    );
    exporter.stop().await;
}

fn cycles(scrape: &Scrape) -> f64 {
    scrape
        .value(&PROBES_TOTAL, &[("target", "t")])
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_request_that_cannot_be_served_in_time_gets_503() {
    let lab = Lab::new(base_zone()).await;
    let silent = component_server(None, Behaviour::Silent).await;
    // One probe at a time, and five targets that each hold it for their whole timeout.
    let targets: Vec<String> = (0..5)
        .map(|i| lab.target(&format!("t{i}"), &server(XMPP1, silent.addr().port()), ""))
        .collect();
    let config = lab
        .config(&targets)
        .replace("targets:", "max_concurrent_probes: 1\ntargets:");
    let exporter = Exporter::start(&config).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let (status, body) = http_request(exporter.addr, "GET", "/probe?target=t0").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn reload_over_http_needs_the_lifecycle_flag() {
    let lab = Lab::new(base_zone()).await;
    let target = lab.target("t", &server(XMPP1, closed_port().await), "");
    std::fs::write(lab.path("config.yaml"), lab.config(&[target])).unwrap();
    let config = cms_xmpp_exporter::config::Config::load(&lab.path("config.yaml")).unwrap();
    let running = cms_xmpp_exporter::run(config, cms_xmpp_exporter::WebOptions::default())
        .await
        .unwrap();
    let addr = running.local_addr();
    let loaded = |text: &str| Scrape::parse(text).value(&CONFIG_RELOAD_TIMESTAMP, &[]);
    let before = loaded(&http_get(addr, "/metrics").await);
    let (status, body) = http_request(addr, "POST", "/-/reload").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--web.enable-lifecycle"), "{body}");
    // A reload answers once it is done, so nothing can be pending behind the 403.
    assert_eq!(
        loaded(&http_get(addr, "/metrics").await),
        before,
        "nothing was reloaded"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_bad_reload_answers_at_once_echoes_no_value_and_keeps_serving() {
    let lab = Lab::new(base_zone()).await;
    let target = lab.target("t", &server(XMPP1, closed_port().await), "");
    let good = lab.config(&[target]);
    std::fs::write(lab.path("config.yaml"), &good).unwrap();
    let exporter = Exporter::start_file(&lab.path("config.yaml")).await;
    let fifo = lab.path("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let secret_file = format!("secret_file: {}", lab.path("secret").display());
    for (bad, expected) in [
        // Opening a FIFO would wait for a writer, and hold up every render meanwhile.
        (
            good.replace(&secret_file, &format!("secret_file: {}", fifo.display())),
            "not a regular file",
        ),
        // A secret pasted into the wrong field.
        (
            good.replace("    interval: 1s\n", "    interval: hunter2-secret-value\n"),
            "interval",
        ),
        (
            good.replace(
                "    interval: 1s\n",
                "    handshake: \"hunter2-secret-value\"\n",
            ),
            "expected a boolean",
        ),
    ] {
        std::fs::write(lab.path("config.yaml"), &bad).unwrap();
        let reload = http_request(exporter.addr, "POST", "/-/reload");
        let (status, body) = timeout(Duration::from_secs(5), reload)
            .await
            .expect("the reload answers within 5 s");
        assert_eq!(status, 500, "{body}");
        assert!(body.contains(expected), "{body}");
        assert!(!body.contains("hunter2"), "the value is echoed: {body}");
        let scrape = exporter.scrape().await;
        assert_eq!(scrape.value(&CONFIG_RELOAD_SUCCESSFUL, &[]), Some(0.0));
        assert!(scrape.value(&PROBES_TOTAL, &[("target", "t")]).is_some());
    }
    exporter.stop().await;
}

#[tokio::test]
async fn control_characters_from_a_peer_reach_no_log_page_or_terminal() {
    let lab = Lab::new(base_zone()).await;
    let hostile = lab
        .tls_server(&lab.good_leaf(), Behaviour::HostileText)
        .await;
    let address = server(XMPP1, hostile.addr().port());
    let config = lab.config(&[lab.target("t", &address, "")]);
    let binary = crate::spawn_traced(&lab, &config).await;
    let addr = binary.exporter.addr;
    binary
        .exporter
        .wait("the hostile server refused", |s| {
            failing(s, "t", &address) == Some(("handshake".into(), "not_authorized".into()))
        })
        .await;
    let debug = http_get(addr, "/probe?target=t&debug=true").await;
    let page = http_get(addr, "/").await;
    let log = binary.killed_log().await;
    let probe = tokio::process::Command::new(crate::BINARY)
        .args(["probe", "--config"])
        .arg(lab.path("config.yaml"))
        .output()
        .await
        .unwrap();
    let terminal = String::from_utf8_lossy(&probe.stdout).into_owned();
    assert!(
        debug.contains("id\\u{1b}[31mred\\u{7}\\r\\n2026") && debug.contains("\\u{1b}[32mraw"),
        "the peer's text arrives, escaped:\n{debug}"
    );
    for (what, text) in [
        ("/probe?debug", &debug),
        ("the page", &page),
        ("the log", &log),
        ("the probe command", &terminal),
    ] {
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\r']),
            "a raw control character reached {what}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
            "a forged line reached {what}"
        );
    }
}

#[tokio::test]
async fn one_dns_answer_cannot_multiply_a_probe_without_bound() {
    let port = closed_port().await;
    let mut zone = base_zone();
    for i in 0..100u16 {
        let name = format!("s{i}.example.test");
        zone = zone
            .srv(SRV_NAME, i, 0, port, &name)
            .a(&name, Ipv4Addr::LOCALHOST);
    }
    // One name with twenty addresses.
    for last in 1..=20 {
        zone = zone.a("many.example.test", Ipv4Addr::new(127, 0, 0, last));
    }
    let lab = Lab::new(zone).await;
    let targets = [
        lab.target("srv", "", ""),
        lab.target("many", &server("many.example.test", port), ""),
    ];
    let config = lab.config(&targets).replace(
        "dns:\n",
        "dns:\n  max_servers_per_target: 5\n  max_addresses_per_server: 3\n",
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter
        .wait("the SRV answer read", |s| {
            s.value(&SRV_RECORDS, &[("target", "srv")]) == Some(100.0)
        })
        .await;
    assert_eq!(
        scrape.value(&SRV_TRUNCATED, &[("target", "srv")]),
        Some(95.0)
    );
    let probed: Vec<String> = scrape
        .find(&SERVER_UP, &[("target", "srv")])
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .find(|(k, _)| k == "server")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    let first_five: Vec<String> = (0..5)
        .map(|i| server(&format!("s{i}.example.test"), port))
        .collect();
    assert_eq!(probed, first_five, "the first five in RFC 2782 order");
    assert_eq!(scrape.value(&SRV_TRUNCATED, &[("target", "many")]), None);
    let debug = http_get(exporter.addr, "/probe?target=many&debug=true").await;
    let resolve = debug
        .lines()
        .find(|l| l.trim_start().starts_with("resolve"))
        .expect("the resolve line");
    assert_eq!(resolve.matches("127.0.0.").count(), 3, "{resolve}");
    exporter.stop().await;
}

#[tokio::test]
async fn running_out_of_file_descriptors_blames_no_server() {
    let lab = Lab::new(base_zone()).await;
    // Each probe holds its socket for its whole timeout: the probes overlap.
    let peer = lab.tls_server(&lab.good_leaf(), Behaviour::Silent).await;
    let address = server(XMPP1, peer.addr().port());
    // Many probes at once, each a DNS socket and a TCP one, in a process allowed 24 files.
    let targets: Vec<String> = (0..40)
        .map(|i| {
            lab.target(&format!("t{i}"), &address, "").replace(
                &format!("component: {COMPONENT}"),
                &format!("component: p{i}.example.test"),
            )
        })
        .collect();
    let config = lab
        .config(&targets)
        .replace("targets:", "max_concurrent_probes: 40\ntargets:");
    std::fs::write(lab.path("config.yaml"), config).unwrap();
    let binary = Binary::spawn_via(
        &["prlimit", "--nofile=24:24"],
        crate::BINARY,
        &lab.path("config.yaml"),
        &[],
    )
    .await;
    let scrape = binary
        .exporter
        .wait("cycles discarded for want of file descriptors", |s| {
            s.value(&DISCARDED_CYCLES, &[]).is_some_and(|n| n >= 1.0)
        })
        .await;
    for reason in ["dns_error", "unreachable", "local_resources"] {
        assert!(
            scrape
                .find(&FAILURES_TOTAL, &[("reason", reason)])
                .is_empty(),
            "a server was blamed with {reason}:\n{}",
            scrape.relevant()
        );
    }
    let log = binary.killed_log().await;
    assert!(log.contains("ran out of file descriptors"), "{log}");
}
