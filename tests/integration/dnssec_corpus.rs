//! The exporter's DNSSEC verdicts against BIND's validator (`delv`) on a corpus of zones
//! signed by BIND's tools (tests/support/corpus.rs): for every lookup the probe makes — the
//! SRV step, the addresses of `resolve`, the TLSA records, a name that does not exist, a name
//! without SRV records — the exporter's step, run on its validating resolver with the case's
//! anchors, must say what `delv` says. The table in docs/metrics.md is this test's output:
//! each cell the exporter's verdict, whose first word is delv's.

use std::time::Duration;

use cms_xmpp_exporter::config::Config;
use cms_xmpp_exporter::probe::dns::{resolve, srv, Lookups, Resolvers};
use cms_xmpp_exporter::probe::{Failure, Host, Reason};

use crate::support::corpus::Corpus;

/// The lookups of every case: what the table calls it, and the exporter's step.
const LOOKUPS: [&str; 6] = [
    "SRV",
    "A/AAAA xmpp",
    "A/AAAA xmpp2",
    "TLSA",
    "NXDOMAIN",
    "NODATA",
];

fn lookups(corpus: &Corpus, case: usize) -> Lookups {
    let config = format!(
        "dns:\n  nameservers: [\"{}\"]\n  dnssec:\n    validate: true\n    trust_anchors_file: {}\ntargets:\n  - name: t\n    domain: {}\n    component: probe.example.test\n    secret: s3cret-value\n",
        corpus.addr,
        corpus.anchors_file(case).display(),
        corpus.cases[case].zone,
    );
    let config = Config::parse(&config, std::path::Path::new("corpus.yaml")).unwrap();
    Resolvers::new(&config.dns, Duration::from_secs(2), true)
        .unwrap()
        .lookups(true)
}

/// A step's verdict in the words of the table: the DNSSEC state of what it found, or the
/// reason it failed with — for `dnssec_bogus`, with the cause its detail names.
fn failed(failure: &Failure) -> String {
    if failure.reason != Reason::DnssecBogus {
        return failure.reason.as_str().to_owned();
    }
    let detail = &failure.detail;
    let cause = [
        ("expired at", "expired"),
        ("not valid before", "not yet valid"),
        ("does not verify", "does not verify"),
        ("is one its trust anchors name", "no key anchored"),
        ("no signature (RRSIG)", "unsigned"),
        ("missing DNSKEY", "key missing"),
    ]
    .iter()
    .find(|(text, _)| detail.contains(text))
    .map_or("?", |(_, cause)| cause);
    let on = ["NSEC3 ", "NSEC ", "DNSKEY ", "SRV ", "TLSA ", "AAAA ", "A "]
        .iter()
        .find(|record| detail.contains(&format!("on {record}")))
        .map_or("", |record| record.trim());
    match on {
        "" => format!("dnssec_bogus ({cause})"),
        on => format!("dnssec_bogus ({cause}: {on})"),
    }
}

/// As long as a probe would give a lookup.
fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(5)
}

async fn exporter(lookups: &Lookups, zone: &str, lookup: &str) -> String {
    let resolve = |host: &str| {
        let host = Host::Name(format!("{host}.{zone}"));
        async move { resolve::lookup(lookups, &host, 8).await }
    };
    let srv = |domain: String| async move {
        match srv::lookup(lookups, srv::COMPONENT_SERVICE, &domain, 32).await {
            Ok(answer) => answer.dnssec.expect("validated").state.to_string(),
            Err(failure) => failed(&failure),
        }
    };
    match lookup {
        "SRV" => srv(zone.to_owned()).await,
        "NXDOMAIN" => srv(format!("missing.{zone}")).await,
        "NODATA" => srv(format!("nodata.{zone}")).await,
        "TLSA" => match resolve::tlsa(lookups, 5275, &format!("xmpp.{zone}"), deadline()).await {
            None => "no_records".to_owned(),
            Some(Ok(answer)) => answer.dnssec.state.to_string(),
            Some(Err(failure)) => failed(&failure),
        },
        addresses => match resolve(addresses.trim_start_matches("A/AAAA ")).await {
            Ok(resolved) => resolved.dnssec.expect("validated").state.to_string(),
            Err(failure) => failed(&failure),
        },
    }
}

/// `delv`'s verdict on what the lookup asks, AAAA and A combined as `resolve` combines them:
/// bogus if either is, else the state of the addresses found, else the A answer's.
async fn delv(corpus: &Corpus, case: usize, lookup: &str) -> String {
    let zone = corpus.cases[case].zone;
    let srv = |name: &str| format!("_xmpp-component._tcp.{name}");
    match lookup {
        "SRV" => corpus.delv(case, &srv(zone), "SRV").await,
        "NXDOMAIN" => {
            corpus
                .delv(case, &srv(&format!("missing.{zone}")), "SRV")
                .await
        }
        "NODATA" => {
            corpus
                .delv(case, &srv(&format!("nodata.{zone}")), "SRV")
                .await
        }
        "TLSA" => {
            corpus
                .delv(case, &format!("_5275._tcp.xmpp.{zone}"), "TLSA")
                .await
        }
        addresses => {
            let host = format!("{}.{zone}", addresses.trim_start_matches("A/AAAA "));
            let aaaa = corpus.delv(case, &host, "AAAA").await;
            let a = corpus.delv(case, &host, "A").await;
            let found: Vec<&String> = [&aaaa, &a]
                .into_iter()
                .filter(|v| *v == "secure" || *v == "insecure")
                .collect();
            if aaaa == "dnssec_bogus" || a == "dnssec_bogus" {
                "dnssec_bogus".to_owned()
            } else if found.iter().any(|v| *v == "insecure") {
                "insecure".to_owned()
            } else if !found.is_empty() {
                "secure".to_owned()
            } else {
                a
            }
        }
    }
}

const TABLE_START: &str = "<!-- dnssec-corpus: start (tests/integration/dnssec_corpus.rs) -->";
const TABLE_END: &str = "<!-- dnssec-corpus: end -->";

#[tokio::test]
async fn every_lookup_of_the_corpus_gets_bind_s_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = Corpus::start(dir.path()).await;
    let mut rows = Vec::new();
    let mut differences = Vec::new();
    for (index, case) in corpus.cases.iter().enumerate() {
        let lookups = lookups(&corpus, index);
        let mut cells = Vec::new();
        for lookup in LOOKUPS {
            let theirs = delv(&corpus, index, lookup).await;
            let ours = exporter(&lookups, case.zone, lookup).await;
            // The exporter's bogus carries its cause; delv's verdict is the state alone.
            let same = ours.split(' ').next() == Some(theirs.as_str());
            if !same {
                differences.push(format!(
                    "{} ({}), {lookup}: delv {theirs}, exporter {ours}",
                    case.name, case.zone
                ));
            }
            cells.push(ours);
        }
        rows.push(format!("| {} | {} |", case.name, cells.join(" | ")));
    }
    assert!(
        differences.is_empty(),
        "the exporter disagrees with delv:\n{}",
        differences.join("\n")
    );
    let table = format!(
        "{TABLE_START}\n| zone, trust anchors | {} |\n|---|{}\n{}\n{TABLE_END}",
        LOOKUPS.join(" | "),
        "---|".repeat(LOOKUPS.len()),
        rows.join("\n")
    );
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let documented = docs
        .split_once(TABLE_START)
        .and_then(|(_, rest)| rest.split_once(TABLE_END))
        .map(|(table, _)| format!("{TABLE_START}{table}{TABLE_END}"));
    assert_eq!(
        documented.as_deref(),
        Some(table.as_str()),
        "docs/metrics.md's corpus table is not what the corpus gives; it should read:\n{table}"
    );
}
