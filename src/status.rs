//! The latest report and a short history per target, for the status page and readiness.

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;
use std::time::SystemTime;

use crate::diagnosis::findings;
use crate::probe::{Reason, Step, TargetReport};

/// How many past outcomes the status page shows per target.
pub const HISTORY: usize = 10;

/// One past probe cycle, reduced to what a person scans for.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub at: SystemTime,
    pub success: bool,
    /// The first failing server's step and reason, if any server failed.
    pub failure: Option<(Step, Reason)>,
}

#[derive(Clone, Debug)]
pub struct TargetStatus {
    pub name: String,
    pub latest: Option<TargetReport>,
    /// Newest first.
    pub history: Vec<Outcome>,
}

#[derive(Default)]
pub struct Status {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// In configuration order.
    names: Vec<String>,
    latest: HashMap<String, TargetReport>,
    history: HashMap<String, VecDeque<Outcome>>,
}

impl Status {
    /// A (re)loaded configuration: targets no longer configured are forgotten, and readiness
    /// waits for a first cycle of every target again.
    pub fn set_targets(&self, names: Vec<String>) {
        let mut inner = self.inner.write().expect("status lock");
        inner.latest.clear();
        inner.history.retain(|name, _| names.contains(name));
        inner.names = names;
    }

    pub fn record(&self, report: &TargetReport) {
        let mut inner = self.inner.write().expect("status lock");
        if !inner.names.contains(&report.target) {
            return;
        }
        let failure = findings(report).first().map(|f| (f.step, f.reason));
        let history = inner.history.entry(report.target.clone()).or_default();
        history.push_front(Outcome {
            at: report.started,
            success: report.success(),
            failure,
        });
        history.truncate(HISTORY);
        inner.latest.insert(report.target.clone(), report.clone());
    }

    /// Every configured target has finished a probe cycle since the configuration loaded.
    pub fn ready(&self) -> bool {
        let inner = self.inner.read().expect("status lock");
        inner
            .names
            .iter()
            .all(|name| inner.latest.contains_key(name))
    }

    pub fn snapshot(&self) -> Vec<TargetStatus> {
        let inner = self.inner.read().expect("status lock");
        inner
            .names
            .iter()
            .map(|name| TargetStatus {
                name: name.clone(),
                latest: inner.latest.get(name).cloned(),
                history: inner
                    .history
                    .get(name)
                    .map(|h| h.iter().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect()
    }
}
