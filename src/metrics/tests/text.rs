//! The exposition as text: valid for a real parser, and what the `prometheus` encoder writes.

use super::*;

#[test]
fn the_exposition_is_valid_text_with_every_family_described() {
    let state = TargetState::of(target())
        .after(report(vec![healthy_server("xmpp1.example.com", 10)]), true);
    let snapshot = Snapshot {
        targets: vec![Arc::new(state)],
        exporter: crate::store::ExporterStatus {
            successful: true,
            last_success: None,
            loads: 1,
            discarded_cycles: 0,
        },
        step_histograms: true,
    };
    let text = String::from_utf8(render(&snapshot, &Texts::default().of(&snapshot))).unwrap();
    // A real parser (Prometheus' text grammar): every line parses, every family is typed and
    // described as the metric's definition says.
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("not a valid exposition ({e:?}):\n{text}"));
    for (name, family) in &parsed.families {
        let def = ALL
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} is not a metric of ours"));
        assert_eq!(family.help, def.help, "{name}");
        let kind = format!("{:?}", family.family_type).to_lowercase();
        assert_eq!(kind, format!("{:?}", def.kind).to_lowercase(), "{name}");
    }
    for family in [
        "cms_xmpp_probe_success",
        "cms_xmpp_probes_total",
        "cms_xmpp_step_duration_seconds",
        "cms_xmpp_config_last_reload_successful",
    ] {
        assert!(
            parsed.families.contains_key(family),
            "{family} missing:\n{text}"
        );
    }
    let histogram = &parsed.families["cms_xmpp_step_duration_seconds"];
    let steps: Vec<String> = histogram
        .iter_samples()
        .filter_map(|s| {
            let labels = s.get_labelset().unwrap();
            let step = labels.iter().find(|(k, _)| *k == "step")?;
            Some(step.1.clone())
        })
        .collect();
    assert!(steps.iter().any(|s| s == "tls"), "{steps:?}");
    assert!(
        !steps.iter().any(|s| s == "cert"),
        "the cert step is not timed: {steps:?}"
    );
    let single = String::from_utf8(Exposition::single(Arc::new(
        TargetState::of(target()).after(report(Vec::new()), false),
    )))
    .unwrap();
    assert!(
        single.contains("cms_xmpp_probe_success{target=\"cms-london\"} 0"),
        "{single}"
    );
    assert!(!single.contains("build_info"), "{single}");
}

#[test]
fn the_text_is_what_the_prometheus_encoder_writes() {
    use prometheus::Encoder;
    // Label values that need escaping, histograms, counters and a failing server.
    let mut odd = healthy_server("xmpp1.example.com", 10);
    if let Some(cert) = &mut odd.cert {
        Arc::make_mut(cert).subject = "CN=\"quoted\" \\ back\nslash".into();
    }
    let mut refused = healthy_server("xmpp2.example.com", 20);
    refused.steps.truncate(1);
    refused.steps.push(StepRecord {
        step: Step::Connect,
        duration: Duration::from_millis(3),
        result: Err(Failure::new(Reason::Refused, "refused")),
    });
    let healthy = vec![
        healthy_server("xmpp1.example.com", 10),
        healthy_server("xmpp2.example.com", 20),
    ];
    let london = TargetState::of(named("cms-london"))
        .after(report(healthy), true)
        .after(report(vec![odd, refused]), true);
    let paris = TargetState::of(named("cms-paris")).after(report(Vec::new()), true);
    let mut snapshot = Snapshot {
        targets: vec![Arc::new(london), Arc::new(paris)],
        exporter: crate::store::ExporterStatus {
            successful: true,
            last_success: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_750_000_000_123)),
            loads: 1,
            discarded_cycles: 0,
        },
        step_histograms: true,
    };
    let reference = |snapshot: &Snapshot| {
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&Exposition::new(snapshot.clone()).collect(), &mut text)
            .unwrap();
        String::from_utf8(text).unwrap()
    };
    // One set of texts across renders, as the renderer keeps it.
    let texts = Texts::default();
    let text =
        |snapshot: &Snapshot| String::from_utf8(render(snapshot, &texts.of(snapshot))).unwrap();
    assert!(reference(&snapshot).contains(r#"subject="CN=\"quoted\" \\ back\nslash""#));
    assert_eq!(text(&snapshot), reference(&snapshot));
    // A new report rewrites that target's text: the rendering follows.
    let replaced =
        snapshot.targets[1].after(report(vec![healthy_server("xmpp.example.fr", 10)]), true);
    snapshot.targets[1] = Arc::new(replaced);
    assert_eq!(text(&snapshot), reference(&snapshot));
    // A target removed by a reload: gone from the text, and from the kept texts.
    snapshot.targets.truncate(1);
    assert_eq!(text(&snapshot), reference(&snapshot));
    assert_eq!(texts.kept(), 1);
}
