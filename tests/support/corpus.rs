//! A corpus of zones as signers sign them and as they go wrong — signed offline by BIND's
//! `dnssec-signzone`, served by `named` — and BIND's own validator, `delv`, asked about each
//! lookup: the reference the exporter's DNSSEC verdicts are held against
//! (tests/integration/dnssec_corpus.rs, and the table in docs/metrics.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::process::Child;

use super::bind::{named, run};

/// One zone of the corpus and the trust anchors it is validated against.
pub struct Case {
    /// What the case is, as the table in docs/metrics.md names it.
    pub name: &'static str,
    /// The zone whose names are looked up (under the anchored one for a delegation).
    pub zone: &'static str,
    pub anchors: Vec<Anchor>,
}

/// A trust anchor as the key tools print it: a `.key` file's DNSKEY, or a DS line.
pub struct Anchor {
    owner: String,
    kind: &'static str,
    rdata: Vec<String>,
    /// The line as printed, for the exporter's trust anchors file.
    pub line: String,
}

impl Anchor {
    pub(super) fn of(printed: &str) -> Anchor {
        let line = printed
            .lines()
            .find(|l| !l.starts_with(';') && !l.trim().is_empty())
            .expect("a record line")
            .to_owned();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields
            .iter()
            .position(|f| *f == "DNSKEY" || *f == "DS")
            .expect("DNSKEY or DS");
        Anchor {
            owner: fields[0].to_owned(),
            kind: if fields[at] == "DS" {
                "static-ds"
            } else {
                "static-key"
            },
            rdata: fields[at + 1..].iter().map(|f| f.to_string()).collect(),
            line: format!("{line}\n"),
        }
    }

    /// The record's data as printed.
    pub(super) fn rdata(&self) -> String {
        self.rdata.join(" ")
    }

    /// The anchor in named.conf's `trust-anchors` syntax, as `delv -a` reads it: three
    /// numbers, then the key or digest quoted.
    fn delv_statement(&self) -> String {
        format!(
            "{} {} {} {} {} \"{}\";",
            self.owner,
            self.kind,
            self.rdata[0],
            self.rdata[1],
            self.rdata[2],
            self.rdata[3..].concat()
        )
    }
}

pub struct Corpus {
    _named: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
    pub cases: Vec<Case>,
}

/// The records of every zone: an SRV to `xmpp`, addresses, a TLSA record, and a name with
/// other records but no SRV (NODATA). `xmpp2` is where the forged zone forges an address.
fn records(zone: &str) -> String {
    format!(
        "$TTL 300\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300\n@ IN NS ns.{zone}.\n\
         ns IN A 127.0.0.1\nxmpp IN A 127.0.0.1\nxmpp2 IN A 127.0.0.1\n\
         _xmpp-component._tcp IN SRV 10 10 5275 xmpp.{zone}.\n\
         _5275._tcp.xmpp IN TLSA 3 1 1 {}\n\
         _xmpp-component._tcp.nodata IN TXT \"no SRV here\"\n",
        "ab".repeat(32)
    )
}

/// A signing key of `zone` (`-a` algorithm, a KSK or not), its file's base name in `keys/`.
pub(super) fn key(dir: &Path, zone: &str, algorithm: &str, ksk: bool) -> String {
    let mut args = vec!["-q", "-K", "keys", "-a", algorithm, "-n", "ZONE"];
    if algorithm.starts_with("RSA") {
        args.extend(["-b", "2048"]);
    }
    if ksk {
        args.extend(["-f", "KSK"]);
    }
    args.push(zone);
    run(dir, "dnssec-keygen", &args).trim().to_owned()
}

/// A KSK and a ZSK of `zone`, ECDSA P-256: the layout most signers default to.
fn ksk_and_zsk(dir: &Path, zone: &str) -> (String, String) {
    (
        key(dir, zone, "ECDSAP256SHA256", true),
        key(dir, zone, "ECDSAP256SHA256", false),
    )
}

pub(super) fn key_text(dir: &Path, base: &str) -> String {
    std::fs::read_to_string(dir.join("keys").join(format!("{base}.key"))).unwrap()
}

pub(super) fn ds(dir: &Path, base: &str) -> Anchor {
    let path = dir.join("keys").join(format!("{base}.key"));
    Anchor::of(&run(
        dir,
        "dnssec-dsfromkey",
        &["-2", path.to_str().unwrap()],
    ))
}

/// `zone` (its records and `extra`, every key of `ksks`, `zsks` and `published` in its
/// DNSKEY RRset) signed by `ksks` over the DNSKEY RRset and `zsks` over the rest, with
/// dnssec-signzone's `options`; one record per line.
pub(super) fn sign(
    dir: &Path,
    zone: &str,
    extra: &str,
    keys: (&[&str], &[&str], &[&str]),
    options: &[&str],
) -> String {
    let (ksks, zsks, published) = keys;
    let text: String = ksks
        .iter()
        .chain(zsks)
        .chain(published)
        .map(|k| key_text(dir, k))
        .collect();
    let unsigned = format!("{zone}.db");
    std::fs::write(
        dir.join(&unsigned),
        format!("{}{extra}{text}", records(zone)),
    )
    .unwrap();
    let signed = format!("{zone}.signed");
    let mut args = vec!["-q", "-O", "full", "-K", "keys", "-o", zone, "-f", &signed];
    for ksk in ksks {
        args.extend(["-k", ksk]);
    }
    args.extend(options);
    args.push(&unsigned);
    args.extend(zsks);
    run(dir, "dnssec-signzone", &args);
    std::fs::read_to_string(dir.join(&signed)).unwrap()
}

/// Whether a line of a signed zone is a signature over `covered`.
fn signature_over(line: &str, covered: &str) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields.get(3) == Some(&"RRSIG") && fields.get(4) == Some(&covered)
}

/// `zone` as signed in `good`, but with the signatures over `covered` taken from `other` (the
/// same keys, another validity window).
fn splice(good: &str, other: &str, covered: &str) -> String {
    good.lines()
        .filter(|l| !signature_over(l, covered))
        .chain(other.lines().filter(|l| signature_over(l, covered)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `text` with `from` replaced by `to` on the lines of `owner` that are not signatures: a
/// record changed after signing.
fn forge(text: &str, owner: &str, from: &str, to: &str) -> String {
    text.lines()
        .map(|l| {
            let is_owner = l.split_whitespace().next() == Some(owner);
            match is_owner && !l.contains("RRSIG") {
                true => format!("{}\n", l.replace(from, to)),
                false => format!("{l}\n"),
            }
        })
        .collect()
}

const EXPIRED: [&str; 5] = ["-P", "-s", "20200101000000", "-e", "20200201000000"];
/// Valid from ten days on, for thirty.
const NOT_YET: [&str; 5] = ["-P", "-s", "+864000", "-e", "+2592000"];

impl Corpus {
    pub async fn start(dir: &Path) -> Corpus {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let mut zones: Vec<(&'static str, String)> = Vec::new();
        let mut cases = Vec::new();
        let mut case = |name, zone, anchors| {
            cases.push(Case {
                name,
                zone,
                anchors,
            })
        };

        // One combined key (CSK), ECDSA P-256, NSEC.
        let csk = key(dir, "csk.test", "ECDSAP256SHA256", true);
        zones.push((
            "csk.test",
            sign(dir, "csk.test", "", (&[], &[&csk], &[]), &["-z"]),
        ));
        case(
            "CSK, ECDSA P-256 (13), NSEC; DNSKEY anchor",
            "csk.test",
            vec![Anchor::of(&key_text(dir, &csk))],
        );

        // KSK and ZSK, RSASHA256, NSEC.
        let (ksk, zsk) = (
            key(dir, "rsa.test", "RSASHA256", true),
            key(dir, "rsa.test", "RSASHA256", false),
        );
        zones.push((
            "rsa.test",
            sign(dir, "rsa.test", "", (&[&ksk], &[&zsk], &[]), &[]),
        ));
        case(
            "KSK+ZSK, RSASHA256 (8), NSEC; KSK anchor",
            "rsa.test",
            vec![Anchor::of(&key_text(dir, &ksk))],
        );

        // KSK and ZSK, Ed25519, NSEC3 (no extra iterations, RFC 9276).
        let (ksk, zsk) = (
            key(dir, "ed.test", "ED25519", true),
            key(dir, "ed.test", "ED25519", false),
        );
        let nsec3 = ["-3", "-", "-H", "0"];
        zones.push((
            "ed.test",
            sign(dir, "ed.test", "", (&[&ksk], &[&zsk], &[]), &nsec3),
        ));
        case(
            "KSK+ZSK, Ed25519 (15), NSEC3; KSK's DS anchor",
            "ed.test",
            vec![ds(dir, &ksk)],
        );

        // A ZSK rollover in progress: the next ZSK pre-published. A KSK rollover: two KSKs
        // sign the DNSKEY RRset; anchored by the old, the new, or both.
        let (ksk, zsk, next) = (
            key(dir, "roll.test", "ECDSAP256SHA256", true),
            key(dir, "roll.test", "ECDSAP256SHA256", false),
            key(dir, "roll.test", "ECDSAP256SHA256", false),
        );
        let new_ksk = key(dir, "roll.test", "ECDSAP256SHA256", true);
        zones.push((
            "roll.test",
            sign(
                dir,
                "roll.test",
                "",
                (&[&ksk, &new_ksk], &[&zsk], &[&next]),
                &[],
            ),
        ));
        case(
            "ZSK pre-published, two KSKs signing; old KSK's DS",
            "roll.test",
            vec![ds(dir, &ksk)],
        );
        case(
            "ZSK pre-published, two KSKs signing; new KSK",
            "roll.test",
            vec![Anchor::of(&key_text(dir, &new_ksk))],
        );
        case(
            "ZSK pre-published, two KSKs signing; both KSKs' DS",
            "roll.test",
            vec![ds(dir, &ksk), ds(dir, &new_ksk)],
        );

        // A retired KSK's DS left in the anchors: beside the good one, and alone.
        let (ksk, zsk, retired) = (
            key(dir, "stale.test", "ECDSAP256SHA256", true),
            key(dir, "stale.test", "ECDSAP256SHA256", false),
            key(dir, "stale.test", "ECDSAP256SHA256", true),
        );
        zones.push((
            "stale.test",
            sign(dir, "stale.test", "", (&[&ksk], &[&zsk], &[]), &[]),
        ));
        case(
            "KSK+ZSK; a stale DS beside the good one",
            "stale.test",
            vec![ds(dir, &retired), ds(dir, &ksk)],
        );
        case(
            "KSK+ZSK; only a stale DS",
            "stale.test",
            vec![ds(dir, &retired)],
        );

        // A delegation without DS to an unsigned zone.
        let (ksk, zsk) = ksk_and_zsk(dir, "deleg.test");
        let delegation = "child IN NS ns.deleg.test.\n";
        zones.push((
            "deleg.test",
            sign(dir, "deleg.test", delegation, (&[&ksk], &[&zsk], &[]), &[]),
        ));
        zones.push(("child.deleg.test", records("child.deleg.test")));
        case(
            "an unsigned zone delegated without DS",
            "child.deleg.test",
            vec![Anchor::of(&key_text(dir, &ksk))],
        );

        // Every signature expired; none valid yet.
        for (zone, window, name) in [
            ("expired.test", EXPIRED, "every signature expired"),
            ("future.test", NOT_YET, "no signature valid yet"),
        ] {
            let (ksk, zsk) = ksk_and_zsk(dir, zone);
            zones.push((zone, sign(dir, zone, "", (&[&ksk], &[&zsk], &[]), &window)));
            case(name, zone, vec![Anchor::of(&key_text(dir, &ksk))]);
        }

        // Only some signatures out of their window, the rest valid: those over the A
        // records, over the DNSKEY RRset, over the NSEC records (denials of existence).
        for (zone, covered, window, name) in [
            (
                "a-expired.test",
                "A",
                EXPIRED,
                "only the A records' signatures expired",
            ),
            (
                "keys-expired.test",
                "DNSKEY",
                EXPIRED,
                "only the DNSKEY RRset's signatures expired",
            ),
            (
                "nsec-expired.test",
                "NSEC",
                EXPIRED,
                "only the NSEC records' signatures expired",
            ),
            (
                "a-future.test",
                "A",
                NOT_YET,
                "only the A records' signatures not yet valid",
            ),
            (
                "keys-future.test",
                "DNSKEY",
                NOT_YET,
                "only the DNSKEY RRset's signatures not yet valid",
            ),
            (
                "nsec-future.test",
                "NSEC",
                NOT_YET,
                "only the NSEC records' signatures not yet valid",
            ),
        ] {
            let (ksk, zsk) = ksk_and_zsk(dir, zone);
            let keys: (&[&str], &[&str], &[&str]) = (&[&ksk], &[&zsk], &[]);
            let good = sign(dir, zone, "", keys, &[]);
            let other = sign(dir, zone, "", keys, &window);
            zones.push((zone, splice(&good, &other, covered)));
            case(name, zone, vec![Anchor::of(&key_text(dir, &ksk))]);
        }

        // Records changed after signing: the SRV's port, an address, the TLSA digest.
        let (ksk, zsk) = ksk_and_zsk(dir, "forged.test");
        let signed = sign(dir, "forged.test", "", (&[&ksk], &[&zsk], &[]), &[]);
        let signed = forge(
            &signed,
            "_xmpp-component._tcp.forged.test.",
            " 5275 ",
            " 5276 ",
        );
        let signed = forge(&signed, "xmpp2.forged.test.", "127.0.0.1", "127.0.0.2");
        let signed = forge(&signed, "_5275._tcp.xmpp.forged.test.", "ABAB", "CDCD");
        zones.push(("forged.test", signed));
        case(
            "SRV, A and TLSA records changed after signing",
            "forged.test",
            vec![Anchor::of(&key_text(dir, &ksk))],
        );

        let mut statements = String::new();
        for (zone, text) in &zones {
            let file = format!("{zone}.served");
            std::fs::write(dir.join(&file), text).unwrap();
            statements.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{file}\"; }};\n"
            ));
        }
        // Ready once each signed zone serves a signed SOA.
        let served: Vec<&str> = zones
            .iter()
            .filter(|(_, text)| text.contains("RRSIG"))
            .map(|(zone, _)| *zone)
            .collect();
        let (named, addr) = named(dir, &statements, &served).await;
        Corpus {
            _named: named,
            addr,
            dir: dir.to_owned(),
            cases,
        }
    }

    /// The case's anchors as the exporter's trust anchors file (its path).
    pub fn anchors_file(&self, index: usize) -> PathBuf {
        let path = self.dir.join(format!("anchors-{index}.keys"));
        let text: String = self.cases[index]
            .anchors
            .iter()
            .map(|a| a.line.clone())
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// What BIND's validator says of `name`'s `rtype` records under the case's anchors, in the
    /// exporter's words: `secure`, `insecure`, `nxdomain`, `no_records` (a denial of
    /// existence, validated or proven unsigned) or `dnssec_bogus`.
    pub async fn delv(&self, index: usize, name: &str, rtype: &str) -> String {
        let case = &self.cases[index];
        let conf = self.dir.join(format!("delv-{index}.conf"));
        let statements: String = case.anchors.iter().map(|a| a.delv_statement()).collect();
        std::fs::write(&conf, format!("trust-anchors {{ {statements} }};\n")).unwrap();
        let root = format!("+root={}", case.anchors[0].owner);
        let output = tokio::process::Command::new("delv")
            .arg("-a")
            .arg(&conf)
            .args([
                &root,
                &format!("@{}", self.addr.ip()),
                "-p",
                &self.addr.port().to_string(),
                "+nottl",
                name,
                rtype,
            ])
            .output()
            .await
            .expect("run delv (Debian package bind9-dnsutils)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        verdict_of_delv(&text)
    }
}

fn verdict_of_delv(text: &str) -> String {
    let negative = text.contains("; negative response, fully validated")
        || text.contains("; negative response, unsigned answer");
    if negative && text.contains("ncache nxdomain") {
        "nxdomain".into()
    } else if negative && text.contains("ncache nxrrset") {
        "no_records".into()
    } else if text.contains("; fully validated") {
        "secure".into()
    } else if text.contains("; unsigned answer") {
        "insecure".into()
    } else if text.contains(";; resolution failed:")
        && !["timed out", "connection refused", "network unreachable"]
            .iter()
            .any(|network| text.contains(network))
    {
        // SERVFAIL, "RRSIG failed to verify", "broken trust chain", "no valid signature",
        // "insecurity proof failed": what validation refused.
        "dnssec_bogus".into()
    } else {
        format!("unrecognised: {text}")
    }
}
