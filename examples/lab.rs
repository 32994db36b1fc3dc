//! A lab for newcomers with no CMS at hand: an in-process DNS server, TLS XEP-0114 component
//! servers and an XMPP client port (STARTTLS, SCRAM) that routes pings to two Callbridges,
//! with generated certificates, all on loopback, and the exporter probing them.
//!
//!     cargo run --example lab                      # everything green
//!     cargo run --example lab -- --fault expired   # watch the second target turn red
//!     cargo run --example lab -- --fault callbridge-down   # cb2 loses its XMPP connection
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
use support::c2s::{Answer, C2sConfig, C2sServer, Encryption, Fault as C2sFault};
use support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use support::exporter::{base_zone, server, Lab, COMPONENT, DOMAIN, PASSWORD, XMPP1};

/// The production Callbridges whose live registration the lab watches.
const CB1: &str = "cb1.example.test";
const CB2: &str = "cb2.example.test";
use support::pki::{Leaf, Validity};

#[derive(Parser)]
struct Args {
    /// Where the exporter serves its page and metrics.
    #[arg(long, default_value = "127.0.0.1:9523")]
    listen: SocketAddr,
    /// A fault to show (repeat for several): the component faults break the second target
    /// ("lab-single"), callbridge-down the first target's live registration.
    #[arg(long, value_enum)]
    fault: Vec<Fault>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    /// The XMPP server knows the component under another secret.
    WrongSecret,
    /// The certificate lacks the XMPP domain among its SANs.
    MissingSan,
    /// The certificate has expired.
    Expired,
    /// TLS starts later than the probe's deadline allows.
    SlowTls,
    /// The second production Callbridge (cb2) is not connected to the XMPP server.
    CallbridgeDown,
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
    let component_fault = args
        .fault
        .iter()
        .copied()
        .find(|f| *f != Fault::CallbridgeDown);
    let single = faulty_server(&lab, component_fault).await;
    let cb2 = if args.fault.contains(&Fault::CallbridgeDown) {
        Answer::NotConnected
    } else {
        Answer::Result
    };
    let xmpp = C2sServer::start(C2sConfig {
        encryption: Encryption::Starttls(lab.good_leaf().server_config()),
        domain: DOMAIN.to_owned(),
        user: ("monitor".to_owned(), PASSWORD.to_owned()),
        components: vec![(CB1.to_owned(), Answer::Result), (CB2.to_owned(), cb2)],
        fault: C2sFault::None,
    })
    .await;
    let watch = lab.watch(
        &server(XMPP1, xmpp.addr().port()),
        "starttls",
        "password",
        &[CB1, CB2],
    );
    let targets = [
        lab.timed_target("lab-srv", "", "5s", "2s", "") + &watch,
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
    match run(config, Default::default()).await {
        Ok(running) => {
            let address = running.local_addr();
            println!(
                "\nlab: domain {DOMAIN}, component {COMPONENT}, DNS at {}, client port {} watching {CB1} and {CB2}",
                lab.dns.addr(),
                xmpp.addr()
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
        None | Some(Fault::CallbridgeDown) => (lab.good_leaf(), support::exporter::SECRET, None),
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
