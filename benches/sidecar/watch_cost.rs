//! What a watch costs over a minute: 100 targets, each watching two components through a
//! client port that keeps its salt, at the default interval (30 s). The exporter keeps one
//! session per watch and pings every 2 s; run it against a build from before the sessions were
//! kept (`CMS_XMPP_EXPORTER_BINARY=…`), which logged in once per interval, to compare.

use std::time::{Duration, Instant};

use super::*;

/// How long the cost is measured, once every watch has logged in.
const WINDOW: Duration = Duration::from_secs(60);

pub struct WatchCost {
    watch: bool,
    targets: usize,
    cpu: f64,
    logins: usize,
    pings: usize,
    resident: (f64, f64),
}

impl WatchCost {
    pub fn print(&self) {
        let watching = if self.watch {
            "each watching two components"
        } else {
            "no watch"
        };
        println!(
            "{} targets, {watching}, every 30 s: {:.2} s of CPU per minute ({:.1} % of a \
             core), {} logins and {} pings in the minute, resident {:.1} MiB (peak {:.1})",
            self.targets,
            self.cpu,
            self.cpu / WINDOW.as_secs_f64() * 100.0,
            self.logins,
            self.pings,
            self.resident.0,
            self.resident.1
        );
    }
}

/// The same fleet without a watch, then with one: what the watch adds is the difference.
pub async fn measure() -> (WatchCost, WatchCost) {
    (
        over_a_minute(Watch::None).await,
        over_a_minute(Watch::SaltKept).await,
    )
}

async fn over_a_minute(watch: Watch) -> WatchCost {
    let fleet = start_fleet(WATCH_SIZE, watch, "30s").await;
    let exporter = &fleet.binary.exporter;
    let pid = fleet.binary.child.id().expect("running");
    let started = Instant::now();
    loop {
        let scrape = exporter.scrape().await;
        let logged_in = scrape.find(&WATCH_SUCCESS, &[]);
        let expected = if watch == Watch::None { 0 } else { WATCH_SIZE };
        if logged_in.len() == expected && logged_in.iter().all(|s| s.value == 1.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not every watch logged in"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let client_port = &fleet._peers.2;
    let before = client_port.stats();
    let cpu_before = cpu_seconds(pid);
    tokio::time::sleep(WINDOW).await;
    let cpu = cpu_seconds(pid) - cpu_before;
    let after = client_port.stats();
    WatchCost {
        watch: watch != Watch::None,
        targets: WATCH_SIZE,
        cpu,
        logins: after.binds - before.binds,
        pings: after.pings.len() - before.pings.len(),
        resident: memory_mib(pid),
    }
}
