//! `protocol: tls` targets and modules: CMS 3's C2W link as a Callbridge's config writes it.

use super::super::*;
use super::{parse, problems};

fn only_server(target: &Target) -> (&Host, u16) {
    match &target.servers {
        ServerSource::Static(server) => (server.host(), server.port()),
        ServerSource::Srv => panic!("a tls target has no SRV"),
    }
}

#[test]
fn a_tls_target_takes_the_c2w_url_as_written_and_needs_no_xmpp_settings() {
    let config = parse(
        "targets:\n  - name: wb3\n    protocol: tls\n    server_address: \"C2W://WB3.Example.com:9999/\"\n  - name: named\n    protocol: tls\n    domain: Example.COM\n    server_address: \"[2001:db8::1]:443\"\n",
    )
    .unwrap();
    let [wb3, named] = &config.targets[..] else {
        panic!("two targets")
    };
    assert_eq!(wb3.protocol, Protocol::Tls);
    assert_eq!(
        only_server(wb3),
        (&Host::Name("wb3.example.com".into()), 9999)
    );
    assert_eq!((wb3.domain.as_str(), wb3.component.as_str()), ("", ""));
    assert!(wb3.secret.is_none() && wb3.watch.is_none());
    assert_eq!(named.domain, "example.com");
    assert_eq!(only_server(named).1, 443);
    assert_eq!(
        parse(super::MINIMAL).unwrap().targets[0].protocol,
        Protocol::XmppComponent,
        "the default"
    );
}

#[test]
fn a_tls_target_refuses_what_it_would_not_use_and_an_address_without_port() {
    let found = problems(
        "targets:\n  - name: a\n    protocol: tls\n    server_address: \"c2w://wb3.example.com\"\n    component: probe.example.com\n    secret: s3cret-value\n    tls:\n      mode: none\n  - name: b\n    protocol: tls\n  - name: c\n    protocol: tls\n    server_address: \"wb3.example.com:9999\"\n    watch:\n      jid: monitor@example.com\n      password_env: PW\n      components: [cb1.example.com]\n",
    );
    let expected = [
        "targets[0].server_address: is not \"host:port\"",
        "targets[0].component: is only for protocol xmpp-component",
        "targets[0].secret: is only for protocol xmpp-component",
        "targets[0].tls.mode: must be direct for protocol tls",
        "targets[1].server_address: is required for protocol tls",
        "targets[2].watch: is only for protocol xmpp-component",
    ];
    for want in expected {
        assert!(
            found.iter().any(|p| p.starts_with(want)),
            "{want}: {found:?}"
        );
    }
    assert!(
        !found.iter().any(|p| p.contains("s3cret-value")),
        "{found:?}"
    );
    let Err(ConfigError::Syntax { message, .. }) =
        parse("targets:\n  - name: d\n    protocol: smtp\n    server_address: \"a:1\"\n")
    else {
        panic!("an unknown protocol is refused")
    };
    assert!(message.contains("protocol"), "{message}");
}

#[test]
fn a_tls_module_takes_host_port_or_the_c2w_url_and_an_optional_domain() {
    let config = parse("modules:\n  c2w:\n    protocol: tls\n    timeout: 5s\n").unwrap();
    let module = &config.modules["c2w"];
    let target = module
        .target("c2w://wb3.example.com:9999", None, None)
        .unwrap();
    assert_eq!(target.protocol, Protocol::Tls);
    assert_eq!(
        only_server(&target),
        (&Host::Name("wb3.example.com".into()), 9999)
    );
    assert_eq!(
        (target.domain.as_str(), target.component.as_str()),
        ("", "")
    );
    let named = module
        .target("wb3.example.com:9999", Some("Example.com"), None)
        .unwrap();
    assert_eq!(named.domain, "example.com");
    assert_eq!(
        module.target("example.com", None, None).unwrap_err(),
        ModuleTargetError::BadTlsTarget,
        "no SRV for a tls module"
    );
    assert_eq!(
        module
            .target("wb3.example.com:9999", Some("not a name"), None)
            .unwrap_err(),
        ModuleTargetError::BadDomain
    );
}
