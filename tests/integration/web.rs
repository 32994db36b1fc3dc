//! `--web.config.file` (exporter-toolkit's format): TLS, client certificates and basic
//! authentication on the exporter's port, re-read on reload, refused clearly when wrong.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use cms_xmpp_exporter::WebOptions;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::exporter::*;
use crate::support::pki::{Leaf, Validity};

/// A request over TLS: the status, or `None` when the TLS or HTTP exchange failed.
async fn https(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    user: Option<(&str, &str)>,
) -> Option<u16> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = TlsConnector::from(tls).connect(name, tcp).await.ok()?;
    let auth = user.map_or(String::new(), |(user, password)| {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Authorization: Basic {encoded}\r\n")
    });
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let head = String::from_utf8_lossy(&response).into_owned();
    head.split_whitespace().nth(1)?.parse().ok()
}

fn write_leaf(lab: &Lab, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        lab.path(&format!("{name}.crt")),
        lab.path(&format!("{name}.key")),
    );
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    (cert, key)
}

async fn start(
    lab: &Lab,
    web: &str,
) -> Result<cms_xmpp_exporter::Running, cms_xmpp_exporter::RunError> {
    std::fs::write(lab.path("web.yml"), web).unwrap();
    let target = lab.target("t", &server(XMPP1, closed_port().await), "");
    std::fs::write(lab.path("config.yaml"), lab.config(&[target])).unwrap();
    let config = cms_xmpp_exporter::config::Config::load(&lab.path("config.yaml")).unwrap();
    let options = WebOptions {
        config_file: Some(lab.path("web.yml")),
        enable_lifecycle: true,
        ..WebOptions::default()
    };
    cms_xmpp_exporter::run(config, options).await
}

#[tokio::test]
async fn tls_and_basic_auth_guard_every_endpoint_and_follow_a_reload() {
    let lab = Lab::new(base_zone()).await;
    let (cert, key) = write_leaf(&lab, "web", &lab.pki.leaf(&["localhost"], Validity::Good));
    let hash = |password: &str| bcrypt::hash(password, 4).unwrap();
    let tls = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\n",
        cert.display(),
        key.display()
    );
    let one_user = format!(
        "{tls}basic_auth_users:\n  prometheus: {}\n",
        hash("scrape-pw")
    );
    let running = start(&lab, &one_user).await.expect("starts");
    let addr = running.local_addr();
    let client = lab.pki.client_config(None);
    let prometheus = Some(("prometheus", "scrape-pw"));
    for path in ["/metrics", "/-/healthy", "/", "/probe?target=t"] {
        assert_eq!(
            https(addr, client.clone(), "GET", path, None).await,
            Some(401),
            "{path}"
        );
        assert_eq!(
            https(
                addr,
                client.clone(),
                "GET",
                path,
                Some(("prometheus", "wrong"))
            )
            .await,
            Some(401),
            "{path}"
        );
        assert_eq!(
            https(addr, client.clone(), "GET", path, prometheus).await,
            Some(200),
            "{path}"
        );
    }
    // Requests that name a module are guarded before they are read (this config has none).
    let module = "/probe?module=cms&target=example.test";
    assert_eq!(
        https(addr, client.clone(), "GET", module, None).await,
        Some(401)
    );
    assert_eq!(
        https(addr, client.clone(), "GET", module, prometheus).await,
        Some(400)
    );
    // Plain HTTP gets no answer from a TLS port.
    let status = tokio::time::timeout(std::time::Duration::from_secs(7), try_http(addr))
        .await
        .expect("the plain connection is closed in time");
    assert_eq!(status, None);

    // A second user, then a broken file: the reload applies the first and keeps it on the second.
    let two_users = format!("{one_user}  grafana: {}\n", hash("dash-pw"));
    std::fs::write(lab.path("web.yml"), two_users).unwrap();
    assert_eq!(
        https(addr, client.clone(), "POST", "/-/reload", prometheus).await,
        Some(200)
    );
    let grafana = Some(("grafana", "dash-pw"));
    assert_eq!(
        https(addr, client.clone(), "GET", "/metrics", grafana).await,
        Some(200)
    );
    std::fs::write(
        lab.path("web.yml"),
        "tls_server_config:\n  cert_file: x\n  wrong_key: y\n",
    )
    .unwrap();
    assert_eq!(
        https(addr, client.clone(), "POST", "/-/reload", prometheus).await,
        Some(500)
    );
    assert_eq!(
        https(addr, client.clone(), "GET", "/metrics", grafana).await,
        Some(200)
    );
    running.shutdown().await;
}

/// A plain HTTP request: the status, `None` when no HTTP answer came.
async fn try_http(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3)?.parse().ok())
}

#[tokio::test]
async fn a_client_certificate_can_be_required() {
    let lab = Lab::new(base_zone()).await;
    let (cert, key) = write_leaf(&lab, "web", &lab.pki.leaf(&["localhost"], Validity::Good));
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
        cert.display(),
        key.display(),
        lab.path("ca.pem").display()
    );
    let running = start(&lab, &web).await.expect("starts");
    let addr = running.local_addr();
    let anonymous = lab.pki.client_config(None);
    assert_eq!(https(addr, anonymous, "GET", "/metrics", None).await, None);
    let stranger_ca = crate::support::pki::Pki::new("another CA");
    let stranger = stranger_ca.client_leaf("stranger");
    let with_foreign_cert = lab.pki.client_config(Some(&stranger));
    assert_eq!(
        https(addr, with_foreign_cert, "GET", "/metrics", None).await,
        None
    );
    let prometheus = lab.pki.client_leaf("prometheus");
    let with_cert = lab.pki.client_config(Some(&prometheus));
    assert_eq!(
        https(addr, with_cert, "GET", "/metrics", None).await,
        Some(200)
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_bad_web_config_stops_the_start_naming_each_field() {
    let lab = Lab::new(base_zone()).await;
    let (cert, _) = write_leaf(&lab, "web", &lab.pki.leaf(&["localhost"], Validity::Good));
    let other = write_leaf(&lab, "other", &lab.pki.leaf(&["localhost"], Validity::Good)).1;
    for (web, expected) in [
        ("basic_auth_users:\n  prometheus: plain-password-not-a-hash\n".to_owned(),
            vec!["basic_auth_users.prometheus: is not a bcrypt hash"]),
        ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n  min_version: TLS10\n".to_owned(),
            vec!["tls_server_config.cert_file: cannot read", "tls_server_config.key_file: cannot read", "tls_server_config.min_version"]),
        (format!("tls_server_config:\n  cert_file: {}\n  key_file: {}\n", cert.display(), other.display()),
            vec!["tls_server_config: the key does not fit the certificate"]),
        (format!("tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n", cert.display(), other.display()),
            vec!["tls_server_config.client_ca_file: is required"]),
        ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n".to_owned(),
            vec!["unknown field `cipher_suites`"]),
    ] {
        let error = match start(&lab, &web).await {
            Ok(_) => panic!("started with\n{web}"),
            Err(error) => cms_xmpp_exporter::error_chain(&error),
        };
        for part in expected {
            assert!(error.contains(part), "{part:?} missing in: {error}");
        }
        assert!(!error.contains("plain-password-not-a-hash"), "{error}");
    }
}
