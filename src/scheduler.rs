//! One loop per target: probe, record, log, wait for the next tick. A cycle never overlaps
//! the next one of the same target, and targets never wait for each other.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::metrics::Metrics;
use crate::probe::{Failure, Reason, Step, StepRecord, TargetProbe, TargetReport};
use crate::status::Status;

/// The last outcome logged per server (`""` for the SRV step): `None` when it was up.
type States = HashMap<String, Option<(Step, Reason)>>;

pub async fn run_target(
    probe: Arc<TargetProbe>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
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
            report = probe.run_exclusive() => report,
            _ = shutdown.changed() => return,
        };
        metrics.record(&report);
        status.record(&report);
        log_report(&report, &mut states);
        // A probe that overran (only possible with a slow close) starts the next one now.
        next = next.max(Instant::now());
    }
}

/// One line per server and probe; a change of state at warn (down) or info (up) as well, so
/// that logs alone tell the story.
fn log_report(report: &TargetReport, states: &mut States) {
    let target = report.target.as_str();
    let mut seen = Vec::with_capacity(report.servers.len() + 1);
    if let Some(srv) = &report.srv {
        let failure = srv.result.as_ref().err();
        log_server(
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
        log_server(states, target, &label, server.failure(), &server.steps);
        seen.push(label);
    }
    states.retain(|label, _| seen.contains(label));
}

fn log_server(
    states: &mut States,
    target: &str,
    server: &str,
    failure: Option<(Step, &Failure)>,
    steps: &[StepRecord],
) {
    let durations = steps.iter().fold(String::new(), |mut out, s| {
        let _ = write!(out, "{}={}ms ", s.step, s.duration.as_millis());
        out
    });
    let durations = durations.trim_end();
    let state = failure.map(|(step, f)| (step, f.reason));
    let changed = states.insert(server.to_owned(), state) != Some(state);
    match failure {
        None if changed => tracing::info!(
            target = target,
            server = server,
            durations = durations,
            "server is up"
        ),
        None => tracing::info!(
            target = target,
            server = server,
            durations = durations,
            "probe succeeded"
        ),
        Some((step, f)) if changed => tracing::warn!(
            target = target, server = server, step = %step, reason = %f.reason, detail = %f.detail, durations = durations, "server is down"
        ),
        Some((step, f)) => tracing::info!(
            target = target, server = server, step = %step, reason = %f.reason, detail = %f.detail, durations = durations, "probe failed"
        ),
    }
}
