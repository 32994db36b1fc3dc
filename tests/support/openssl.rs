//! Debian's `openssl` command: certificates rcgen cannot make (RSA 1024, SHA-1 signatures) and
//! a real TLS server that still speaks the versions rustls refuses (TLS 1.0 and 1.1).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::pki::{Leaf, Pki};

/// Runs `openssl` in `dir`; panics with its error output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A server certificate issued by `ca` with openssl: `key` as `openssl req -newkey` takes it
/// (`rsa:1024`, `ec`), signed with `digest` (`sha1`, `sha256`).
pub fn leaf(dir: &Path, ca: &Pki, sans: &[&str], key: &str, digest: &str) -> Leaf {
    let names: Vec<String> = sans.iter().map(|s| format!("DNS:{s}")).collect();
    let extensions = format!(
        "subjectAltName={}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
        names.join(",")
    );
    let (cert, key) = issue(
        dir,
        ca,
        "leaf",
        &format!("/CN={}", sans[0]),
        key,
        digest,
        &extensions,
    );
    Leaf {
        cert_pem: std::fs::read_to_string(cert).unwrap(),
        key_pem: std::fs::read_to_string(key).unwrap(),
    }
}

/// `<name>.pem` and `<name>.key` in `dir`: a certificate for `subject` that `ca` signed with
/// `digest`, with `extensions` (an openssl extension file's lines).
fn issue(
    dir: &Path,
    ca: &Pki,
    name: &str,
    subject: &str,
    key: &str,
    digest: &str,
    extensions: &str,
) -> (PathBuf, PathBuf) {
    let (ca_cert, ca_key) = ca.write_ca_and_key(dir, &format!("{name}-ca"));
    let (ext, csr, cert, key_file) = (
        format!("{name}.ext"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.key"),
    );
    std::fs::write(dir.join(&ext), extensions).unwrap();
    let mut request = vec!["req", "-new", "-nodes", "-newkey", key];
    if key == "ec" {
        request.extend(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    }
    request.extend(["-keyout", &key_file, "-subj", subject, "-out", &csr]);
    openssl(dir, &request);
    let digest = format!("-{digest}");
    let (ca_cert, ca_key) = (ca_cert.to_str().unwrap(), ca_key.to_str().unwrap());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca_cert,
            "-CAkey",
            ca_key,
            "-set_serial",
            "0x5eed",
            "-days",
            "30",
            &digest,
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    (dir.join(cert), dir.join(key_file))
}

/// `openssl s_server` on a loopback port, presenting `leaf`, with `options` (e.g. `-tls1_1`);
/// at security level 0, so that it serves what its defaults would refuse. Stops when dropped.
pub struct TlsServer {
    _child: Child,
    pub addr: SocketAddr,
}

impl TlsServer {
    pub async fn start(dir: &Path, leaf: &Leaf, options: &[&str]) -> TlsServer {
        std::fs::write(dir.join("s_server.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(dir.join("s_server.key"), &leaf.key_pem).unwrap();
        let mut child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-cert",
                "s_server.pem",
            ])
            .args(["-key", "s_server.key", "-cipher", "DEFAULT:@SECLEVEL=0"])
            .args(options)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start openssl s_server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(addr) = line.strip_prefix("ACCEPT ") {
                    return addr.parse::<SocketAddr>().expect("ACCEPT host:port");
                }
            }
            panic!("openssl s_server exited before accepting")
        })
        .await
        .expect("openssl s_server listens within 10 s");
        // What it prints about each connection is drained, never left to fill the pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        TlsServer {
            _child: child,
            addr,
        }
    }
}

/// What an OCSP response made by [`ocsp_response`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcspAnswer {
    Good,
    Revoked,
}

/// An OCSP response (DER) about `leaf`'s certificate, valid for a day, signed by `signer`
/// (the issuer itself, a responder it delegated to, or anyone) with `signer_key`.
pub fn ocsp_response(
    dir: &Path,
    issuer: &Path,
    leaf: &Leaf,
    answer: OcspAnswer,
    (signer, signer_key): (&Path, &Path),
) -> Vec<u8> {
    let first = leaf.sending(&[0]);
    std::fs::write(dir.join("ocsp-leaf.pem"), &first.cert_pem).unwrap();
    let output = std::process::Command::new("openssl")
        .args(["x509", "-in", "ocsp-leaf.pem", "-noout", "-serial"])
        .current_dir(dir)
        .output()
        .expect("openssl x509 -serial");
    let serial = String::from_utf8(output.stdout).unwrap();
    let serial = serial.trim().trim_start_matches("serial=");
    let line = match answer {
        OcspAnswer::Good => format!("V\t301231235959Z\t\t{serial}\tunknown\t/CN=leaf\n"),
        OcspAnswer::Revoked => {
            format!("R\t301231235959Z\t240101000000Z\t{serial}\tunknown\t/CN=leaf\n")
        }
    };
    std::fs::write(dir.join("index.txt"), line).unwrap();
    let issuer = issuer.to_str().unwrap();
    openssl(
        dir,
        &[
            "ocsp",
            "-issuer",
            issuer,
            "-cert",
            "ocsp-leaf.pem",
            "-no_nonce",
            "-reqout",
            "ocsp.req",
        ],
    );
    openssl(
        dir,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-CA",
            issuer,
            "-rsigner",
            signer.to_str().unwrap(),
            "-rkey",
            signer_key.to_str().unwrap(),
            "-reqin",
            "ocsp.req",
            "-respout",
            "ocsp.der",
            "-ndays",
            "1",
        ],
    );
    std::fs::read(dir.join("ocsp.der")).unwrap()
}

/// A certificate issued by `ca` for signing OCSP responses on its behalf (`ocspSigning`):
/// its certificate and key files in `dir`.
pub fn ocsp_responder(dir: &Path, ca: &Pki) -> (PathBuf, PathBuf) {
    let extensions = "extendedKeyUsage=OCSPSigning\n";
    issue(
        dir,
        ca,
        "responder",
        "/CN=OCSP responder",
        "ec",
        "sha256",
        extensions,
    )
}
