//! What systemd hears from the exporter run as a `Type=notify` unit: READY=1 only once every
//! target finished its first probe (what `/-/ready` says), RELOADING=1 with the monotonic time
//! and READY=1 again around a SIGHUP, STOPPING=1 at SIGTERM.

use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::time::timeout;

use crate::support::component::Behaviour;
use crate::support::exporter::*;
use crate::BINARY;

/// The next message on the notification socket.
async fn next_message(socket: &UnixDatagram) -> String {
    let mut buffer = vec![0u8; 4096];
    let length = timeout(PATIENCE, socket.recv(&mut buffer))
        .await
        .expect("a message to the service manager")
        .unwrap();
    String::from_utf8(buffer[..length].to_vec()).unwrap()
}

#[tokio::test]
async fn systemd_hears_ready_when_every_target_was_probed_then_reloading_and_stopping() {
    let lab = Lab::new(base_zone()).await;
    // A peer that accepts and says nothing: the first probe lasts its whole timeout (1 s), so
    // a READY sent at start would come before any probe finished.
    let silent = lab.tls_server(&lab.good_leaf(), Behaviour::Silent).await;
    let target = lab.target("a", &server(XMPP1, silent.addr().port()), "");
    let config = lab.path("config.yaml");
    std::fs::write(&config, lab.config(&[target])).unwrap();
    let path = lab.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let env = format!("NOTIFY_SOCKET={}", path.display());
    let mut binary = Binary::spawn_via(&["env", &env], BINARY, &config, &[]).await;

    let first = next_message(&socket).await;
    assert!(first.starts_with("READY=1\n"), "{first:?}");
    let scrape = binary.exporter.scrape().await;
    assert!(
        scrape.value(&PROBES_TOTAL, &[("target", "a")]) >= Some(1.0),
        "READY before the first probe finished:\n{}",
        scrape.relevant()
    );
    let (status, _) = http_request(binary.exporter.addr, "GET", "/-/ready").await;
    assert_eq!(status, 200);

    binary.signal("HUP");
    let reloading = next_message(&socket).await;
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading:?}");
    let monotonic = lines.next().and_then(|l| l.strip_prefix("MONOTONIC_USEC="));
    assert!(
        monotonic.is_some_and(|usec| usec.parse::<u64>().is_ok_and(|usec| usec > 0)),
        "{reloading:?}"
    );
    assert_eq!(next_message(&socket).await, "READY=1\n");

    binary.signal("TERM");
    assert_eq!(next_message(&socket).await, "STOPPING=1\n");
    let status = timeout(Duration::from_secs(10), binary.child.wait())
        .await
        .expect("stops within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
