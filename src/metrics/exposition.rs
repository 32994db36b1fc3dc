//! From series to exposition: the sinks that turn each family's series into protobuf-shaped
//! families (for `/probe`, through `prometheus`' encoder) or straight into text (for
//! `/metrics`), each target's text kept between scrapes, and the whole exposition put
//! together.

use super::*;

/// Where a family's series are written; the family's type decides gauge or counter.
pub trait Sink {
    fn number(&mut self, values: &[&str], value: f64);
    fn histogram(&mut self, values: &[&str], durations: &Durations);
}

/// The buckets of `durations` as Prometheus counts them: (upper bound, how many at most it).
fn cumulative(durations: &Durations) -> impl Iterator<Item = (f64, u64)> + '_ {
    STEP_BUCKETS
        .iter()
        .zip(&durations.buckets)
        .scan(0, |total, (bound, count)| {
            *total += count;
            Some((*bound, *total))
        })
}

/// Builds a `prometheus` metric family.
struct FamilySink {
    def: &'static MetricDef,
    family: MetricFamily,
}

impl FamilySink {
    fn new(def: &'static MetricDef) -> FamilySink {
        let mut family = MetricFamily::default();
        family.set_name(def.name.to_owned());
        family.set_help(def.help.to_owned());
        family.set_field_type(def.kind);
        FamilySink { def, family }
    }

    fn metric(&mut self, values: &[&str]) -> &mut Metric {
        debug_assert_eq!(values.len(), self.def.labels.len(), "{}", self.def.name);
        let labels = self
            .def
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect();
        let metrics = self.family.mut_metric();
        metrics.push(Metric::from_label(labels));
        metrics.last_mut().expect("just pushed")
    }
}

impl Sink for FamilySink {
    fn number(&mut self, values: &[&str], value: f64) {
        let counter = self.def.kind == MetricType::COUNTER;
        let metric = self.metric(values);
        if counter {
            let mut counter = Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
    }

    fn histogram(&mut self, values: &[&str], durations: &Durations) {
        let mut histogram = prometheus::proto::Histogram::default();
        histogram.set_sample_count(durations.count);
        histogram.set_sample_sum(durations.sum);
        let buckets = cumulative(durations).map(|(bound, count)| {
            let mut bucket = prometheus::proto::Bucket::default();
            bucket.set_upper_bound(bound);
            bucket.set_cumulative_count(count);
            bucket
        });
        histogram.set_bucket(buckets.collect());
        self.metric(values).set_histogram(histogram);
    }
}

/// Writes series as exposition text, in the text format that `prometheus::TextEncoder` writes.
struct TextSink<'a> {
    def: &'static MetricDef,
    out: &'a mut String,
}

impl TextSink<'_> {
    fn line(&mut self, suffix: &str, values: &[&str], le: Option<&str>, value: f64) {
        debug_assert_eq!(values.len(), self.def.labels.len(), "{}", self.def.name);
        let out = &mut *self.out;
        out.push_str(self.def.name);
        out.push_str(suffix);
        let extra = le.map(|le| ("le", le));
        let mut separator = '{';
        for (name, value) in self
            .def
            .labels
            .iter()
            .copied()
            .zip(values.iter().copied())
            .chain(extra)
        {
            out.push(separator);
            out.push_str(name);
            out.push_str("=\"");
            escape_into(out, value, true);
            out.push('"');
            separator = ',';
        }
        if separator == ',' {
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

impl Sink for TextSink<'_> {
    fn number(&mut self, values: &[&str], value: f64) {
        self.line("", values, None, value);
    }

    fn histogram(&mut self, values: &[&str], durations: &Durations) {
        for (bound, count) in cumulative(durations) {
            let le = bound.to_string();
            self.line("_bucket", values, Some(&le), count as f64);
        }
        self.line("_bucket", values, Some("+Inf"), durations.count as f64);
        self.line("_sum", values, None, durations.sum);
        self.line("_count", values, None, durations.count as f64);
    }
}

/// The text format's escapes: `\` and newline always, `"` inside label values.
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quotes && b == b'"');
    if !text.bytes().any(special) {
        return out.push_str(text);
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn header(out: &mut String, def: &MetricDef) {
    out.push_str("# HELP ");
    out.push_str(def.name);
    out.push(' ');
    escape_into(out, def.help, false);
    let kind = match def.kind {
        MetricType::COUNTER => "counter",
        MetricType::HISTOGRAM => "histogram",
        _ => "gauge",
    };
    let _ = write!(out, "\n# TYPE {} {kind}\n", def.name);
}

/// One target's series as text: one string, and where each family's lines end in it (in the
/// order of [`ALL`]).
pub struct TargetText {
    text: String,
    ends: [usize; ALL.len()],
}

impl Default for TargetText {
    fn default() -> Self {
        TargetText {
            text: String::new(),
            ends: [0; ALL.len()],
        }
    }
}

impl TargetText {
    /// The text of `state`.
    pub fn new(state: &TargetState) -> TargetText {
        let mut text = String::new();
        let mut ends = [0; ALL.len()];
        for (end, def) in ends.iter_mut().zip(ALL) {
            if let Source::Target(series) = def.source {
                series(
                    &mut TextSink {
                        def,
                        out: &mut text,
                    },
                    state,
                );
            }
            *end = text.len();
        }
        // Kept until the target's next report: no spare capacity.
        text.shrink_to_fit();
        TargetText { text, ends }
    }

    fn family(&self, index: usize) -> &str {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.text[start..self.ends[index]]
    }
}

/// The text exposition of a snapshot: each target's text, written when its report was
/// recorded, put together family by family into `out` (a buffer, or a compressor).
pub fn write(
    snapshot: &Snapshot,
    texts: &[Arc<TargetText>],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut lines = String::new();
    for (index, def) in ALL.into_iter().enumerate() {
        lines.clear();
        let targets = match def.source {
            Source::Exporter(series) => {
                series(
                    &mut TextSink {
                        def,
                        out: &mut lines,
                    },
                    &snapshot.exporter,
                );
                false
            }
            Source::Target(_) => texts.iter().any(|text| !text.family(index).is_empty()),
        };
        // A family without series has no header either, as the encoder does.
        if lines.is_empty() && !targets {
            continue;
        }
        let mut head = String::new();
        header(&mut head, def);
        out.write_all(head.as_bytes())?;
        out.write_all(lines.as_bytes())?;
        if targets {
            for text in texts {
                out.write_all(text.family(index).as_bytes())?;
            }
        }
    }
    Ok(())
}

/// The text exposition of a snapshot (with its targets' `texts`, in order), as bytes.
pub fn render(snapshot: &Snapshot, texts: &[Arc<TargetText>]) -> Vec<u8> {
    let size: usize = texts.iter().map(|t| t.text.len()).sum();
    let mut out = Vec::with_capacity(size + 8 * 1024);
    // Writing into a Vec cannot fail.
    let _ = write(snapshot, texts, &mut out);
    out
}

/// Each target's series as text, written once per state (about 20 µs a target) by the first
/// rendering that sees it, so that a scrape only puts the targets' texts together and a
/// report nobody scrapes costs no text (probing never waits on it).
#[derive(Default)]
pub struct Texts {
    kept: std::sync::Mutex<HashMap<String, Kept>>,
}

/// A target's text, with the state it was written from (held weakly: only its identity counts).
type Kept = (Weak<TargetState>, Arc<TargetText>);

impl Texts {
    /// How many targets' texts are kept.
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The texts of `snapshot`'s targets, in order: kept ones reused, new states written.
    pub fn of(&self, snapshot: &Snapshot) -> Vec<Arc<TargetText>> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let texts: Vec<Arc<TargetText>> = snapshot
            .targets
            .iter()
            .map(|state| {
                let name = &state.subject.name;
                match kept.get(name) {
                    Some((seen, text)) if Weak::as_ptr(seen) == Arc::as_ptr(state) => text.clone(),
                    _ => {
                        let text = Arc::new(TargetText::new(state));
                        kept.insert(name.clone(), (Arc::downgrade(state), text.clone()));
                        text
                    }
                }
            })
            .collect();
        // Targets a reload removed.
        if kept.len() > snapshot.targets.len() {
            let names: BTreeSet<&str> = snapshot
                .targets
                .iter()
                .map(|s| s.subject.name.as_str())
                .collect();
            kept.retain(|name, _| names.contains(name.as_str()));
        }
        texts
    }
}

/// The series of a snapshot.
pub struct Exposition {
    snapshot: Snapshot,
    descs: Vec<Desc>,
}

impl Exposition {
    pub fn new(snapshot: Snapshot) -> Exposition {
        let descs = ALL
            .iter()
            .filter_map(|def| {
                let labels = def.labels.iter().map(|l| l.to_string()).collect();
                Desc::new(
                    def.name.to_owned(),
                    def.help.to_owned(),
                    labels,
                    Default::default(),
                )
                .ok()
            })
            .collect();
        Exposition { snapshot, descs }
    }

    /// The exposition of one target's record alone, for `/probe` (like blackbox_exporter's):
    /// no exporter-level series. One small record: gathered and encoded by `prometheus`.
    pub fn single(state: Arc<TargetState>) -> Vec<u8> {
        let exposition = Exposition::new(Snapshot {
            targets: vec![state],
            ..Snapshot::default()
        });
        let families: Vec<MetricFamily> = ALL
            .into_iter()
            .filter(|def| matches!(def.source, Source::Target(_)))
            .filter_map(|def| exposition.family(def))
            .collect();
        let mut out = Vec::new();
        // Encoding fails only for an empty family, which `family` never returns.
        let _ = prometheus::TextEncoder::new().encode(&families, &mut out);
        out
    }

    /// One family, or `None` when the snapshot has no series of it.
    fn family(&self, def: &'static MetricDef) -> Option<MetricFamily> {
        let mut sink = FamilySink::new(def);
        match def.source {
            Source::Exporter(series) => series(&mut sink, &self.snapshot.exporter),
            Source::Target(series) => {
                for state in &self.snapshot.targets {
                    series(&mut sink, state);
                }
            }
        }
        (!sink.family.get_metric().is_empty()).then_some(sink.family)
    }
}

/// The exposition as a `prometheus` collector, for code that gathers from a registry.
impl Collector for Exposition {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        ALL.into_iter().filter_map(|def| self.family(def)).collect()
    }
}
