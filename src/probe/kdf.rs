//! SCRAM's salted password (RFC 5802 §3: PBKDF2 with as many rounds as the *server* asks),
//! the one CPU-heavy part of a login, kept off the async workers: derived on a thread of its
//! own, in slices that check the probe's deadline, at most `derivation_threads()` at once
//! process-wide, and once per (server, salt, count) for the life of the config: RFC 5802
//! §5.1 lets a client cache it, as servers keep the salt between logins.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

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

    pub fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
        }
    }

    pub fn mac(self, key: &[u8], data: &[u8]) -> hmac::Tag {
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

impl SaltedPassword {
    /// For the exchange's keys only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// What a derivation depends on besides the password (fixed for the life of the config).
#[derive(PartialEq, Eq)]
pub struct CacheKey {
    pub server: Endpoint,
    pub hash: Hash,
    pub salt: Vec<u8>,
    pub iterations: u32,
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
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The salted password for this server's salt and count: kept, or derived now on a
    /// thread of its own and kept, or a `timeout` when the deadline comes first.
    pub async fn get(
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
