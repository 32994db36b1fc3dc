//! The configuration's tests: parsing, every validation problem, files, templates.

use proptest::prelude::*;

use super::*;

mod dnssec;
mod tls_link;

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.yaml"))
}

pub(super) fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

const MINIMAL: &str = "
targets:
  - name: a
    domain: Example.COM.
    component: probe.example.com
    secret: s3cret-value
";

#[test]
fn defaults_apply_and_names_are_normalised() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.listen_address, "0.0.0.0:9523".parse().unwrap());
    let target = &config.targets[0];
    assert_eq!(target.domain, "example.com");
    assert_eq!(target.servers, ServerSource::Srv);
    assert_eq!(target.interval, DEFAULT_INTERVAL);
    assert_eq!(target.timeout, DEFAULT_TIMEOUT);
    assert_eq!(target.tls_mode, TlsMode::Direct);
    assert!(config
        .warnings
        .iter()
        .any(|w| w.contains("targets[0].secret")));
}

#[test]
fn server_address_forms() {
    let fixed = |host: &str, port| {
        ServerSource::Static(Server::new(Host::parse(host), port, Origin::Static))
    };
    let cases = [
        ("", ServerSource::Srv),
        ("xmpp.example.com", fixed("xmpp.example.com", 5223)),
        ("XMPP.example.com.:5275", fixed("xmpp.example.com", 5275)),
        ("10.1.2.3", fixed("10.1.2.3", 5223)),
        ("[::1]:5347", fixed("::1", 5347)),
        ("::1", fixed("::1", 5223)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_server_address(text, 5223), Ok(expected), "{text}");
    }
    for bad in ["host:0", "host:99999", "ho st", "a..b:1"] {
        assert!(parse_server_address(bad, 5223).is_err(), "{bad}");
    }
}

#[test]
fn every_problem_is_reported_at_once_with_its_field() {
    let found = problems(
        "
listen_address: nowhere
interval: soon
dns:
  nameservers: [\"not-an-ip\"]
targets:
  - name: a
    domain: ''
    component: ''
    secret_file: /nonexistent/secret
    timeout: 1m
  - name: a
    domain: example.com
    server_address: 'bad host'
    component: c
    secret: x
    secret_env: Y
    tls:
      client_cert_file: /tmp/only-cert.pem
",
    );
    let expect = [
        "listen_address:",
        "interval:",
        "dns.nameservers[0]:",
        "targets[0].domain:",
        "targets[0].component:",
        "targets[0].secret_file: cannot read /nonexistent/secret",
        "targets[1].name:",
        "targets[1].server_address:",
        "targets[1]: set exactly one of",
        "targets[1].tls: client_cert_file and client_key_file go together",
    ];
    for e in expect {
        assert!(
            found.iter().any(|p| p.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
}

#[test]
fn the_probe_cap_has_bounds() {
    for bad in ["0", "65537", "18446744073709551615"] {
        let found = problems(&format!("max_concurrent_probes: {bad}\n{MINIMAL}"));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("max_concurrent_probes: ")),
            "{bad}: {found:?}"
        );
    }
    let config = parse(&format!("max_concurrent_probes: 65536\n{MINIMAL}")).unwrap();
    assert_eq!(config.max_concurrent_probes, 65_536);
}

#[test]
fn timeout_longer_than_interval_is_rejected() {
    let found = problems(&format!("{MINIMAL}    interval: 5s\n    timeout: 10s\n"));
    assert!(
        found.iter().any(|p| p.starts_with("targets[0].timeout:")),
        "{found:?}"
    );
}

#[test]
fn unknown_keys_are_named() {
    let err = parse(&format!("{MINIMAL}    colour: blue\n")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown field `colour`"), "{text}");
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("secret");
    std::fs::write(&secret_path, "top-secret-value\n").unwrap();
    let text = format!(
            "targets:\n  - name: a\n    domain: example.com\n    component: c\n    secret_file: {}\n    interval: nonsense\n",
            secret_path.display()
        );
    let err = parse(&text).unwrap_err().to_string();
    assert!(!err.contains("top-secret-value"), "{err}");
    let ok = parse(&text.replace("nonsense", "30s")).unwrap();
    assert_eq!(
        ok.targets[0].secret.as_ref().unwrap().expose(),
        "top-secret-value"
    );
    let debug = format!("{ok:?}");
    assert!(!debug.contains("top-secret-value"), "{debug}");
}

#[test]
fn durations_have_bounds_and_huge_ones_are_refused_not_overflowed() {
    for (setting, field) in [
        (
            "    interval: 50ms\n",
            "targets[0].interval: must be from 100ms to 1day",
        ),
        (
            "    interval: 300000000000y\n",
            "targets[0].interval: must be from 100ms to 1day",
        ),
        (
            "    interval: 18446744073709551615s\n",
            "targets[0].interval:",
        ),
        ("    interval: 2d\n", "targets[0].interval:"),
        (
            "    timeout: 50ms\n",
            "targets[0].timeout: must be from 100ms to 1day",
        ),
        (
            "    timeout: 18446744073709551615s\n",
            "targets[0].timeout:",
        ),
    ] {
        let found = problems(&format!("{MINIMAL}{setting}"));
        assert!(
            found.iter().any(|p| p.starts_with(field)),
            "{setting}: {found:?}"
        );
    }
    let found = problems(&format!("interval: 0s\ntimeout: 1000y\n{MINIMAL}"));
    assert!(
        found.iter().any(|p| p.starts_with("interval:")),
        "{found:?}"
    );
    assert!(found.iter().any(|p| p.starts_with("timeout:")), "{found:?}");
    assert!(parse(&format!("{MINIMAL}    interval: 24h\n    timeout: 100ms\n")).is_ok());
}

#[test]
fn a_secret_file_must_be_a_regular_file_and_is_never_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    for path in [fifo.as_path(), dir.path(), Path::new("/dev/zero")] {
        let text = MINIMAL.replace(
            "secret: s3cret-value",
            &format!("secret_file: {}", path.display()),
        );
        // Would block forever on the FIFO, or read /dev/zero without end.
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("targets[0].secret_file:")
                    && p.contains("not a regular file")),
            "{}: {found:?}",
            path.display()
        );
    }
}

#[test]
fn a_value_in_the_wrong_field_is_never_echoed() {
    for (setting, expected) in [
        (
            "    handshake: \"hunter2-secret\"\n",
            "handshake: invalid type: string, expected a boolean",
        ),
        (
            "    handshake: 987654321\n",
            "handshake: invalid type: integer, expected a boolean",
        ),
        (
            "    tls: {mode: \"hunter2\\\"-secret\"}\n",
            "tls.mode: unknown variant, expected",
        ),
    ] {
        let err = parse(&format!("{MINIMAL}{setting}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{setting}: {err}");
        assert!(
            !err.contains("hunter2") && !err.contains("987654321"),
            "{err}"
        );
    }
}

/// A value to write into a field: durations of every size, numbers, booleans, free text
/// with a marker that no message may quote, and YAML that is no scalar at all.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        ("[0-9]{1,25}", "(ns|us|ms|s|m|h|d|w|y|)").prop_map(|(n, unit)| format!("{n}{unit}")),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_owned()),
        "[ -~]{0,30}".prop_map(|text| format!("\"MARK{}\"", text.replace(['"', '\\'], ""))),
        "[a-z0-9:.\\[\\]]{0,30}".prop_map(|text| format!("MARK{text}")),
        Just("[1, 2]".to_owned()),
        Just("{a: b}".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any value in any field is accepted or refused with a message; never a panic, never
    /// a config that overflows the clock, never a message that quotes the value.
    #[test]
    fn no_value_in_any_field_crashes_the_loader_or_is_echoed(
        field in prop::sample::select(&[
            "    interval", "    timeout", "    handshake", "    server_address",
            "    domain", "    component", "    tls", "max_concurrent_probes", "interval",
        ][..]),
        value in field_value(),
    ) {
        let text = if field.starts_with(' ') {
            format!("{MINIMAL}{field}: {value}\n")
        } else {
            format!("{field}: {value}\n{MINIMAL}")
        };
        match parse(&text) {
            Ok(config) => {
                for target in &config.targets {
                    prop_assert!(target.timeout <= target.interval);
                    let start = std::time::Instant::now();
                    prop_assert!(start.checked_add(target.interval * 1000).is_some());
                }
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(!message.contains("MARK"), "{message}");
            }
        }
    }

    /// Text that is hardly YAML: refused or accepted, never a panic.
    #[test]
    fn arbitrary_text_never_crashes_the_loader(text in "(.|\n){0,300}") {
        let _ = parse(&text);
    }
}

#[test]
fn a_component_name_takes_the_replica_from_the_environment() {
    // A variable no other test reads, set once: tests run in parallel.
    std::env::set_var("CMS_XMPP_TEST_REPLICA", "exporter-7f9c4-x2k8q");
    let config = parse(&MINIMAL.replace(
        "component: probe.example.com",
        "component: \"probe-${CMS_XMPP_TEST_REPLICA}.example.com\"",
    ))
    .unwrap();
    assert_eq!(
        config.targets[0].component,
        "probe-exporter-7f9c4-x2k8q.example.com"
    );
    for (component, expected) in [
        ("probe-${CMS_XMPP_TEST_UNSET_42}.example.com", "not set"),
        (
            "probe-${CMS_XMPP_TEST_REPLICA.example.com",
            "without its closing }",
        ),
        ("probe-${1X}.example.com", "not like ${HOSTNAME}"),
        ("probe ${CMS_XMPP_TEST_REPLICA}", "not a component name"),
    ] {
        let found = problems(&MINIMAL.replace(
            "component: probe.example.com",
            &format!("component: \"{component}\""),
        ));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("targets[0].component:") && p.contains(expected)),
            "{component}: {found:?}"
        );
    }
}

#[test]
fn redaction_keeps_the_message_and_drops_the_values() {
    assert_eq!(
        redact_values(r#"a: invalid type: string "x\"y", expected `direct` at line 1"#),
        "a: invalid type: string, expected `direct` at line 1"
    );
    assert_eq!(
        redact_values("invalid value: integer `-5`, expected u16 and floating point `1.5`"),
        "invalid value: integer, expected u16 and floating point"
    );
    assert_eq!(redact_values("string \"unterminated"), "string");
}

#[test]
fn an_ad_hoc_target_is_validated_like_a_file_and_names_its_flags() {
    let config = AdHocTarget {
        domain: "Example.COM".into(),
        server: "xmpp.example.com:5275".into(),
        component: "probe.example.com".into(),
        handshake: false,
        tls_mode: TlsMode::None,
        ..AdHocTarget::default()
    }
    .into_config()
    .unwrap();
    let target = &config.targets[0];
    assert_eq!(
        (target.name.as_str(), target.domain.as_str()),
        ("Example.COM", "example.com")
    );
    assert_eq!(target.tls_mode, TlsMode::None);
    assert!(!target.handshake());
    let Err(ConfigError::Invalid { problems, .. }) = AdHocTarget {
        domain: "example.com".into(),
        server: "bad host".into(),
        timeout: Some("soon".into()),
        dns_servers: vec!["nowhere".into()],
        handshake: true,
        ..AdHocTarget::default()
    }
    .into_config() else {
        panic!("expected problems");
    };
    for flag in [
        "--server:",
        "--timeout:",
        "--dns-server:",
        "--component:",
        "targets[0]: set exactly one",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(flag)),
            "{flag} missing in {problems:#?}"
        );
    }
}

#[test]
fn the_example_config_uses_only_known_keys() {
    // Its files and secrets do not exist here: only the shape is checked.
    let example: Result<RawConfig, _> =
        serde_yaml::from_str(include_str!("../../config.example.yaml"));
    assert!(example.is_ok(), "{:?}", example.err());
}

#[test]
fn a_reload_keeps_a_target_whose_settings_are_the_same_secrets_aside() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "first").unwrap();
    let watch = format!(
            "    watch:\n      jid: m@example.com\n      password_file: {}\n      components: [cb1.example.com]\n",
            password.display()
        );
    let target = |yaml: &str| parse(yaml).unwrap().targets[0].clone();
    let base = target(&format!("{MINIMAL}{watch}"));
    assert!(base.same_settings(&target(&format!("{MINIMAL}{watch}"))));
    // A rotated secret and password: the same check of the same thing.
    std::fs::write(&password, "second").unwrap();
    let rotated = MINIMAL.replace("s3cret-value", "rotated-value");
    assert!(base.same_settings(&target(&format!("{rotated}{watch}"))));
    for changed in [
        format!("{MINIMAL}    interval: 45s\n{watch}"),
        format!(
            "{}{watch}",
            MINIMAL.replace("probe.example.com", "other.example.com")
        ),
        format!("{MINIMAL}    server_address: xmpp.example.com\n{watch}"),
        format!("{MINIMAL}    tls: {{mode: none}}\n{watch}"),
        format!(
            "{MINIMAL}{}",
            watch.replace("cb1.example.com", "cb2.example.com")
        ),
        format!("{MINIMAL}{watch}      max_scram_iterations: 10000\n"),
        MINIMAL.to_owned(),
    ] {
        assert!(!base.same_settings(&target(&changed)), "{changed}");
    }
}

#[test]
fn a_watch_block_is_read_and_checked_like_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "monitor-password-do-not-leak\n").unwrap();
    let watch = |body: &str| {
        format!(
            "{MINIMAL}    watch:\n      password_file: {}\n{body}",
            password.display()
        )
    };
    let config = parse(&watch(
        "      jid: monitor@Example.COM\n      components: [CB1.example.com., cb2.example.com]\n",
    ))
    .unwrap();
    let w = config.targets[0].watch.as_ref().unwrap();
    assert_eq!(w.jid.to_string(), "monitor@example.com");
    assert_eq!(w.password.expose(), "monitor-password-do-not-leak");
    assert_eq!(w.servers, ServerSource::Srv);
    assert_eq!(w.tls_mode, ClientTlsMode::Starttls);
    assert_eq!(w.components, ["cb1.example.com", "cb2.example.com"]);
    assert_eq!(w.max_scram_iterations, 1_000_000);
    for (mode, port) in [("starttls", 5222), ("direct", 5223), ("none", 5222)] {
        let body = format!(
                "      jid: m@example.com\n      server_address: xmpp.example.com\n      tls: {{mode: {mode}}}\n      components: [cb1.example.com]\n"
            );
        let w = parse(&watch(&body)).unwrap().targets[0]
            .watch
            .clone()
            .unwrap();
        assert_eq!(
            w.servers,
            ServerSource::Static(Server::new(
                Host::Name("xmpp.example.com".into()),
                port,
                Origin::Static
            )),
            "{mode}"
        );
    }

    let found = problems(&watch(
            "      jid: not-a-jid\n      password_env: ALSO_SET\n      components: [cb1.example.com, 'bad name', CB1.example.com]\n      max_scram_iterations: 4095\n      ping_interval: 1s\n      ping_timeout: 3s\n",
        ));
    for expected in [
        "targets[0].watch.ping_timeout: 3s is longer than ping_interval (1s)",
        "targets[0].watch.max_scram_iterations: 4095 is below 4096",
        "targets[0].watch.jid: is not a bare JID",
        "targets[0].watch: set exactly one of password_file, password_env",
        "targets[0].watch.components[1]:",
        "targets[0].watch.components[2]: \"cb1.example.com\" is listed twice",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{expected} missing in {found:#?}"
        );
    }
    assert!(found
        .iter()
        .all(|p| !p.contains("monitor-password-do-not-leak")));
    let found = problems(&format!(
            "{MINIMAL}    watch:\n      jid: m@example.com\n      password_env: CMS_XMPP_UNSET_FOR_TEST\n"
        ));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("targets[0].watch.components: list")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("targets[0].watch.password_env: environment variable")),
        "{found:?}"
    );
    let inline = parse(&watch(
        "      jid: m@example.com\n      password: x\n      components: [c.example.com]\n",
    ));
    assert!(inline
        .unwrap_err()
        .to_string()
        .contains("unknown field `password`"));
}

#[test]
fn handshake_false_needs_no_secret() {
    let config = parse(
        "targets:\n  - name: a\n    domain: example.com\n    component: c\n    handshake: false\n",
    )
    .unwrap();
    assert!(!config.targets[0].handshake());
}
