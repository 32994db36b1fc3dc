//! The exporter's own port against hostile clients: sockets held open and silent, and the
//! limits it takes from the system at start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

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
