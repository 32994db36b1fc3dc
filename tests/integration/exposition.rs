//! What `/metrics` costs and how it is served: the series budget of a healthy target, gzip,
//! and the opt-in step histograms.

use crate::support::component::ComponentServer;
use crate::support::exporter::*;

/// Two TLS servers behind SRV, and an exporter probing them as target `cms-london`.
async fn two_servers(lab: &Lab, settings: &str) -> (ComponentServer, ComponentServer, Exporter) {
    let (one, two) = lab.two_srv_servers().await;
    let config = format!(
        "{settings}{}",
        lab.config(&[lab.target("cms-london", "", "")])
    );
    let exporter = Exporter::start(&config).await;
    exporter
        .wait("both servers up, with their certificates", |s| {
            s.find(&SERVER_UP, &[("target", "cms-london")])
                .iter()
                .filter(|up| up.value == 1.0)
                .count()
                == 2
                && s.find(&CERT_INFO, &[]).len() == 2
        })
        .await;
    (one, two, exporter)
}

#[tokio::test]
async fn a_healthy_two_server_target_fits_the_series_budget() {
    let lab = Lab::new(base_zone()).await;
    let (_one, _two, exporter) = two_servers(&lab, "").await;
    let scrape = exporter.scrape().await;
    let ours: Vec<&str> = scrape
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("target=\"cms-london\""))
        .collect();
    let bytes: usize = ours.iter().map(|l| l.len() + 1).sum();
    // 40 series (issue 9's budget) in 4.5 KiB.
    assert!(
        ours.len() <= 40 && bytes <= 4608,
        "{} series, {bytes} bytes:\n{}",
        ours.len(),
        ours.join("\n")
    );
    // The budget keeps what alerts and dashboards need.
    for metric in [
        &PROBE_SUCCESS,
        &SERVER_UP,
        &STEP_LAST_DURATION,
        &SERVER_INFO,
        &CERT_NOT_AFTER,
        &CERT_CHAIN_NOT_AFTER,
        &CERT_TRUSTED,
        &CERT_SAN_COVERED,
        &CERT_INFO,
        &TLS_INFO,
        &LAST_SUCCESS,
    ] {
        assert!(
            !scrape.find(metric, &[]).is_empty(),
            "{} missing",
            metric.name
        );
    }
    assert!(
        scrape
            .find_named(&format!("{}_count", STEP_DURATION.name), &[])
            .is_empty(),
        "histograms are opt-in"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn metrics_are_gzipped_for_a_client_that_asks() {
    let lab = Lab::new(base_zone()).await;
    let (_one, _two, exporter) = two_servers(&lab, "").await;
    let gzipped = http_exchange(
        exporter.addr,
        "GET",
        "/metrics",
        "Accept-Encoding: gzip\r\n",
    )
    .await;
    assert_eq!(gzipped.status, 200);
    assert!(
        gzipped.head.contains("content-encoding: gzip"),
        "{}",
        gzipped.head
    );
    assert!(
        gzipped.head.contains("vary: accept-encoding"),
        "{}",
        gzipped.head
    );
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(gzipped.body.as_slice()),
        &mut text,
    )
    .expect("a gzip body");
    let unzipped = Scrape::parse(&text);
    assert_eq!(
        unzipped.value(&PROBE_SUCCESS, &[("target", "cms-london")]),
        Some(1.0)
    );

    let plain = http_exchange(
        exporter.addr,
        "GET",
        "/metrics",
        "Accept-Encoding: gzip;q=0\r\n",
    )
    .await;
    assert!(!plain.head.contains("content-encoding"), "{}", plain.head);
    let plain = Scrape::parse(&String::from_utf8(plain.body).expect("text"));
    assert_eq!(plain.samples.len(), unzipped.samples.len());
    assert!(
        gzipped.body.len() * 3 < plain.text.len(),
        "gzip shrinks the exposition"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn step_histograms_are_there_when_asked_for() {
    let lab = Lab::new(base_zone()).await;
    let (_one, _two, exporter) = two_servers(&lab, "metrics:\n  step_histograms: true\n").await;
    let count = format!("{}_count", STEP_DURATION.name);
    let scrape = exporter
        .wait("a histogram per step and server", |s| {
            s.find_named(&count, &[("target", "cms-london")]).len() == 1 + 2 * 5
        })
        .await;
    let srv = scrape.find_named(&count, &[("server", ""), ("step", "srv")]);
    assert!(srv[0].value >= 1.0, "{srv:?}");
    let buckets = format!("{}_bucket", STEP_DURATION.name);
    let handshake = [("server", ""), ("step", "srv")];
    assert_eq!(
        scrape.find_named(&buckets, &handshake).len(),
        14,
        "13 bounds and +Inf"
    );
    exporter.stop().await;
}
