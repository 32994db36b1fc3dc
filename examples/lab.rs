//! A lab for newcomers with no CMS at hand: an in-process DNS server and TLS XEP-0114 component
//! servers with generated certificates, all on loopback, and the exporter probing them.
//!
//!     cargo run --example lab                      # everything green
//!     cargo run --example lab -- --fault expired   # watch the second target turn red
//!
//! Then open http://127.0.0.1:9523/ (status page) and http://127.0.0.1:9523/metrics.

// The lab uses a part of the test peers; the tests use all of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use cms_xmpp_exporter::config::Config;
use cms_xmpp_exporter::{error_chain, run};
use support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use support::exporter::{base_zone, server, Lab, COMPONENT, DOMAIN, XMPP1};
use support::pki::{Leaf, Validity};

#[derive(Parser)]
struct Args {
    /// Where the exporter serves its page and metrics.
    #[arg(long, default_value = "127.0.0.1:9523")]
    listen: SocketAddr,
    /// A fault for the second target ("lab-single") to show.
    #[arg(long, value_enum)]
    fault: Option<Fault>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fault {
    /// The XMPP server knows the component under another secret.
    WrongSecret,
    /// The certificate lacks the XMPP domain among its SANs.
    MissingSan,
    /// The certificate has expired.
    Expired,
    /// TLS starts later than the probe's deadline allows.
    SlowTls,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();

    let lab = Lab::new(base_zone()).await;
    // Kept for as long as the lab runs.
    let _servers = lab.two_srv_servers().await;
    let single = faulty_server(&lab, args.fault).await;
    let targets = [
        lab.timed_target("lab-srv", "", "5s", "2s", ""),
        lab.timed_target(
            "lab-single",
            &server(XMPP1, single.addr().port()),
            "5s",
            "2s",
            "",
        ),
    ];
    let yaml = lab.config(&targets).replace(
        "listen_address: 127.0.0.1:0",
        &format!("listen_address: {}", args.listen),
    );
    let config =
        Config::parse(&yaml, std::path::Path::new("lab")).expect("the lab's config is valid");
    match run(config).await {
        Ok(running) => {
            let address = running.local_addr();
            println!(
                "\nlab: domain {DOMAIN}, component {COMPONENT}, DNS at {}",
                lab.dns.addr()
            );
            println!("lab: status page http://{address}/  metrics http://{address}/metrics  (Ctrl-C stops)\n");
            let _ = running.until_signal().await;
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("lab: {}", error_chain(&error));
            std::process::ExitCode::from(1)
        }
    }
}

async fn faulty_server(lab: &Lab, fault: Option<Fault>) -> ComponentServer {
    let (leaf, secret, tls_delay): (Leaf, &str, _) = match fault {
        None => (lab.good_leaf(), support::exporter::SECRET, None),
        Some(Fault::WrongSecret) => (lab.good_leaf(), "not-the-probe-secret", None),
        Some(Fault::MissingSan) => (
            lab.pki.leaf(&[XMPP1], Validity::Good),
            support::exporter::SECRET,
            None,
        ),
        Some(Fault::Expired) => (
            lab.pki.leaf(&[DOMAIN, XMPP1], Validity::Expired),
            support::exporter::SECRET,
            None,
        ),
        Some(Fault::SlowTls) => (
            lab.good_leaf(),
            support::exporter::SECRET,
            Some(Duration::from_secs(3)),
        ),
    };
    ComponentServer::start(ComponentServerConfig {
        tls: Some(leaf.server_config()),
        components: vec![(COMPONENT.to_owned(), secret.to_owned())],
        behaviour: Behaviour::Normal,
        tls_delay,
    })
    .await
}
