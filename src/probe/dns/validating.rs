//! The validating resolver of a config: hickory's, with the keys the trust anchors prove
//! (`anchors`) as its anchors, rebuilt whenever they change; its lookups run on a thread of
//! their own, so that the CPU validation spends (signatures, a KeyTrap-shaped answer) never
//! holds the workers that serve `/metrics` and probe the other targets, and a lookup whose
//! caller gives up (the probe's deadline) is stopped, not left running. A name is screened
//! for a KeyTrap-shaped key set before it is validated and what validation calls secure
//! before it is trusted (`keytrap`); a zone found so is refused for a while without
//! validating or reading anything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::rdata::DNSKEY;
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::TokioResolver;

use super::anchors::{self, Island, Primed};
use super::dnssec::bogus;
use super::keytrap::{Screen, Verdict};
use super::resolver::{resolver, ResolverSetupError};
use crate::config::DnsConfig;
use crate::probe::{Failure, Reason};

/// A validating resolver, rebuilt whenever the keys its trust anchors prove change.
pub(super) struct Validating {
    config: DnsConfig,
    request_timeout: Duration,
    islands: Vec<Island>,
    state: tokio::sync::Mutex<ValidatingState>,
    /// Zones found KeyTrap-shaped, why, and until when every lookup in them is refused
    /// without validating.
    refused: std::sync::Mutex<Vec<(Name, String, Instant)>>,
    /// What KeyTrap screening found of zones and names.
    screen: Screen,
    thread: ValidationThread,
}

/// How long a zone found KeyTrap-shaped is refused before it is validated again.
const REFUSE_FOR: Duration = Duration::from_secs(60);

struct ValidatingState {
    resolver: TokioResolver,
    /// What priming found of each island (as `islands`), `None` before it was tried.
    primed: Vec<Option<Primed>>,
}

/// A runtime of one worker thread for validation; shut down without waiting when the config
/// it serves is replaced (a runtime may not be dropped inside another).
struct ValidationThread {
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ValidationThread {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Stops the lookup task when the lookup is dropped (its caller's deadline passed).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Validating {
    /// Validating up to the IANA root's keys alone until the file's anchors have proven theirs.
    pub(super) fn new(
        config: &DnsConfig,
        request_timeout: Duration,
    ) -> Result<Validating, ResolverSetupError> {
        let resolver = resolver(config, request_timeout, Some(Arc::default()))?;
        let islands = anchors::islands(config.trust_anchors.file_anchors());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dnssec")
            .enable_all()
            .build()
            .map_err(|e| ResolverSetupError(NetError::from(e)))?;
        Ok(Validating {
            config: config.clone(),
            request_timeout,
            state: tokio::sync::Mutex::new(ValidatingState {
                resolver,
                primed: vec![None; islands.len()],
            }),
            screen: Screen::new(islands.iter().map(|i| i.owner.clone()).collect()),
            islands,
            refused: std::sync::Mutex::default(),
            thread: ValidationThread {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
            },
        })
    }

    /// `name`'s records of `rtype` (`name` absolute), asked on the validation thread. The
    /// outer error: the lookup could not be made (its zone's trust anchor proves no key, its
    /// zone is KeyTrap-shaped, or the keys of what validation calls secure could not be read
    /// to tell); the inner result: the answer or the resolver's error.
    pub(super) async fn lookup(
        self: &Arc<Self>,
        nameservers: Arc<[SocketAddr]>,
        name: &str,
        rtype: RecordType,
    ) -> Result<Result<Lookup, NetError>, Failure> {
        let owner = Name::from_ascii(name)
            .map_err(|e| Failure::new(Reason::DnsError, format!("{rtype} {name}: {e}")))?;
        let this = Arc::clone(self);
        let name = name.to_owned();
        let asked = owner.clone();
        let task = self.thread.handle.spawn(async move {
            let what = format!("{rtype} {asked}");
            if let Some(why) = this.refused_zone(&asked) {
                return Err(bogus(&what, &why));
            }
            let timeout = this.request_timeout;
            // Screened first: a KeyTrap-shaped zone costs two reads, where validating it
            // costs hickory's bounded but heaviest work, which may outrun the deadline and so
            // never reach a verdict (the reads that could not be made leave nothing behind:
            // the next lookup screens again, and validation decides meanwhile).
            let screened = this
                .screen
                .name(&nameservers, &asked, rtype, false, timeout)
                .await;
            if let Verdict::Trapped { zone, why } = screened {
                return Err(this.refuse(zone, why, &what));
            }
            let answer = this.validated(&nameservers, &name, &asked, rtype).await?;
            // Bogus: screened again (the zone may have changed since), so that a zone that
            // turned KeyTrap-shaped is refused rather than validated by every lookup.
            if matches!(answer, Err(NetError::Dns(DnsError::DnssecBogus))) {
                return match this
                    .screen
                    .name(&nameservers, &asked, rtype, true, timeout)
                    .await
                {
                    Verdict::Trapped { zone, why } => Err(this.refuse(zone, why, &what)),
                    _ => Ok(answer),
                };
            }
            // Secure only when no key set that proved it is KeyTrap-shaped: hickory's bounds
            // let such a set through when its real key and signature come first.
            match this
                .screen
                .answer(&nameservers, &answer, &what, timeout)
                .await
            {
                Verdict::Sound => Ok(answer),
                Verdict::Trapped { zone, why } => Err(this.refuse(zone, why, &what)),
                Verdict::Unread(failure) => Err(failure),
            }
        });
        let _stop = AbortOnDrop(task.abort_handle());
        task.await.unwrap_or_else(|failed| {
            Err(Failure::new(
                Reason::DnsError,
                format!("{rtype} {owner}: the validating lookup failed: {failed}"),
            ))
        })
    }

    /// hickory's answer to `name`'s `rtype`; one that is bogus in an island of trust is asked
    /// once more when the island's keys, read again, changed (a key rollover the last priming
    /// did not see).
    async fn validated(
        &self,
        nameservers: &[SocketAddr],
        name: &str,
        asked: &Name,
        rtype: RecordType,
    ) -> Result<Result<Lookup, NetError>, Failure> {
        let (resolver, _) = self.resolver(nameservers, asked, false).await?;
        let answer = resolver.lookup(name, rtype).await;
        if !matches!(answer, Err(NetError::Dns(DnsError::DnssecBogus))) {
            return Ok(answer);
        }
        Ok(match self.resolver(nameservers, asked, true).await? {
            (resolver, true) => resolver.lookup(name, rtype).await,
            (_, false) => answer,
        })
    }

    /// Refuses `zone` (KeyTrap-shaped: `why`) for a while; the failure of the lookup `what`.
    fn refuse(&self, zone: Name, why: String, what: &str) -> Failure {
        let until = Instant::now() + REFUSE_FOR;
        let mut refused = self.refused.lock().expect("refused zones");
        refused.retain(|(other, ..)| *other != zone);
        let failure = bogus(what, &why);
        refused.push((zone, why, until));
        failure
    }

    /// Why `name`'s zone is refused, while it is.
    fn refused_zone(&self, name: &Name) -> Option<String> {
        let now = Instant::now();
        let mut refused = self.refused.lock().expect("refused zones");
        refused.retain(|(.., until)| now < *until);
        refused
            .iter()
            .find(|(zone, ..)| zone.zone_of(name))
            .map(|(_, why, _)| why.clone())
    }

    /// The resolver, with every island whose keys are due (never primed, or past their TTL or
    /// signature) primed first, and `name`'s island too when `again`; fails when `name`'s
    /// island proved no key. Also says whether `name`'s island's keys changed.
    async fn resolver(
        &self,
        nameservers: &[SocketAddr],
        name: &Name,
        again: bool,
    ) -> Result<(TokioResolver, bool), Failure> {
        let mut state = self.state.lock().await;
        let own = self.islands.iter().position(|i| i.owner.zone_of(name));
        let now = Instant::now();
        let (mut rebuild, mut changed) = (false, false);
        for (i, island) in self.islands.iter().enumerate() {
            let due = state.primed[i].as_ref().is_none_or(|p| now >= p.until());
            let asked_again = again && own == Some(i);
            if !due && !asked_again {
                continue;
            }
            let primed = anchors::prime(nameservers, island, self.request_timeout).await;
            if keys(Some(&primed)) != keys(state.primed[i].as_ref()) {
                rebuild = true;
                changed |= own == Some(i);
            }
            state.primed[i] = Some(primed);
        }
        if rebuild {
            let anchors = hickory_anchors(&self.islands, &state.primed);
            state.resolver = resolver(&self.config, self.request_timeout, Some(Arc::new(anchors)))
                .map_err(|e| Failure::new(Reason::DnsError, e.to_string()))?;
        }
        if let Some(Some(Primed::Failed { failure, .. })) = own.map(|i| &state.primed[i]) {
            return Err(failure.clone());
        }
        Ok((state.resolver.clone(), changed))
    }
}

/// hickory's anchors: the IANA root's keys always (names outside the islands validate from
/// the root, as with any validating resolver), and beside them each island's proven keys at
/// its owner name.
fn hickory_anchors(islands: &[Island], primed: &[Option<Primed>]) -> TrustAnchors {
    let mut anchors = TrustAnchors::default();
    for (island, primed) in islands.iter().zip(primed) {
        for key in keys(primed.as_ref()) {
            anchors.insert_with_name(key.public_key(), island.owner.clone().into());
        }
    }
    anchors
}

/// The keys an island's priming proved.
fn keys(primed: Option<&Primed>) -> &[DNSKEY] {
    match primed {
        Some(Primed::Trusted { keys, .. }) => keys,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use hickory_resolver::proto::dnssec::rdata::DS;
    use hickory_resolver::proto::dnssec::{Algorithm, DigestType, PublicKeyBuf};

    use super::*;
    use crate::config::{Anchor, AnchorKey};

    #[test]
    fn the_iana_root_keys_stay_beside_the_keys_an_anchors_file_of_ds_records_proves() {
        let owner = Name::from_ascii("example.com.").unwrap();
        let ds = DS::new(
            16191,
            Algorithm::ECDSAP256SHA256,
            DigestType::SHA256,
            vec![0; 32],
        );
        let islands = anchors::islands(&[Anchor {
            owner: owner.clone(),
            key: AnchorKey::Ds(ds),
        }]);
        let root = TrustAnchors::default();
        assert!(!root.is_empty(), "hickory ships the IANA root's keys");

        let keeps_the_root = |anchors: &TrustAnchors| {
            (0..root.len()).all(|i| anchors.contains(root.get(i).unwrap()))
        };
        // Before priming, and when priming proved nothing: the root's keys.
        assert!(keeps_the_root(&hickory_anchors(&islands, &[None])));

        let bytes = base64::engine::general_purpose::STANDARD
            .decode("0hHdfY/Vr2g+pnJjqcXndeRIgJR4YqMLD7pxRa38oNbyOvGs96G7C5eYs5dhHv+wz4kkRXMLgVRrAxi4/IEO/g==")
            .unwrap();
        let key = DNSKEY::with_flags(257, PublicKeyBuf::new(bytes, Algorithm::ECDSAP256SHA256));
        let primed = Primed::Trusted {
            keys: vec![key.clone()],
            until: Instant::now(),
        };
        let anchors = hickory_anchors(&islands, &[Some(primed)]);
        assert!(keeps_the_root(&anchors));
        assert!(anchors.contains_with_name(key.public_key(), &owner.clone().into()));
        assert!(
            !anchors.contains_with_name(key.public_key(), &Name::root().into()),
            "a proven key is trusted at its zone only"
        );
    }
}
