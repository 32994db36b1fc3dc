//! What the exporter costs as a sidecar, measured rather than guessed:
//! - CPU time and resident memory per probe, probing in-process TLS component servers;
//! - time to render /metrics and its size, for many targets.
//!
//!     cargo bench --bench sidecar
//!
//! Numbers vary with the machine; compare runs on the same one.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use support::exporter::{base_zone, server, Lab, COMPONENT, SECRET, SRV_NAME, XMPP1, XMPP2};

const TARGETS: usize = 20;
const CYCLES: f64 = 10.0;
const RENDERS: u32 = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(measure());
}

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn measure() {
    let lab = Lab::new(base_zone()).await;
    // Each target its own component name, so that they may run at once.
    let names: Vec<String> = (0..TARGETS)
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
    lab.dns.set_zone(
        base_zone()
            .srv(SRV_NAME, 10, 50, one.addr().port(), XMPP1)
            .srv(SRV_NAME, 20, 50, two.addr().port(), XMPP2),
    );
    // Half the targets discover two servers over SRV, half probe one static server.
    let targets: Vec<String> = (0..TARGETS)
        .map(|i| {
            let address = if i % 2 == 0 {
                String::new()
            } else {
                server(XMPP1, one.addr().port())
            };
            lab.timed_target(&format!("t{i}"), &address, "500ms", "500ms", "")
                .replace(
                    &format!("component: {COMPONENT}"),
                    &format!("component: {}", names[i]),
                )
        })
        .collect();
    let rss_before = resident_mib();
    let exporter = lab.exporter(&targets).await;
    let cpu_start = cpu_seconds();
    let wall = Instant::now();
    for i in 0..TARGETS {
        exporter.cycles(&format!("t{i}"), CYCLES).await;
    }
    let scrape = exporter.scrape().await;
    let probes: f64 = (0..TARGETS)
        .filter_map(|i| scrape.value("cms_xmpp_probes_total", &[("target", &format!("t{i}"))]))
        .sum();
    let server_probes = probes * 1.5;
    let cpu = cpu_seconds() - cpu_start;
    println!(
        "probing: {TARGETS} targets, {probes} cycles ({server_probes} server probes) in {:.1}s",
        wall.elapsed().as_secs_f64()
    );
    println!(
        "  CPU {:.2}s in all (exporter and test peers), {:.2} ms per server probe (an upper bound)",
        cpu,
        cpu * 1000.0 / server_probes
    );
    println!(
        "  resident memory {:.1} MiB (exporter and peers; {:.1} MiB before start)",
        resident_mib(),
        rss_before
    );

    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..RENDERS {
        bytes = support::exporter::http_get(exporter.addr, "/metrics")
            .await
            .len();
    }
    let per_scrape = start.elapsed() / RENDERS;
    println!(
        "/metrics: {} series for {TARGETS} targets, {:.1} KiB, {:?} per scrape over HTTP",
        scrape.samples.len(),
        bytes as f64 / 1024.0,
        per_scrape
    );
    exporter.stop().await;
}
