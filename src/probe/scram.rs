//! SCRAM-SHA-256 and SCRAM-SHA-1 for the monitoring user (RFC 5802, RFC 7677), with the one
//! CPU-heavy part — the salted password, PBKDF2 with as many rounds as the *server* asks — kept
//! off the async workers.
//!
//! The sasl crate's client derives inside `Mechanism::response`, on the caller's thread and
//! with no way to stop, and its pre-derived `Password::Pbkdf2` refuses exactly the salt and
//! count it was derived for (its checks are inverted in 0.5), so it can neither run under a
//! deadline nor reuse a derivation. This module keeps the exchange (a few HMACs) and derives
//! on a thread of its own, in slices that check the probe's deadline, at most
//! [`derivation_threads`] at once, and once per (server, salt, count): RFC 5802 §5.1 lets a
//! client cache the salted password, as servers keep the salt between logins.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::{digest, hmac};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::{timeout_at, Instant};

use super::{Endpoint, Failure, Reason};
use crate::config::Secret;

/// PBKDF2 rounds between two looks at the deadline: about 1 ms of one core (SHA-256).
const SLICE: u32 = 4096;

/// Salted passwords kept per target: one per server and mechanism is the honest case; a
/// server that changes its salt at every login only ever costs fresh derivations.
const CACHED: usize = 16;

/// Derivations running at once, process-wide, so that however many servers ask for huge
/// counts, they never take more than half of the cores from the probes and the HTTP server.
static DERIVATIONS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(derivation_threads())));

/// How many derivations may run at once: half the machine's cores, at least one.
fn derivation_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The SCRAM hash functions the probe speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    /// The SASL mechanism's name.
    pub fn mechanism(self) -> &'static str {
        match self {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => hmac::HMAC_SHA256,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
        }
    }

    fn mac(self, key: &[u8], data: &[u8]) -> hmac::Tag {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
    }
}

/// PBKDF2 (RFC 8018 §5.2) for one block of output, the hash's length as SCRAM uses it;
/// `None` when `stop` said so between two slices.
fn pbkdf2(
    hash: Hash,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    stop: impl Fn() -> bool,
) -> Option<Vec<u8>> {
    let key = hmac::Key::new(hash.hmac(), password);
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac::sign(&key, &first);
    let mut out = u.as_ref().to_vec();
    let mut left = iterations.saturating_sub(1);
    while left > 0 {
        if stop() {
            return None;
        }
        let slice = left.min(SLICE);
        for _ in 0..slice {
            u = hmac::sign(&key, u.as_ref());
            out.iter_mut().zip(u.as_ref()).for_each(|(o, b)| *o ^= b);
        }
        left -= slice;
    }
    Some(out)
}

/// The salted password: as good as the password for this server, so never printed.
pub struct SaltedPassword(Vec<u8>);

#[derive(PartialEq, Eq)]
struct CacheKey {
    server: Endpoint,
    hash: Hash,
    salt: Vec<u8>,
    iterations: u32,
}

/// One target's derivations, for the life of its config (a reload builds a new one, so a
/// changed password is never served from here).
#[derive(Default)]
pub struct SaltedPasswords {
    /// Newest last; a handful of entries, so a list beats a map.
    entries: Mutex<Vec<(CacheKey, Arc<SaltedPassword>)>>,
}

impl SaltedPasswords {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(CacheKey, Arc<SaltedPassword>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// The salted password for this server's salt and count: kept, or derived now on a
    /// thread of its own and kept, or a `timeout` when the deadline comes first.
    async fn get(
        &self,
        key: CacheKey,
        password: &Secret,
        deadline: Instant,
    ) -> Result<Arc<SaltedPassword>, Failure> {
        if let Some((_, kept)) = self.lock().iter().find(|(k, _)| *k == key) {
            return Ok(kept.clone());
        }
        let salted =
            Arc::new(derive(key.hash, password, &key.salt, key.iterations, deadline).await?);
        let mut entries = self.lock();
        if entries.len() >= CACHED {
            entries.remove(0);
        }
        entries.push((key, salted.clone()));
        Ok(salted)
    }
}

/// Tells the deriving thread to stop when the probe no longer waits for it (deadline passed,
/// probe cancelled by a reload or SIGTERM).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn derive(
    hash: Hash,
    password: &Secret,
    salt: &[u8],
    iterations: u32,
    deadline: Instant,
) -> Result<SaltedPassword, Failure> {
    let late = |what: &str| {
        Failure::new(
            Reason::Timeout,
            format!(
                "{what} the SCRAM key ({iterations} PBKDF2 rounds, as the server asked) before \
                 the probe's deadline"
            ),
        )
    };
    // Held by the thread itself: it counts until the thread has really stopped.
    let slot = match timeout_at(deadline, DERIVATIONS.clone().acquire_owned()).await {
        Ok(Ok(slot)) => slot,
        // Other logins' derivations held every slot until the deadline (the semaphore is
        // never closed).
        Ok(Err(_)) | Err(_) => return Err(late("no derivation slot came free to derive")),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let (password, salt) = (password.expose().as_bytes().to_vec(), salt.to_vec());
    let until = deadline.into_std();
    let (done, result) = oneshot::channel();
    // A thread of its own, not tokio's blocking pool: that pool is one thread, which renders
    // /metrics and reloads the config, and must never wait for a server's whim.
    std::thread::Builder::new()
        .name("scram-derive".into())
        .spawn(move || {
            let _slot = slot;
            let stop = || stop.load(Ordering::Relaxed) || std::time::Instant::now() >= until;
            let _ = done.send(pbkdf2(hash, &password, &salt, iterations, stop));
        })
        .map_err(|e| {
            Failure::new(
                Reason::LocalResources,
                format!("cannot start a thread for the SCRAM key derivation: {e}"),
            )
        })?;
    match timeout_at(deadline, result).await {
        Ok(Ok(Some(salted))) => Ok(SaltedPassword(salted)),
        Ok(Ok(None) | Err(_)) | Err(_) => Err(late("could not finish deriving")),
    }
}

/// What a login needs besides the user: where the cache is, for which server, the largest
/// count it accepts, and the deadline.
pub struct Derivation<'a> {
    pub cache: &'a SaltedPasswords,
    pub server: &'a Endpoint,
    pub max_iterations: u32,
    pub deadline: Instant,
}

/// One exchange, from the client-first message to the server's proof.
pub struct Scram {
    hash: Hash,
    /// `n=user,r=nonce`: part of what both sides sign.
    client_first_bare: String,
    nonce: String,
}

/// The server's first message, read.
pub struct ServerFirst {
    text: String,
    nonce: String,
    salt: Vec<u8>,
    iterations: u32,
}

impl Scram {
    /// A new exchange for `username` (already escaped, RFC 5802 §5.1) and its first message.
    pub fn start(hash: Hash, username: &str) -> Result<(Scram, Vec<u8>), Failure> {
        let nonce = sasl::common::scram::generate_nonce().map_err(|e| {
            Failure::new(Reason::SaslError, format!("no random nonce for SCRAM: {e}"))
        })?;
        let client_first_bare = format!("n={username},r={nonce}");
        // gs2 header `n,,`: no channel binding, no authorization identity.
        let first = format!("n,,{client_first_bare}").into_bytes();
        let scram = Scram {
            hash,
            client_first_bare,
            nonce,
        };
        Ok((scram, first))
    }

    /// The server's first message: our nonce extended, a salt, an iteration count.
    pub fn read_server_first(&self, challenge: &[u8]) -> Result<ServerFirst, Failure> {
        let bad = |what: &str| {
            Failure::new(
                Reason::SaslError,
                format!("the server's SCRAM challenge {what}"),
            )
        };
        let text = String::from_utf8(challenge.to_vec()).map_err(|_| bad("is not UTF-8"))?;
        let fields = sasl::common::parse_frame(challenge).map_err(|_| bad("is not UTF-8"))?;
        if fields.contains_key("m") {
            return Err(bad("asks for an extension (m=) the probe does not know"));
        }
        let nonce = fields.get("r").ok_or_else(|| bad("has no nonce (r=)"))?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(bad("does not extend the probe's nonce"));
        }
        let salt = fields
            .get("s")
            .and_then(|s| BASE64.decode(s).ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("has no salt (s=)"))?;
        let iterations = fields
            .get("i")
            .and_then(|i| i.parse::<u32>().ok())
            .filter(|i| *i > 0)
            .ok_or_else(|| bad("has no iteration count (i=) between 1 and 4294967295"))?;
        Ok(ServerFirst {
            nonce: nonce.clone(),
            text,
            salt,
            iterations,
        })
    }

    /// The client's final message (with its proof) and the server signature to expect. The
    /// count is checked before anything is derived.
    pub async fn client_final(
        &self,
        first: &ServerFirst,
        password: &Secret,
        derivation: &Derivation<'_>,
    ) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        if first.iterations > derivation.max_iterations {
            return Err(Failure::new(
                Reason::SaslIterations,
                format!(
                    "the server asks for {} PBKDF2 rounds; watch.max_scram_iterations allows {}",
                    first.iterations, derivation.max_iterations
                ),
            ));
        }
        let key = CacheKey {
            server: derivation.server.clone(),
            hash: self.hash,
            salt: first.salt.clone(),
            iterations: first.iterations,
        };
        let salted = derivation
            .cache
            .get(key, password, derivation.deadline)
            .await?;
        // `c=biws` is base64 of the gs2 header `n,,`.
        let without_proof = format!("c=biws,r={}", first.nonce);
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, first.text);
        let client_key = self.hash.mac(&salted.0, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), client_key.as_ref());
        let signature = self.hash.mac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hash.mac(&salted.0, b"Server Key");
        let expected = self.hash.mac(server_key.as_ref(), auth_message.as_bytes());
        let message = format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes();
        Ok((message, expected.as_ref().to_vec()))
    }
}

/// The server's final message (`v=` its signature, or `e=` an error): it must prove that it
/// knows the password too.
pub fn verify_server_final(expected: &[u8], data: &[u8]) -> Result<(), Failure> {
    let fields = sasl::common::parse_frame(data).unwrap_or_default();
    if let Some(error) = fields.get("e") {
        let detail = format!("the server ends SCRAM with error {error}");
        return Err(Failure::new(Reason::SaslError, detail));
    }
    let signature = fields.get("v").and_then(|v| BASE64.decode(v).ok());
    match signature {
        // Compared plainly: each login's nonce makes a new signature, so timing tells nothing.
        Some(signature) if signature == expected => Ok(()),
        Some(_) => Err(Failure::new(
            Reason::SaslError,
            "the server's proof does not verify: it does not know the user's password",
        )),
        None => Err(Failure::new(
            Reason::SaslError,
            "the server's final SCRAM message carries no proof (v=)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::Host;

    #[test]
    fn pbkdf2_computes_the_rfc_vectors_and_stops_when_told() {
        // RFC 6070 (PBKDF2-HMAC-SHA1), 4,096 rounds.
        let sha1 = pbkdf2(Hash::Sha1, b"password", b"salt", 4096, || false).unwrap();
        assert_eq!(
            sha1,
            [
                0x4b, 0x00, 0x79, 0x01, 0xb7, 0x65, 0x48, 0x9a, 0xbe, 0xad, 0x49, 0xd9, 0x26, 0xf7,
                0x21, 0xd0, 0x65, 0xa4, 0x29, 0xc1
            ]
        );
        // The same as ring's PBKDF2, for SHA-256 and a count that is no multiple of a slice.
        let mut expected = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(10_001).unwrap(),
            b"salt",
            b"pencil",
            &mut expected,
        );
        let ours = pbkdf2(Hash::Sha256, b"pencil", b"salt", 10_001, || false).unwrap();
        assert_eq!(ours, expected);
        assert_eq!(
            pbkdf2(Hash::Sha256, b"p", b"s", 1, || true).unwrap().len(),
            32
        );
        assert_eq!(pbkdf2(Hash::Sha256, b"p", b"s", u32::MAX, || true), None);
    }

    /// One exchange with a fixed client nonce: the client's final message and the server
    /// signature it expects.
    async fn exchange(
        hash: Hash,
        nonce: &str,
        server_first: &str,
        derivation: &Derivation<'_>,
    ) -> Result<(String, Vec<u8>), Failure> {
        let scram = Scram {
            hash,
            client_first_bare: format!("n=user,r={nonce}"),
            nonce: nonce.into(),
        };
        let first = scram.read_server_first(server_first.as_bytes())?;
        let password = Secret::new("pencil");
        let (message, expected) = scram.client_final(&first, &password, derivation).await?;
        Ok((String::from_utf8(message).unwrap(), expected))
    }

    /// RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256), user "user", password
    /// "pencil": the RFCs' proofs and signatures, each derived once.
    #[tokio::test]
    async fn the_rfc_exchanges_give_the_rfc_proofs_and_derive_once() {
        let cache = SaltedPasswords::default();
        let server = Endpoint {
            host: Host::Name("xmpp.example.com".into()),
            port: 5222,
        };
        let derivation = Derivation {
            cache: &cache,
            server: &server,
            max_iterations: 4096,
            deadline: Instant::now() + Duration::from_secs(10),
        };
        let sha1_first = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        let (message, expected) = exchange(
            Hash::Sha1,
            "fyko+d2lbbFgONRv9qkxdawL",
            sha1_first,
            &derivation,
        )
        .await
        .unwrap();
        assert_eq!(
            message,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        let server_final = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";
        assert_eq!(verify_server_final(&expected, server_final), Ok(()));

        let nonce = "rOprNGfwEbeRWgbNEkqO";
        let sha256_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (message, expected) = exchange(Hash::Sha256, nonce, sha256_first, &derivation)
            .await
            .unwrap();
        assert_eq!(
            message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(verify_server_final(&expected, server_final), Ok(()));
        let wrong = verify_server_final(&expected, b"v=AAAA").unwrap_err();
        assert_eq!(wrong.reason, Reason::SaslError);
        let refused = verify_server_final(&expected, b"e=invalid-proof").unwrap_err();
        assert!(
            refused.detail.contains("invalid-proof"),
            "{}",
            refused.detail
        );
        let silent = verify_server_final(&expected, b"").unwrap_err();
        assert!(silent.detail.contains("no proof"), "{}", silent.detail);
        assert_eq!(cache.len(), 2);

        // Again: both served from the cache. Another server: derived for it.
        exchange(Hash::Sha256, nonce, sha256_first, &derivation)
            .await
            .unwrap();
        assert_eq!(cache.len(), 2);
        let other = Endpoint {
            port: 5223,
            ..server.clone()
        };
        let elsewhere = Derivation {
            server: &other,
            ..derivation
        };
        exchange(Hash::Sha256, nonce, sha256_first, &elsewhere)
            .await
            .unwrap();
        assert_eq!(cache.len(), 3);

        // Over the limit: refused before deriving anything.
        let strict = Derivation {
            max_iterations: 4095,
            ..elsewhere
        };
        let refused = exchange(Hash::Sha1, "fyko+d2lbbFgONRv9qkxdawL", sha1_first, &strict)
            .await
            .unwrap_err();
        assert_eq!(refused.reason, Reason::SaslIterations);
        assert!(refused.detail.contains("4096"), "{}", refused.detail);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_server_first_message_is_checked() {
        let (scram, first) = Scram::start(Hash::Sha1, "monitor").unwrap();
        let first = String::from_utf8(first).unwrap();
        let nonce = first.strip_prefix("n,,n=monitor,r=").unwrap().to_owned();
        let read = |text: String| scram.read_server_first(text.as_bytes());
        assert!(read(format!("r={nonce}xyz,s=c2FsdA==,i=4096")).is_ok());
        let reject = [
            format!("r={nonce},s=c2FsdA==,i=4096"),
            format!("r=other{nonce},s=c2FsdA==,i=4096"),
            format!("r={nonce}x,i=4096"),
            format!("r={nonce}x,s=c2FsdA==,i=0"),
            format!("r={nonce}x,s=c2FsdA==,i=4294967296"),
            format!("m=ext,r={nonce}x,s=c2FsdA==,i=4096"),
        ];
        for text in reject {
            assert_eq!(
                read(text.clone()).err().map(|f| f.reason),
                Some(Reason::SaslError),
                "{text}"
            );
        }
    }

    /// A count no deadline can cover ends at the deadline, on a thread of its own.
    #[tokio::test]
    async fn a_huge_count_ends_at_the_deadline() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let password = Secret::new("pencil");
        let failure = derive(Hash::Sha256, &password, b"salt", 2_000_000_000, deadline)
            .await
            .err()
            .unwrap();
        assert_eq!(failure.reason, Reason::Timeout);
        let late = started.elapsed();
        assert!(late < Duration::from_millis(400), "{late:?}");
        // The thread gave its slot back: every slot can be taken again soon.
        let all = u32::try_from(derivation_threads()).unwrap();
        let again = tokio::time::timeout(
            Duration::from_secs(2),
            DERIVATIONS.clone().acquire_many_owned(all),
        );
        assert!(again.await.is_ok());
    }
}
