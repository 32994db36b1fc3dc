//! Every documented pattern loads: each YAML snippet of README.md and docs/ in what it is for
//! (the exporter's `check-config`, `promtool check config`, the alert names of an Alertmanager
//! snippet against the rules), and config.example.yaml with each alternative its comments
//! offer. A refactor cannot silently break a pattern the docs give.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};
use tokio::process::Command;

use crate::support::pki::{Pki, Validity};
use crate::BINARY;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/alerts/cms-xmpp.rules.yml");

/// A ```yaml block, dedented to its fence, and where it is.
struct Snippet {
    place: String,
    text: String,
}

/// README.md and every document in docs/.
fn documents() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    paths.sort();
    paths.insert(0, root.join("README.md"));
    paths
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(root).unwrap().display().to_string();
            (name, std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

fn snippets() -> Vec<Snippet> {
    let mut found = Vec::new();
    for (file, text) in documents() {
        let mut block: Option<(usize, usize, Vec<&str>)> = None;
        for (number, line) in text.lines().enumerate() {
            let indent = line.len() - line.trim_start().len();
            match &mut block {
                None if line.trim() == "```yaml" => block = Some((number + 1, indent, Vec::new())),
                Some((start, _, lines)) if line.trim() == "```" => {
                    found.push(Snippet {
                        place: format!("{file}:{start}"),
                        text: lines.join("\n") + "\n",
                    });
                    block = None;
                }
                Some((_, fence, lines)) => lines.push(line.get(*fence..).unwrap_or("")),
                None => {}
            }
        }
    }
    found
}

/// Files the snippets name, made in `dir`: what each `*_file` key must point at.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Files {
        let ca = Pki::new("snippets CA");
        let server = ca.leaf(&["exporter.example.com"], Validity::Good);
        let client = ca.client_leaf("callbridge");
        for (name, content) in [
            ("secret", "snippet-secret"),
            ("password", "snippet-password"),
            ("ca.pem", ca.ca_pem()),
            ("server.pem", &server.cert_pem),
            ("server.key", &server.key_pem),
            ("client.pem", &client.cert_pem),
            ("client.key", &client.key_pem),
        ] {
            std::fs::write(dir.join(name), content).unwrap();
        }
        Files {
            dir: dir.to_owned(),
        }
    }

    /// The file of ours that stands for the path a snippet gives `key`.
    fn stand_in(&self, key: &str) -> Option<PathBuf> {
        let name = match key {
            "secret_file" => "secret",
            "password_file" => "password",
            "ca_file" | "client_ca_file" => "ca.pem",
            "client_cert_file" => "client.pem",
            "client_key_file" => "client.key",
            "cert_file" => "server.pem",
            "key_file" => "server.key",
            "rule_files" => return Some(PathBuf::from(RULES)),
            _ => return None,
        };
        Some(self.dir.join(name))
    }

    /// `value` with every absolute path a known key holds replaced by its stand-in.
    fn localise(&self, value: &mut Value, key: &str) {
        match value {
            Value::Mapping(map) => {
                for (k, v) in map.iter_mut() {
                    self.localise(v, k.as_str().unwrap_or_default());
                }
            }
            Value::Sequence(items) => items.iter_mut().for_each(|v| self.localise(v, key)),
            Value::String(path) if path.starts_with('/') => {
                if let Some(ours) = self.stand_in(key) {
                    *path = ours.display().to_string();
                }
            }
            _ => {}
        }
    }

    /// `yaml` parsed, localised and written as `name`.
    fn write(&self, name: &str, mut yaml: Value) -> PathBuf {
        self.localise(&mut yaml, "");
        let path = self.dir.join(name);
        std::fs::write(&path, serde_yaml::to_string(&yaml).unwrap()).unwrap();
        path
    }
}

fn parse(snippet: &Snippet) -> Value {
    serde_yaml::from_str(&snippet.text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}\n{}", snippet.place, snippet.text))
}

fn mapping(pairs: Vec<(&str, Value)>) -> Value {
    let mut map = Mapping::new();
    for (key, value) in pairs {
        map.insert(Value::from(key), value);
    }
    Value::Mapping(map)
}

/// `check-config` of the exporter (with `--web.config.file` when `web` is given), with
/// `HOSTNAME` set as a pod's is: exit code and what it printed.
async fn check_config(config: &Path, web: Option<&Path>) -> (Option<i32>, String) {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("HOSTNAME", "cms-xmpp-exporter-0")
        .env("CMS_PARIS_PROBE_SECRET", "paris-secret")
        .env("NAME", "from-the-environment")
        .args(["--config", config.to_str().unwrap()]);
    if let Some(web) = web {
        command.args(["--web.config.file", web.to_str().unwrap()]);
    }
    let out = command.arg("check-config").output().await.unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), said)
}

fn promtool_check_config(path: &Path) -> (bool, String) {
    let out = std::process::Command::new("promtool")
        .args(["check", "config", path.to_str().unwrap()])
        .output()
        .expect("run promtool (Debian package prometheus)");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// Debian's Prometheus is built without Kubernetes service discovery: a job's
/// `kubernetes_sd_configs` (checked here for the role and namespaces it gives) is swapped for
/// a static target, so that promtool checks the rest of the job.
fn without_kubernetes_discovery(mut prometheus: Value, place: &str) -> Value {
    let jobs = prometheus
        .get_mut("scrape_configs")
        .and_then(Value::as_sequence_mut)
        .into_iter()
        .flatten();
    for job in jobs.filter_map(Value::as_mapping_mut) {
        let Some(discovery) = job.remove("kubernetes_sd_configs") else {
            continue;
        };
        for config in discovery.as_sequence().into_iter().flatten() {
            let role = config.get("role").and_then(Value::as_str);
            assert!(
                matches!(
                    role,
                    Some("endpoints" | "service" | "pod" | "endpointslice")
                ),
                "{place}: kubernetes_sd_configs role {role:?}"
            );
            let keys: Vec<&str> = config
                .as_mapping()
                .into_iter()
                .flat_map(|m| m.keys().filter_map(Value::as_str))
                .collect();
            assert!(
                keys.iter()
                    .all(|k| ["role", "namespaces", "selectors"].contains(k)),
                "{place}: kubernetes_sd_configs keys {keys:?}"
            );
        }
        job.insert(
            "static_configs".into(),
            serde_yaml::from_str("[{targets: [\"a.example:9\"]}]").unwrap(),
        );
    }
    prometheus
}

/// What a snippet is for, from its first key.
fn first_key(yaml: &Value) -> String {
    match yaml {
        Value::Mapping(map) => map.keys().next(),
        Value::Sequence(items) => items
            .first()
            .and_then(|item| item.as_mapping()?.keys().next()),
        _ => None,
    }
    .and_then(Value::as_str)
    .unwrap_or_default()
    .to_owned()
}

#[tokio::test]
async fn every_yaml_snippet_of_the_docs_loads_in_what_it_is_for() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path());
    let minimal = files.write(
        "minimal.yaml",
        serde_yaml::from_str(
            "modules:\n  cms:\n    secret_file: /s\n    component: \"probe.{domain}\"\n",
        )
        .unwrap(),
    );
    let snippets = snippets();
    assert!(snippets.len() >= 10, "{} snippets", snippets.len());
    for (index, snippet) in snippets.iter().enumerate() {
        let yaml = parse(snippet);
        let name = format!("snippet-{index}.yaml");
        let place = &snippet.place;
        match first_key(&yaml).as_str() {
            // The exporter's own config.
            "targets" | "modules" | "listen_address" | "dns" => {
                let path = files.write(&name, yaml);
                let (code, said) = check_config(&path, None).await;
                assert_eq!(code, Some(0), "{place}: check-config: {said}\n{}", snippet.text);
            }
            // Its web config (`--web.config.file`).
            "tls_server_config" | "basic_auth_users" => {
                let path = files.write(&name, yaml);
                let (code, said) = check_config(&minimal, Some(&path)).await;
                assert_eq!(code, Some(0), "{place}: check-config: {said}\n{}", snippet.text);
            }
            // Prometheus: a whole prometheus.yml, a list of scrape jobs, or a job's relabelling.
            "scrape_configs" | "rule_files" | "job_name" | "relabel_configs" => {
                let yaml = match first_key(&yaml).as_str() {
                    "job_name" => mapping(vec![("scrape_configs", yaml)]),
                    "relabel_configs" => {
                        let mut job: Value = serde_yaml::from_str(
                            "job_name: fragment\nstatic_configs: [{targets: [\"a.example:9\"]}]\n",
                        )
                        .unwrap();
                        job.as_mapping_mut()
                            .unwrap()
                            .extend(yaml.as_mapping().unwrap().clone());
                        mapping(vec![("scrape_configs", Value::Sequence(vec![job]))])
                    }
                    _ => yaml,
                };
                let path = files.write(&name, without_kubernetes_discovery(yaml, place));
                let (ok, said) = promtool_check_config(&path);
                assert!(ok, "{place}: promtool check config: {said}\n{}", snippet.text);
            }
            // Alertmanager: the inhibitions name alerts that exist.
            "inhibit_rules" => {
                let rules = std::fs::read_to_string(RULES).unwrap();
                let named: Vec<&str> = snippet
                    .text
                    .split("alertname=\"")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next())
                    .collect();
                assert!(!named.is_empty(), "{place}");
                for alert in named {
                    assert!(
                        rules.contains(&format!("- alert: {alert}\n")),
                        "{place}: no alert {alert} in the rules"
                    );
                }
            }
            // Kubernetes and Grafana: their keys, and the repository paths they name.
            "apiVersion" | "relabelings" => {
                if let Some(resources) = yaml.get("resources").and_then(Value::as_sequence) {
                    for resource in resources.iter().filter_map(Value::as_str) {
                        let in_repo = resource.trim_start_matches("../");
                        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(in_repo);
                        assert!(path.exists(), "{place}: {resource} is not in the repository");
                    }
                }
            }
            other => panic!(
                "{place}: a YAML snippet starting with `{other}`: teach this test what loads it\n{}",
                snippet.text
            ),
        }
    }
}

/// The alternatives config.example.yaml's comments offer: each line as shipped, and the line
/// that replaces it. Every line whose comment offers one (`→`, `|`, ` or `) must be here.
const ALTERNATIVES: [(&str, &str); 13] = [
    (
        "    server_address: \"\"                    #",
        "    server_address: \"xmpp.example.com\"",
    ),
    (
        "    server_address: \"\"                    #",
        "    server_address: \"xmpp.example.com:5223\"",
    ),
    (
        "    server_address: \"\"                    #",
        "    server_address: \"[2001:db8::1]:5223\"",
    ),
    (
        "    component: probe.example.com          #",
        "    component: \"probe-${HOSTNAME}.example.com\"",
    ),
    (
        "    secret_file: /run/secrets/cms-probe/secret   #",
        "    secret_env: NAME",
    ),
    (
        "    handshake: true                       #",
        "    handshake: false",
    ),
    (
        "      mode: direct                        #",
        "      mode: none",
    ),
    (
        "      password_file: /run/secrets/cms-monitor/password   #",
        "      password_env: NAME",
    ),
    (
        "      server_address: \"\"                  #",
        "      server_address: \"xmpp.example.com\"",
    ),
    (
        "        mode: starttls                    #",
        "        mode: direct",
    ),
    (
        "        mode: starttls                    #",
        "        mode: none",
    ),
    (
        "    server_address: \"c2w://wb3.example.com:9999\"   #",
        "    server_address: \"wb3.example.com:9999\"",
    ),
    (
        "    component: \"probe.{domain}\"           #",
        "    component: \"probe-${HOSTNAME}.{domain}\"",
    ),
];

#[tokio::test]
async fn config_example_loads_with_each_alternative_its_comments_offer() {
    let example = include_str!("../../config.example.yaml");
    // Every comment that offers an alternative is covered.
    for line in example.lines() {
        let Some((setting, comment)) = line.split_once(" #") else {
            continue;
        };
        if setting.trim().is_empty() || setting.trim_start().starts_with('#') {
            continue;
        }
        let offers = comment.contains('→')
            || comment.contains(" | ")
            || comment.contains(" or ")
            || comment.contains("${HOSTNAME}");
        if offers {
            assert!(
                ALTERNATIVES
                    .iter()
                    .any(|(shipped, _)| line.starts_with(shipped)),
                "config.example.yaml offers an alternative no test loads: {line}"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path());
    for (shipped, alternative) in ALTERNATIVES {
        let lines: Vec<&str> = example.lines().collect();
        let at = lines
            .iter()
            .position(|line| line.starts_with(shipped))
            .unwrap_or_else(|| panic!("config.example.yaml has no line {shipped:?}"));
        let mut changed: Vec<&str> = lines.clone();
        changed[at] = alternative;
        let yaml: Value = serde_yaml::from_str(&changed.join("\n")).unwrap();
        let path = files.write("example.yaml", yaml);
        let (code, said) = check_config(&path, None).await;
        assert_eq!(
            code,
            Some(0),
            "config.example.yaml with {alternative:?}: {said}"
        );
    }
}
