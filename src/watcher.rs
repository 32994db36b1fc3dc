//! A configured target's watch, kept: one logged-in session per target, a round of pings every
//! `watch.ping_interval`, each round recorded at once (so `/metrics` reads the newest answer,
//! not the last cycle's), the target's cycles no longer logging in. A session that is lost, or
//! a login that fails, is tried again after a jittered, growing wait: never a tight loop, so
//! that a server's brute-force limits cannot lock the monitoring user out. A reload keeps an
//! unchanged watch's session (handing it the new probe: DNS, TLS, a rotated password for the
//! next login); a watch removed or changed is closed politely.
//! Modules (`/probe?module=`) keep their per-request login: no session outlives a request.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};

use crate::config::Target;
use crate::probe::session::{self, Round};
use crate::probe::{TargetProbe, WatchReport};
use crate::scheduler::{discard, log_watch};
use crate::store::{NewFailures, Store, WatchSession};

/// How long a session may take to close politely when its watch is stopped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The kept sessions of the configured targets that have a watch, by target name.
#[derive(Default)]
pub struct Watchers {
    running: HashMap<String, Running>,
}

struct Running {
    probe: watch::Sender<Arc<TargetProbe>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Watchers {
    /// Keeps a session for each of `probes` that has a watch (each marked so before its
    /// cycles start: [`TargetProbe::keep_watch`]): the running one where its settings are
    /// unchanged (given the new probe), a new one otherwise. The others are returned, to be
    /// stopped.
    pub fn update(&mut self, probes: &[Arc<TargetProbe>], store: &Arc<Store>) -> Stopping {
        let mut before = std::mem::take(&mut self.running);
        for probe in probes.iter().filter(|p| p.target.watch.is_some()) {
            let name = &probe.target.name;
            let kept = before
                .remove(name)
                .filter(|r| r.probe.borrow().target.same_settings(&probe.target));
            let running = match kept {
                Some(running) => {
                    running.probe.send_replace(probe.clone());
                    running
                }
                None => start(probe.clone(), store.clone()),
            };
            self.running.insert(name.clone(), running);
        }
        Stopping(before.into_values().collect())
    }

    /// Every session, to be stopped.
    pub fn shutdown(&mut self) -> Stopping {
        Stopping(std::mem::take(&mut self.running).into_values().collect())
    }
}

/// Sessions whose watch is gone or changed.
#[must_use = "stop them"]
pub struct Stopping(Vec<Running>);

impl Stopping {
    /// Closes each session politely (within a grace), aborting one that does not end.
    pub async fn stop(self) {
        let tasks: Vec<JoinHandle<()>> = self
            .0
            .into_iter()
            .map(|r| {
                let _ = r.stop.send(true);
                r.task
            })
            .collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE * 2, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

fn start(probe: Arc<TargetProbe>, store: Arc<Store>) -> Running {
    let (probe_tx, probe_rx) = watch::channel(probe);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(keep(probe_rx, store, stopped));
    Running {
        probe: probe_tx,
        stop,
        task,
    }
}

/// One target's session, for as long as the watch is configured.
async fn keep(
    mut probe: watch::Receiver<Arc<TargetProbe>>,
    store: Arc<Store>,
    mut stop: watch::Receiver<bool>,
) {
    let mut state = WatchSession::default();
    // Logins in a row that gave no working session.
    let mut failures: u32 = 0;
    loop {
        let current = probe.borrow_and_update().clone();
        let Some(watch) = current.target.watch.clone() else {
            return;
        };
        let deadline = Instant::now() + current.target.timeout;
        let opened = tokio::select! {
            opened = async {
                // A login is a probe's worth of sockets and handshakes: it takes a slot.
                let _slot = current.slots().acquire().await;
                session::open(&current.client(), &watch, deadline).await
            } => opened,
            _ = stop.changed() => return,
        };
        match opened {
            Err(login) => {
                state.since = None;
                if !discarded(&store, &current.target, &login) {
                    record(&store, &current.target, login, NewFailures::All, &state);
                }
                failures = failures.saturating_add(1);
            }
            // Its rounds would repeat the login's report, own limits and all: closed, and
            // tried again like a login that failed.
            Ok(kept) if discarded(&store, &current.target, kept.login()) => {
                kept.close(Instant::now() + CLOSE_GRACE).await;
                failures = failures.saturating_add(1);
            }
            Ok(mut kept) => {
                state.opened += 1;
                state.since = Some(kept.started);
                let mut alive = false;
                loop {
                    let next = on_the_grid(Instant::now(), watch.ping_interval);
                    let round = tokio::select! {
                        round = kept.round(&watch) => round,
                        _ = stop.changed() => {
                            kept.close(Instant::now() + CLOSE_GRACE).await;
                            return;
                        }
                    };
                    // A reload may have replaced the probe (same settings): record under it.
                    let current = probe.borrow().clone();
                    // The first round carries the login's failures (servers tried before the
                    // one that let the user in); a later one only what it met itself.
                    let new = match (&round, alive) {
                        (_, false) => NewFailures::All,
                        (Round::Alive(_), true) => NewFailures::None,
                        (Round::Lost(_), true) => NewFailures::Session,
                    };
                    match round {
                        Round::Alive(report) => {
                            alive = true;
                            record(&store, &current.target, report, new, &state);
                        }
                        Round::Lost(report) => {
                            state.since = None;
                            record(&store, &current.target, report, new, &state);
                            break;
                        }
                    }
                    tokio::select! {
                        _ = sleep_until(next) => {}
                        _ = stop.changed() => {
                            kept.close(Instant::now() + CLOSE_GRACE).await;
                            return;
                        }
                    }
                }
                failures = if alive { 0 } else { failures.saturating_add(1) };
            }
        }
        let wait = backoff(failures, watch.ping_interval, current.target.interval);
        tokio::select! {
            _ = sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether a login met the exporter's own lack of file descriptors (on any server it tried):
/// it blames no server, so it is discarded, as a cycle would be, and counted.
fn discarded(store: &Store, target: &Target, login: &WatchReport) -> bool {
    let exhausted = login.exhausted_locally();
    if exhausted {
        discard(store, target);
    }
    exhausted
}

/// Records a login or a round and logs what changed.
fn record(
    store: &Store,
    target: &Arc<Target>,
    report: WatchReport,
    new: NewFailures,
    session: &WatchSession,
) {
    let report = Arc::new(report);
    let recorded = store.record_watch(target, report.clone(), new, session.clone());
    if let Some(state) = recorded {
        log_watch(&target.name, &report, &state.changed);
    }
}

/// Where every session's rounds start: multiples of the ping interval since the first
/// session's first round.
static GRID: OnceLock<Instant> = OnceLock::new();

/// When the round that starts at `start` is followed: the tick of the sessions' common grid at
/// or before `start + interval`. The runtime wakes once a tick for every session that pings at
/// that interval, rather than once per session at times of its own, and the wake-ups, not the
/// stanzas, are most of what a round costs. Never later than one interval, so the grid delays
/// no round; a session's second round may come early, once (the first session's grid starts
/// with its first round).
fn on_the_grid(start: Instant, interval: Duration) -> Instant {
    let epoch = *GRID.get_or_init(|| start);
    let due = start + interval;
    let since = due.saturating_duration_since(epoch).as_nanos();
    let ticks = since / interval.as_nanos().max(1);
    let offset = u64::try_from(ticks * interval.as_nanos()).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(offset)
}

/// The wait before the next login: a session that worked is re-established after about one
/// ping interval; each login in a row that fails doubles the wait, up to the target's
/// interval. ±25 % jitter, so that a fleet that lost its server does not come back as one.
fn backoff(failures: u32, ping_interval: Duration, interval: Duration) -> Duration {
    let base = ping_interval
        .saturating_mul(1u32 << failures.min(16))
        .min(interval.max(ping_interval));
    base.mul_f64(0.75 + 0.5 * unit_random())
}

/// A number in [0, 1) from the system's randomness (0.5 when it has none).
fn unit_random() -> f64 {
    let mut bytes = [0u8; 4];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Failure, Reason, Step, StepRecord, Subject};

    /// A login whose connect met the exporter's own limit on open files (EMFILE), then one
    /// refused by the server: only the second is the server's doing.
    #[test]
    fn a_login_that_met_the_exporters_own_limits_is_discarded_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let target = crate::fixtures::watching(dir.path());
        let store = Store::default();
        store.set_targets(&[(target.clone(), Arc::new(Subject::of(&target)))], false);
        let login = |reason| {
            let mut server = crate::fixtures::login("xmpp1.example.com", &[]);
            server.steps = vec![StepRecord {
                step: Step::Connect,
                duration: Duration::ZERO,
                result: Err(Failure::new(reason, "connect")),
            }];
            WatchReport {
                servers: vec![server],
                pings: Vec::new(),
                ..(*crate::fixtures::watch_report(Vec::new(), Vec::new())).clone()
            }
        };
        assert!(discarded(&store, &target, &login(Reason::LocalResources)));
        let snapshot = store.snapshot();
        assert_eq!(snapshot.exporter.discarded_cycles, 1);
        assert!(snapshot.targets[0].watch.latest.is_none());
        let refused = login(Reason::Refused);
        assert!(!discarded(&store, &target, &refused));
        let session = WatchSession::default();
        record(&store, &target, refused, NewFailures::All, &session);
        let snapshot = store.snapshot();
        assert_eq!(snapshot.exporter.discarded_cycles, 1);
        assert_eq!(snapshot.targets[0].watch.failures.len(), 1);
    }

    #[test]
    fn the_wait_grows_with_failed_logins_up_to_the_interval_with_jitter() {
        let (ping, interval) = (Duration::from_secs(2), Duration::from_secs(30));
        for _ in 0..100 {
            let first = backoff(0, ping, interval);
            assert!((1.5..=2.5).contains(&first.as_secs_f64()), "{first:?}");
            let third = backoff(2, ping, interval);
            assert!((6.0..=10.0).contains(&third.as_secs_f64()), "{third:?}");
            let many = backoff(40, ping, interval);
            assert!((22.5..=37.5).contains(&many.as_secs_f64()), "{many:?}");
        }
    }

    #[test]
    fn every_sessions_rounds_fall_on_one_grid_never_later_than_due() {
        let interval = Duration::from_secs(2);
        // A tick of the grid (whichever test set it up first).
        let tick = on_the_grid(Instant::now(), interval);
        for (after_ms, ticks) in [
            (0, 1),
            (1, 1),
            (1_999, 1),
            (2_000, 2),
            (3_999, 2),
            (123_456, 62),
        ] {
            let start = tick + Duration::from_millis(after_ms);
            assert_eq!(
                on_the_grid(start, interval),
                tick + interval * ticks,
                "a round started {after_ms} ms after a tick"
            );
        }
        let other = Duration::from_millis(1_500);
        let due = tick + Duration::from_secs(7) + other;
        let at = on_the_grid(tick + Duration::from_secs(7), other);
        assert!(at <= due && at + other > due);
    }
}
