//! The live status page: the signal flow of every target as a row of steps coloured by the
//! last result. Server-rendered, no scripts, no external assets; it refreshes itself.

use std::fmt::Write;
use std::time::SystemTime;

use crate::address::Protocol;
use crate::diagnosis::{
    days_left, describe, finding_hint, hint, identity, judged_earlier, ping_hint, tlsa_verdict,
    watch_hint,
};
use crate::probe::{
    Failure, Reason, Server, ServerReport, Staple, Step, StepRecord, TargetReport, WatchReport,
    WatchSubject,
};
use crate::store::{Outcome, Snapshot, TargetState, WatchSession};

const REFRESH_SECONDS: u32 = 10;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:1rem;background:#f6f7f9;color:#1d2330}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline;margin-bottom:1rem}
h1{font-size:1.3rem;margin:0} h2{font-size:1.1rem;margin:0 0 .3rem}
a{color:#1658b8}
.target{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:1rem;margin-bottom:1rem}
.meta{color:#5a6275;font-size:.9rem;margin-bottom:.6rem}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:4px;font-weight:600;color:#fff;font-size:.85rem}
.ok{background:#1e8e3e} .fail{background:#c5221f} .pending{background:#8a8f99}
.server{margin:.6rem 0;padding-top:.5rem;border-top:1px solid #e3e6eb}
.flow{display:flex;flex-wrap:wrap;gap:.35rem;align-items:center;margin:.35rem 0}
.step{border-radius:6px;padding:.3rem .5rem;font-size:.85rem;min-width:5.5rem;color:#fff}
.step small{display:block;opacity:.9}
.step.skipped{background:#d5d8de;color:#4a5060}
.arrow{color:#8a8f99}
.problem{background:#fdecea;border-left:4px solid #c5221f;padding:.5rem .7rem;margin:.4rem 0;font-size:.9rem}
.problem code,.finding code{white-space:pre-wrap;word-break:break-word}
.finding{background:#fff4e5;border-left:4px solid #e37400;padding:.5rem .7rem;margin:.4rem 0;font-size:.9rem}
.history{display:flex;gap:3px;margin:.4rem 0}
.history span{width:14px;height:14px;border-radius:3px;display:inline-block}
.flows{display:grid;grid-template-columns:repeat(auto-fit,minmax(26rem,1fr));gap:0 1.5rem}
h3{font-size:.95rem;margin:.6rem 0 .2rem}
";

/// Text safe to put in HTML, also inside attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Query-string safe form of a target name for links.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn step_title(step: Step) -> &'static str {
    match step {
        Step::Srv => "SRV",
        Step::Resolve => "addresses",
        Step::Connect => "TCP",
        Step::Tls => "TLS",
        Step::Cert => "certificate",
        Step::ClientCert => "client certificate verdict",
        Step::Stream => "stream",
        Step::Handshake => "handshake",
        Step::Starttls => "STARTTLS",
        Step::Sasl => "login",
        Step::Bind => "bind",
        Step::Session => "session",
    }
}

pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>cms-xmpp-exporter</title><style>{STYLE}</style></head><body>\
         <header><h1>cms-xmpp-exporter</h1><span>Callbridge → XMPP registration, as probed</span>\
         <a href=\"/metrics\">/metrics</a><span class=\"meta\">version {} · refreshes every {REFRESH_SECONDS}s</span></header>",
        env!("CARGO_PKG_VERSION")
    );
    if snapshot.targets.is_empty() {
        out.push_str("<p>No targets are configured.</p>");
    }
    for state in &snapshot.targets {
        render_target(&mut out, state);
    }
    out.push_str("</body></html>");
    out
}

/// The badge: what a success means for the target's protocol.
fn verdict_word(protocol: Protocol, success: bool) -> &'static str {
    match (protocol, success) {
        (Protocol::XmppComponent, true) => "registration OK",
        (Protocol::XmppComponent, false) => "registration FAILING",
        (Protocol::Tls, true) => "TLS link OK",
        (Protocol::Tls, false) => "TLS link FAILING",
    }
}

fn render_target(out: &mut String, state: &TargetState) {
    let target = &state.subject;
    let name = escape(&target.name);
    let (class, word) = match &state.latest {
        None => ("pending", "waiting for the first probe"),
        Some(r) if r.success() => ("ok", verdict_word(target.protocol, true)),
        Some(_) => ("fail", verdict_word(target.protocol, false)),
    };
    let _ = write!(
        out,
        "<section class=\"target\" data-target=\"{name}\"><h2>{name} <span class=\"badge {class}\">{word}</span></h2>\
         <div class=\"meta\">{} · every {}, timeout {}",
        escape(&identity(target)),
        humantime::format_duration(target.interval),
        humantime::format_duration(target.timeout)
    );
    if let Some(not_after) = target.client_cert_not_after {
        let _ = write!(
            out,
            " · client certificate {}",
            escape(&days_left(not_after))
        );
    }
    if let Some(report) = &state.latest {
        let _ = write!(
            out,
            " · last probe {} ago, took {} ms",
            ago(report.started),
            report.duration.as_millis()
        );
    }
    let _ = write!(
        out,
        " · <a href=\"/probe?target={}&amp;debug=true\">run now (debug)</a></div>",
        url_encode(&target.name)
    );
    render_history(out, state.history.iter());
    if let Some(report) = &state.latest {
        // The client path beside the component flow: can a Callbridge register, and are the
        // production ones registered.
        let _ = write!(
            out,
            "<div class=\"flows\"><div data-flow=\"component\"><h3>{}</h3>",
            match target.protocol {
                Protocol::XmppComponent => "registration probe",
                Protocol::Tls => "TLS link probe",
            }
        );
        render_flows(
            out,
            report.srv.as_ref(),
            (&report.servers, report.srv_skipped),
            &report.expected_steps,
        );
        render_dnssec(out, report);
        render_problems(out, report.failures(), |step, reason, server| {
            hint(step, reason, target, server)
        });
        for found in &state.findings {
            let earlier = judged_earlier(found, report)
                .map(|e| format!(" <em>({})</em>", escape(&e)))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<div class=\"finding\" data-finding=\"{kind}\"><strong>{kind} on {}</strong>: {}{earlier}<br>hint: <code>{}</code></div>",
                escape(&found.server.to_string()),
                escape(&found.finding.detail),
                escape(finding_hint(found.finding.kind)),
                kind = found.finding.kind.as_str()
            );
        }
        out.push_str("</div>");
        if let (Some(watch), Some(config)) = (&state.watch.latest, &target.watch) {
            render_watch(out, watch, config, &state.watch.session);
        }
        out.push_str("</div>");
    }
    out.push_str("</section>");
}

fn render_history<'a>(out: &mut String, history: impl ExactSizeIterator<Item = &'a Outcome>) {
    if history.len() == 0 {
        return;
    }
    out.push_str("<div class=\"history\" title=\"last probes, newest first\">");
    for outcome in history {
        let (class, what) = match (outcome.success, outcome.failure) {
            (true, _) => ("ok", "success".to_owned()),
            (false, Some((step, reason))) => ("fail", format!("failed at {step}: {reason}")),
            (false, None) => ("fail", "failed".to_owned()),
        };
        let _ = write!(
            out,
            "<span class=\"{class}\" title=\"{} ago: {}\"></span>",
            ago(outcome.at),
            escape(&what)
        );
    }
    out.push_str("</div>");
}

fn render_flows(
    out: &mut String,
    srv: Option<&StepRecord>,
    (servers, skipped): (&[ServerReport], usize),
    expected: &[Step],
) {
    if let Some(srv) = srv {
        out.push_str("<div class=\"flow\" data-server=\"\">");
        chip(out, Step::Srv, Some(srv));
        let _ = write!(
            out,
            "<span class=\"meta\">{} server(s) in the SRV answer",
            servers.len() + skipped
        );
        if skipped > 0 {
            let _ = write!(out, ", the last {skipped} not probed");
        }
        out.push_str("</span></div>");
    }
    for server in servers {
        render_server(out, server, expected);
    }
}

/// What DNSSEC said of each answer, for a target that validates.
fn render_dnssec(out: &mut String, report: &TargetReport) {
    let answers: Vec<String> = report
        .dnssec()
        .map(|(server, dnssec)| match server {
            None => format!("SRV answer {}", dnssec.state),
            Some(server) => format!("{server} {}", dnssec.state),
        })
        .collect();
    if answers.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<div class=\"meta\" data-dnssec>DNSSEC: {}",
        escape(&answers.join(", "))
    );
    if let Some(expires) = report.dnssec_expires() {
        let _ = write!(
            out,
            "; first signature expires {}",
            escape(&days_left(expires))
        );
    }
    out.push_str("</div>");
}

/// The monitoring user's login, then one line per production component.
fn render_watch(
    out: &mut String,
    report: &WatchReport,
    watch: &WatchSubject,
    session: &WatchSession,
) {
    let (class, word) = if report.success() {
        ("ok", "logged in")
    } else {
        ("fail", "login FAILING")
    };
    // A configured target's kept session: how long it has lived, how many there were.
    let kept = match (session.opened, session.since) {
        (0, _) => String::new(),
        (opened, Some(since)) => format!(
            " <small data-session=\"kept\">session of {} · {opened} opened</small>",
            ago(since)
        ),
        (opened, None) => {
            format!(" <small data-session=\"none\">no session now · {opened} opened</small>")
        }
    };
    let _ = write!(
        out,
        "<div data-flow=\"watch\"><h3>live registration: {} <span class=\"badge {class}\">{word}</span>{kept}</h3>",
        escape(&watch.jid.to_string())
    );
    render_flows(
        out,
        report.srv.as_ref(),
        (&report.servers, 0),
        &report.expected_steps,
    );
    for component in &watch.components {
        let ping = report.pings.iter().find(|p| &p.component == component);
        let (state, note) = match ping.map(|p| &p.result) {
            Some(Ok(round_trip)) => (
                "ok",
                format!("registered · {:.1} ms", round_trip.as_secs_f64() * 1000.0),
            ),
            Some(Err(f)) => ("fail", format!("NOT registered · {}", f.reason)),
            None => ("skipped", "not pinged: no login".to_owned()),
        };
        let _ = write!(
            out,
            "<div class=\"flow\" data-component=\"{name}\"><span class=\"step {state}\" data-state=\"{state}\">{name}<small>{}</small></span></div>",
            escape(&note),
            name = escape(component)
        );
    }
    render_problems(out, report.failures(), |step, reason, server| {
        watch_hint(step, reason, watch, server)
    });
    for ping in &report.pings {
        if let Err(failure) = &ping.result {
            problem(
                out,
                &escape(&ping.component),
                failure,
                &ping_hint(failure.reason, &ping.component),
            );
        }
    }
    out.push_str("</div>");
}

fn render_server(out: &mut String, server: &ServerReport, expected: &[Step]) {
    let label = escape(&server.server.to_string());
    let (class, word) = if server.up(expected) {
        ("ok", "up")
    } else {
        ("fail", "down")
    };
    let _ = write!(out, "<div class=\"server\"><strong>{label}</strong> <span class=\"badge {class}\">{word}</span>");
    if let Some(cert) = &server.cert {
        let _ = write!(
            out,
            " <span class=\"meta\">certificate {}",
            days_left(cert.not_after)
        );
        // An intermediate that expires before the leaf ends the chain first.
        if let Some(first) = cert
            .earliest_expiry()
            .filter(|c| c.not_after < cert.not_after)
        {
            let _ = write!(
                out,
                "; the chain {} (certificate {}: {})",
                days_left(first.not_after),
                first.position,
                escape(&first.subject)
            );
        }
        if let Some(Staple::Response(stapled)) = &cert.ocsp {
            let _ = write!(out, "; OCSP {}", stapled.status.as_str());
            if let Some(next) = stapled.next_update {
                let _ = write!(out, ", next update {}", days_left(next));
            }
        }
        out.push_str("</span>");
    }
    if let Some(verdict) = server.client_cert {
        let _ = write!(
            out,
            " <span class=\"meta\" data-client-cert>client certificate verdict: {verdict}</span>"
        );
    }
    if let Some(Err(failure)) = &server.tlsa {
        let _ = write!(
            out,
            " <span class=\"meta\" data-dane>DANE not judged: {}</span>",
            escape(&failure.detail)
        );
    }
    if let Some(dane) = &server.dane {
        let word = dane.verdict_text();
        let records: Vec<String> = dane
            .records
            .iter()
            .map(|(record, verdict)| format!("{record} {}", tlsa_verdict(verdict)))
            .collect();
        let _ = write!(
            out,
            " <span class=\"meta\" data-dane>DANE {word}: {}</span>",
            escape(&records.join("; "))
        );
    }
    let _ = write!(out, "<div class=\"flow\" data-server=\"{label}\">");
    for (i, step) in server.shown_steps(expected).enumerate() {
        if i > 0 {
            out.push_str("<span class=\"arrow\">→</span>");
        }
        chip(out, step, server.record(step));
    }
    out.push_str("</div></div>");
}

/// One step: green with its duration, red with its reason, grey when not reached.
fn chip(out: &mut String, step: Step, record: Option<&StepRecord>) {
    let (state, class, note) = match record {
        None => ("skipped", "skipped", "not reached".to_owned()),
        Some(r) => match &r.result {
            Ok(()) => (
                "ok",
                "ok",
                format!("{:.1} ms", r.duration.as_secs_f64() * 1000.0),
            ),
            Err(f) => ("fail", "fail", f.reason.as_str().to_owned()),
        },
    };
    let _ = write!(
        out,
        "<span class=\"step {class}\" data-step=\"{}\" data-state=\"{state}\">{} {state}<small>{}</small></span>",
        step.as_str(),
        step_title(step),
        escape(&note)
    );
}

fn render_problems<'a>(
    out: &mut String,
    failures: impl Iterator<Item = (Option<&'a Server>, Step, &'a Failure)>,
    hint: impl Fn(Step, Reason, Option<&Server>) -> String,
) {
    for (server, step, failure) in failures {
        let place = server
            .map(|s| format!(" on {}", escape(&s.to_string())))
            .unwrap_or_default();
        let what = format!("{}{place}", step_title(step));
        problem(out, &what, failure, &hint(step, failure.reason, server));
    }
}

/// One failure: where (already HTML), what it means, the detail and what to check.
fn problem(out: &mut String, place: &str, failure: &Failure, hint: &str) {
    let _ = write!(
        out,
        "<div class=\"problem\"><strong>{place}: {}</strong> ({}: {})<br>hint: <code>{}</code></div>",
        escape(describe(failure.reason)),
        failure.reason,
        escape(&failure.detail),
        escape(hint)
    );
}

fn ago(time: SystemTime) -> String {
    let seconds = SystemTime::now()
        .duration_since(time)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(url_encode("cms london/1"), "cms%20london%2F1");
    }
}
