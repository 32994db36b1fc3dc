//! Resident memory over ten minutes at 1,000 targets: where the steady state settles, not the
//! first minute's figure. Each target finds two TLS component servers through SRV and is
//! probed every 15 s; a gzip scrape every 15 s, as Prometheus makes.

use std::time::{Duration, Instant};

use super::support::exporter::*;
use super::{failed_probes, memory_mib, start_fleet, Watch, GZIP, INTERVAL};

pub const TARGETS: usize = 1000;
/// Ten minutes; `CMS_XMPP_BENCH_MINUTES` shortens it for a quick comparison.
fn length() -> Duration {
    let minutes = std::env::var("CMS_XMPP_BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(60 * minutes)
}
const SAMPLE_EVERY: Duration = Duration::from_secs(60);

pub struct Row {
    /// (minutes since the first scrape, resident MiB, peak MiB)
    samples: Vec<(f64, f64, f64)>,
    failures: u64,
}

impl Row {
    pub fn print(&self) {
        println!(
            "{TARGETS} targets, two SRV servers each, every {INTERVAL:?}, scraped as often (gzip), for {:?}:",
            length()
        );
        for (minutes, resident, peak) in &self.samples {
            println!("  after {minutes:>4.1} min: resident {resident:.1} MiB (peak {peak:.1})");
        }
        println!("  failed steps meanwhile: {}", self.failures);
    }
}

pub async fn measure() -> Row {
    let fleet = start_fleet(TARGETS, Watch::None, "15s").await;
    let binary = &fleet.binary;
    let pid = binary.child.id().expect("running");
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = start;
    while start.elapsed() <= length() {
        let response = http_exchange(binary.exporter.addr, "GET", "/metrics", GZIP).await;
        assert_eq!(response.status, 200);
        if Instant::now() >= next_sample {
            let (resident, peak) = memory_mib(pid);
            samples.push((start.elapsed().as_secs_f64() / 60.0, resident, peak));
            next_sample += SAMPLE_EVERY;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    let (resident, peak) = memory_mib(pid);
    samples.push((start.elapsed().as_secs_f64() / 60.0, resident, peak));
    let failures = failed_probes(&binary.exporter.scrape().await) as u64;
    Row { samples, failures }
}
