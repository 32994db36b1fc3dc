//! A configured target's kept watch session: logged in once, then a round of pings every
//! `watch.ping_interval` over the same stream — each production component, and the server
//! itself when no component's answer showed the session alive. Each round gives a report at once, so a
//! component that leaves or hangs is seen within a round, not at the next login.

use std::time::SystemTime;

use tokio::time::Instant;

use super::client_flow::{self, Client, Session};
use super::{ping, Failure, Reason, Step, StepRecord, WatchReport};
use crate::config::Watch;

/// A logged-in session and what its login found.
pub struct KeptSession {
    conn: Session,
    /// The login: its SRV step and the servers it tried, without pings.
    login: WatchReport,
    /// Batches of pings sent so far (a round sends one, or two when it asks the server too):
    /// each batch's pings carry ids of their own.
    batches: u64,
    pub started: SystemTime,
}

/// How a round ended.
pub enum Round {
    /// The server answered its own ping: the components' answers hold.
    Alive(WatchReport),
    /// The session is gone (no answer, the stream closed or failed): the login's report with
    /// a failed `session` step, and no pings (the components' state is unknown).
    Lost(WatchReport),
}

/// Logs in inside `deadline`: the session, or the report of the login that failed.
pub async fn open(
    client: &Client<'_>,
    watch: &Watch,
    deadline: Instant,
) -> Result<KeptSession, WatchReport> {
    let started = SystemTime::now();
    match client_flow::log_in(client, watch, deadline).await {
        (login, Some(conn)) => Ok(KeptSession {
            conn,
            login,
            batches: 0,
            started,
        }),
        (login, None) => Err(login),
    }
}

impl KeptSession {
    /// Pings every component, waiting `watch.ping_timeout` for the answers. An answer about
    /// any of them (its own, or the server's for it) shows the session alive; a broken stream
    /// (the server's stream error or close, met since the last round) that it is lost, for that
    /// reason. When the components were only silent, the server is pinged alone: its answer
    /// means the components hang, its silence (or a broken stream) that the session is lost.
    pub async fn round(&mut self, watch: &Watch) -> Round {
        self.conn.renew_read_limit();
        let started = Instant::now();
        let pings = self.ping(&watch.components, watch).await;
        if pings.iter().any(|ping| answered(&ping.result)) {
            return Round::Alive(self.report(pings, None));
        }
        let broken = pings.iter().find_map(|ping| match &ping.result {
            Err(failure) if failure.reason != Reason::Timeout => Some(failure.clone()),
            _ => None,
        });
        if let Some(failure) = broken {
            return self.lost(started, failure.reason, &failure.detail);
        }
        let server = std::slice::from_ref(&watch.jid.domain);
        let server = self.ping(server, watch).await.pop().map(|ping| ping.result);
        match server {
            Some(Err(failure)) if !stanza_level(&failure) => self.lost(
                started,
                failure.reason,
                &format!(
                    "no component's answer, and none from the server to its own ping ({})",
                    failure.detail
                ),
            ),
            _ => Round::Alive(self.report(pings, None)),
        }
    }

    /// One batch of pings with ids of its own, answers awaited `watch.ping_timeout`.
    async fn ping(&mut self, jids: &[String], watch: &Watch) -> Vec<super::Ping> {
        self.batches += 1;
        let deadline = Instant::now() + watch.ping_timeout;
        ping::ping_all(&mut self.conn, jids, self.batches, deadline).await
    }

    /// The login's report with this round's pings, and the `session` step when it was lost.
    /// The round that found the session lost (since `started`) for `reason`: `detail`.
    fn lost(&self, started: Instant, reason: Reason, detail: &str) -> Round {
        let failure = Failure::new(reason, format!("the session was lost: {detail}"));
        Round::Lost(self.report(Vec::new(), Some((started, failure))))
    }

    fn report(&self, pings: Vec<super::Ping>, lost: Option<(Instant, Failure)>) -> WatchReport {
        let mut report = WatchReport {
            pings,
            ..self.login.clone()
        };
        if let (Some((started, failure)), Some(server)) = (lost, report.servers.last_mut()) {
            server.steps.push(StepRecord {
                step: Step::Session,
                duration: started.elapsed(),
                result: Err(failure),
            });
        }
        report
    }

    /// What its login found: the servers tried and the one that let the user in.
    pub fn login(&self) -> &WatchReport {
        &self.login
    }

    /// Ends the stream politely, inside `deadline`.
    pub async fn close(self, deadline: Instant) {
        self.conn.close(deadline).await;
    }
}

/// Whether an answer came over the session: the pinged JID's own, or one the server sent
/// about the ping.
fn answered(result: &Result<std::time::Duration, Failure>) -> bool {
    result.as_ref().err().is_none_or(stanza_level)
}

/// An answer the server sent about the ping (from someone else, or for a component not
/// routed): the session carried it, so it lives.
fn stanza_level(failure: &Failure) -> bool {
    matches!(
        failure.reason,
        Reason::WrongSender | Reason::ComponentUnavailable
    )
}
