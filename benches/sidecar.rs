//! What the exporter costs as a sidecar, measured on the real binary in a process of its own
//! (so that its CPU and memory are its own), for 1, 100 and 1,000 healthy targets, and for 100
//! targets that also watch two production components each. Each target finds two TLS
//! component servers through SRV and is probed every 15 s; a watch logs in to a client port
//! (STARTTLS, SCRAM-SHA-256 with 4,096 iterations) and pings both: a client port that keeps
//! its salt (the exporter derives once), one that stores the password under a new salt at
//! every login (every login derives, as every login did before the derivations were kept), and
//! a hostile one that asks for 2,000,000,000 rounds (with the limit raised so that each login
//! derives until its deadline). The servers and the DNS server run in this process, on
//! loopback.
//!
//!     cargo bench --bench sidecar       (or: -- 1000  for one size; -- watch  for the watch rows;
//!                                         -- fleet  for 1,000 targets named by /probe requests;
//!                                         -- scram  for the cost of one SCRAM key derivation;
//!                                         -- per-probe  for CPU per server probe beside a
//!                                            minimal client's;
//!                                         -- memory  for resident memory over ten minutes at
//!                                            1,000 targets;
//!                                         -- dnssec  for the cost of validating every answer;
//!                                         -- keytrap  for a KeyTrap-shaped zone's beside a
//!                                            healthy one's;
//!                                         -- watch-cost  for CPU per minute and memory of
//!                                            100 targets watching two components each, at
//!                                            the default interval)
//!
//! Per size it prints: series and bytes of exposition per target (plain and gzip); the time
//! of a scrape over HTTP, one per second (the exporter rewrites only the targets probed since
//! the last render) and after a quiet probe interval (every target rewritten: what a scrape
//! interval at least as long as the probe interval costs); resident memory (now and peak), CPU
//! per probe cycle, probe durations against a lone target's, the slowest step, whether
//! every target ran every cycle on time while four clients scraped without pause, and how fast
//! `/-/healthy` answered meanwhile (a request every 10 ms). Numbers vary with the machine;
//! compare runs on the same one (`CMS_XMPP_EXPORTER_BINARY=path` runs another build).

// The benchmark uses a part of the test peers; the tests use all of it.
#[path = "sidecar/dnssec.rs"]
mod dnssec;
#[path = "sidecar/keytrap.rs"]
mod keytrap;
#[path = "sidecar/memory.rs"]
mod memory;
#[path = "sidecar/per_probe.rs"]
mod per_probe;
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;
#[path = "sidecar/watch_cost.rs"]
mod watch_cost;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::c2s::{Answer, C2sConfig, C2sServer, Encryption, Fault};
use support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use support::exporter::*;

/// The client port a row's targets log in to, if they watch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watch {
    None,
    /// Keeps its salt: the exporter derives the salted password once.
    SaltKept,
    /// A new salt at every login: every login derives.
    FreshSalt,
    /// Asks for 2,000,000,000 rounds; the limit is raised so that each login derives until
    /// its deadline.
    Hostile,
}

const SIZES: [usize; 3] = [1, 100, 1000];
/// Targets of the watch row.
const WATCH_SIZE: usize = 100;
const INTERVAL: Duration = Duration::from_secs(15);
/// Renders timed one second apart (the exporter shares a rendering within a second).
const RENDERS: usize = 60;
/// Renders timed after a quiet probe interval, when every target has a new report.
const FULL_RENDERS: usize = 3;
/// How long four clients scrape as fast as they can, probes going on meanwhile.
const SCRAPE_STORM: Duration = Duration::from_secs(30);
/// `CMS_XMPP_EXPORTER_BINARY` measures another build (of an older commit, say) on the same
/// machine with the same benchmark.
fn binary() -> String {
    std::env::var("CMS_XMPP_EXPORTER_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cms-xmpp-exporter").to_owned())
}
const GZIP: &str = "Accept-Encoding: gzip\r\n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == per_probe::FLOOR_MODE) {
        per_probe::floor_main(&args);
        return;
    }
    if args.iter().any(|a| a == "per-probe") {
        runtime().block_on(per_probe::measure()).print();
        return;
    }
    if args.iter().any(|a| a == "keytrap") {
        runtime().block_on(keytrap::measure()).print();
        return;
    }
    if args.iter().any(|a| a == "dnssec") {
        runtime().block_on(dnssec::measure()).print();
        return;
    }
    if args.iter().any(|a| a == "memory") {
        runtime().block_on(memory::measure()).print();
        return;
    }
    if args.iter().any(|a| a == "watch-cost") {
        let (without, with) = runtime().block_on(watch_cost::measure());
        without.print();
        with.print();
        return;
    }
    if args.iter().any(|a| a == "scram") {
        runtime().block_on(measure_scram());
        return;
    }
    if args.iter().any(|a| a == "fleet") {
        runtime().block_on(measure_fleet(FLEET_SIZE)).print();
        return;
    }
    let watch_rows = [Watch::SaltKept, Watch::FreshSalt, Watch::Hostile].map(|w| (WATCH_SIZE, w));
    let rows: Vec<(usize, Watch)> = match args.iter().find_map(|a| a.parse().ok()) {
        Some(size) => vec![(size, Watch::None)],
        None if args.iter().any(|a| a == "watch") => {
            [(1, Watch::None)].into_iter().chain(watch_rows).collect()
        }
        None => SIZES
            .iter()
            .map(|size| (*size, Watch::None))
            .chain(watch_rows)
            .collect(),
    };
    let runtime = runtime();
    let mut lone_probe = None;
    for (size, watch) in rows {
        let row = runtime.block_on(measure(size, watch));
        let lone = *lone_probe.get_or_insert(row.probe_p50);
        row.print(lone);
    }
}

/// The benchmark's own peers get two workers, as the exporter does.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

struct Row {
    targets: usize,
    watch: Watch,
    series_per_target: f64,
    bytes_per_target: f64,
    gzip_bytes_per_target: f64,
    render_p50: Duration,
    render_max: Duration,
    gzip_p50: Duration,
    gzip_max: Duration,
    full_render_max: Duration,
    resident_mib: f64,
    peak_mib: f64,
    cpu_ms_per_cycle: f64,
    probe_p50: f64,
    probe_max: f64,
    slowest_step: f64,
    cycles: f64,
    late: usize,
    failures: usize,
    storm_scrapes: usize,
    /// `/-/healthy` while four clients scraped: p99, the highest, and how many were asked.
    healthy_p99: Duration,
    healthy_max: Duration,
    healthy_requests: usize,
}

impl Row {
    fn print(&self, lone_probe_p50: f64) {
        let watch = match self.watch {
            Watch::None => "",
            Watch::SaltKept => ", each watching two components",
            Watch::FreshSalt => {
                ", each watching two components through a client port with a new salt at every login"
            }
            Watch::Hostile => {
                ", each watching two components through a client port asking 2,000,000,000 SCRAM rounds"
            }
        };
        println!(
            "{} target(s), two SRV servers each{watch}, every {:?}:",
            self.targets, INTERVAL
        );
        println!(
            "  /metrics: {:.1} series and {:.0} bytes per target, {:.0} bytes gzipped",
            self.series_per_target, self.bytes_per_target, self.gzip_bytes_per_target
        );
        println!(
            "  a scrape every second: p50 {:.2} ms, p99 {:.2} ms (the highest of {RENDERS}); gzip p50 {:.2} ms, p99 {:.2} ms",
            ms(self.render_p50),
            ms(self.render_max),
            ms(self.gzip_p50),
            ms(self.gzip_max),
        );
        println!(
            "  a scrape after a quiet interval (every target new): {:.2} ms (the highest of {FULL_RENDERS})",
            ms(self.full_render_max)
        );
        println!(
            "  resident memory {:.1} MiB, peak {:.1} MiB; CPU {:.2} ms per target cycle (two TLS servers, renders included)",
            self.resident_mib, self.peak_mib, self.cpu_ms_per_cycle
        );
        println!(
            "  probe cycle p50 {:.2} ms ({:.2}x a lone target's), max {:.1} ms; slowest step {:.1} ms",
            self.probe_p50 * 1000.0,
            self.probe_p50 / lone_probe_p50,
            self.probe_max * 1000.0,
            self.slowest_step * 1000.0
        );
        println!(
            "  {:.0} cycles, {} target(s) with a late or missing cycle, {} failed, while four clients scraped {} times",
            self.cycles, self.late, self.failures, self.storm_scrapes
        );
        println!(
            "  /-/healthy meanwhile: p99 {:.2} ms, max {:.2} ms ({} requests)",
            ms(self.healthy_p99),
            ms(self.healthy_max),
            self.healthy_requests
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A running exporter with its peers: the DNS server and the component servers (and the
/// client port of a watch) live as long as this.
struct Fleet {
    _lab: Lab,
    _peers: (ComponentServer, ComponentServer, C2sServer),
    binary: Binary,
}

/// `targets` targets that find two TLS component servers through SRV, probed every
/// `interval`, each watching two components through a client port of the `watch` kind (or
/// not).
async fn start_fleet(targets: usize, watch: Watch, interval: &str) -> Fleet {
    let lab = Lab::new(base_zone()).await;
    // Each target its own component name, so that they may run at once.
    let names: Vec<String> = (0..targets)
        .map(|i| format!("probe-{i}.example.test"))
        .collect();
    let peer = || {
        ComponentServer::start(ComponentServerConfig {
            tls: Some(lab.good_leaf().server_config()),
            components: names
                .iter()
                .map(|n| (n.clone(), SECRET.to_owned()))
                .collect(),
            behaviour: Behaviour::Normal,
            tls_delay: None,
        })
    };
    let (one, two) = (peer().await, peer().await);
    lab.publish_srv(&one, &two);
    let components = ["cb1.example.test", "cb2.example.test"];
    let client_port = C2sServer::start(C2sConfig {
        encryption: Encryption::Starttls(lab.good_leaf().server_config()),
        domain: DOMAIN.to_owned(),
        user: ("monitor".to_owned(), PASSWORD.to_owned()),
        components: components.map(|c| (c.to_owned(), Answer::Result)).into(),
        fault: match watch {
            Watch::FreshSalt => Fault::FreshSalt,
            Watch::Hostile => Fault::Iterations(2_000_000_000),
            Watch::None | Watch::SaltKept => Fault::None,
        },
    })
    .await;
    let address = server(XMPP1, client_port.addr().port());
    let watch_block = match watch {
        Watch::None => String::new(),
        Watch::SaltKept | Watch::FreshSalt => {
            lab.watch(&address, "starttls", "password", &components)
        }
        Watch::Hostile => {
            lab.watch(&address, "starttls", "password", &components)
                + "      max_scram_iterations: 4000000000\n"
        }
    };
    let config: Vec<String> = (0..targets)
        .map(|i| {
            lab.timed_target(&format!("cms-{i:04}"), "", interval, "5s", "")
                .replace(
                    &format!("component: {COMPONENT}"),
                    &format!("component: {}", names[i]),
                )
                + &watch_block
        })
        .collect();
    std::fs::write(lab.path("config.yaml"), lab.config(&config)).unwrap();
    let binary = Binary::spawn(&binary(), &lab.path("config.yaml"), &[]).await;
    // The first probes of a fleet are spread over up to 20 s.
    let started = Instant::now();
    loop {
        let scrape = binary.exporter.scrape().await;
        if scrape.find(&LAST_PROBE, &[]).len() == targets {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every target was probed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Fleet {
        _lab: lab,
        _peers: (one, two, client_port),
        binary,
    }
}

async fn measure(targets: usize, watch: Watch) -> Row {
    let fleet = start_fleet(targets, watch, "15s").await;
    let binary = &fleet.binary;
    let pid = binary.child.id().expect("running");
    let exporter = &binary.exporter;
    let first = exporter.scrape().await;
    let window = Instant::now();
    let (cpu_before, cycles_before) = (cpu_seconds(pid), cycles(&first));

    let (mut renders, mut gzip_renders) = (Vec::with_capacity(RENDERS), Vec::new());
    for _ in 0..RENDERS {
        tokio::time::sleep(Duration::from_millis(1050)).await;
        // Plain text, then gzip as Prometheus asks (made from the same snapshot).
        for (headers, times) in [("", &mut renders), (GZIP, &mut gzip_renders)] {
            let start = Instant::now();
            let response = http_exchange(exporter.addr, "GET", "/metrics", headers).await;
            times.push(start.elapsed());
            assert_eq!(response.status, 200);
        }
    }
    renders.sort();
    gzip_renders.sort();
    // The cost of probing, measured while only the timed renders above were scraping.
    let cpu = cpu_seconds(pid) - cpu_before;
    let quiet_cycles = cycles(&exporter.scrape().await) - cycles_before;

    let stop = Arc::new(AtomicBool::new(false));
    let storm_scrapes = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, count, addr) = (stop.clone(), storm_scrapes.clone(), exporter.addr);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let response = http_exchange(addr, "GET", "/metrics", GZIP).await;
                    assert_eq!(response.status, 200);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut healthy = Vec::new();
    let storm = Instant::now();
    while storm.elapsed() < SCRAPE_STORM {
        let start = Instant::now();
        let response = http_exchange(exporter.addr, "GET", "/-/healthy", "").await;
        healthy.push(start.elapsed());
        assert_eq!(response.status, 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    healthy.sort();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    // Every target has a new report after a quiet interval: every target's text is rewritten.
    let mut full_renders = Vec::with_capacity(FULL_RENDERS);
    for _ in 0..FULL_RENDERS {
        tokio::time::sleep(INTERVAL + Duration::from_secs(1)).await;
        let start = Instant::now();
        let response = http_exchange(exporter.addr, "GET", "/metrics", "").await;
        full_renders.push(start.elapsed());
        assert_eq!(response.status, 200);
    }

    let plain = http_exchange(exporter.addr, "GET", "/metrics", "").await;
    let gzipped = http_exchange(exporter.addr, "GET", "/metrics", GZIP).await;
    let text = String::from_utf8(plain.body).unwrap();
    let scrape = Scrape::parse(&text);
    let cycles_done = cycles(&scrape) - cycles_before;
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("target=\""))
        .collect();
    let mut probes: Vec<f64> = scrape
        .find(&PROBE_DURATION, &[])
        .iter()
        .map(|s| s.value)
        .collect();
    probes.sort_by(f64::total_cmp);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // On time: as many cycles in the window as it holds whole intervals, and a recent last one.
    let due = (window.elapsed().as_secs_f64() / INTERVAL.as_secs_f64()).floor();
    let ran = |scrape: &Scrape, target: &str| scrape.value(&PROBES_TOTAL, &[("target", target)]);
    let late = (0..targets)
        .map(|i| format!("cms-{i:04}"))
        .filter(|t| {
            let cycles = ran(&scrape, t).unwrap_or(0.0) - ran(&first, t).unwrap_or(0.0);
            let last = scrape.value(&LAST_PROBE, &[("target", t)]).unwrap_or(0.0);
            cycles < due || now - last > INTERVAL.as_secs_f64() * 1.5
        })
        .count();
    let (resident_mib, peak_mib) = memory_mib(pid);
    let row = Row {
        targets,
        watch,
        series_per_target: ours.len() as f64 / targets as f64,
        bytes_per_target: ours.iter().map(|l| l.len() + 1).sum::<usize>() as f64 / targets as f64,
        gzip_bytes_per_target: gzipped.body.len() as f64 / targets as f64,
        render_p50: renders[RENDERS / 2],
        render_max: renders[RENDERS - 1],
        gzip_p50: gzip_renders[RENDERS / 2],
        gzip_max: gzip_renders[RENDERS - 1],
        full_render_max: full_renders.into_iter().max().expect("renders"),
        resident_mib,
        peak_mib,
        cpu_ms_per_cycle: cpu * 1000.0 / quiet_cycles,
        probe_p50: probes[probes.len() / 2],
        probe_max: probes[probes.len() - 1],
        slowest_step: scrape
            .find(&STEP_LAST_DURATION, &[])
            .iter()
            .map(|s| s.value)
            .fold(0.0, f64::max),
        cycles: cycles_done,
        late,
        // Failed steps of either flow, and watched components that did not answer.
        failures: [&FAILURES_TOTAL, &WATCH_FAILURES_TOTAL]
            .iter()
            .flat_map(|metric| scrape.find(metric, &[]))
            .map(|s| s.value as usize)
            .sum::<usize>()
            + scrape
                .find(&COMPONENT_REGISTERED, &[])
                .iter()
                .filter(|s| s.value != 1.0)
                .count(),
        storm_scrapes: storm_scrapes.load(Ordering::Relaxed),
        healthy_p99: healthy[healthy.len() * 99 / 100],
        healthy_max: healthy[healthy.len() - 1],
        healthy_requests: healthy.len(),
    };
    drop(fleet);
    row
}

/// SCRAM-SHA-256 counts whose derivation the `scram` mode times: ejabberd's and the RFC's
/// minimum, Prosody 0.12's default, OWASP's advice for PBKDF2-SHA256, the default limit.
const SCRAM_COUNTS: [u32; 4] = [4_096, 10_000, 600_000, 1_000_000];

/// The `sasl` step of one login whose server asks for each count, in an exporter of its own:
/// the step is the key derivation plus a few round trips on loopback (the count alone
/// differs). The server holds no key for that count, so the login then fails: the time is
/// what counts.
async fn measure_scram() {
    println!("one SCRAM-SHA-256 login (the sasl step), by the server's iteration count:");
    for count in SCRAM_COUNTS {
        let lab = Lab::new(base_zone()).await;
        let client_port = C2sServer::start(C2sConfig {
            encryption: Encryption::Starttls(lab.good_leaf().server_config()),
            domain: DOMAIN.to_owned(),
            user: ("monitor".to_owned(), PASSWORD.to_owned()),
            components: vec![("cb1.example.test".to_owned(), Answer::Result)],
            fault: Fault::Iterations(count),
        })
        .await;
        let address = server(XMPP1, client_port.addr().port());
        let target = lab.timed_target("t", &server(XMPP1, closed_port().await), "60s", "30s", "")
            + &lab.watch(&address, "starttls", "password", &["cb1.example.test"])
            + "      max_scram_iterations: 4000000000\n";
        std::fs::write(lab.path("config.yaml"), lab.config(&[target])).unwrap();
        let binary = Binary::spawn(&binary(), &lab.path("config.yaml"), &[]).await;
        let ids = [("target", "t"), ("step", "sasl")];
        let scrape = binary
            .exporter
            .wait("the login's sasl step", |s| {
                s.value(&WATCH_STEP_LAST_DURATION, &ids).is_some()
            })
            .await;
        let seconds = scrape.value(&WATCH_STEP_LAST_DURATION, &ids).unwrap();
        println!(
            "  {count:>9} rounds: {:.1} ms ({:.3} ms per 1,000)",
            seconds * 1000.0,
            seconds * 1e6 / f64::from(count)
        );
        drop(binary);
    }
}

/// Targets of the fleet row, each named only by the requests (`/probe?module=cms&target=…`).
const FLEET_SIZE: usize = 1000;
/// Rounds of the fleet row: one to warm up, then the measured ones.
const FLEET_ROUNDS: u32 = 3;

struct FleetRow {
    targets: usize,
    requests: usize,
    latency_p50: Duration,
    latency_p99: Duration,
    latency_max: Duration,
    failed: usize,
    cpu_ms_per_probe: f64,
    cpu_share: f64,
    resident_mib: f64,
    peak_mib: f64,
}

impl FleetRow {
    fn print(&self) {
        println!(
            "{} targets named by Prometheus-like requests (/probe?module=cms&target=DOMAIN), each every {:?}, two SRV servers each:",
            self.targets, INTERVAL
        );
        println!(
            "  {} measured requests: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} failed",
            self.requests,
            ms(self.latency_p50),
            ms(self.latency_p99),
            ms(self.latency_max),
            self.failed
        );
        println!(
            "  CPU {:.2} ms per probe ({:.1}% of one core); resident memory {:.1} MiB, peak {:.1} MiB",
            self.cpu_ms_per_probe,
            self.cpu_share * 100.0,
            self.resident_mib,
            self.peak_mib
        );
    }
}

/// One exporter with a module and no targets; a scheduler plays Prometheus: each of `targets`
/// domains scraped through `/probe` every interval, the scrapes spread evenly over it, with
/// Prometheus' scrape-timeout header.
async fn measure_fleet(targets: usize) -> FleetRow {
    let lab = Lab::new(base_zone()).await;
    let domains: Vec<String> = (0..targets)
        .map(|i| format!("d{i:04}.example.test"))
        .collect();
    let leaf = lab.pki.leaf(
        &[DOMAIN, XMPP1, XMPP2, "*.example.test"],
        support::pki::Validity::Good,
    );
    let peer = || {
        ComponentServer::start(ComponentServerConfig {
            tls: Some(leaf.server_config()),
            components: domains
                .iter()
                .map(|d| (format!("probe.{d}"), SECRET.to_owned()))
                .collect(),
            behaviour: Behaviour::Normal,
            tls_delay: None,
        })
    };
    let (one, two) = (peer().await, peer().await);
    let zone = domains.iter().fold(base_zone(), |zone, domain| {
        let name = format!("_xmpp-component._tcp.{domain}");
        zone.srv(&name, 10, 60, one.addr().port(), XMPP1).srv(
            &name,
            20,
            40,
            two.addr().port(),
            XMPP2,
        )
    });
    lab.dns.set_zone(zone);
    let config = format!(
        "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{dns}\"]\nmodules:\n  cms:\n    component: \"probe.{{domain}}\"\n    secret_file: {secret}\n    timeout: 10s\n    tls:\n      ca_file: {ca}\n",
        dns = lab.dns.addr(),
        secret = lab.path("secret").display(),
        ca = lab.path("ca.pem").display(),
    );
    std::fs::write(lab.path("config.yaml"), config).unwrap();
    let binary = Binary::spawn(&binary(), &lab.path("config.yaml"), &[]).await;
    let pid = binary.child.id().expect("running");
    let addr = binary.exporter.addr;

    let start = tokio::time::Instant::now();
    let spacing = INTERVAL / targets as u32;
    let mut measured = tokio::task::JoinSet::new();
    let mut warm_up = tokio::task::JoinSet::new();
    let mut cpu_before = None;
    for round in 0..FLEET_ROUNDS {
        if round == 1 {
            cpu_before = Some((cpu_seconds(pid), Instant::now()));
        }
        for (i, domain) in domains.iter().enumerate() {
            tokio::time::sleep_until(start + INTERVAL * round + spacing * i as u32).await;
            let path = format!("/probe?module=cms&target={domain}");
            let expected = format!("cms_xmpp_probe_success{{target=\"{domain}\"}} 1");
            let request = async move {
                let sent = Instant::now();
                let response = http_exchange(
                    addr,
                    "GET",
                    &path,
                    "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n",
                )
                .await;
                let ok = response.status == 200
                    && String::from_utf8_lossy(&response.body).contains(&expected);
                (sent.elapsed(), ok)
            };
            if round == 0 {
                warm_up.spawn(request);
            } else {
                measured.spawn(request);
            }
        }
    }
    let answers = measured.join_all().await;
    let (cpu_start, window_start) = cpu_before.expect("measured rounds");
    let cpu = cpu_seconds(pid) - cpu_start;
    let window = window_start.elapsed().as_secs_f64();
    warm_up.join_all().await;
    let (resident_mib, peak_mib) = memory_mib(pid);
    let mut latencies: Vec<Duration> = answers.iter().map(|(latency, _)| *latency).collect();
    latencies.sort();
    let n = latencies.len();
    drop(binary);
    FleetRow {
        targets,
        requests: n,
        latency_p50: latencies[n / 2],
        latency_p99: latencies[n * 99 / 100],
        latency_max: latencies[n - 1],
        failed: answers.iter().filter(|(_, ok)| !ok).count(),
        cpu_ms_per_probe: cpu * 1000.0 / n as f64,
        cpu_share: cpu / window,
        resident_mib,
        peak_mib,
    }
}

fn cycles(scrape: &Scrape) -> f64 {
    scrape
        .find(&PROBES_TOTAL, &[])
        .iter()
        .map(|s| s.value)
        .sum()
}

/// Failed server probes counted so far, every target's.
fn failed_probes(scrape: &Scrape) -> f64 {
    scrape
        .find(&FAILURES_TOTAL, &[])
        .iter()
        .map(|s| s.value)
        .sum()
}

/// CPU seconds (user + system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11..13]
        .iter()
        .map(|v| v.parse::<f64>().unwrap())
        .sum();
    ticks / 100.0
}

/// Resident memory now and at its peak (VmRSS, VmHWM), from /proc.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |name: &str| -> f64 {
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a memory field");
        kib / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}
