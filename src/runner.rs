//! A target's runs, whoever asks for them (the schedule, `/probe`, the `probe` command): one
//! at a time, the run in progress shared by everyone who asks, and every finished run turned
//! into the record the views read — the store's for a configured target, the runner's own for
//! a module's target or a one-off run.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Target;
use crate::probe::{TargetProbe, TargetReport};
use crate::store::TargetState;

/// Records each finished run of a configured target (the supervisor's: into the store, then
/// the log) and returns the record after it; `None` when the run is not recorded there (a
/// cycle the exporter's own limits spoilt, or a target a reload replaced).
pub type Recorder =
    Box<dyn Fn(&Arc<Target>, Arc<TargetReport>) -> Option<Arc<TargetState>> + Send + Sync>;

/// Runs one target's probe, one run at a time.
pub struct Runner {
    pub probe: Arc<TargetProbe>,
    /// The run in progress and the record after the last one.
    flight: Mutex<Flight>,
    /// Where every finished run goes; unset for a module's target and a one-off run, whose
    /// record is the runner's own (bounded like the store's: one report, a short history).
    recorder: OnceLock<Recorder>,
}

/// Records are shared, not copied: a configured target's last one is also the store's.
#[derive(Default)]
struct Flight {
    running: Option<watch::Receiver<Option<Arc<TargetState>>>>,
    last: Option<(Instant, Arc<TargetState>)>,
}

/// Ends the run in progress, however its task ends.
struct RunEnded(Arc<Runner>);

impl Drop for RunEnded {
    fn drop(&mut self) {
        self.0.flight().running = None;
    }
}

impl Runner {
    pub fn new(probe: Arc<TargetProbe>) -> Runner {
        Runner {
            probe,
            flight: Mutex::default(),
            recorder: OnceLock::new(),
        }
    }

    pub fn target(&self) -> &Arc<Target> {
        &self.probe.target
    }

    /// From now on every finished run goes to `recorder` (set once, when the loops start).
    pub fn record_with(&self, recorder: Recorder) {
        let _ = self.recorder.set(recorder);
    }

    fn flight(&self) -> MutexGuard<'_, Flight> {
        self.flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A run of this target: the one in progress, whoever started it, or else a new one; the
    /// record after it. The run is a task of its own, so a caller that gives up (an HTTP
    /// client gone) cancels nothing that others wait for.
    pub async fn run_shared(self: &Arc<Self>) -> Arc<TargetState> {
        let mut receiver = {
            let mut flight = self.flight();
            match &flight.running {
                Some(running) => running.clone(),
                None => {
                    let (done, running) = watch::channel(None);
                    flight.running = Some(running.clone());
                    let runner = self.clone();
                    tokio::spawn(async move {
                        // A run that panics must not leave the next ones waiting on it.
                        let ended = RunEnded(runner.clone());
                        let report = Arc::new(runner.probe.run_exclusive().await);
                        let (record, kept) = runner.record(report);
                        let mut flight = runner.flight();
                        if kept {
                            flight.last = Some((Instant::now(), record.clone()));
                        }
                        drop(flight);
                        drop(ended);
                        let _ = done.send(Some(record));
                    });
                    running
                }
            }
        };
        let record = receiver
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|finished| finished.clone());
        match record {
            Some(record) => record,
            // The run's task ended without a record (it panicked): run here instead.
            None => {
                let report = self.probe.run_exclusive().await;
                Arc::new(self.unrecorded().after(report, false))
            }
        }
    }

    /// A record of this target that no run went into yet.
    fn unrecorded(&self) -> TargetState {
        TargetState::new(self.probe.target.clone(), self.probe.subject.clone())
    }

    /// The record after `report`, and whether it is the one to go on from: the recorder's;
    /// for a run the recorder does not record (discarded, or of a target a reload replaced),
    /// a record of that run alone, kept by nobody; without a recorder, the runner's own,
    /// which goes on from the last one.
    fn record(&self, report: Arc<TargetReport>) -> (Arc<TargetState>, bool) {
        let alone = || self.unrecorded();
        let Some(recorder) = self.recorder.get() else {
            let last = self.flight().last.as_ref().map(|(_, state)| state.clone());
            let own = match last {
                Some(state) => state.after(report, false),
                None => alone().after(report, false),
            };
            return (Arc::new(own), true);
        };
        match recorder(&self.probe.target, report.clone()) {
            Some(record) => (record, true),
            None => (Arc::new(alone().after(report, false)), false),
        }
    }

    /// For a request from outside the schedule: the record after the last run when it
    /// finished less than `fresh_for` ago (with its age), else [`Runner::run_shared`].
    pub async fn run_or_recent(
        self: &Arc<Self>,
        fresh_for: Duration,
    ) -> (Arc<TargetState>, Option<Duration>) {
        let recent = {
            let flight = self.flight();
            flight
                .last
                .as_ref()
                .filter(|(at, _)| flight.running.is_none() && at.elapsed() < fresh_for)
                .map(|(at, record)| (record.clone(), at.elapsed()))
        };
        match recent {
            Some((record, age)) => (record, Some(age)),
            None => (self.run_shared().await, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Semaphore;

    use super::*;
    use crate::config::Config;
    use crate::probe::dns::Resolvers;

    /// A runner for a target whose one server refuses connections at once (port 1 of
    /// loopback): every run ends quickly, with a report.
    fn refused_target_runner() -> Arc<Runner> {
        let config = Config::parse(
            "dns:\n  nameservers: [\"127.0.0.1:9\"]\ntargets:\n  - name: t\n    domain: example.com\n    server_address: \"127.0.0.1:1\"\n    component: probe.example.com\n    handshake: false\n    timeout: 2s\n    tls:\n      mode: none\n",
            Path::new("test.yaml"),
        )
        .unwrap();
        let target = config.targets[0].clone();
        let resolvers = Resolvers::new(&config.dns, target.timeout, false).unwrap();
        Arc::new(Runner::new(Arc::new(TargetProbe::new(
            target,
            resolvers.lookups(false),
            config.dns.fan_out,
            None,
            None,
            Arc::default(),
            Arc::new(Semaphore::new(1)),
        ))))
    }

    #[tokio::test]
    async fn a_run_the_recorder_refuses_answers_alone_and_is_not_gone_on_from() {
        let runner = refused_target_runner();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        runner.record_with(Box::new(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            None
        }));
        let first = runner.run_shared().await;
        assert_eq!(first.probes, 1, "a record of that run alone");
        assert!(first.latest.is_some());
        // Not kept: a request right after runs again rather than answering with it.
        let (second, age) = runner.run_or_recent(Duration::from_secs(60)).await;
        assert_eq!((second.probes, age), (1, None));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // Kept by the recorder: the next request within the spacing gets that record.
        let kept = refused_target_runner();
        kept.record_with(Box::new(|target, report| {
            Some(Arc::new(
                TargetState::of(target.clone()).after(report, false),
            ))
        }));
        let recorded = kept.run_shared().await;
        let (again, age) = kept.run_or_recent(Duration::from_secs(60)).await;
        assert!(Arc::ptr_eq(&recorded, &again) && age.is_some());
    }

    #[tokio::test]
    async fn a_run_whose_task_panics_leaves_no_one_waiting() {
        let runner = refused_target_runner();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        runner.record_with(Box::new(move |target, report| {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("a recorder that fails once");
            }
            Some(Arc::new(
                TargetState::of(target.clone()).after(report, false),
            ))
        }));
        // The run's task panics: the caller runs the probe itself and gets a record.
        let record = tokio::time::timeout(Duration::from_secs(10), runner.run_shared())
            .await
            .expect("no one waits on a panicked run");
        assert_eq!(record.probes, 1);
        // And the next run is not stuck behind the one that panicked.
        let next = tokio::time::timeout(Duration::from_secs(10), runner.run_shared())
            .await
            .expect("the next run starts");
        assert_eq!(next.probes, 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
