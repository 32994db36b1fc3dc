//! Modules: the settings of targets that requests name (`/probe?module=NAME&target=…`),
//! validated once as a template where `{domain}` stands for each request's domain.

use super::*;

/// Where each request's domain goes in a module's names.
const DOMAIN_TOKEN: &str = "{domain}";
/// The domain a module is validated with: its names must make sense for some domain.
const SAMPLE_DOMAIN: &str = "module.invalid";

/// A name of a module's with `{domain}` where each request's domain goes: the component name,
/// the watch's JID domain, the watched components.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameTemplate(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Domain,
}

impl NameTemplate {
    fn parse(text: &str) -> NameTemplate {
        let mut pieces = Vec::new();
        for (i, text) in text.split(DOMAIN_TOKEN).enumerate() {
            if i > 0 {
                pieces.push(Piece::Domain);
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_owned()));
            }
        }
        NameTemplate(pieces)
    }

    /// The name for `domain`, as validation normalises a host name.
    fn fill(&self, domain: &str) -> String {
        let name: String = self
            .0
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_str(),
                Piece::Domain => domain,
            })
            .collect();
        normalise_host(&name)
    }
}

/// The names of a module's watch, as templates.
#[derive(Debug)]
struct WatchTemplate {
    jid_domain: NameTemplate,
    components: Vec<NameTemplate>,
}

impl RawTarget {
    /// Checked as a target would be, with a sample domain for the one each request names.
    pub(super) fn validate_module(
        mut self,
        name: &str,
        defaults: TargetDefaults,
        check: &mut Checker,
    ) -> Option<Module> {
        let field = format!("modules.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            check.problem(&field, "a module name is letters, digits, - and _");
        }
        let named = [
            ("name", !self.name.is_empty()),
            ("domain", !self.domain.is_empty()),
            ("server_address", !self.server_address.is_empty()),
            ("interval", self.interval.is_some()),
        ];
        for (key, set) in named {
            if set {
                check.problem(
                    &format!("{field}.{key}"),
                    "a module has none: each request names its target (and Prometheus its interval)",
                );
            }
        }
        // `${NAME}`s first, as a target's: a replica's own name, which lower-casing the
        // template would otherwise turn into another variable's.
        let component = match expand_environment(self.component.trim()) {
            Ok(text) => NameTemplate::parse(&text),
            Err(problem) => {
                check.problem(&format!("{field}.component"), problem);
                return None;
            }
        };
        let watch = self.watch.as_ref().map(|watch| WatchTemplate {
            // A JID without `@` is reported by validation below.
            jid_domain: NameTemplate::parse(watch.jid.split_once('@').map_or("", |(_, d)| d)),
            components: watch
                .components
                .iter()
                .map(|c| NameTemplate::parse(c))
                .collect(),
        });
        // Validated as a target for a sample domain: what each request gets is that target
        // with the request's names.
        self.name = name.to_owned();
        self.domain = SAMPLE_DOMAIN.to_owned();
        self.component = component.fill(SAMPLE_DOMAIN);
        if self.protocol == Protocol::Tls {
            // A tls target has no SRV: each request names its server.
            self.server_address = format!("{SAMPLE_DOMAIN}:443");
        }
        self.interval = Some(humantime::format_duration(INTERVAL_RANGE.1).to_string());
        if let (Some(raw), Some(names)) = (&mut self.watch, &watch) {
            let local = raw.jid.split_once('@').map_or("", |(local, _)| local);
            raw.jid = format!("{local}@{}", names.jid_domain.fill(SAMPLE_DOMAIN));
            raw.components = names
                .components
                .iter()
                .map(|c| c.fill(SAMPLE_DOMAIN))
                .collect();
        }
        let problems_before = check.problems.len();
        let defaults = TargetDefaults {
            interval: INTERVAL_RANGE.1,
            ..defaults
        };
        let template = self.validate(&field, defaults, check);
        if check.problems.len() > problems_before {
            return None;
        }
        Some(Module {
            name: name.to_owned(),
            template: template?,
            component,
            watch,
        })
    }
}

/// The settings of targets that requests name (`/probe?module=NAME&target=…`).
#[derive(Debug)]
pub struct Module {
    pub name: String,
    /// A target with the module's settings, validated for a sample domain: everything but
    /// the names, which are the request's (below).
    template: Target,
    component: NameTemplate,
    watch: Option<WatchTemplate>,
}

/// Why a request's `target` (or `domain`) cannot be probed with a module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleTargetError {
    #[error("target must be an XMPP domain (SRV lookup) or host:port (one server)")]
    BadTarget,
    #[error("a tls module's target is host:port (or c2w://host:port)")]
    BadTlsTarget,
    #[error("domain must be an XMPP domain (a DNS name)")]
    BadDomain,
    #[error("a host:port target needs domain=XMPP_DOMAIN")]
    NoDomain,
    #[error("the module's component name is not a DNS name for this domain")]
    BadComponent,
}

impl Module {
    /// The longest a run may take (a request's scrape timeout may shorten it).
    pub fn timeout(&self) -> Duration {
        self.template.timeout
    }

    /// Its targets' DNS answers are validated (DNSSEC).
    pub fn dnssec(&self) -> bool {
        self.template.dnssec
    }

    pub fn tls_mode(&self) -> TlsMode {
        self.template.tls_mode
    }

    pub fn tls_settings(&self) -> &TlsSettings {
        &self.template.tls
    }

    /// The watch's TLS settings, when its login uses TLS.
    pub fn watch_tls_settings(&self) -> Option<&TlsSettings> {
        self.template.watch.as_ref()?.tls_settings()
    }

    /// The target a request names: `target` is an XMPP domain (servers from its SRV record)
    /// or `host:port` with `domain` the XMPP domain; `timeout` caps the module's.
    pub fn target(
        &self,
        target: &str,
        domain: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Target, ModuleTargetError> {
        let text = target.trim();
        if text.is_empty() || text.len() > 300 {
            return Err(ModuleTargetError::BadTarget);
        }
        let xmpp = self.template.protocol == Protocol::XmppComponent;
        let fixed = text.contains(':') || text.parse::<IpAddr>().is_ok();
        let (servers, domain) = if !xmpp {
            let servers = parse_tls_address(text).map_err(|_| ModuleTargetError::BadTlsTarget)?;
            (servers, domain.map(normalise_host).unwrap_or_default())
        } else if fixed {
            let servers = parse_server_address(text, CMS_COMPONENT_PORT)
                .map_err(|_| ModuleTargetError::BadTarget)?;
            let domain = normalise_host(domain.ok_or(ModuleTargetError::NoDomain)?);
            (servers, domain)
        } else {
            let domain = normalise_host(domain.unwrap_or(text));
            if !is_dns_name(&normalise_host(text)) {
                return Err(ModuleTargetError::BadTarget);
            }
            (ServerSource::Srv, domain)
        };
        if (xmpp || !domain.is_empty()) && !is_dns_name(&domain) {
            return Err(ModuleTargetError::BadDomain);
        }
        let component = self.component.fill(&domain);
        if xmpp && !is_dns_name(&component) {
            return Err(ModuleTargetError::BadComponent);
        }
        let timeout = timeout.map_or(self.template.timeout, |t| {
            t.clamp(TIMEOUT_RANGE.0, self.template.timeout)
        });
        let watch = self
            .template
            .watch
            .as_ref()
            .zip(self.watch.as_ref())
            .map(|(watch, names)| Watch {
                jid: Jid {
                    local: watch.jid.local.clone(),
                    domain: names.jid_domain.fill(&domain),
                },
                components: names.components.iter().map(|c| c.fill(&domain)).collect(),
                ..watch.clone()
            });
        Ok(Target {
            name: text.to_owned(),
            domain,
            servers,
            component,
            interval: timeout,
            timeout,
            watch,
            requested: true,
            ..self.template.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems};
    use super::*;

    #[test]
    fn a_module_s_component_takes_the_replica_from_the_environment_first() {
        // A variable no other test reads, named in capitals as HOSTNAME is.
        std::env::set_var("CMS_XMPP_TEST_MODULE_HOST", "Exporter-7F9C4");
        let config = parse(
            "modules:\n  cms:\n    component: \"probe-${CMS_XMPP_TEST_MODULE_HOST}.{domain}\"\n    secret: s3cret-value\n",
        )
        .unwrap();
        let target = config.modules["cms"]
            .target("example.com", None, None)
            .unwrap();
        assert_eq!(target.component, "probe-exporter-7f9c4.example.com");
        let found = problems(
            "modules:\n  cms:\n    component: \"probe-${CMS_XMPP_TEST_UNSET_43}.{domain}\"\n    secret: s3cret-value\n",
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("modules.cms.component:") && p.contains("not set")),
            "{found:?}"
        );
    }

    #[test]
    fn a_module_makes_the_targets_that_requests_name() {
        let config = parse(
                "modules:\n  cms:\n    component: \"probe.{domain}\"\n    secret: s3cret-value\n    timeout: 5s\n",
            )
            .unwrap();
        assert!(
            config.targets.is_empty(),
            "modules alone are a configuration"
        );
        let module = &config.modules["cms"];
        let target = module.target("Example.COM.", None, None).unwrap();
        assert_eq!(
            (
                target.name.as_str(),
                target.domain.as_str(),
                target.component.as_str()
            ),
            ("Example.COM.", "example.com", "probe.example.com")
        );
        assert!(matches!(target.servers, ServerSource::Srv));
        assert_eq!(target.timeout, Duration::from_secs(5));
        let fixed = module
            .target(
                "xmpp1.example.com:5223",
                Some("example.com"),
                Some(Duration::from_secs(2)),
            )
            .unwrap();
        assert!(matches!(fixed.servers, ServerSource::Static(_)));
        assert_eq!(
            fixed.timeout,
            Duration::from_secs(2),
            "the scrape timeout caps it"
        );
        let longer = module.target("example.com", None, Some(Duration::from_secs(60)));
        assert_eq!(
            longer.unwrap().timeout,
            Duration::from_secs(5),
            "never beyond the module's"
        );
        for (target, domain, error) in [
            ("xmpp1.example.com:5223", None, ModuleTargetError::NoDomain),
            ("not a name", None, ModuleTargetError::BadTarget),
            ("host:0", Some("example.com"), ModuleTargetError::BadTarget),
            (
                "10.0.0.1:5223",
                Some("bad domain"),
                ModuleTargetError::BadDomain,
            ),
            ("", None, ModuleTargetError::BadTarget),
        ] {
            assert_eq!(
                module.target(target, domain, None).err(),
                Some(error),
                "{target}"
            );
        }
        // A domain that is a name (251 characters), whose component name is not (257).
        let long = format!("{}com", format!("{}.", "a".repeat(61)).repeat(4));
        assert!(is_dns_name(&long));
        assert_eq!(
            module.target(&long, None, None).err(),
            Some(ModuleTargetError::BadComponent)
        );
    }

    #[test]
    fn a_modules_names_take_the_requests_domain_where_it_says_domain_and_nowhere_else() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "p").unwrap();
        let config = parse(&format!(
            "modules:\n  cms:\n    component: \"probe.{{domain}}\"\n    secret: s\n    watch:\n      jid: \"monitor@{{domain}}\"\n      password_file: {}\n      components: [\"CB1.{{domain}}\", \"shared.module.invalid.example.net\"]\n",
            password.display()
        ))
        .unwrap();
        let target = config.modules["cms"]
            .target("Example.COM", None, None)
            .unwrap();
        assert_eq!(target.component, "probe.example.com");
        let watch = target.watch.expect("the module's watch");
        assert_eq!(watch.jid.to_string(), "monitor@example.com");
        // The sample domain that validation used is only a sample: a name that holds its text
        // keeps it.
        assert_eq!(
            watch.components,
            ["cb1.example.com", "shared.module.invalid.example.net"]
        );
    }

    #[test]
    fn a_bad_module_names_its_field() {
        let found = problems(
                "modules:\n  cms:\n    component: \"\"\n    timeout: 1h\n  \"b@d\":\n    component: probe.{domain}\n    secret: x\n",
            );
        for expected in [
            "modules.cms.component",
            "modules.cms: ",
            "modules.b@d: a module name",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{expected} missing in {found:#?}"
            );
        }
        let named = problems(
            "modules:\n  cms:\n    domain: example.com\n    component: probe.{domain}\n    secret: x\n",
        );
        assert!(
            named
                .iter()
                .any(|p| p.starts_with("modules.cms.domain: a module has none")),
            "a module names no domain, requests do: {named:#?}"
        );
    }
}
