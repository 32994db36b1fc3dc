//! A probe report for people: plain words for each reason, a concrete hint for what to check
//! or run (`hints`), and the report as text (here: the `probe` command, the debug page) or
//! JSON (`json`: scripts).

mod hints;
mod json;
#[cfg(test)]
mod tests;

pub use hints::{describe, finding_hint, hint, ping_hint, watch_hint};
pub use json::{Diagnosis, SCHEMA};

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::address::{Protocol, CMS_COMPONENT_PORT};
use crate::probe::cert::rfc3339;
use crate::probe::dns::dane::TlsaVerdict;
use crate::probe::{
    unix_seconds, Dnssec, Endpoint, Failure, FindingKind, OcspStatus, Origin, Reason, Server,
    ServerReport, SignedAnswer, Staple, Step, StepRecord, Subject, TargetReport, WatchReport,
    WatchSubject,
};
use crate::store::{ServerFinding, TargetState, WatchSession};

/// Styling for a terminal, or none when piped.
#[derive(Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    pub fn new(colour: bool) -> Self {
        Style { colour }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    fn bad(&self, text: &str) -> String {
        self.paint("1;31", text)
    }

    fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
}

fn millis(duration: Duration) -> String {
    format!("{:>8.1} ms", duration.as_secs_f64() * 1000.0)
}

fn step_line(
    out: &mut String,
    style: Style,
    record: Option<&StepRecord>,
    step: Step,
    summary: &str,
) {
    let _ = match record {
        None => writeln!(
            out,
            "  {:<11} {:>11}  {}",
            step.as_str(),
            "",
            style.dim("not reached")
        ),
        Some(StepRecord {
            result: Ok(()),
            duration,
            ..
        }) => writeln!(
            out,
            "  {:<11} {}  {}  {summary}",
            step.as_str(),
            millis(*duration),
            style.good("ok  ")
        ),
        Some(StepRecord {
            result: Err(f),
            duration,
            ..
        }) => writeln!(
            out,
            "  {:<11} {}  {}  {}: {}",
            step.as_str(),
            millis(*duration),
            style.bad("FAIL"),
            f.reason,
            f.detail
        ),
    };
}

fn detail_line(out: &mut String, text: &str) {
    let _ = writeln!(out, "  {:<11} {:>11}        {text}", "", "");
}

/// Who a target is about, in a few words: the XMPP domain and component, or the TLS link.
pub fn identity(target: &Subject) -> String {
    match (target.protocol, target.domain.as_str()) {
        (Protocol::XmppComponent, domain) => {
            format!("domain {domain}, component {}", target.component)
        }
        (Protocol::Tls, "") => "TLS link".to_owned(),
        (Protocol::Tls, domain) => format!("TLS link, domain {domain}"),
    }
}

/// The record's latest report as a person reads it: each step in order, with its result and
/// what it found.
pub fn render_text(record: &TargetState, style: Style) -> String {
    let target = &*record.subject;
    let mut out = String::new();
    let _ = writeln!(out, "target {} ({})", target.name, identity(target));
    if let Some(not_after) = target.client_cert_not_after {
        let _ = writeln!(
            out,
            "client certificate (tls.client_cert_file) valid until {} ({})",
            rfc3339(not_after),
            days_left(not_after)
        );
    }
    let Some(report) = record.latest.as_deref() else {
        let _ = writeln!(out, "no run has finished yet");
        return out;
    };
    if let Some(srv) = &report.srv {
        let mut summary = format!(
            "_xmpp-component._tcp.{}: {} server(s)",
            target.domain,
            report.servers.len()
        );
        if report.srv_skipped > 0 {
            summary.push_str(&format!(
                ", {} more not probed (dns.max_servers_per_target)",
                report.srv_skipped
            ));
        }
        step_line(&mut out, style, Some(srv), Step::Srv, &summary);
        if let Some(dnssec) = report.srv_dnssec {
            detail_line(&mut out, &dnssec_line(dnssec));
        }
        for server in &report.servers {
            if let Origin::Srv {
                priority,
                weight,
                preferred,
            } = server.server.origin
            {
                let first = if preferred { " (tried first)" } else { "" };
                detail_line(
                    &mut out,
                    &format!(
                        "{}  priority {priority} weight {weight}{first}",
                        server.server
                    ),
                );
            }
        }
    }
    for server in &report.servers {
        render_server(&mut out, server, &report.expected_steps, style);
    }
    if let Some((answer, expires)) = report.first_expiring_answer() {
        let answer = match answer {
            SignedAnswer::Srv => format!("SRV _xmpp-component._tcp.{}", target.domain),
            SignedAnswer::Addresses(server) => format!("A/AAAA {}", server.host()),
            SignedAnswer::Tlsa(name) => format!("TLSA {name}"),
        };
        let _ = writeln!(
            out,
            "first DNSSEC signature to expire: {answer}, {} ({})",
            rfc3339(expires),
            days_left(expires)
        );
    }
    let up = report
        .servers
        .iter()
        .filter(|s| s.up(&report.expected_steps))
        .count();
    let _ = writeln!(out);
    if report.success() {
        let _ = writeln!(
            out,
            "{} {} ({up} of {} server(s) completed every step) in {} ms",
            style.good("RESULT: OK"),
            match target.protocol {
                Protocol::XmppComponent => "a Callbridge could register",
                Protocol::Tls => "a Callbridge could connect",
            },
            report.servers.len(),
            report.duration.as_millis()
        );
    } else {
        let _ = writeln!(
            out,
            "{} no server completed every step",
            style.bad("RESULT: FAILED")
        );
    }
    explain_failures(&mut out, report.failures(), |step, reason, server| {
        hint(step, reason, target, server)
    });
    for found in &record.findings {
        let _ = writeln!(
            out,
            "  {} {} on {}: {}",
            style.warn("finding"),
            found.finding.kind.as_str(),
            found.server,
            found.finding.detail
        );
        if let Some(earlier) = judged_earlier(found, report) {
            let _ = writeln!(out, "    ({earlier})");
        }
        let _ = writeln!(out, "    hint: {}", finding_hint(found.finding.kind));
    }
    if let (Some(report), Some(watch)) = (&record.watch.latest, &target.watch) {
        render_watch(&mut out, report, watch, &record.watch.session, style);
    }
    out
}

/// Which run a finding judges, when it is not `report`'s: that run did not get as far.
pub fn judged_earlier(found: &ServerFinding, report: &TargetReport) -> Option<String> {
    (found.seen < report.started).then(|| {
        format!(
            "as the run at {} saw it: the last run did not get that far",
            rfc3339(unix_seconds(found.seen) as i64)
        )
    })
}

/// Each failed step: where, what it means, the detail and what to check.
fn explain_failures<'a>(
    out: &mut String,
    failures: impl Iterator<Item = (Option<&'a Server>, Step, &'a Failure)>,
    hint: impl Fn(Step, Reason, Option<&Server>) -> String,
) {
    for (server, step, failure) in failures {
        let place = server.map(|s| format!(" on {s}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {step}{place}: {} ({}: {})",
            describe(failure.reason),
            failure.reason,
            failure.detail
        );
        let _ = writeln!(out, "    hint: {}", hint(step, failure.reason, server));
    }
}

/// The client path: the login, then each component's answer.
fn render_watch(
    out: &mut String,
    report: &WatchReport,
    watch: &WatchSubject,
    session: &WatchSession,
    style: Style,
) {
    let _ = writeln!(
        out,
        "\nwatch: {} logs in ({}) and pings {} component(s)",
        watch.jid,
        watch.tls_mode.as_str(),
        watch.components.len()
    );
    // A configured target's kept session (a run's own login has none).
    if session.kept() {
        let _ = match session.since {
            Some(since) => writeln!(
                out,
                "  session kept since {} ({} opened since the exporter started)",
                rfc3339(unix_seconds(since) as i64),
                session.opened
            ),
            None => writeln!(
                out,
                "  {} ({} opened since the exporter started)",
                style.bad("no session now: logging in again"),
                session.opened
            ),
        };
    }
    if let Some(srv) = &report.srv {
        let summary = format!(
            "{}.{}: {} server(s)",
            watch.tls_mode.srv_service(),
            watch.jid.domain,
            report.servers.len()
        );
        step_line(out, style, Some(srv), Step::Srv, &summary);
    }
    for server in &report.servers {
        render_server(out, server, &report.expected_steps, style);
    }
    for ping in &report.pings {
        let _ = match &ping.result {
            Ok(round_trip) => writeln!(
                out,
                "  {} {}  registered, answered in {:.1} ms",
                style.good("ok  "),
                ping.component,
                round_trip.as_secs_f64() * 1000.0
            ),
            Err(f) => writeln!(
                out,
                "  {} {}  NOT registered: {}: {}",
                style.bad("FAIL"),
                ping.component,
                f.reason,
                f.detail
            ),
        };
    }
    let _ = if !report.success() {
        writeln!(
            out,
            "{} the monitoring user could not log in",
            style.bad("WATCH: FAILED")
        )
    } else if report.all_registered() {
        writeln!(
            out,
            "{} every component is registered",
            style.good("WATCH: OK")
        )
    } else {
        let missing = report.pings.iter().filter(|p| !p.registered()).count();
        writeln!(
            out,
            "{} {missing} component(s) not registered",
            style.bad("WATCH: FAILED")
        )
    };
    explain_failures(out, report.failures(), |step, reason, server| {
        watch_hint(step, reason, watch, server)
    });
    for ping in &report.pings {
        if let Err(f) = &ping.result {
            let _ = writeln!(
                out,
                "  {}: {} ({})",
                ping.component,
                describe(f.reason),
                f.reason
            );
            let _ = writeln!(out, "    hint: {}", ping_hint(f.reason, &ping.component));
        }
    }
}

fn render_server(out: &mut String, server: &ServerReport, expected: &[Step], style: Style) {
    let state = if server.up(expected) {
        style.good("up")
    } else {
        style.bad("down")
    };
    let _ = writeln!(out, "server {} {state}", server.server);
    for step in server.shown_steps(expected) {
        let summary = match step {
            Step::Resolve => join(server.addresses.iter()),
            Step::Connect => server.address.map(|a| a.to_string()).unwrap_or_default(),
            Step::Tls => server
                .tls
                .map(|t| format!("{} {}", t.version_name(), t.cipher_name()))
                .unwrap_or_default(),
            Step::Stream => server
                .stream_id
                .as_ref()
                .map(|id| format!("stream id {id}"))
                .unwrap_or_default(),
            Step::ClientCert => server
                .client_cert
                .map(|verdict| verdict.to_string())
                .unwrap_or_default(),
            Step::Handshake => "accepted".to_owned(),
            Step::Bind => server
                .stream_id
                .as_ref()
                .map(|jid| format!("bound {jid}"))
                .unwrap_or_default(),
            Step::Cert | Step::Srv | Step::Starttls | Step::Sasl | Step::Session => String::new(),
        };
        step_line(out, style, server.record(step), step, &summary);
        if step == Step::Resolve {
            render_resolved_dnssec(out, server);
        }
        if step == Step::Cert {
            render_cert(out, server, style);
            render_dane(out, server);
        }
        if let Some(legacy) = server.legacy_tls.as_ref().filter(|_| step == Step::Tls) {
            detail_line(out, &format!("a TLS 1.1 hello: {legacy}"));
        }
    }
}

/// What DNSSEC said of a server's addresses and TLSA records.
fn render_resolved_dnssec(out: &mut String, server: &ServerReport) {
    if let Some(dnssec) = server.dnssec {
        detail_line(out, &dnssec_line(dnssec));
    }
    match &server.tlsa {
        Some(Ok(tlsa)) => detail_line(
            out,
            &format!(
                "TLSA {}: {} record(s), {}",
                tlsa.name,
                tlsa.records.len(),
                dnssec_line(tlsa.dnssec)
            ),
        ),
        Some(Err(failure)) => detail_line(out, &format!("{} (DANE not judged)", failure.detail)),
        None => {}
    }
}

/// What DNSSEC said of an answer, and when its first signature expires.
pub fn dnssec_line(dnssec: Dnssec) -> String {
    match dnssec.expires {
        Some(expires) => format!(
            "DNSSEC {}, first signature expires {} ({})",
            dnssec.state,
            rfc3339(expires),
            days_left(expires)
        ),
        None => format!("DNSSEC {}", dnssec.state),
    }
}

/// Each TLSA record and the certificate it matched.
fn render_dane(out: &mut String, server: &ServerReport) {
    let Some(dane) = &server.dane else { return };
    let word = dane.verdict_text();
    detail_line(out, &format!("DANE    {word}: TLSA {}", dane.name));
    for (record, verdict) in &dane.records {
        detail_line(out, &format!("  TLSA {record}: {}", tlsa_verdict(verdict)));
    }
}

/// What a TLSA record matched, in words.
pub fn tlsa_verdict(verdict: &TlsaVerdict) -> String {
    match verdict {
        TlsaVerdict::Matched(0) => "matches certificate 0 (the leaf)".to_owned(),
        TlsaVerdict::Matched(position) => format!("matches certificate {position}"),
        TlsaVerdict::NotMatched => "matches nothing".to_owned(),
        TlsaVerdict::Unchained(position) => format!(
            "matches certificate {position}, but the leaf does not chain to it under the \
             server's name"
        ),
        TlsaVerdict::Unusable(why) => format!("unusable: {why}"),
    }
}

fn render_cert(out: &mut String, server: &ServerReport, style: Style) {
    let Some(cert) = &server.cert else { return };
    detail_line(out, &format!("subject {}", cert.subject));
    detail_line(
        out,
        &format!(
            "issuer  {} ({})",
            cert.issuer,
            if cert.trusted {
                "trusted"
            } else {
                "NOT trusted"
            }
        ),
    );
    detail_line(
        out,
        &format!(
            "valid to {} ({})",
            rfc3339(cert.not_after),
            days_left(cert.not_after)
        ),
    );
    detail_line(out, &format!("serial  {}", cert.serial));
    detail_line(out, &format!("sha256  {}", cert.sha256));
    detail_line(out, &format!("SANs    {}", cert.sans.join(", ")));
    for coverage in &cert.coverage {
        let mark = if coverage.covered {
            style.good("covered")
        } else {
            style.bad("MISSING")
        };
        detail_line(
            out,
            &format!("{:<7} {} {mark}", coverage.role.as_str(), coverage.name),
        );
    }
    let ocsp = match &cert.ocsp {
        None => "not stapled".to_owned(),
        Some(Staple::Invalid(why)) => style.bad(&format!("INVALID: {why}")),
        Some(Staple::Response(stapled)) => {
            let status = match stapled.status {
                OcspStatus::Revoked { at } => style.bad(&format!("REVOKED at {}", rfc3339(at))),
                other => other.as_str().to_owned(),
            };
            match stapled.next_update {
                Some(next) => format!(
                    "{status}, next update {} ({})",
                    rfc3339(next),
                    days_left(next)
                ),
                None => format!("{status}, no next update"),
            }
        }
    };
    detail_line(out, &format!("OCSP    {ocsp}"));
    // Every certificate sent, and which one ends the chain's validity.
    let first = cert.earliest_expiry().map(|c| c.position);
    for link in &cert.chain {
        let mut ends = if Some(link.position) == first && cert.chain.len() > 1 {
            style.bad(" (expires first)")
        } else {
            String::new()
        };
        if !link.sent {
            ends.push_str(" (trust anchor, not sent)");
        } else if !link.verified && cert.trusted {
            ends.push_str(" (not in the verified path)");
        }
        detail_line(
            out,
            &format!(
                "chain {} {}, valid to {} ({}), {}, {}{ends}",
                link.position,
                link.subject,
                rfc3339(link.not_after),
                days_left(link.not_after),
                link.key,
                link.signature
            ),
        );
    }
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// "expires in N days" or "EXPIRED N days ago".
pub fn days_left(not_after: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = (not_after - now) / 86_400;
    if not_after < now {
        format!("EXPIRED {} days ago", -days)
    } else {
        format!("expires in {days} days")
    }
}
