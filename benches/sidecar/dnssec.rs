//! What DNSSEC validation costs: two exporters at the same time against the same zone, which
//! BIND signs (`named`, as in the DNSSEC tests) with a TLSA record per server, and the same two
//! component servers; one validates every answer (`dns.dnssec`, DANE included), the other
//! does not. CPU per target cycle of each
//! over the same windows, after a warm-up, and the series of one validating target.

use std::time::Duration;

use super::support::bind::{Bind, ZoneData, Zones, SIGNED};
use super::support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use super::support::exporter::*;
use super::support::pki::Validity;
use super::{binary, cpu_seconds, cycles, failed_probes};

/// Targets of each exporter, each probed every second: two SRV servers each.
const TARGETS: usize = 20;
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);
const WINDOWS: usize = 3;

pub struct Row {
    /// CPU milliseconds per target cycle in each window: (validating, not validating).
    windows: Vec<(f64, f64)>,
    series_per_target: usize,
}

impl Row {
    pub fn print(&self) {
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        println!(
            "DNSSEC: {TARGETS} targets each way, two servers each, one cycle a second, {WINDOWS} windows of {WINDOW:?}:"
        );
        println!(
            "  CPU per target cycle: validating {:.3} ms, not validating {:.3} ms (medians); {} series per validating target",
            median(self.windows.iter().map(|w| w.0).collect()),
            median(self.windows.iter().map(|w| w.1).collect()),
            self.series_per_target
        );
    }
}

fn component(side: &str, i: usize) -> String {
    format!("probe-{side}-{i}.{SIGNED}")
}

pub async fn measure() -> Row {
    let lab = Lab::new(base_zone()).await;
    let (xmpp1, xmpp2) = (format!("xmpp1.{SIGNED}"), format!("xmpp2.{SIGNED}"));
    let leaf = lab.pki.leaf(&[SIGNED, &xmpp1, &xmpp2], Validity::Good);
    let components: Vec<(String, String)> = ["on", "off"]
        .iter()
        .flat_map(|side| (0..TARGETS).map(move |i| (component(side, i), SECRET.to_owned())))
        .collect();
    let server = || {
        ComponentServer::start(ComponentServerConfig {
            tls: Some(leaf.server_config()),
            components: components.clone(),
            behaviour: Behaviour::Normal,
            tls_delay: None,
        })
    };
    let (one, two) = (server().await, server().await);
    let (p1, p2) = (one.addr().port(), two.addr().port());
    let mut signed = ZoneData::servers(&[("xmpp1", p1), ("xmpp2", p2)]);
    // DANE too: a `3 1 1` record of the leaf's key for each server.
    let leaf_der = &leaf.cert_chain()[0];
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf_der).expect("the leaf");
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        parsed.tbs_certificate.subject_pki.raw,
    );
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    signed.extra =
        format!("_{p1}._tcp.xmpp1 IN TLSA 3 1 1 {hex}\n_{p2}._tcp.xmpp2 IN TLSA 3 1 1 {hex}\n");
    let zones = Zones::signed(signed);
    let bind = Bind::start(&lab.path("bind"), &zones).await;

    let config = |side: &str, validate: bool| {
        let targets: String = (0..TARGETS)
            .map(|i| {
                format!(
                    "  - name: cms-{i:02}\n    domain: {SIGNED}\n    component: {}\n    secret_file: {}\n    interval: 1s\n    timeout: 1s\n    tls:\n      ca_file: {}\n",
                    component(side, i),
                    lab.path("secret").display(),
                    lab.path("ca.pem").display()
                )
            })
            .collect();
        let path = lab.path(&format!("{side}.yaml"));
        std::fs::write(
            &path,
            format!(
                "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{}\"]\n  dnssec:\n    validate: {validate}\n    trust_anchors_file: {}\ntargets:\n{targets}",
                bind.addr,
                bind.trust_anchors.display()
            ),
        )
        .unwrap();
        path
    };
    let validating = Binary::spawn(&binary(), &config("on", true), &[]).await;
    let plain = Binary::spawn(&binary(), &config("off", false), &[]).await;
    let pids = [&validating, &plain].map(|b| b.child.id().expect("running"));
    tokio::time::sleep(WARM_UP).await;
    let start = tokio::time::Instant::now();
    let mut samples = Vec::with_capacity(WINDOWS + 1);
    for window in 0..=WINDOWS {
        tokio::time::sleep_until(start + WINDOW * window as u32).await;
        let mut sample = [(0.0, 0.0); 2];
        for (i, binary) in [&validating, &plain].into_iter().enumerate() {
            let scrape = binary.exporter.scrape().await;
            sample[i] = (cpu_seconds(pids[i]), cycles(&scrape));
        }
        samples.push(sample);
    }
    let scrape = validating.exporter.scrape().await;
    for binary in [&validating, &plain] {
        let scrape = binary.exporter.scrape().await;
        let failed = failed_probes(&scrape);
        assert_eq!(failed, 0.0, "probes failed: {}", scrape.relevant());
    }
    let secure = scrape.find(&DNSSEC, &[("target", "cms-00"), ("state", "secure")]);
    assert_eq!(
        secure.len(),
        3,
        "every answer secure: {}",
        scrape.relevant()
    );
    let valid = scrape.find(&DANE_VALID, &[("target", "cms-00")]);
    assert!(
        valid.len() == 2 && valid.iter().all(|s| s.value == 1.0),
        "DANE valid on both servers: {}",
        scrape.relevant()
    );
    let series_per_target = scrape
        .relevant()
        .lines()
        .filter(|line| line.contains("target=\"cms-00\""))
        .count();
    let per_cycle = |i: usize, side: usize| {
        let ((cpu0, n0), (cpu1, n1)) = (samples[i][side], samples[i + 1][side]);
        (cpu1 - cpu0) * 1000.0 / (n1 - n0)
    };
    Row {
        windows: (0..WINDOWS)
            .map(|i| (per_cycle(i, 0), per_cycle(i, 1)))
            .collect(),
        series_per_target,
    }
}
