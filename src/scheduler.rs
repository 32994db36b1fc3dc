//! One loop per target: run, wait for the next tick; and what becomes of every finished run
//! ([`record`]: into the store, and a log line for what changed). A cycle never overlaps the
//! next one of the same target, and targets never wait for each other (beyond the shared cap
//! on concurrent probes).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::config::Target;
use crate::probe::{Failure, Ping, Step, StepRecord, TargetReport, WatchReport};
use crate::runner::Runner;
use crate::store::{Changed, Store, TargetState};

/// How far apart, on average, the first probes of a fleet start.
const SPREAD_PER_TARGET: Duration = Duration::from_millis(20);

pub async fn run_target(runner: Arc<Runner>, first: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut next = Instant::now() + first;
    loop {
        tokio::select! {
            _ = sleep_until(next) => {}
            _ = shutdown.changed() => return,
        }
        next += runner.target().interval;
        // The run records itself (see `record`), as a run that `/probe` starts does.
        tokio::select! {
            _ = runner.run_shared() => {}
            _ = shutdown.changed() => return,
        };
        // A probe that overran (only possible with a slow close) starts the next one now.
        next = next.max(Instant::now());
    }
}

/// What becomes of every finished run of a configured target, whoever started it (the
/// schedule, `/probe?target=`): the store records it and the log says what changed; the
/// record after it (`None` when the run is not recorded). A run that met the exporter's own lack of file
/// descriptors blames no server and is discarded.
pub fn record(
    store: &Store,
    target: &Arc<Target>,
    report: Arc<TargetReport>,
) -> Option<Arc<TargetState>> {
    if report.exhausted_locally() {
        discard(store, target);
        return None;
    }
    let recorded = store.record(target, report)?;
    log_report(
        recorded.previous.as_deref(),
        &recorded.current,
        &recorded.state,
    );
    Some(recorded.state)
}

/// Counts and logs a run (or a kept watch's login) that met the exporter's own lack of file
/// descriptors: it blames no server, so it is not recorded.
pub fn discard(store: &Store, target: &Target) {
    store.cycle_discarded();
    tracing::error!(
        target = %target.name,
        "the exporter ran out of file descriptors or socket buffers during this probe: \
         the cycle is discarded and no server is blamed; raise the open-files limit or \
         lower max_concurrent_probes"
    );
}

/// When in its first interval a target is first probed: by a hash of its name, spread over
/// min(interval, 20 ms × targets), so that a fleet never fires as one burst and a lone target
/// starts at once. The cadence (`next += interval`) keeps the spread.
pub fn first_probe_offset(name: &str, targets: usize, interval: Duration) -> Duration {
    let spread = SPREAD_PER_TARGET
        .saturating_mul(u32::try_from(targets).unwrap_or(u32::MAX))
        .min(interval);
    let digest = Sha1::digest(name.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    spread.mul_f64(u64::from_be_bytes(head) as f64 / u64::MAX as f64)
}

/// At debug, one line per server and probe; at info or warn, what the store found changed
/// (`record.changed`): a server that comes up, goes down, fails for another reason, or leaves the SRV
/// answer; the watch's login and components likewise.
fn log_report(previous: Option<&TargetReport>, current: &TargetReport, record: &TargetState) {
    let target = current.subject.name.as_str();
    let changed = &record.changed;
    let skipped_before = previous.map_or(0, |p| p.srv_skipped);
    match (skipped_before, current.srv_skipped) {
        (0, 0) => {}
        (0, skipped) => tracing::warn!(
            target,
            probed = current.servers.len(),
            skipped,
            "the SRV answer holds more servers than dns.max_servers_per_target: only the first \
             (in RFC 2782 order) are probed"
        ),
        (_, 0) => tracing::info!(
            target,
            "the SRV answer fits dns.max_servers_per_target again"
        ),
        _ => {}
    }
    if let Some(srv) = &current.srv {
        let failure = srv.result.as_ref().err().map(|f| (srv.step, f));
        let news = changed.places.contains(&None);
        log_place(target, "", news, failure, std::slice::from_ref(srv));
    }
    for server in &current.servers {
        let endpoint = &server.server.endpoint;
        let news = changed.places.iter().any(|p| p.as_ref() == Some(endpoint));
        let label = endpoint.to_string();
        log_place(target, &label, news, server.failure(), &server.steps);
    }
    for server in &record.left {
        tracing::info!(target = target, server = %server, "server left the SRV answer");
    }
    if let Some(watch) = &current.watch {
        log_watch(target, watch, changed);
    }
}

/// The watch as the component flow is logged: at info or warn once per change — the login
/// fails or works again, a component is no longer registered or is again — and one line per
/// cycle at debug. While the login fails, the components are not logged: nothing was pinged.
pub(crate) fn log_watch(target: &str, current: &WatchReport, changed: &Changed) {
    let login = current.login_failure();
    match login {
        Some((server, Step::Session, f)) if changed.login => tracing::warn!(
            target, server = %server.map(ToString::to_string).unwrap_or_default(),
            reason = %f.reason, detail = %f.detail, "the monitoring user's session was lost"
        ),
        Some((server, step, f)) if changed.login => tracing::warn!(
            target, server = %server.map(ToString::to_string).unwrap_or_default(), step = %step,
            reason = %f.reason, detail = %f.detail, "the monitoring user cannot log in"
        ),
        None if changed.login => tracing::info!(target, "the monitoring user logs in"),
        _ => {}
    }
    let registered = current.pings.iter().filter(|p| p.registered()).count();
    tracing::debug!(
        target,
        logged_in = login.is_none(),
        registered,
        components = current.pings.len(),
        "watch cycle"
    );
    for Ping { component, result } in &current.pings {
        if !changed.components.contains(component) {
            continue;
        }
        match result {
            Ok(round_trip) => tracing::info!(
                target, component = %component, round_trip_ms = round_trip.as_secs_f64() * 1000.0,
                "component is registered"
            ),
            Err(f) => tracing::warn!(
                target, component = %component, reason = %f.reason, detail = %f.detail,
                "component is not registered"
            ),
        }
    }
}

/// One place (the SRV lookup, or a server): at info or warn when `changed`, else at debug.
fn log_place(
    target: &str,
    server: &str,
    changed: bool,
    now: Option<(Step, &Failure)>,
    steps: &[StepRecord],
) {
    let durations = steps.iter().fold(String::new(), |mut out, s| {
        let _ = write!(
            out,
            "{}={:.1}ms ",
            s.step,
            s.duration.as_secs_f64() * 1000.0
        );
        out
    });
    let durations = durations.trim_end();
    match now {
        None if changed => {
            tracing::info!(
                target = target,
                server = server,
                durations = durations,
                "server is up"
            )
        }
        None => tracing::debug!(
            target = target,
            server = server,
            durations = durations,
            "probe succeeded"
        ),
        Some((step, f)) if changed => tracing::warn!(
            target = target, server = server, step = %step, reason = %f.reason, detail = %f.detail,
            durations = durations, "server is down"
        ),
        Some((step, f)) => tracing::debug!(
            target = target, server = server, step = %step, reason = %f.reason, detail = %f.detail,
            durations = durations, "probe failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_probes_spread_deterministically_and_a_lone_target_starts_at_once() {
        let interval = Duration::from_secs(30);
        let lone = first_probe_offset("cms-london", 1, interval);
        assert!(lone <= SPREAD_PER_TARGET, "{lone:?}");
        assert_eq!(lone, first_probe_offset("cms-london", 1, interval));
        // 1,000 targets at 30 s: over the first 20 s.
        let fleet = |interval| -> Vec<Duration> {
            (0..1000)
                .map(|i| first_probe_offset(&format!("t{i}"), 1000, interval))
                .collect()
        };
        let spread = SPREAD_PER_TARGET * 1000;
        assert!(fleet(interval).iter().all(|o| *o <= spread));
        // At 10 s, over the whole interval: every tenth of it gets its share, roughly.
        let interval = Duration::from_secs(10);
        let offsets = fleet(interval);
        for tenth in 0..10 {
            let (from, to) = (interval * tenth / 10, interval * (tenth + 1) / 10);
            let here = offsets.iter().filter(|o| (from..to).contains(*o)).count();
            assert!(
                (60..=140).contains(&here),
                "{here} first probes in tenth {tenth}"
            );
        }
    }
}
