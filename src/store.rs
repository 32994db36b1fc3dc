//! The probe record: per target the latest report, the short history the page shows, and
//! what is kept across probes (counters, histograms, the last certificate seen). It is the
//! only probe state; `/metrics`, the page, `/probe` and the `probe` command render it.
//!
//! Each target's state is a snapshot replaced on every report, so a view takes a snapshot of
//! `Arc`s under a short read lock and renders without holding it. The store holds plain
//! values: how they become series (and the text a scrape serves) is `metrics`' business.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::config::Target;
use crate::probe::{
    findings, CertFacts, ClientCertVerdict, DaneFacts, Endpoint, Failure, Finding, FindingKind,
    LegacyTls, Presented, Reason, Server, ServerReport, Step, StepRecord, Subject, TargetReport,
    TlsFacts, WatchReport,
};

mod changed;
mod watch;
pub use changed::Changed;
pub use watch::{NewFailures, WatchRecord, WatchSession};

/// How many past outcomes the status page shows per target.
pub const HISTORY: usize = 10;
/// 1 ms to 10 s: DNS on a LAN answers in about a millisecond, a timed-out step takes seconds.
pub const STEP_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One past probe cycle, reduced to what a person scans for.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub at: SystemTime,
    pub success: bool,
    /// The first failing step and reason (the SRV step's, or the first failing server's).
    pub failure: Option<(Step, Reason)>,
}

/// What is remembered of a server between probes: facts of the last probe that got that far.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub last_success: Option<SystemTime>,
    pub address: Option<SocketAddr>,
    pub tls: Option<TlsFacts>,
    pub cert: Option<Arc<CertFacts>>,
    /// When the run that saw `cert` started.
    pub cert_seen: Option<SystemTime>,
    /// How its secure TLSA records judged that certificate's chain (DANE).
    pub dane: Option<DaneFacts>,
    /// What the last TLS 1.1 hello that got an answer met (`tls.check_legacy_versions`), and
    /// when that run started.
    pub legacy_tls: Option<(SystemTime, LegacyTls)>,
}

/// Something worth fixing about a server, and which of its certificates it judges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFinding {
    pub server: Endpoint,
    pub finding: Finding,
    /// When the run that saw the judged certificate (or TLS answer) started: the latest
    /// run's, or an earlier one's when the latest did not get that far.
    pub seen: SystemTime,
}

/// A failure counter's key: the server (`None` for the target-level SRV step), step, reason.
pub type FailureKey = (Option<Endpoint>, Step, Reason);

/// Everything known about one configured target.
#[derive(Clone)]
pub struct TargetState {
    pub target: Arc<Target>,
    /// Who the record is about, as the views name it (they never read `target`).
    pub subject: Arc<Subject>,
    pub latest: Option<Arc<TargetReport>>,
    /// The client path, for a target with a watch: what every view shows of it.
    pub watch: WatchRecord,
    /// Newest first.
    pub history: VecDeque<Outcome>,
    pub probes: u64,
    pub failures: BTreeMap<FailureKey, u64>,
    /// What is remembered of each server of the last answer that worked: a server that
    /// leaves the SRV answer is forgotten, a failed lookup forgets nothing.
    pub seen: Vec<(Endpoint, Seen)>,
    /// Per server and step; empty unless `metrics.step_histograms` is on.
    pub histograms: BTreeMap<(Option<Endpoint>, Step), Durations>,
    /// What is worth fixing about the servers of the latest report, judged once per report
    /// (see [`TargetState::judge`]): every view shows these.
    pub findings: Vec<ServerFinding>,
    /// The servers of the report before the latest that its SRV answer no longer holds (none
    /// when its lookup failed: a failed lookup says nothing about who left).
    pub left: Vec<Server>,
    /// What the latest report changed, for the log.
    pub changed: Changed,
}

/// The durations a step took on a server, by bucket of [`STEP_BUCKETS`]: plain counts that
/// `metrics` renders as a histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Durations {
    /// How many fell in each bucket: above the bucket before, at most its bound (not
    /// cumulative); those above the last bound are only in `count`.
    pub buckets: [u64; STEP_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Durations {
    fn observe(&mut self, seconds: f64) {
        if let Some(bucket) = STEP_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[cfg(test)]
impl TargetState {
    /// A target not probed yet, its subject derived here (tests have no probe).
    pub fn of(target: Arc<Target>) -> TargetState {
        let subject = Arc::new(Subject::of(&target));
        TargetState::new(target, subject)
    }
}

impl TargetState {
    /// A target not probed yet, named by the subject its probe's reports carry (derived once,
    /// with the probe).
    pub fn new(target: Arc<Target>, subject: Arc<Subject>) -> TargetState {
        TargetState {
            subject,
            target,
            latest: None,
            watch: WatchRecord::default(),
            history: VecDeque::with_capacity(HISTORY),
            probes: 0,
            failures: BTreeMap::new(),
            seen: Vec::new(),
            histograms: BTreeMap::new(),
            findings: Vec::new(),
            left: Vec::new(),
            changed: Changed::default(),
        }
    }

    /// What is remembered of a server.
    pub fn seen(&self, endpoint: &Endpoint) -> Option<&Seen> {
        self.seen
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, seen)| seen)
    }

    /// The state after `report`.
    pub fn after(
        &self,
        report: impl Into<Arc<TargetReport>>,
        step_histograms: bool,
    ) -> TargetState {
        let report: Arc<TargetReport> = report.into();
        let mut next = self.clone();
        next.probes += 1;
        count(&mut next.failures, report.failures());
        // The servers did not leave when the lookup failed: their counters and facts stay.
        next.left = Vec::new();
        if let Some(current) = answered(
            report.srv.as_ref(),
            report.servers.iter().map(|s| &s.server),
        ) {
            let known =
                |server: &Option<Endpoint>| server.as_ref().is_none_or(|e| current.contains(e));
            next.failures.retain(|(server, _, _), _| known(server));
            next.histograms.retain(|(server, _), _| known(server));
            next.seen.retain(|(endpoint, _)| current.contains(endpoint));
            // Only an SRV answer says who left: a configured server never does.
            let looked_up = report.srv.as_ref().is_some_and(|s| s.result.is_ok());
            let before = self.latest.iter().flat_map(|r| &r.servers);
            next.left = before
                .filter(|s| looked_up && !current.contains(&s.server.endpoint))
                .map(|s| s.server.clone())
                .collect();
        }
        for server in &report.servers {
            let endpoint = &server.server.endpoint;
            let index = match next.seen.iter().position(|(e, _)| e == endpoint) {
                Some(index) => index,
                None => {
                    next.seen.push((endpoint.clone(), Seen::default()));
                    next.seen.len() - 1
                }
            };
            let seen = &mut next.seen[index].1;
            if server.up(&report.expected_steps) {
                seen.last_success = Some(report.finished());
            }
            seen.address = server.address.or(seen.address);
            seen.tls = server.tls.or(seen.tls);
            if let Some(cert) = &server.cert {
                seen.cert = Some(cert.clone());
                seen.cert_seen = Some(report.started);
                seen.dane = server.dane.clone();
            } else if server.ran(Step::Cert) {
                // It sent no certificate that parses: the one seen before is not what it
                // serves now.
                seen.cert = None;
                seen.cert_seen = None;
                seen.dane = None;
            }
            match &server.legacy_tls {
                None | Some(LegacyTls::Unknown(_)) => {}
                Some(answer) => seen.legacy_tls = Some((report.started, answer.clone())),
            }
        }
        next.findings = next.judge(&report);
        next.changed = Changed::between(self.latest.as_deref(), &report);
        if let Some(watch) = &report.watch {
            next.observe_watch(watch.clone(), NewFailures::All);
        }
        if step_histograms {
            next.observe(&report);
        }
        next.history.push_front(Outcome {
            at: report.started,
            success: report.success(),
            failure: report
                .failures()
                .next()
                .map(|(_, step, f)| (step, f.reason)),
        });
        next.history.truncate(HISTORY);
        next.latest = Some(report);
        next
    }

    /// The one rule for findings: each server of the report is judged by the last
    /// certificate it presented and the last TLS 1.1 hello it answered — this run's, or an
    /// earlier run's when this one did not get that far (a server that refuses connections
    /// still serves that chain to whoever it lets in) — and beside the first server's leaf.
    fn judge(&self, report: &TargetReport) -> Vec<ServerFinding> {
        let servers: Vec<(&ServerReport, &Seen)> = report
            .servers
            .iter()
            .filter_map(|s| Some((s, self.seen(&s.server.endpoint)?)))
            .collect();
        let presented: Vec<Presented> = servers
            .iter()
            .map(|(server, seen)| Presented {
                server: &server.server.endpoint,
                cert: seen.cert.as_deref(),
                dane: seen.dane.as_ref(),
                // This run's TLSA answer: what DANE clients meet now.
                tlsa_bogus: server
                    .tlsa
                    .as_ref()
                    .and_then(|t| t.as_ref().err())
                    .filter(|f| f.reason == Reason::DnssecBogus),
                legacy_tls: seen.legacy_tls.as_ref().map(|(_, answer)| answer),
                client_cert_unasked: report.subject.client_cert_not_after.is_some()
                    && server.client_cert == Some(ClientCertVerdict::NotRequested),
            })
            .collect();
        findings(&presented)
            .into_iter()
            .map(|(server, finding)| {
                let seen = self.seen(server);
                let at = match finding.kind {
                    FindingKind::LegacyTls => seen.and_then(|s| s.legacy_tls.as_ref()).map(|l| l.0),
                    FindingKind::DaneTlsaBogus | FindingKind::ClientCertNotRequested => None,
                    _ => seen.and_then(|s| s.cert_seen),
                };
                ServerFinding {
                    server: server.clone(),
                    seen: at.unwrap_or(report.started),
                    finding,
                }
            })
            .collect()
    }

    fn observe(&mut self, report: &TargetReport) {
        let records = report.srv.iter().map(|r| (None, r)).chain(
            report
                .servers
                .iter()
                .flat_map(|s| s.steps.iter().map(|r| (Some(&s.server.endpoint), r))),
        );
        for (server, record) in records.filter(|(_, r)| r.step.timed()) {
            let key = (server.cloned(), record.step);
            self.histograms
                .entry(key)
                .or_default()
                .observe(record.duration.as_secs_f64());
        }
    }
}

/// Counts a flow's failed steps.
fn count<'a>(
    counters: &mut BTreeMap<FailureKey, u64>,
    failures: impl Iterator<Item = (Option<&'a Server>, Step, &'a Failure)>,
) {
    for (server, step, failure) in failures {
        let key = (server.map(|s| s.endpoint.clone()), step, failure.reason);
        *counters.entry(key).or_default() += 1;
    }
}

/// The servers of a flow's answer, when there was one: a failed lookup says nothing about
/// which servers left.
fn answered<'a>(
    srv: Option<&StepRecord>,
    servers: impl Iterator<Item = &'a Server>,
) -> Option<BTreeSet<&'a Endpoint>> {
    srv.is_none_or(|srv| srv.result.is_ok())
        .then(|| servers.map(|s| &s.endpoint).collect())
}

/// The exporter's own state: whether the configuration loaded (`cms_xmpp_config_last_reload_*`)
/// and the cycles it could not run for want of its own resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExporterStatus {
    pub successful: bool,
    pub last_success: Option<SystemTime>,
    /// Loads tried so far, good or bad: a view that caches can tell that the config changed.
    pub loads: u64,
    /// Probe cycles discarded because the exporter ran out of file descriptors or buffers.
    pub discarded_cycles: u64,
}

/// What every view renders, taken at one moment.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub targets: Vec<Arc<TargetState>>,
    pub exporter: ExporterStatus,
    pub step_histograms: bool,
}

/// What a (re)loaded configuration did to the targets' records, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TargetChanges {
    /// Unchanged settings: the record goes on.
    pub kept: Vec<String>,
    /// Changed settings: the record starts afresh.
    pub changed: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// What recording a report changed.
pub struct Recorded {
    pub previous: Option<Arc<TargetReport>>,
    pub current: Arc<TargetReport>,
    /// The target's state with it.
    pub state: Arc<TargetState>,
}

#[derive(Default)]
pub struct Store {
    inner: RwLock<Snapshot>,
}

impl Store {
    /// A (re)loaded configuration. A target whose settings did not change keeps its record
    /// (counters, history, last report, so readiness too) under its new `Arc`; a changed or
    /// new one starts afresh and waits for its first probe; a removed one is forgotten.
    pub fn set_targets(
        &self,
        targets: &[(Arc<Target>, Arc<Subject>)],
        step_histograms: bool,
    ) -> TargetChanges {
        let mut inner = self.inner.write().expect("store lock");
        let mut changes = TargetChanges::default();
        let mut before = std::mem::take(&mut inner.targets);
        for (target, subject) in targets {
            let same_name = before.iter().position(|s| s.target.name == target.name);
            let kept = match same_name.map(|i| before.swap_remove(i)) {
                Some(old) if old.target.same_settings(target) => {
                    changes.kept.push(target.name.clone());
                    TargetState {
                        target: target.clone(),
                        subject: subject.clone(),
                        ..(*old).clone()
                    }
                }
                Some(_) => {
                    changes.changed.push(target.name.clone());
                    TargetState::new(target.clone(), subject.clone())
                }
                None => {
                    changes.added.push(target.name.clone());
                    TargetState::new(target.clone(), subject.clone())
                }
            };
            inner.targets.push(Arc::new(kept));
        }
        changes.removed = before.iter().map(|s| s.target.name.clone()).collect();
        inner.step_histograms = step_histograms;
        changes
    }

    /// Records a report of `target`; returns the report it replaces (if any) and the new
    /// one. A report of a target that a reload replaced (another `Arc`) is dropped: `None`.
    pub fn record(&self, target: &Arc<Target>, report: Arc<TargetReport>) -> Option<Recorded> {
        // Only the target's own loop records it, so the state read here is still the one to
        // replace below; the new one is made without holding the lock.
        let (state, histograms) = {
            let inner = self.inner.read().expect("store lock");
            let state = inner
                .targets
                .iter()
                .find(|s| Arc::ptr_eq(&s.target, target))?;
            (state.clone(), inner.step_histograms)
        };
        let mut next = state.after(report, histograms);
        let current = next.latest.clone()?;
        let mut inner = self.inner.write().expect("store lock");
        let slot = inner
            .targets
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.target, target))?;
        // A run that did not log in leaves the watch to its kept session, which may have
        // recorded meanwhile.
        if current.watch.is_none() {
            next.watch = slot.watch.clone();
        }
        let next = Arc::new(next);
        *slot = next.clone();
        Some(Recorded {
            previous: state.latest.clone(),
            current,
            state: next,
        })
    }

    pub fn config_loaded(&self, ok: bool) {
        let mut inner = self.inner.write().expect("store lock");
        inner.exporter.loads += 1;
        inner.exporter.successful = ok;
        if ok {
            inner.exporter.last_success = Some(SystemTime::now());
        }
    }

    /// A cycle met the exporter's own limits ([`crate::probe::Reason::LocalResources`]) and is
    /// not recorded: it says nothing about the servers.
    pub fn cycle_discarded(&self) {
        self.inner
            .write()
            .expect("store lock")
            .exporter
            .discarded_cycles += 1;
    }

    /// Every configured target has finished a probe cycle since the configuration loaded.
    pub fn ready(&self) -> bool {
        let inner = self.inner.read().expect("store lock");
        inner.targets.iter().all(|s| s.latest.is_some())
    }

    pub fn exporter_status(&self) -> ExporterStatus {
        self.inner.read().expect("store lock").exporter
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.read().expect("store lock").clone()
    }
}

#[cfg(test)]
mod tests;
