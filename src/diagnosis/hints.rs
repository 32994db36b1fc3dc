//! Plain words for each reason and finding, and a concrete hint for what to check or run,
//! naming the record, name or command involved.

use super::*;

/// What a reason means, in words an on-call engineer who has never seen CMS understands.
pub fn describe(reason: Reason) -> &'static str {
    match reason {
        Reason::Nxdomain => "the DNS name does not exist",
        Reason::NoRecords => "the DNS name exists but has no such records",
        Reason::Servfail => "the DNS server failed to answer (SERVFAIL)",
        Reason::DnsError => "the DNS lookup failed",
        Reason::DnsTimeout => "the DNS server did not answer in time",
        Reason::DnssecBogus => {
            "the DNS answer fails DNSSEC validation: a validating resolver answers SERVFAIL"
        }
        Reason::SrvUnavailable => "the SRV record says the service is not offered",
        Reason::Refused => "nothing accepts connections on that port",
        Reason::Unreachable => "the server cannot be reached over the network",
        Reason::Timeout => "the server did not answer in time",
        Reason::TlsHandshake => "the TLS handshake failed",
        Reason::TlsVersion => "the server offers no TLS version or cipher a Callbridge accepts",
        Reason::ClientCertRejected => {
            "the server refused the client certificate (or asked for one and got none)"
        }
        Reason::CertUntrusted => "the server certificate is not trusted",
        Reason::CertExpired => "the server certificate has expired",
        Reason::CertNotYetValid => "the server certificate is not valid yet",
        Reason::CertNameMismatch => {
            "the server certificate does not name the XMPP domain and the server"
        }
        Reason::CertWeak => {
            "the certificate chain uses a key or signature too weak to verify (RSA under 2048 bits, SHA-1)"
        }
        Reason::NotAuthorized => {
            "the XMPP server rejected the credentials (the component's shared secret, or the monitoring user's password)"
        }
        Reason::HostUnknown => "the XMPP server does not know this component name",
        Reason::Conflict => "another connection already holds this component name",
        Reason::ImproperAddressing => {
            "the XMPP server found no usable component name in the request"
        }
        Reason::InvalidNamespace => "the server does not speak the component protocol on this port",
        Reason::StreamError => "the XMPP server ended the stream with an error",
        Reason::Closed => "the server closed the connection",
        Reason::Protocol => "the server's answer is not valid XMPP component protocol",
        Reason::Oversized => "the server sent far more data than a component handshake needs",
        Reason::StarttlsUnavailable => "the server offers no STARTTLS on its client port, or refuses it",
        Reason::SaslMechanism => {
            "the server offers no login mechanism the probe accepts (SCRAM, or PLAIN inside TLS)"
        }
        Reason::SaslError => "the login failed for another reason than the password",
        Reason::SaslIterations => {
            "the XMPP server asks the login for more SCRAM rounds than watch.max_scram_iterations allows"
        }
        Reason::BindError => "the server gave the monitoring user no session",
        Reason::ComponentUnavailable => {
            "the XMPP server holds no connection from this component: it is not registered"
        }
        Reason::WrongSender => {
            "the ping was answered by someone other than the component: nothing says it is registered"
        }
        Reason::LocalResources => {
            "the exporter itself ran out of file descriptors or socket buffers: raise its \
             open-files limit or lower max_concurrent_probes"
        }
    }
}

/// What to do about a finding.
pub fn finding_hint(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::ChainIncomplete => {
            "Install the full chain on the XMPP server: the leaf, then each intermediate up to (not \
             including) the root. A Callbridge that trusts only the root fails. Check: openssl \
             s_client -connect HOST:PORT -showcerts </dev/null"
        }
        FindingKind::ChainOrder => {
            "Concatenate the chain file in issuing order: the leaf, then the certificate that issued \
             it, and so on up."
        }
        FindingKind::SelfSigned => {
            "Have the certificate issued by a CA the Callbridges trust: a pinned self-signed \
             certificate must be replaced on every Callbridge at each renewal."
        }
        FindingKind::LegacyTls => {
            "Disable TLS 1.0 and 1.1 on the XMPP server (Prosody: ssl.protocol = \"tlsv1_2+\"; \
             ejabberd: protocol_options: no_tlsv1, no_tlsv1_1). Check: openssl s_client -tls1_1 \
             -connect HOST:PORT </dev/null"
        }
        FindingKind::OcspRevoked => {
            "The certificate is revoked: issue and install a new one now; clients that check \
             revocation already refuse it."
        }
        FindingKind::OcspStale => {
            "The XMPP server staples an OCSP response it no longer refreshes: check that it can \
             reach the CA's OCSP responder (or stop stapling)."
        }
        FindingKind::OcspInvalid => {
            "The stapled OCSP response is not one for this certificate from its issuer: check the \
             server's stapling configuration (the response file, the issuer it was fetched for)."
        }
        FindingKind::DaneMismatch => {
            "Publish a TLSA record for the certificate the server now sends (keep the old one \
             until caches expire), or serve the certificate the records name. Make the record: \
             openssl x509 -in CERT -noout -pubkey | openssl pkey -pubin -outform DER | openssl \
             dgst -sha256 (for 3 1 1). Check: dig +dnssec TLSA _PORT._tcp.HOST"
        }
        FindingKind::DaneUnusableRecords => {
            "Replace the TLSA records no client can use with usage 0-3, selector 0-1 and matching \
             0-2 (a SHA-256 digest is 32 bytes): most deployments want 3 1 1 of the leaf's key."
        }
        FindingKind::DaneTlsaBogus => {
            "Fix the signatures of the server's TLSA records (the detail says what is wrong: \
             re-sign the zone, publish the key); a Callbridge is not affected. Check: dig \
             +dnssec +cd TLSA _PORT._tcp.HOST"
        }
        FindingKind::ClientCertNotRequested => {
            "Make the server require a client certificate from the CA that issues the \
             Callbridges' (CMS Web Bridge 3: `webbridge3 c2w trust <bundle>`, then `webbridge3 \
             restart`). Check: openssl s_client -connect HOST:PORT </dev/null 2>&1 | grep -A2 \
             'Acceptable client certificate CA names'"
        }
        FindingKind::LeafDiffers => {
            "The XMPP nodes' certificates were renewed apart (or come from different CAs): install \
             the renewed certificate on every node, or renew the others before the first expires."
        }
    }
}

/// What to check on the client path (`watch`), naming the record, user or command involved.
pub fn watch_hint(
    step: Step,
    reason: Reason,
    watch: &WatchSubject,
    server: Option<&Server>,
) -> String {
    let domain = &watch.jid.domain;
    let srv_name = format!("{}.{domain}", watch.tls_mode.srv_service());
    let host = server.map_or_else(|| domain.clone(), |s| s.host().to_string());
    let port = server.map_or(5222, Server::port);
    match (step, reason) {
        (Step::Srv, Reason::DnssecBogus) => dnssec_hint("SRV", &srv_name),
        (Step::Resolve, Reason::DnssecBogus) => dnssec_hint("A", &host),
        (Step::Srv, _) => format!(
            "Publish {srv_name} (the XMPP servers' client port), or set watch.server_address. \
             Check: dig +short SRV {srv_name}"
        ),
        (Step::Resolve, _) => format!("Add an A (or AAAA) record for {host}. Check: dig +short A {host}"),
        (Step::Connect, _) => format!(
            "Nothing answers on {host}:{port}: is the XMPP server's client port open to the exporter? \
             Check: nc -vz -w 5 {host} {port}"
        ),
        (Step::Starttls, _) => format!(
            "{host}:{port} must offer STARTTLS to clients; for TLS from the first byte set \
             watch.tls.mode: direct. Check: openssl s_client -connect {host}:{port} -starttls xmpp -xmpphost {domain}"
        ),
        (Step::Tls | Step::Cert, _) => format!(
            "A client verifies the XMPP domain {domain}: its certificate must name it and chain to \
             watch.tls.ca_file (or the system roots). Check: openssl s_client -connect {host}:{port} \
             -starttls xmpp -xmpphost {domain} -showcerts"
        ),
        (Step::Sasl, Reason::NotAuthorized) => format!(
            "The XMPP server refused the monitoring user {}: check the password in watch's password \
             file and that the user exists (Prosody: prosodyctl adduser {}; CMS: a directory user).",
            watch.jid, watch.jid
        ),
        (Step::Sasl, Reason::SaslMechanism) => {
            "Offer SCRAM-SHA-1 or SCRAM-SHA-256 (Prosody: hashed password storage), or use TLS so that \
             PLAIN can be used."
                .to_owned()
        }
        (Step::Sasl, Reason::SaslIterations) => format!(
            "The server's SCRAM iteration count for {} is above watch.max_scram_iterations: if the \
             server is yours and the count is intended (each login costs the exporter that many \
             PBKDF2 rounds, once per salt), raise the limit; otherwise suspect the server.",
            watch.jid
        ),
        (Step::Sasl, Reason::Timeout) => format!(
            "The login of {} did not finish in time: a slow server, or an iteration count too \
             high to derive within the target's timeout (the detail says which); raise the \
             timeout, or lower the server's SCRAM iteration count.",
            watch.jid
        ),
        (Step::Sasl, _) => format!(
            "The login of {} failed: is the account enabled? The XMPP server's log has the reason.",
            watch.jid
        ),
        (Step::Bind, _) => "The server bound no resource for the monitoring user: see its log (too many \
             sessions for the user?)."
            .to_owned(),
        _ => "Look at the XMPP server's log for the login of the monitoring user at this time.".to_owned(),
    }
}

/// What to check when a production component does not answer its ping.
pub fn ping_hint(reason: Reason, component: &str) -> String {
    match reason {
        Reason::ComponentUnavailable => format!(
            "{component} has no connection to the XMPP server: web users cannot sign in through it. On \
             CMS, see the Callbridge's status page (XMPP connection: connected?) and `xmpp status`; \
             after a reset, check its shared secret (`xmpp callbridge list`) and restart its XMPP \
             connection."
        ),
        Reason::Timeout => format!(
            "Neither {component} nor the XMPP server answered the ping in time: the component may be \
             overloaded, or the server slow to route to it."
        ),
        Reason::WrongSender => format!(
            "Another JID answered the ping for {component}, so {component} itself may hold no \
             connection. On ejabberd, one ejabberd_service listener whose hosts list several \
             Callbridges routes them all to whichever is connected: give each Callbridge a listener \
             (and port) of its own."
        ),
        _ => format!("The session ended before {component} answered: see the XMPP server's log."),
    }
}

/// The name CMS knows a component by (`xmpp callbridge add NAME`): its JID less the XMPP
/// domain (`probe.example.com` → `probe`), or the whole JID when it is not under the domain.
fn cms_name<'a>(component: &'a str, domain: &str) -> &'a str {
    component
        .strip_suffix(domain)
        .and_then(|name| name.strip_suffix('.'))
        .filter(|name| !name.is_empty())
        .unwrap_or(component)
}

/// What to check or run next, naming the record, name or command involved.
pub fn hint(step: Step, reason: Reason, target: &Subject, server: Option<&Server>) -> String {
    match target.protocol {
        Protocol::XmppComponent => component_hint(step, reason, target, server),
        Protocol::Tls => tls_link_hint(step, reason, target, server),
    }
}

/// For a `protocol: tls` target: CMS 3's Callbridge-to-Web-Bridge (C2W) link, or any TLS port.
fn tls_link_hint(step: Step, reason: Reason, target: &Subject, server: Option<&Server>) -> String {
    let Some(server) = server.or(target.server.as_ref()) else {
        return "Check the target's server_address.".to_owned();
    };
    let (host, port) = (server.host(), server.port());
    let s_client = format!("openssl s_client -connect {host}:{port} -servername {host}");
    match (step, reason) {
        (Step::Resolve, Reason::DnssecBogus) => dnssec_hint("A", &host.to_string()),
        (Step::Resolve, _) => {
            format!("Add an A (or AAAA) record for {host}. Check: dig +short A {host}")
        }
        (Step::Connect, _) => format!(
            "Nothing answers on {host}:{port}: on the Web Bridge 3, check `webbridge3 c2w listen` \
             (interface and port) and `webbridge3 status`, and firewalls between the Callbridge and \
             it. Check: nc -vz -w 5 {host} {port}"
        ),
        (_, Reason::ClientCertRejected) => format!(
            "The Web Bridge refuses the Callbridge's certificate (tls.client_cert_file): its C2W \
             trust bundle (`webbridge3 c2w trust`) must hold the CA that issued it, and the \
             certificate must be valid. Check: {s_client} -cert CLIENT.crt -key CLIENT.key"
        ),
        (Step::Tls, _) => format!(
            "Is {host}:{port} the C2W port, with TLS 1.2 or newer? Check: {s_client}"
        ),
        (Step::Cert, Reason::CertNameMismatch) => format!(
            "The certificate must name {host} (the host of the c2w:// URL the Callbridge uses{}) \
             as a Subject Alternative Name; reissue it or use the name it has. Check: {s_client} \
             </dev/null | openssl x509 -noout -ext subjectAltName",
            if target.domain.is_empty() { String::new() } else { format!(", and {}", target.domain) }
        ),
        (Step::Cert, Reason::CertExpired | Reason::CertNotYetValid) => format!(
            "Renew the Web Bridge's certificate (`webbridge3 c2w certs`) and check its clock. \
             Check: {s_client} </dev/null | openssl x509 -noout -dates"
        ),
        (Step::Cert, _) => format!(
            "The chain does not lead to the CA the probe trusts (tls.ca_file): install the full chain \
             on the Web Bridge (`webbridge3 c2w certs`), or trust its CA. Check: {s_client} -showcerts"
        ),
        _ => format!("See the Web Bridge's log (`syslog follow` on its MMP) for {host}:{port}."),
    }
}

/// For an answer that fails DNSSEC validation: the record to look at, as `dig` types it.
fn dnssec_hint(rtype: &str, name: &str) -> String {
    format!(
        "The zone's DNSSEC is broken (the detail says how): re-sign the zone (an expired \
         signature means its signer stopped; a record whose signature does not verify was \
         changed after signing), publish the key that signs it, fix the DS at the parent, or, \
         for an island of trust, put the zone's current key in dns.dnssec.trust_anchors_file. \
         Check: dig +dnssec +cd {rtype} {name} (its RRSIGs); delv @<dns-server> {rtype} {name} \
         validates from the root, and for an island of trust needs the anchors file converted \
         (docs/runbook.md, CmsXmppDnssecBogus)"
    )
}

/// For a Callbridge registering as an XMPP component.
fn component_hint(step: Step, reason: Reason, target: &Subject, server: Option<&Server>) -> String {
    let domain = &target.domain;
    let component = &target.component;
    let srv_name = format!("_xmpp-component._tcp.{domain}");
    let host = server.map_or_else(|| domain.clone(), |s| s.host().to_string());
    let port = server.map_or(CMS_COMPONENT_PORT, Server::port);
    match (step, reason) {
        (Step::Srv, Reason::Nxdomain | Reason::NoRecords) => format!(
            "Create the SRV record {srv_name} pointing at each XMPP server on port 5223, or set the \
             Callbridge's Server Address (Configuration > General). Check: dig +short SRV {srv_name}"
        ),
        (Step::Srv, Reason::SrvUnavailable) => format!(
            "{srv_name} has the target \".\": publish the real XMPP servers in it. Check: dig +short SRV {srv_name}"
        ),
        (Step::Srv, Reason::DnssecBogus) => dnssec_hint("SRV", &srv_name),
        (Step::Resolve, Reason::DnssecBogus) => dnssec_hint("A", &host.to_string()),
        (Step::Srv | Step::Resolve, Reason::Servfail | Reason::DnsError | Reason::DnsTimeout) => {
            "The DNS server is failing: check the probe's dns.nameservers (the Callbridge's DNS \
             servers) and that they answer: dig @<dns-server> SRV "
                .to_owned()
                + &srv_name
        }
        (Step::Resolve, _) => format!(
            "Add an A (or AAAA) record for {host}, the name in the SRV answer or Server Address. Check: dig +short A {host}"
        ),
        (Step::Connect, Reason::Refused) => format!(
            "Nothing listens on {host}:{port}. Is the XMPP server running (MMP: xmpp status) and on that port? \
             Check: nc -vz {host} {port}"
        ),
        (Step::Connect, _) => format!(
            "{host}:{port} is not reachable: check firewalls and routes between the Callbridge and the XMPP server. \
             Check: nc -vz -w 5 {host} {port}"
        ),
        (Step::Tls, Reason::TlsVersion) => {
            "CMS 2.3 and later require TLS 1.2 or newer: enable it on the XMPP server.".to_owned()
        }
        (_, Reason::ClientCertRejected) => format!(
            "The XMPP server refuses the client certificate presented (tls.client_cert_file), or \
             requires one and none is configured: it must trust the CA that issued it, and the \
             certificate must be valid. Check: openssl s_client -connect {host}:{port} -servername \
             {host} -cert CLIENT.crt -key CLIENT.key"
        ),
        (Step::Tls, _) | (Step::Stream | Step::Handshake, Reason::TlsHandshake) => format!(
            "Is {host}:{port} a TLS port? CMS uses TLS from the first byte on 5223; Prosody's component \
             port (5347) is plaintext (tls.mode: none). With mutual TLS, check the client certificate. \
             Check: openssl s_client -connect {host}:{port} -servername {host}"
        ),
        (Step::Cert, Reason::CertNameMismatch) => format!(
            "The certificate must hold BOTH the XMPP domain ({domain}) and the server FQDN ({host}) as \
             Subject Alternative Names; reissue it. Check: openssl s_client -connect {host}:{port} \
             -servername {host} </dev/null | openssl x509 -noout -ext subjectAltName"
        ),
        (Step::Cert, Reason::CertExpired | Reason::CertNotYetValid) => format!(
            "Renew the XMPP server certificate (and check the server's clock). Check: openssl s_client \
             -connect {host}:{port} -servername {host} </dev/null | openssl x509 -noout -dates"
        ),
        (Step::Cert, Reason::CertWeak) => format!(
            "Reissue the certificate the detail names with an RSA key of 2048 bits or more (or EC P-256) \
             and a SHA-256 signature. Check: openssl s_client -connect {host}:{port} -servername {host} \
             </dev/null | openssl x509 -noout -text | grep -E 'Public-Key|Signature Algorithm'"
        ),
        (Step::Cert, _) => format!(
            "The chain does not lead to the CA the probe trusts (tls.ca_file): install the full chain on \
             the XMPP server, or trust its CA. Check: openssl s_client -connect {host}:{port} -servername {host} -showcerts"
        ),
        (_, Reason::NotAuthorized) => format!(
            "The shared secret of component {component} differs from the XMPP server's: on every XMPP node \
             run the MMP command `xmpp callbridge add-secret {name}` with the secret of the probe's secret \
             file (or put the secret CMS gave in that file), then reload the exporter.",
            name = cms_name(component, domain)
        ),
        (_, Reason::HostUnknown) => format!(
            "Component {component} is not configured on the XMPP server: on CMS run `xmpp callbridge add \
             {name}` on one XMPP node (it prints the secret for the probe's secret file), then \
             `xmpp callbridge add-secret {name}` with that secret on every other; check with \
             `xmpp callbridge list`.",
            name = cms_name(component, domain)
        ),
        (_, Reason::Conflict) => format!(
            "Another connection holds {component}. The probe must use its own component name, never a \
             production Callbridge's. Check: MMP `xmpp callbridge list`."
        ),
        (_, Reason::InvalidNamespace | Reason::ImproperAddressing) => format!(
            "{host}:{port} is not an XMPP component port (is it the client port?). CMS uses 5223."
        ),
        (_, Reason::Timeout) => format!(
            "{host}:{port} accepted the connection but did not answer in time: is the XMPP service \
             healthy (MMP: xmpp status)? Is something else listening on that port?"
        ),
        _ => "Look at the XMPP server's log for the connection from the probe at this time; check \
              the service with the MMP command `xmpp status`."
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_on_cms_is_the_component_less_the_domain() {
        assert_eq!(cms_name("probe.example.com", "example.com"), "probe");
        assert_eq!(
            cms_name("probe-a.b.example.com", "example.com"),
            "probe-a.b"
        );
        // Not under the domain, or the domain itself: the whole JID is the name to add.
        assert_eq!(
            cms_name("probe.other.org", "example.com"),
            "probe.other.org"
        );
        assert_eq!(cms_name("example.com", "example.com"), "example.com");
        assert_eq!(cms_name("xexample.com", "example.com"), "xexample.com");
    }
}
