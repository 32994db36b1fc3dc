//! Validation: the file as written becomes the validated model, every problem reported at
//! once with its field path (the targets, their watches, addresses, names, durations).

use super::*;

impl RawConfig {
    pub(super) fn validate(self) -> Result<Config, Vec<String>> {
        self.validate_as(None)
    }

    /// Checks, naming each field as `rename` says (its path in the file when `None`).
    pub(super) fn validate_as(
        self,
        rename: Option<fn(&str) -> Option<&'static str>>,
    ) -> Result<Config, Vec<String>> {
        let mut check = Checker {
            rename,
            ..Checker::default()
        };

        let listen = self
            .listen_address
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN_ADDRESS);
        let listen_address = listen.parse().unwrap_or_else(|_| {
            check.problem("listen_address", "is not an address like \"0.0.0.0:9523\"");
            SocketAddr::from(([0, 0, 0, 0], 0))
        });
        let interval = check.duration(
            "interval",
            self.interval.as_deref(),
            DEFAULT_INTERVAL,
            INTERVAL_RANGE,
        );
        let timeout = check.duration(
            "timeout",
            self.timeout.as_deref(),
            DEFAULT_TIMEOUT,
            TIMEOUT_RANGE,
        );
        let max_concurrent_probes = self
            .max_concurrent_probes
            .unwrap_or(DEFAULT_MAX_CONCURRENT_PROBES);
        if !(1..=MAX_CONCURRENT_PROBES).contains(&max_concurrent_probes) {
            check.problem(
                "max_concurrent_probes",
                format!("{max_concurrent_probes} is not between 1 and {MAX_CONCURRENT_PROBES}"),
            );
        }

        let defaults = FanOut::default();
        let mut bounded = |field: &str, value: Option<usize>, default: usize, max: usize| {
            let value = value.unwrap_or(default);
            if !(1..=max).contains(&value) {
                check.problem(field, format!("must be from 1 to {max}"));
            }
            value.clamp(1, max)
        };
        let fan_out = FanOut {
            servers: bounded(
                "dns.max_servers_per_target",
                self.dns.max_servers_per_target,
                defaults.servers,
                MAX_FAN_OUT.0,
            ),
            addresses: bounded(
                "dns.max_addresses_per_server",
                self.dns.max_addresses_per_server,
                defaults.addresses,
                MAX_FAN_OUT.1,
            ),
        };
        let nameservers = self
            .dns
            .nameservers
            .iter()
            .enumerate()
            .filter_map(|(i, ns)| {
                let parsed = parse_nameserver(ns);
                if parsed.is_none() {
                    check.problem(
                        &format!("dns.nameservers[{i}]"),
                        "is not an IP address with an optional port, like \"10.0.0.2:53\"",
                    );
                }
                parsed
            })
            .collect();

        let trust_anchors = self.dns.dnssec.trust_anchors(&mut check);
        let defaults = TargetDefaults {
            interval,
            timeout,
            dnssec: self.dns.dnssec.validate,
        };
        if self.targets.is_empty() && self.modules.is_empty() {
            check.problem(
                "targets",
                "at least one target (or a module, for /probe?module=) is required",
            );
        }
        let modules = self
            .modules
            .into_iter()
            .filter_map(|(name, raw)| {
                let module = raw.validate_module(&name, defaults, &mut check)?;
                Some((name, Arc::new(module)))
            })
            .collect();
        let mut names = HashSet::new();
        let targets = self
            .targets
            .into_iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let field = format!("targets[{i}]");
                if !raw.name.is_empty() && !names.insert(raw.name.clone()) {
                    check.problem(
                        &format!("{field}.name"),
                        format!(
                            "{:?} is used by another target; names must be unique",
                            raw.name
                        ),
                    );
                }
                raw.validate(&field, defaults, &mut check).map(Arc::new)
            })
            .collect();

        if check.problems.is_empty() {
            Ok(Config {
                listen_address,
                dns: DnsConfig {
                    nameservers,
                    fan_out,
                    trust_anchors,
                },
                max_concurrent_probes,
                metrics: self.metrics,
                targets,
                modules,
                warnings: check.warnings,
                source: None,
            })
        } else {
            Err(check.problems)
        }
    }
}

impl RawTarget {
    pub(super) fn validate(
        self,
        field: &str,
        defaults: TargetDefaults,
        check: &mut Checker,
    ) -> Option<Target> {
        let problems_before = check.problems.len();
        if self.name.trim().is_empty() {
            check.problem(
                &format!("{field}.name"),
                "is required (it becomes the `target` label)",
            );
        }
        let protocol = self.protocol;
        let xmpp = protocol == Protocol::XmppComponent;
        let domain = normalise_host(&self.domain);
        if domain.is_empty() {
            if xmpp {
                check.problem(&format!("{field}.domain"), "is required (the XMPP domain)");
            }
        } else if !is_dns_name(&domain) {
            check.problem(&format!("{field}.domain"), "is not a DNS name");
        }
        let servers = match protocol {
            Protocol::XmppComponent => {
                parse_server_address(&self.server_address, CMS_COMPONENT_PORT)
            }
            Protocol::Tls => parse_tls_address(&self.server_address),
        }
        .unwrap_or_else(|message| {
            check.problem(&format!("{field}.server_address"), message);
            ServerSource::Srv
        });
        let (component, secret) = if xmpp {
            (self.component(field, check), self.secret(field, check))
        } else {
            self.only_for_xmpp(field, check);
            (String::new(), None)
        };
        let interval = check.duration(
            &format!("{field}.interval"),
            self.interval.as_deref(),
            defaults.interval,
            INTERVAL_RANGE,
        );
        let timeout = check.duration(
            &format!("{field}.timeout"),
            self.timeout.as_deref(),
            defaults.timeout,
            TIMEOUT_RANGE,
        );
        if timeout > interval {
            check.problem(
                &format!("{field}.timeout"),
                format!(
                    "{} is longer than the interval {}; probes of one target must not overlap",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            );
        }
        let tls_mode = self.tls.mode;
        if !xmpp && tls_mode == TlsMode::None {
            check.problem(
                &format!("{field}.tls.mode"),
                "must be direct for protocol tls (there is nothing to check without TLS)",
            );
        }
        let check_legacy_tls = self.tls.check_legacy_versions;
        if check_legacy_tls && tls_mode == TlsMode::None {
            check.warnings.push(format!(
                "{field}.tls: mode is none (plaintext), so check_legacy_versions has nothing to check"
            ));
        }
        let tls = self.tls.validate(&format!("{field}.tls"), check);
        let watch = self
            .watch
            .and_then(|watch| watch.validate(&format!("{field}.watch"), check));

        if check.problems.len() > problems_before {
            return None;
        }
        Some(Target {
            name: self.name,
            protocol,
            domain,
            servers,
            component,
            secret,
            interval,
            timeout,
            dnssec: self.dnssec.unwrap_or(defaults.dnssec),
            tls_mode,
            tls: tls?,
            check_legacy_tls: check_legacy_tls && tls_mode != TlsMode::None,
            requested: false,
            watch,
        })
    }

    /// The component name, its `${NAME}`s expanded: they give each replica a name of its own.
    fn component(&self, field: &str, check: &mut Checker) -> String {
        let field = format!("{field}.component");
        let component = match expand_environment(self.component.trim()) {
            Ok(name) => name,
            Err(problem) => {
                check.problem(&field, problem);
                String::new()
            }
        };
        if self.component.trim().is_empty() {
            check.problem(
                &field,
                "is required (the component name sent in the stream header)",
            );
        } else if !component.is_empty() && !is_dns_name(&component) {
            check.problem(
                &field,
                "is not a component name (a DNS name), once expanded",
            );
        }
        component
    }

    /// A `protocol: tls` target sends no stream: the XMPP settings would be silently unused.
    fn only_for_xmpp(&self, field: &str, check: &mut Checker) {
        let xmpp_only = [
            ("component", !self.component.trim().is_empty()),
            ("secret_file", self.secret_file.is_some()),
            ("secret_env", self.secret_env.is_some()),
            ("secret", self.secret.is_some()),
            ("watch", self.watch.is_some()),
        ];
        for (key, set) in xmpp_only {
            if set {
                check.problem(
                    &format!("{field}.{key}"),
                    "is only for protocol xmpp-component: a tls target stops after the certificate",
                );
            }
        }
    }

    /// Exactly one source when the handshake is on; the value itself never enters a message.
    pub(super) fn secret(&self, field: &str, check: &mut Checker) -> Option<Secret> {
        let sources = [
            ("secret_file", self.secret_file.as_deref()),
            ("secret_env", self.secret_env.as_deref()),
            ("secret", self.secret.as_deref()),
        ];
        if !self.handshake {
            if sources.iter().any(|(_, source)| source.is_some()) {
                check.warnings.push(format!(
                    "{field}: handshake is false, so the configured secret is not used"
                ));
            }
            return None;
        }
        check.secret(field, sources, "(or handshake: false)")
    }
}

impl RawWatch {
    pub(super) fn validate(self, field: &str, check: &mut Checker) -> Option<Watch> {
        let before = check.problems.len();
        let jid = parse_jid(&self.jid).unwrap_or_else(|message| {
            check.problem(&format!("{field}.jid"), message);
            Jid {
                local: String::new(),
                domain: String::new(),
            }
        });
        let sources = [
            ("password_file", self.password_file.as_deref()),
            ("password_env", self.password_env.as_deref()),
        ];
        let password = check.secret(field, sources, "");
        let port = self.tls.mode.default_port();
        let servers = parse_server_address(&self.server_address, port).unwrap_or_else(|message| {
            check.problem(&format!("{field}.server_address"), message);
            ServerSource::Srv
        });
        let tls = tls_settings(
            check,
            &format!("{field}.tls"),
            self.tls.ca_file.as_deref(),
            self.tls.server_name.as_deref(),
            None,
        );
        if self.tls.mode == ClientTlsMode::None {
            check.warnings.push(format!(
                "{field}.tls: mode is none: the session is plaintext (the password is only sent \
                 as SCRAM, never in the clear)"
            ));
        }
        let mut components: Vec<String> = Vec::with_capacity(self.components.len());
        for (i, component) in self.components.iter().enumerate() {
            let name = normalise_host(component);
            let place = format!("{field}.components[{i}]");
            if !is_dns_name(&name) {
                check.problem(&place, "is not a component JID (a DNS name)");
            } else if components.contains(&name) {
                check.problem(&place, format!("{name:?} is listed twice"));
            } else {
                components.push(name);
            }
        }
        if self.components.is_empty() {
            check.problem(
                &format!("{field}.components"),
                "list the production components to ping (the Callbridges' component JIDs)",
            );
        } else if self.components.len() > MAX_WATCHED_COMPONENTS {
            check.problem(
                &format!("{field}.components"),
                format!(
                    "{} components; at most {MAX_WATCHED_COMPONENTS}",
                    self.components.len()
                ),
            );
        }
        let max_scram_iterations = self
            .max_scram_iterations
            .unwrap_or(DEFAULT_MAX_SCRAM_ITERATIONS);
        if max_scram_iterations < MIN_SCRAM_ITERATIONS {
            check.problem(
                &format!("{field}.max_scram_iterations"),
                format!(
                    "{max_scram_iterations} is below {MIN_SCRAM_ITERATIONS}, the count RFC 7677 \
                     requires of every server: no login could pass"
                ),
            );
        }
        let ping_interval = check.duration(
            &format!("{field}.ping_interval"),
            self.ping_interval.as_deref(),
            DEFAULT_PING_INTERVAL,
            PING_INTERVAL_RANGE,
        );
        let ping_timeout = check.duration(
            &format!("{field}.ping_timeout"),
            self.ping_timeout.as_deref(),
            DEFAULT_PING_TIMEOUT,
            PING_TIMEOUT_RANGE,
        );
        if ping_timeout > ping_interval {
            check.problem(
                &format!("{field}.ping_timeout"),
                format!(
                    "{} is longer than ping_interval ({}): a round of pings must end before \
                     the next",
                    humantime::format_duration(ping_timeout),
                    humantime::format_duration(ping_interval)
                ),
            );
        }
        if check.problems.len() > before {
            return None;
        }
        Some(Watch {
            jid,
            password: password?,
            servers,
            tls_mode: self.tls.mode,
            tls: tls?,
            components,
            max_scram_iterations,
            ping_interval,
            ping_timeout,
        })
    }
}

/// `local@domain`: a bare JID, as a monitoring user logs in with.
pub(super) fn parse_jid(text: &str) -> Result<Jid, String> {
    let text = text.trim();
    let bad = || "is not a bare JID like \"monitor@example.com\"".to_owned();
    let (local, domain) = text.split_once('@').ok_or_else(bad)?;
    let domain = normalise_host(domain);
    let local_ok = !local.is_empty()
        && local.len() <= 1023
        && !local.contains(['@', '/', '"', '&', '\'', ':', '<', '>', ' ']);
    if !local_ok || !is_dns_name(&domain) {
        return Err(bad());
    }
    Ok(Jid {
        local: local.to_owned(),
        domain,
    })
}

/// Lowercase, trimmed, without the trailing dot that names from DNS carry.
pub fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn is_dns_name(name: &str) -> bool {
    name.parse::<IpAddr>().is_err() && ServerName::try_from(name).is_ok()
}

pub(super) fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
    })
}

/// The C2W scheme of a Callbridge's web bridge list (`c2w://wb3.example.com:9999`).
const C2W_SCHEME: &str = "c2w://";

/// A TLS server: `host:port`, `[v6]:port`, or as a Callbridge's web bridge list writes it,
/// `c2w://host:port`. No SRV and no default port: C2W has neither.
pub(super) fn parse_tls_address(text: &str) -> Result<ServerSource, String> {
    let text = text.trim();
    let address = match text.get(..C2W_SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(C2W_SCHEME) => &text[C2W_SCHEME.len()..],
        _ => text,
    };
    let address = address.strip_suffix('/').unwrap_or(address);
    let forms = "\"host:port\", \"[ipv6]:port\" or \"c2w://host:port\"";
    match parse_server_address(address, 0) {
        Ok(ServerSource::Static(server)) if server.port() != 0 => Ok(ServerSource::Static(server)),
        _ if address.is_empty() => Err(format!("is required for protocol tls: {forms}")),
        _ => Err(format!("is not {forms} (protocol tls has no default port)")),
    }
}

/// `""` → SRV; `host`, `host:port`, `ip`, `[v6]:port`; without a port, `default_port`.
pub(super) fn parse_server_address(text: &str, default_port: u16) -> Result<ServerSource, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(ServerSource::Srv);
    }
    let bad = || {
        "is not \"host\", \"host:port\", \"ip\" or \"[ipv6]:port\" (empty means SRV lookup)"
            .to_owned()
    };
    let fixed =
        |host: Host, port: u16| ServerSource::Static(Server::new(host, port, Origin::Static));
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(fixed(Host::Ip(addr.ip()), addr.port()));
    }
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(fixed(Host::Ip(ip), default_port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(bad)?,
        ),
        None => (text, default_port),
    };
    let host = normalise_host(host);
    if !is_dns_name(&host) {
        return Err(bad());
    }
    Ok(fixed(Host::Name(host), port))
}
