//! `docs/metrics.md` is the contract: every metric (its type and labels), every `reason`,
//! `finding` and `step` value the code can export is documented there, and the document names
//! nothing the code does not export. Adding one on either side alone fails here.

use std::collections::{BTreeMap, BTreeSet};

use cms_xmpp_exporter::metrics::ALL;
use cms_xmpp_exporter::probe::{DnssecState, FindingKind, Reason, Step};
use prometheus::proto::MetricType;

const DOC: &str = include_str!("../../docs/metrics.md");

/// What the document says: metrics by name (type, labels), and the values of each label
/// table by section.
struct Contract {
    metrics: BTreeMap<String, (String, BTreeSet<String>)>,
    /// Section heading (lowercase) → the values in the first column of its tables.
    values: BTreeMap<String, BTreeSet<String>>,
}

/// The text of a cell that is one code span: `name` → name.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

fn read_contract() -> Contract {
    let mut contract = Contract {
        metrics: BTreeMap::new(),
        values: BTreeMap::new(),
    };
    let mut section = String::new();
    let lines: Vec<&str> = DOC.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(heading) = line.trim_start_matches('#').strip_prefix(' ') {
            if line.starts_with('#') {
                section = heading.trim().to_lowercase();
                continue;
            }
        }
        let is_header = lines
            .get(i + 1)
            .is_some_and(|next| next.starts_with("|---") || next.starts_with("|:--"));
        if !line.starts_with('|') || line.starts_with("|---") || is_header {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(first) = cells.first().copied().and_then(code) else {
            continue;
        };
        if first.starts_with("cms_xmpp_") && cells.len() >= 3 {
            let labels = cells[2]
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty() && *l != "—")
                .map(str::to_owned)
                .collect();
            contract
                .metrics
                .insert(first.to_owned(), (cells[1].to_lowercase(), labels));
        } else {
            contract
                .values
                .entry(section.clone())
                .or_default()
                .insert(first.to_owned());
        }
    }
    contract
}

fn kind(kind: MetricType) -> &'static str {
    match kind {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    }
}

/// Both ways: what the code has that the document lacks, and the reverse.
fn differences(what: &str, code: BTreeSet<String>, doc: BTreeSet<String>) -> Vec<String> {
    let undocumented = code
        .difference(&doc)
        .map(|v| format!("{what} {v}: in the code, not in docs/metrics.md"));
    let unknown = doc
        .difference(&code)
        .map(|v| format!("{what} {v}: in docs/metrics.md, not in the code"));
    undocumented.chain(unknown).collect()
}

#[test]
fn docs_metrics_md_and_the_code_name_the_same_metrics_labels_and_values() {
    let contract = read_contract();
    let mut problems = Vec::new();

    let code: BTreeMap<String, (String, BTreeSet<String>)> = ALL
        .iter()
        .map(|m| {
            let labels = m.labels.iter().map(|l| l.to_string()).collect();
            (m.name.to_owned(), (kind(m.kind).to_owned(), labels))
        })
        .collect();
    let names = |m: &BTreeMap<String, _>| m.keys().cloned().collect::<BTreeSet<_>>();
    problems.extend(differences(
        "metric",
        names(&code),
        names(&contract.metrics),
    ));
    for (name, (kind, labels)) in &code {
        if let Some((doc_kind, doc_labels)) = contract.metrics.get(name) {
            if kind != doc_kind {
                problems.push(format!(
                    "metric {name}: a {kind} in the code, a {doc_kind} in the document"
                ));
            }
            problems.extend(differences(
                &format!("metric {name}: label"),
                labels.clone(),
                doc_labels.clone(),
            ));
        }
    }

    let texts = |values: &[&'static str]| values.iter().map(|v| v.to_string()).collect();
    let documented = |section: &str| contract.values.get(section).cloned().unwrap_or_default();
    let reasons: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    problems.extend(differences(
        "reason",
        texts(&reasons),
        documented("reasons"),
    ));
    let findings: Vec<_> = FindingKind::ALL.iter().map(|f| f.as_str()).collect();
    problems.extend(differences(
        "finding",
        texts(&findings),
        documented("findings"),
    ));
    let states: Vec<_> = DnssecState::ALL.iter().map(|s| s.as_str()).collect();
    problems.extend(differences(
        "dnssec state",
        texts(&states),
        documented("dnssec states"),
    ));
    // Two tables: the component flow's steps, then the client path's own.
    let steps: Vec<_> = Step::ALL.iter().map(|s| s.as_str()).collect();
    problems.extend(differences("step", texts(&steps), documented("steps")));

    assert!(
        contract.metrics.len() >= 30 && reasons.len() >= 30,
        "the document was not read: {} metrics",
        contract.metrics.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
