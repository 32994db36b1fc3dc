//! BIND 9 (Debian's `named`) as the authoritative DNS server of signed zones: one it signs
//! itself (`dnssec-policy`), one delegated from it without a DS (unsigned: insecure), and one
//! signed offline by `dnssec-signzone` with signatures that expired long ago (bogus). Listens
//! on a loopback port; stops when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::exporter::{Lab, COMPONENT};

/// The zone BIND signs itself.
pub const SIGNED: &str = "example.test";
/// Delegated from [`SIGNED`] without a DS record: proven unsigned.
pub const UNSIGNED: &str = "insecure.example.test";
/// Signed by its own key (a trust anchor too), with signatures that expired in 2020.
pub const EXPIRED: &str = "expired.test";
/// Signed offline as most signers sign (dnssec-signzone): a key-signing key signs the DNSKEY
/// RRset, a zone-signing key the data, and a second ZSK is pre-published for a rollover; an
/// island of trust, anchored by its KSK (or the KSK's DS).
pub const SPLIT: &str = "split.test";
/// Publishes an anchored KSK that signs nothing: the DNSKEY RRset is signed by the ZSK only,
/// so the anchor proves nothing (trust follows a signature, never a key's presence).
pub const UNSIGNED_BY_ANCHOR: &str = "presence.test";
/// Signed by BIND with NSEC3 of 120 iterations: more than validators compute (RFC 9276), so
/// its denials of existence are insecure.
pub const NSEC3: &str = "nsec3.test";

/// What each zone holds: SRV records of `_xmpp-component._tcp.<zone>` to these servers (at
/// 127.0.0.1), and whatever `extra` lines a test adds (zone-file syntax, names relative to
/// the zone).
pub struct Zones {
    pub signed: ZoneData,
    pub unsigned: ZoneData,
    pub expired: ZoneData,
    /// Served by [`SPLIT`] and [`UNSIGNED_BY_ANCHOR`] alike.
    pub split: ZoneData,
}

impl Zones {
    /// The zone BIND signs holding `signed`, the others empty.
    pub fn signed(signed: ZoneData) -> Zones {
        Zones {
            signed,
            unsigned: ZoneData::default(),
            expired: ZoneData::default(),
            split: ZoneData::default(),
        }
    }
}

#[derive(Default, Clone)]
pub struct ZoneData {
    /// (host label, port) of each server in the SRV answer.
    pub servers: Vec<(String, u16)>,
    pub extra: String,
    /// Changes made to a zone signed offline after it was signed, as a forger on the way
    /// would make them: on the line of each owner name (absolute), one text for another.
    pub forged: Vec<(String, String, String)>,
}

impl ZoneData {
    pub fn servers(servers: &[(&str, u16)]) -> ZoneData {
        ZoneData {
            servers: servers.iter().map(|(h, p)| (h.to_string(), *p)).collect(),
            ..ZoneData::default()
        }
    }

    fn text(&self, zone: &str, delegation: &str) -> String {
        let mut text = format!(
            "$TTL 300\n@ IN SOA ns.{SIGNED}. hostmaster.{SIGNED}. 1 3600 600 86400 300\n@ IN NS ns.{SIGNED}.\n"
        );
        if zone == SIGNED {
            text.push_str("ns IN A 127.0.0.1\n");
        }
        for (i, (host, port)) in self.servers.iter().enumerate() {
            text.push_str(&format!(
                "_xmpp-component._tcp IN SRV {} 10 {port} {host}.{zone}.\n{host} IN A 127.0.0.1\n",
                10 * (i + 1)
            ));
        }
        text.push_str(delegation);
        text.push_str(&self.extra);
        text
    }
}

pub struct Bind {
    child: Child,
    dir: PathBuf,
    zones_split: ZoneData,
    split_ksk_base: String,
    pub addr: SocketAddr,
    /// The DNSKEY records of the signed and expired zones, as `dns.dnssec.trust_anchors_file`.
    pub trust_anchors: PathBuf,
    /// The signed zone's key as a DS record.
    pub trust_anchors_ds: PathBuf,
    /// [`SPLIT`]'s KSK as `dnssec-keygen` writes it, and as its DS record.
    pub split_ksk: String,
    pub split_ksk_ds: String,
    /// The DS of a KSK [`SPLIT`] does not publish (a KSK retired, its DS left in the file).
    pub stale_ds: String,
    /// [`UNSIGNED_BY_ANCHOR`]'s KSK, which signs nothing.
    pub idle_ksk: String,
}

/// A target of `domain`, probed every 2 s with the lab's secret and CA.
pub fn target(lab: &Lab, name: &str, domain: &str) -> String {
    format!(
        "  - name: {name}\n    domain: {domain}\n    component: {COMPONENT}\n    secret_file: {secret}\n    interval: 2s\n    timeout: 2s\n    tls:\n      ca_file: {ca}\n",
        secret = lab.path("secret").display(),
        ca = lab.path("ca.pem").display(),
    )
}

pub fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program} (Debian package bind9-utils): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A loopback port free for UDP and TCP at the time of asking.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Bind {
    /// A config asking this server and validating every target's answers against its zones'
    /// keys.
    pub fn validating_config(&self, targets: &[String]) -> String {
        format!(
            "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{}\"]\n  dnssec:\n    validate: true\n    trust_anchors_file: {}\ntargets:\n{}",
            self.addr,
            self.trust_anchors.display(),
            targets.concat()
        )
    }

    pub async fn start(dir: &Path, zones: &Zones) -> Bind {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let delegation = format!("insecure IN NS ns.{SIGNED}.\n");
        std::fs::write(
            dir.join("signed.db"),
            zones.signed.text(SIGNED, &delegation),
        )
        .unwrap();
        std::fs::write(dir.join("unsigned.db"), zones.unsigned.text(UNSIGNED, "")).unwrap();
        std::fs::write(dir.join("nsec3.db"), ZoneData::default().text(NSEC3, "")).unwrap();

        // The expired zone: a key of its own, signatures valid in January 2020 only.
        let key = run(
            dir,
            "dnssec-keygen",
            &[
                "-q",
                "-K",
                "keys",
                "-a",
                "ECDSAP256SHA256",
                "-f",
                "KSK",
                "-n",
                "ZONE",
                EXPIRED,
            ],
        );
        let key = key.trim();
        let expired_key =
            std::fs::read_to_string(dir.join("keys").join(format!("{key}.key"))).unwrap();
        std::fs::write(
            dir.join("expired.db"),
            format!("{}{expired_key}", zones.expired.text(EXPIRED, "")),
        )
        .unwrap();
        run(
            dir,
            "dnssec-signzone",
            &[
                "-q",
                "-z",
                // No check after signing: the signatures are meant to be out of date.
                "-P",
                "-K",
                "keys",
                "-o",
                EXPIRED,
                "-s",
                "20200101000000",
                "-e",
                "20200201000000",
                "-f",
                "expired.db.signed",
                "expired.db",
                key,
            ],
        );

        let split = sign_split(dir, zones);

        let statements = format!(
            r#"zone "{SIGNED}" {{ type primary; file "signed.db"; dnssec-policy default; inline-signing yes; }};
zone "{UNSIGNED}" {{ type primary; file "unsigned.db"; }};
zone "{EXPIRED}" {{ type primary; file "expired.db.signed"; }};
zone "{NSEC3}" {{ type primary; file "nsec3.db"; dnssec-policy nsec3; inline-signing yes; }};
zone "{SPLIT}" {{ type primary; file "split.db.signed"; }};
zone "{UNSIGNED_BY_ANCHOR}" {{ type primary; file "presence.db.signed"; }};
dnssec-policy "nsec3" {{
    keys {{ csk lifetime unlimited algorithm ecdsap256sha256; }};
    nsec3param iterations 120 optout no salt-length 0;
}};
"#
        );
        let (child, addr) = named(dir, &statements, &[SIGNED, NSEC3]).await;
        let key_of = |zone: &str| {
            std::fs::read_dir(dir.join("keys"))
                .unwrap()
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| {
                    let name = path.file_name().unwrap().to_string_lossy();
                    name.starts_with(&format!("K{zone}.+")) && name.ends_with(".key")
                })
                .expect("named wrote the key it signs with")
        };
        let signed_key = key_of(SIGNED);
        let trust_anchors = dir.join("trust-anchors.keys");
        std::fs::write(
            &trust_anchors,
            format!(
                "{}{}{expired_key}",
                std::fs::read_to_string(&signed_key).unwrap(),
                std::fs::read_to_string(key_of(NSEC3)).unwrap()
            ),
        )
        .unwrap();
        // The same key as its parent would publish it: a DS record (SHA-256), as
        // `dnssec-dsfromkey` writes it.
        let ds = run(
            dir,
            "dnssec-dsfromkey",
            &["-2", signed_key.to_str().unwrap()],
        );
        let trust_anchors_ds = dir.join("trust-anchors.ds");
        std::fs::write(&trust_anchors_ds, ds).unwrap();
        Bind {
            child,
            dir: dir.to_owned(),
            zones_split: zones.split.clone(),
            split_ksk_base: split.ksk_base,
            addr,
            trust_anchors,
            trust_anchors_ds,
            split_ksk: split.ksk,
            split_ksk_ds: split.ksk_ds,
            stale_ds: split.stale_ds,
            idle_ksk: split.idle_ksk,
        }
    }

    /// A ZSK rollover of [`SPLIT`] done abruptly: a new zone-signing key, never published
    /// before, signs the zone and replaces the others in the DNSKEY RRset; named reloads it
    /// (SIGHUP). Returns once the server gives the new key.
    pub async fn roll_split_zsk(&self) {
        let zsk = keygen(&self.dir, "keys", SPLIT, false);
        sign_split_zone(
            &self.dir,
            &self.zones_split,
            &self.split_ksk_base,
            &zsk,
            &[],
        );
        let pid = self.child.id().expect("named runs").to_string();
        run(&self.dir, "kill", &["-HUP", &pid]);
        let tag: u16 = zsk.rsplit('+').next().unwrap().parse().unwrap();
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let keys = std::process::Command::new("dig")
                .args([
                    &format!("@{}", self.addr.ip()),
                    &format!("-p{}", self.addr.port()),
                    "+norec",
                    "+multi",
                    "DNSKEY",
                    SPLIT,
                ])
                .output()
                .expect("run dig (Debian package bind9-dnsutils)");
            if String::from_utf8_lossy(&keys.stdout).contains(&format!("key id = {tag}")) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "named did not serve the new ZSK {zsk} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A config asking this server, validating against `anchors` (the text of a trust anchors
    /// file, written to `path`).
    pub fn config_with_anchors(&self, path: &Path, anchors: &str, targets: &[String]) -> String {
        std::fs::write(path, anchors).unwrap();
        self.validating_config(targets).replace(
            &self.trust_anchors.display().to_string(),
            &path.display().to_string(),
        )
    }
}

struct SplitKeys {
    ksk_base: String,
    ksk: String,
    ksk_ds: String,
    stale_ds: String,
    idle_ksk: String,
}

/// `named` serving `zones` (named.conf zone statements, files in `dir`) on a loopback port,
/// authoritative only; ready once each of `ready` serves a signed SOA (the zones it signs
/// itself take a moment).
pub async fn named(dir: &Path, zones: &str, ready: &[&str]) -> (Child, SocketAddr) {
    let port = free_port();
    let directory = dir.display();
    let conf = format!(
        r#"options {{
    directory "{directory}";
    key-directory "{directory}/keys";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file none;
    session-keyfile none;
    recursion no;
    dnssec-validation no;
    allow-transfer {{ none; }};
    notify no;
}};
controls {{ }};
{zones}"#
    );
    std::fs::write(dir.join("named.conf"), conf).unwrap();
    let child = Command::new("named")
        .args(["-g", "-c"])
        .arg(dir.join("named.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("named.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start named (Debian package bind9)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let server = format!("@{}", addr.ip());
    let port = format!("-p{port}");
    for zone in ready {
        loop {
            let answer = std::process::Command::new("dig")
                .args([
                    &server, &port, "+dnssec", "+norec", "+short", "+time=1", "SOA", zone,
                ])
                .output()
                .expect("run dig (Debian package bind9-dnsutils)");
            if String::from_utf8_lossy(&answer.stdout).contains("SOA") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "named did not serve a signed {zone} within 30 s: {}",
                std::fs::read_to_string(dir.join("named.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (child, addr)
}

/// A new key of `zone` in `keys`; its file's base name.
fn keygen(dir: &Path, keys: &str, zone: &str, ksk: bool) -> String {
    let mut args = vec!["-q", "-K", keys, "-a", "ECDSAP256SHA256", "-n", "ZONE"];
    if ksk {
        args.extend(["-f", "KSK"]);
    }
    args.push(zone);
    run(dir, "dnssec-keygen", &args).trim().to_owned()
}

fn key_file(dir: &Path, keys: &str, base: &str) -> String {
    std::fs::read_to_string(dir.join(keys).join(format!("{base}.key"))).unwrap()
}

/// [`SPLIT`] (`data`) signed offline into split.db.signed: `ksk` over the DNSKEY RRset, `zsk`
/// over the data, `published` keys in the RRset too; then `data.forged` applied.
fn sign_split_zone(dir: &Path, data: &ZoneData, ksk: &str, zsk: &str, published: &[&str]) {
    let keys: String = [ksk, zsk]
        .iter()
        .chain(published)
        .map(|k| key_file(dir, "keys", k))
        .collect();
    std::fs::write(
        dir.join("split.db"),
        format!("{}{keys}", data.text(SPLIT, "")),
    )
    .unwrap();
    run(
        dir,
        "dnssec-signzone",
        &[
            "-q",
            "-O",
            "full",
            "-K",
            "keys",
            "-o",
            SPLIT,
            "-k",
            ksk,
            "-f",
            "split.db.signed",
            "split.db",
            zsk,
        ],
    );
    // One record per line (`-O full`): each forged line is found by its owner.
    let signed = std::fs::read_to_string(dir.join("split.db.signed")).unwrap();
    let forged: Vec<String> = signed
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let owner = fields.next().unwrap_or_default();
            let is_rrsig = fields.nth(2) == Some("RRSIG");
            data.forged
                .iter()
                .filter(|(name, ..)| name == owner && !is_rrsig)
                .fold(line.to_owned(), |line, (_, from, to)| {
                    line.replace(from, to)
                })
        })
        .collect();
    std::fs::write(dir.join("split.db.signed"), forged.join("\n") + "\n").unwrap();
}

/// [`SPLIT`] signed by a KSK and a ZSK with a second ZSK published, and
/// [`UNSIGNED_BY_ANCHOR`] whose KSK is published but signs nothing: valid from an hour ago
/// for 30 days (dnssec-signzone's defaults).
fn sign_split(dir: &Path, zones: &Zones) -> SplitKeys {
    let ksk = keygen(dir, "keys", SPLIT, true);
    let zsk = keygen(dir, "keys", SPLIT, false);
    let next_zsk = keygen(dir, "keys", SPLIT, false);
    std::fs::create_dir_all(dir.join("retired")).unwrap();
    let retired_ksk = keygen(dir, "retired", SPLIT, true);
    sign_split_zone(dir, &zones.split, &ksk, &zsk, &[&next_zsk]);
    let ds = |keys: &str, base: &str| {
        let path = dir.join(keys).join(format!("{base}.key"));
        run(dir, "dnssec-dsfromkey", &["-2", path.to_str().unwrap()])
    };
    // Its private key elsewhere, so that nothing signs with it.
    std::fs::create_dir_all(dir.join("idle")).unwrap();
    let idle_ksk = keygen(dir, "idle", UNSIGNED_BY_ANCHOR, true);
    let zsk = keygen(dir, "keys", UNSIGNED_BY_ANCHOR, false);
    std::fs::write(
        dir.join("presence.db"),
        format!(
            "{}{}{}",
            zones.split.text(UNSIGNED_BY_ANCHOR, ""),
            key_file(dir, "idle", &idle_ksk),
            key_file(dir, "keys", &zsk)
        ),
    )
    .unwrap();
    run(
        dir,
        "dnssec-signzone",
        &[
            "-q",
            // No check after signing: its KSK is meant to sign nothing.
            "-P",
            "-K",
            "keys",
            "-o",
            UNSIGNED_BY_ANCHOR,
            "-f",
            "presence.db.signed",
            "presence.db",
            &zsk,
        ],
    );
    SplitKeys {
        ksk_base: ksk.clone(),
        ksk_ds: ds("keys", &ksk),
        ksk: key_file(dir, "keys", &ksk),
        stale_ds: ds("retired", &retired_ksk),
        idle_ksk: key_file(dir, "idle", &idle_ksk),
    }
}
