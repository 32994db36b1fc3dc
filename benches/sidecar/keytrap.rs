//! What a KeyTrap-shaped zone (CVE-2023-50387) costs beside a healthy signed one: three
//! exporters at the same time, each validating its targets' answers against the same `named`
//! (tests/support/keytrap.rs) — one whose targets are in a healthy island of trust, one in
//! the KeyTrap-shaped island (refused when its keys are read), one in the KeyTrap-shaped zone
//! the healthy island delegates to with a DS (what hickory's limits bound). CPU per target
//! cycle of each over the same windows after a warm-up, the longest run seen (every target's
//! `timeout` is 2 s), and how long `/metrics` took meanwhile.

use std::time::{Duration, Instant};

use super::support::exporter::*;
use super::support::keytrap::{KeyTrap, PARENT, TRAP, TRAP_CHILD};
use super::{binary, cpu_seconds, cycles};

/// Targets of each exporter, each probed every 2 s.
const TARGETS: usize = 10;
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);
/// Four windows: a zone refused as KeyTrap-shaped is validated again after 60 s, within them.
const WINDOWS: usize = 4;
const SIDES: [(&str, &str); 3] = [
    ("healthy island", PARENT),
    ("KeyTrap island", TRAP),
    ("KeyTrap behind a DS", TRAP_CHILD),
];

pub struct Row {
    /// Per side: CPU milliseconds per target cycle in each window, the longest run and the
    /// slowest scrape seen.
    sides: Vec<(Vec<f64>, f64, Duration)>,
}

impl Row {
    pub fn print(&self) {
        println!(
            "KeyTrap: {TARGETS} targets per exporter, one cycle every 2 s, timeout 2 s, {WINDOWS} windows of {WINDOW:?}:"
        );
        for ((name, _), (windows, longest, scrape)) in SIDES.iter().zip(&self.sides) {
            let mut sorted = windows.clone();
            sorted.sort_by(f64::total_cmp);
            let each: Vec<String> = windows.iter().map(|w| format!("{w:.2}")).collect();
            println!(
                "  {name}: CPU per target cycle {:.3} ms (median; windows {} ms), longest run {:.1} ms, slowest /metrics {:.1} ms",
                sorted[sorted.len() / 2],
                each.join(", "),
                longest * 1000.0,
                scrape.as_secs_f64() * 1000.0
            );
        }
    }
}

pub async fn measure() -> Row {
    let lab = Lab::new(base_zone()).await;
    let keytrap = KeyTrap::start(&lab.path("keytrap")).await;
    std::fs::write(lab.path("anchors"), &keytrap.anchors).unwrap();
    let config = |side: usize, domain: &str| {
        let targets: String = (0..TARGETS)
            .map(|i| {
                format!(
                    "  - name: cms-{i:02}\n    domain: {domain}\n    component: probe-{i}.{domain}\n    secret: s3cret-value\n    interval: 2s\n    timeout: 2s\n"
                )
            })
            .collect();
        let path = lab.path(&format!("side-{side}.yaml"));
        std::fs::write(
            &path,
            format!(
                "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{}\"]\n  dnssec:\n    validate: true\n    trust_anchors_file: {}\ntargets:\n{targets}",
                keytrap.addr,
                lab.path("anchors").display()
            ),
        )
        .unwrap();
        path
    };
    let mut exporters = Vec::new();
    for (side, (_, domain)) in SIDES.iter().enumerate() {
        exporters.push(Binary::spawn(&binary(), &config(side, domain), &[]).await);
    }
    let pids: Vec<u32> = exporters
        .iter()
        .map(|b| b.child.id().expect("running"))
        .collect();
    tokio::time::sleep(WARM_UP).await;
    let start = tokio::time::Instant::now();
    let mut samples = vec![Vec::new(); SIDES.len()];
    let mut longest = vec![0.0f64; SIDES.len()];
    let mut slowest = vec![Duration::ZERO; SIDES.len()];
    let mut next_window = 0;
    while next_window <= WINDOWS {
        for (side, binary) in exporters.iter().enumerate() {
            let asked = Instant::now();
            let scrape = binary.exporter.scrape().await;
            slowest[side] = slowest[side].max(asked.elapsed());
            for run in scrape.find(&PROBE_DURATION, &[]) {
                longest[side] = longest[side].max(run.value);
            }
            if start.elapsed() >= WINDOW * next_window as u32 {
                samples[side].push((cpu_seconds(pids[side]), cycles(&scrape)));
            }
        }
        if start.elapsed() >= WINDOW * next_window as u32 {
            next_window += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let per_cycle = |side: &[(f64, f64)]| -> Vec<f64> {
        side.windows(2)
            .map(|w| (w[1].0 - w[0].0) * 1000.0 / (w[1].1 - w[0].1))
            .collect()
    };
    Row {
        sides: (0..SIDES.len())
            .map(|side| (per_cycle(&samples[side]), longest[side], slowest[side]))
            .collect(),
    }
}
