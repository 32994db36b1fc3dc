//! The watch's part of the record: its latest login and pings, which of their failures are
//! news, and the kept session's state (see `crate::watcher`).

use super::*;

/// Which failures of a watch report are news, to be counted: a kept session's rounds repeat
/// its login's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewFailures {
    /// A login's (a failed one, or the first round of a session): all of them.
    All,
    /// A lost session's: only the `session` step's.
    Session,
    /// A later round's: none.
    None,
}

/// The watch's part of a target's record, kept whole: a cycle that did not log in leaves it
/// to the kept session, which records into it as its rounds come.
#[derive(Clone, Debug, Default)]
pub struct WatchRecord {
    /// The latest login and pings (the kept session's, or a run's that logged in).
    pub latest: Option<Arc<WatchReport>>,
    /// The client path's failures, counted as the component flow's are (servers of its last
    /// answer that worked).
    pub failures: BTreeMap<FailureKey, u64>,
    /// A configured target's kept session, as its watcher last said.
    pub session: WatchSession,
}

/// A configured target's kept watch session (see `crate::watcher`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchSession {
    /// Sessions opened (logins that worked) since the record began.
    pub opened: u64,
    /// When the current one was opened; `None` while there is none.
    pub since: Option<SystemTime>,
}

impl WatchSession {
    /// Whether the target keeps a session, i.e. one was ever opened (a run's own login, as
    /// `/probe` makes, keeps none).
    pub fn kept(&self) -> bool {
        self.opened > 0
    }
}

impl TargetState {
    /// Takes `watch` as the watch's latest: its `new` failures counted (those of login servers
    /// that left the SRV answer forgotten) and what changed noted for the log.
    pub(super) fn observe_watch(&mut self, watch: Arc<WatchReport>, new: NewFailures) {
        let failures = watch.failures().filter(|(_, step, _)| match new {
            NewFailures::All => true,
            NewFailures::Session => *step == Step::Session,
            NewFailures::None => false,
        });
        count(&mut self.watch.failures, failures);
        let answer = watch
            .servers
            .iter()
            .map(|s| &s.server)
            .chain(&watch.untried);
        if let Some(current) = answered(watch.srv.as_ref(), answer) {
            let known =
                |server: &Option<Endpoint>| server.as_ref().is_none_or(|e| current.contains(e));
            self.watch
                .failures
                .retain(|(server, _, _), _| known(server));
        }
        (self.changed.login, self.changed.components) =
            Changed::watch_between(self.watch.latest.as_deref(), &watch);
        self.watch.latest = Some(watch);
    }

    /// A Callbridge could register and, where the target has a watch, every production
    /// component is registered: what the `probe` command's exit code says.
    pub fn healthy(&self) -> bool {
        let registered = self
            .watch
            .latest
            .as_deref()
            .is_none_or(WatchReport::all_registered);
        self.latest.as_ref().is_some_and(|report| report.success()) && registered
    }
}

impl Store {
    /// Records a round (or a login) of `target`'s kept watch session and the session's state;
    /// the record after it, `None` for a target a reload replaced.
    pub fn record_watch(
        &self,
        target: &Arc<Target>,
        watch: Arc<WatchReport>,
        new: NewFailures,
        session: WatchSession,
    ) -> Option<Arc<TargetState>> {
        let mut inner = self.inner.write().expect("store lock");
        let slot = inner
            .targets
            .iter_mut()
            .find(|s| Arc::ptr_eq(&s.target, target))?;
        // A round every few seconds per target: the state is changed in place unless a view
        // holds it (then copied). Either way it gets a new identity, which the views' text
        // cache goes by (`Arc::make_mut` moves a state only weakly held).
        let next = Arc::make_mut(slot);
        next.changed = Changed::default();
        next.observe_watch(watch, new);
        next.watch.session = session;
        Some(slot.clone())
    }
}
