//! One loop per target: probe, record, log, wait for the next tick. A cycle never overlaps
//! the next one of the same target, and targets never wait for each other.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::metrics::Metrics;
use crate::probe::{probe_target, Reason, Step, StepRecord, TargetProbe, TargetReport};

/// The last outcome logged per server (`""` for the SRV step): `None` when it was up.
type States = HashMap<String, Option<(Step, Reason)>>;

pub async fn run_target(
    probe: Arc<TargetProbe>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next = Instant::now();
    let mut states = States::new();
    loop {
        tokio::select! {
            _ = sleep_until(next) => {}
            _ = shutdown.changed() => return,
        }
        next += probe.target.interval;
        let report = tokio::select! {
            report = probe_target(probe.clone()) => report,
            _ = shutdown.changed() => return,
        };
        metrics.record(&report);
        log_report(&report, &mut states);
        // A probe that overran (only possible with a slow close) starts the next one now.
        next = next.max(Instant::now());
    }
}

/// Every probe at debug; a change of state at info (up) or warn (down), so logs alone tell
/// the story.
fn log_report(report: &TargetReport, states: &mut States) {
    let target = report.target.as_str();
    let mut seen = Vec::with_capacity(report.servers.len() + 1);
    if let Some(srv) = &report.srv {
        let failure = srv.result.as_ref().err();
        log_change(
            states,
            target,
            "",
            failure.map(|f| (Step::Srv, f)),
            std::slice::from_ref(srv),
        );
        seen.push(String::new());
    }
    for server in &report.servers {
        let label = server.server.label();
        log_change(states, target, &label, server.failure(), &server.steps);
        seen.push(label);
    }
    states.retain(|label, _| seen.contains(label));
    tracing::debug!(
        target = target,
        success = report.success(),
        servers = report.servers.len(),
        duration_ms = report.duration.as_millis() as u64,
        "probe finished"
    );
}

fn log_change(
    states: &mut States,
    target: &str,
    server: &str,
    failure: Option<(Step, &crate::probe::Failure)>,
    steps: &[StepRecord],
) {
    let state = failure.map(|(step, f)| (step, f.reason));
    let durations = steps.iter().fold(String::new(), |mut out, s| {
        let _ = write!(out, "{}={}ms ", s.step, s.duration.as_millis());
        out
    });
    tracing::debug!(
        target = target,
        server = server,
        up = state.is_none(),
        durations = durations.trim_end(),
        "probed"
    );
    if states.insert(server.to_owned(), state) == Some(state) {
        return;
    }
    match failure {
        None => tracing::info!(
            target = target,
            server = server,
            durations = durations.trim_end(),
            "server is up"
        ),
        Some((step, f)) => tracing::warn!(
            target = target,
            server = server,
            step = %step,
            reason = %f.reason,
            detail = %f.detail,
            durations = durations.trim_end(),
            "server is down"
        ),
    }
}
