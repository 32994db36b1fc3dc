//! Modules: the settings of targets that requests name (`/probe?module=NAME&target=…`),
//! validated once as a template where `{domain}` stands for each request's domain.

use super::*;

/// Where `{domain}` stands in a module's component name.
const DOMAIN_TOKEN: &str = "{domain}";
/// A domain that validation puts for `{domain}` and a request's target.
const SAMPLE_DOMAIN: &str = "module.invalid";

impl RawTarget {
    /// Checked as a target would be, with a sample domain for the one each request names.
    pub(super) fn validate_module(
        mut self,
        name: &str,
        default_timeout: Duration,
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
        self.name = name.to_owned();
        self.domain = SAMPLE_DOMAIN.to_owned();
        self.component = self.component.replace(DOMAIN_TOKEN, SAMPLE_DOMAIN);
        self.interval = Some(humantime::format_duration(INTERVAL_RANGE.1).to_string());
        if let Some(watch) = &mut self.watch {
            watch.jid = watch.jid.replace(DOMAIN_TOKEN, SAMPLE_DOMAIN);
            for component in &mut watch.components {
                *component = component.replace(DOMAIN_TOKEN, SAMPLE_DOMAIN);
            }
        }
        let problems_before = check.problems.len();
        let template = self.validate(&field, INTERVAL_RANGE.1, default_timeout, check);
        if check.problems.len() > problems_before {
            return None;
        }
        Some(Module {
            name: name.to_owned(),
            template: template?,
        })
    }
}

/// The settings of targets that requests name (`/probe?module=NAME&target=…`).
#[derive(Debug)]
pub struct Module {
    pub name: String,
    /// A target with the module's settings, validated with a sample domain where `{domain}`
    /// stood (in the component name, the watch's JID and components): name, domain and server
    /// are the request's.
    template: Target,
}

/// Why a request's `target` (or `domain`) cannot be probed with a module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleTargetError {
    #[error("target must be an XMPP domain (SRV lookup) or host:port (one server)")]
    BadTarget,
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

    pub fn tls_mode(&self) -> TlsMode {
        self.template.tls_mode
    }

    pub fn tls_settings(&self) -> &TlsSettings {
        &self.template.tls
    }

    /// The watch's TLS settings, when its login uses TLS.
    pub fn watch_tls_settings(&self) -> Option<&TlsSettings> {
        let watch = self.template.watch.as_ref()?;
        (watch.tls_mode != ClientTlsMode::None).then_some(&watch.tls)
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
        let fixed = text.contains(':') || text.parse::<IpAddr>().is_ok();
        let (servers, domain) = if fixed {
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
        if !is_dns_name(&domain) {
            return Err(ModuleTargetError::BadDomain);
        }
        // The sample domain that validation put for `{domain}` becomes the request's.
        let for_domain = |name: &str| name.replace(SAMPLE_DOMAIN, &domain);
        let component = for_domain(&self.template.component).to_ascii_lowercase();
        if !is_dns_name(&component) {
            return Err(ModuleTargetError::BadComponent);
        }
        let timeout = timeout.map_or(self.template.timeout, |t| {
            t.clamp(TIMEOUT_RANGE.0, self.template.timeout)
        });
        let watch = self.template.watch.as_ref().map(|watch| Watch {
            jid: Jid {
                local: watch.jid.local.clone(),
                domain: for_domain(&watch.jid.domain),
            },
            components: watch.components.iter().map(|c| for_domain(c)).collect(),
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
