//! What a report changed, for the log: the places whose verdict changed, the watch's login
//! and components.

use super::*;

/// The places whose verdict the latest report changed (a server new to the answer counts):
/// what the log says at info or warn, the rest at debug.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// The SRV lookup (`None`) and the servers whose verdict (up, or the failing step and
    /// reason) is not the report before's.
    pub places: Vec<Option<Endpoint>>,
    /// Whether the watch's login works where it did not, or fails otherwise.
    pub login: bool,
    /// Watched components whose answer (registered, or why not) changed.
    pub components: Vec<String>,
}

/// A verdict as the log compares them: up, or the failing step and reason.
type Verdict = Option<(Step, Reason)>;

fn verdict(failure: Option<(Step, &Failure)>) -> Verdict {
    failure.map(|(step, f)| (step, f.reason))
}

impl Changed {
    pub(super) fn between(before: Option<&TargetReport>, report: &TargetReport) -> Changed {
        let srv = |r: &TargetReport| {
            let srv = r.srv.as_ref()?;
            Some(verdict(srv.result.as_ref().err().map(|f| (srv.step, f))))
        };
        let server = |r: &TargetReport, endpoint: &Endpoint| {
            let found = r.servers.iter().find(|s| &s.server.endpoint == endpoint)?;
            Some(verdict(found.failure()))
        };
        let mut places = Vec::new();
        if let Some(now) = srv(report) {
            if before.and_then(srv) != Some(now) {
                places.push(None);
            }
        }
        for now in &report.servers {
            let endpoint = &now.server.endpoint;
            if before.and_then(|b| server(b, endpoint)) != Some(verdict(now.failure())) {
                places.push(Some(endpoint.clone()));
            }
        }
        Changed {
            places,
            ..Changed::default()
        }
    }

    /// Whether the login's verdict changed from `earlier`'s, and which components' answers.
    pub(super) fn watch_between(
        earlier: Option<&WatchReport>,
        watch: &WatchReport,
    ) -> (bool, Vec<String>) {
        let login_verdict =
            |w: &WatchReport| verdict(w.login_failure().map(|(_, step, f)| (step, f)));
        let login = earlier.map(login_verdict) != Some(login_verdict(watch));
        let answer = |w: &WatchReport, component: &str| {
            let ping = w.pings.iter().find(|p| p.component == component)?;
            Some(ping.result.as_ref().err().map(|f| f.reason))
        };
        let components = watch
            .pings
            .iter()
            .filter(|ping| {
                let now = ping.result.as_ref().err().map(|f| f.reason);
                earlier.and_then(|e| answer(e, &ping.component)) != Some(now)
            })
            .map(|ping| ping.component.clone())
            .collect();
        (login, components)
    }
}
