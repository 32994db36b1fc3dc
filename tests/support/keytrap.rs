//! KeyTrap-shaped zones (CVE-2023-50387), served by `named`: besides its real keys, a zone's
//! DNSKEY RRset holds 60 RSA keys that share its ZSK's key tag, and every RRset carries 60
//! signatures of random bytes beside the real one, all naming that tag — what makes a
//! validator that tries every key against every signature spend seconds of CPU per answer.
//! One such zone is an island of trust (anchored by its KSK); another is delegated with a DS
//! from a healthy island, so that the validator reaches it through the chain.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::process::Child;

use super::bind::named;
use super::corpus::{ds, key, key_text, sign};

/// The KeyTrap-shaped island.
pub const TRAP: &str = "trap.test";
/// The healthy island, and the KeyTrap-shaped zone it delegates to with a DS.
pub const PARENT: &str = "parent.test";
pub const TRAP_CHILD: &str = "trap.parent.test";
/// Keys that share the ZSK's tag, and signatures beside each real one.
const COLLIDING_KEYS: usize = 60;
const EXTRA_SIGNATURES: usize = 60;

pub struct KeyTrap {
    _named: Child,
    pub addr: SocketAddr,
    /// The trust anchors of both islands, as a trust anchors file says them.
    pub anchors: String,
    /// The colliding keys and the signatures of random bytes (base64), as served: what a
    /// validator must not spend on.
    pub forged: HashSet<String>,
}

impl KeyTrap {
    /// The zones hold the corpus's records (an SRV to `xmpp.<zone>` at port 5275, whose
    /// address is 127.0.0.1).
    pub async fn start(dir: &Path) -> KeyTrap {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let random = SystemRandom::new();
        let mut forged = HashSet::new();
        let (trap, trap_ksk) = trapped(dir, TRAP, &random, &mut forged);
        let (child, child_ksk) = trapped(dir, TRAP_CHILD, &random, &mut forged);
        let parent_ksk = key(dir, PARENT, "ECDSAP256SHA256", true);
        let parent_zsk = key(dir, PARENT, "ECDSAP256SHA256", false);
        let ds = ds(dir, &child_ksk);
        let delegation = format!("trap IN NS ns.{PARENT}.\ntrap IN DS {}\n", ds.rdata());
        let parent = sign(
            dir,
            PARENT,
            &delegation,
            (&[&parent_ksk], &[&parent_zsk], &[]),
            &[],
        );
        let mut statements = String::new();
        for (zone, text) in [(TRAP, &trap), (PARENT, &parent), (TRAP_CHILD, &child)] {
            let file = format!("{zone}.served");
            std::fs::write(dir.join(&file), text).unwrap();
            // BIND 9.18.28+ refuses more than 100 records of a type at a name: the limit
            // that keeps such zones out of its own data, lifted to serve one.
            statements.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{file}\"; max-records-per-type 0; }};\n"
            ));
        }
        let (named, addr) = named(dir, &statements, &[PARENT]).await;
        KeyTrap {
            _named: named,
            addr,
            anchors: format!("{}{}", key_text(dir, &trap_ksk), key_text(dir, &parent_ksk)),
            forged,
        }
    }
}

/// `zone` signed by an RSASHA256 KSK and ZSK, then shaped as KeyTrap shapes it; the zone's
/// text and its KSK's base name. What it forged goes to `forged`.
fn trapped(
    dir: &Path,
    zone: &str,
    random: &SystemRandom,
    forged: &mut HashSet<String>,
) -> (String, String) {
    let ksk = key(dir, zone, "RSASHA256", true);
    let zsk = key(dir, zone, "RSASHA256", false);
    let tag: u16 = zsk.rsplit('+').next().unwrap().parse().unwrap();
    let colliding: String = (0..COLLIDING_KEYS)
        .map(|_| {
            let key = colliding_key(tag, random);
            forged.insert(key.clone());
            format!("@ IN DNSKEY 256 3 8 {key}\n")
        })
        .collect();
    let signed = sign(
        dir,
        zone,
        &colliding,
        (&[&ksk], &[&zsk], &[]),
        // No check after signing: the colliding keys sign nothing.
        &["-P"],
    );
    (with_extra_signatures(&signed, random, forged), ksk)
}

/// Each RRSIG line of `signed` (one record per line) followed by copies whose signature is
/// random bytes of the same length (added to `forged`).
fn with_extra_signatures(
    signed: &str,
    random: &SystemRandom,
    forged: &mut HashSet<String>,
) -> String {
    let mut text = String::new();
    for line in signed.lines() {
        text.push_str(line);
        text.push('\n');
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(3) != Some(&"RRSIG") {
            continue;
        }
        // owner TTL class RRSIG type algorithm labels TTL expiration inception tag signer sig…
        let signature = base64::engine::general_purpose::STANDARD
            .decode(fields[12..].concat())
            .expect("a base64 signature");
        for _ in 0..EXTRA_SIGNATURES {
            let mut bytes = vec![0u8; signature.len()];
            random.fill(&mut bytes).unwrap();
            let signature = base64::engine::general_purpose::STANDARD.encode(&bytes);
            text.push_str(&format!("{} {signature}\n", fields[..12].join(" ")));
            forged.insert(signature);
        }
    }
    text
}

/// The base64 public key of an RSA key (exponent 65537, a random odd 2048-bit modulus) whose
/// DNSKEY (flags 256, protocol 3, algorithm 8) has key tag `tag`: two bytes of the modulus
/// are chosen to make the RFC 4034 appendix B sum come out at `tag`.
fn colliding_key(tag: u16, random: &SystemRandom) -> String {
    let mut modulus = vec![0u8; 256];
    random.fill(&mut modulus).unwrap();
    modulus[0] |= 0x80;
    modulus[255] |= 1;
    let key: Vec<u8> = [3, 1, 0, 1].into_iter().chain(modulus).collect();
    let mut rdata: Vec<u8> = [1, 0, 3, 8].into_iter().chain(key).collect();
    // Two bytes at an even and the next odd offset, inside the modulus.
    let at = 200;
    let sum_without = |rdata: &[u8]| -> u32 {
        rdata
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at && *i != at + 1)
            .map(|(i, b)| match i % 2 {
                0 => u32::from(*b) << 8,
                _ => u32::from(*b),
            })
            .sum()
    };
    let partial = sum_without(&rdata);
    let value = (0..=u16::MAX)
        .find(|v| {
            let total = partial + u32::from(*v);
            ((total + (total >> 16)) & 0xFFFF) as u16 == tag
        })
        .expect("every tag can be reached");
    rdata[at..at + 2].copy_from_slice(&value.to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(&rdata[4..])
}
