//! CPU per server probe beside its floor: a minimal client that does the same TLS 1.3
//! handshake (verifying the chain and name) and XEP-0114 exchange (header, handshake, polite
//! close) with rustls and ring, and nothing else: no DNS, no report, no metrics. Each runs in
//! a process of its own, paced at [`PACE`] probes a second against the same component server,
//! and both are measured over the same windows, after a warm-up: the figures are the
//! medians of the windows (a shared VM's noise comes and goes within a minute).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::support::component::{
    handshake_digest, Behaviour, ComponentServer, ComponentServerConfig,
};
use super::support::exporter::*;
use super::support::pki::crypto_provider;
use super::{binary, cpu_seconds, cycles, failed_probes};

/// Server probes a second, each side: 20 targets of one server each, every second.
pub const PACE: usize = 20;
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);
const WINDOWS: usize = 6;
/// The first argument that makes the benchmark binary the floor client.
pub const FLOOR_MODE: &str = "__floor";

/// CPU milliseconds per probe in each window: (exporter, floor).
pub struct Row {
    windows: Vec<(f64, f64)>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

impl Row {
    pub fn print(&self) {
        println!(
            "CPU per server probe, paced at {PACE} a second (TLS 1.3, XEP-0114 handshake, close), {WINDOWS} windows of {WINDOW:?}:"
        );
        let ratios: Vec<f64> = self.windows.iter().map(|(e, f)| e / f).collect();
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "  exporter {:.3} ms, floor {:.3} ms (medians); the exporter is {:.2}x the floor (median of {})",
            median(self.windows.iter().map(|w| w.0).collect()),
            median(self.windows.iter().map(|w| w.1).collect()),
            median(ratios),
            shown.join(", ")
        );
    }
}

fn component(i: usize) -> String {
    format!("probe-{i}.example.test")
}

pub async fn measure() -> Row {
    let lab = Lab::new(base_zone()).await;
    let peer = ComponentServer::start(ComponentServerConfig {
        tls: Some(lab.good_leaf().server_config()),
        components: (0..PACE)
            .map(|i| (component(i), SECRET.to_owned()))
            .collect(),
        behaviour: Behaviour::Normal,
        tls_delay: None,
    })
    .await;
    // An address, not a name: no DNS on either side.
    let address = peer.addr().to_string();
    let targets: Vec<String> = (0..PACE)
        .map(|i| {
            lab.timed_target(
                &format!("cms-{i:02}"),
                &address,
                "1s",
                "1s",
                &format!("      server_name: {XMPP1}\n"),
            )
            .replace(
                &format!("component: {COMPONENT}"),
                &format!("component: {}", component(i)),
            )
        })
        .collect();
    std::fs::write(lab.path("config.yaml"), lab.config(&targets)).unwrap();
    let binary = Binary::spawn(&binary(), &lab.path("config.yaml"), &[]).await;
    let pid = binary.child.id().expect("running");
    tokio::time::sleep(WARM_UP).await;
    // The floor runs at the same time, so that both meet the same machine: on a shared VM,
    // runs minutes apart differ by more than the gap measured.
    let floor = tokio::process::Command::new(std::env::current_exe().expect("own path"))
        .args([
            FLOOR_MODE,
            &address,
            &lab.path("ca.pem").display().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the floor client");
    let mut samples = Vec::with_capacity(WINDOWS + 1);
    let start = tokio::time::Instant::now() + WARM_UP;
    for window in 0..=WINDOWS {
        tokio::time::sleep_until(start + WINDOW * window as u32).await;
        let cycles = cycles(&binary.exporter.scrape().await);
        samples.push((cpu_seconds(pid), cycles));
    }
    let failed = failed_probes(&binary.exporter.scrape().await);
    assert_eq!(failed, 0.0, "the exporter's probes failed");
    let floor = floor.wait_with_output().await.expect("the floor client");
    drop(binary);
    let out = String::from_utf8_lossy(&floor.stdout);
    assert!(floor.status.success(), "floor client: {out}");
    let floor_samples: Vec<(f64, f64)> = out
        .lines()
        .map(|line| {
            let (probes, cpu) = line.split_once(' ').expect("probes cpu");
            (cpu.parse().unwrap(), probes.parse().unwrap())
        })
        .collect();
    assert_eq!(floor_samples.len(), WINDOWS + 1, "{out}");
    let per_probe = |samples: &[(f64, f64)], i: usize| {
        let ((cpu0, n0), (cpu1, n1)) = (samples[i], samples[i + 1]);
        (cpu1 - cpu0) * 1000.0 / (n1 - n0)
    };
    Row {
        windows: (0..WINDOWS)
            .map(|i| (per_probe(&samples, i), per_probe(&floor_samples, i)))
            .collect(),
    }
}

/// The floor client's process: probes paced at [`PACE`] a second; after the warm-up and at
/// the end of each window, prints the probes finished and the CPU seconds used so far.
pub fn floor_main(args: &[String]) {
    let [_, address, ca] = args else {
        panic!("usage: {FLOOR_MODE} ADDRESS CA_FILE");
    };
    let address: SocketAddr = address.parse().expect("an address");
    super::runtime().block_on(async move {
        let connector = connector(Path::new(ca));
        let done = Arc::new(AtomicUsize::new(0));
        let mut tick = tokio::time::interval(Duration::from_secs(1) / PACE as u32);
        let start = Instant::now();
        let mut samples = Vec::with_capacity(WINDOWS + 1);
        let mut probes = tokio::task::JoinSet::new();
        for i in 0.. {
            tick.tick().await;
            let boundary = WARM_UP + WINDOW * samples.len() as u32;
            if start.elapsed() >= boundary {
                let cpu = super::cpu_seconds(std::process::id());
                samples.push((done.load(Ordering::SeqCst), cpu));
                if samples.len() > WINDOWS {
                    break;
                }
            }
            let (connector, done) = (connector.clone(), done.clone());
            probes.spawn(async move {
                probe(&connector, address, &component(i % PACE))
                    .await
                    .expect("a floor probe");
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        probes.join_all().await;
        for (done, cpu) in samples {
            println!("{done} {cpu}");
        }
    });
}

fn connector(ca: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots.add(cert.expect("a certificate")).expect("a CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One probe: TCP, TLS verifying `xmpp1.example.test`, the component's stream header and
/// handshake, `</stream:stream>` and the server's, then the TLS and TCP close.
async fn probe(
    connector: &TlsConnector,
    address: SocketAddr,
    component: &str,
) -> Result<(), String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(XMPP1).expect("a name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{component}'>"
    );
    tls.write_all(header.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    let id = loop {
        read_more(&mut tls, &mut seen).await?;
        let text = String::from_utf8_lossy(&seen);
        if let Some(at) = text.find(" id='") {
            let rest = &text[at + 5..];
            if let Some(end) = rest.find('\'') {
                if rest[end..].contains('>') {
                    break rest[..end].to_owned();
                }
            }
        }
    };
    seen.clear();
    let handshake = format!("<handshake>{}</handshake>", handshake_digest(&id, SECRET));
    tls.write_all(handshake.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    while !String::from_utf8_lossy(&seen).contains("<handshake/>") {
        read_more(&mut tls, &mut seen).await?;
    }
    seen.clear();
    tls.write_all(b"</stream:stream>")
        .await
        .map_err(|e| e.to_string())?;
    while !String::from_utf8_lossy(&seen).contains("</stream:stream>") {
        read_more(&mut tls, &mut seen).await?;
    }
    tls.shutdown().await.map_err(|e| e.to_string())?;
    let mut sink = [0u8; 512];
    while matches!(tls.read(&mut sink).await, Ok(n) if n > 0) {}
    Ok(())
}

async fn read_more(io: &mut (impl AsyncRead + Unpin), seen: &mut Vec<u8>) -> Result<(), String> {
    let mut buffer = [0u8; 4096];
    match io.read(&mut buffer).await {
        Ok(0) => Err(format!("closed after {:?}", String::from_utf8_lossy(seen))),
        Ok(n) => {
            seen.extend_from_slice(&buffer[..n]);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
