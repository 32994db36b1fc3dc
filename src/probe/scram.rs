//! SCRAM-SHA-256 and SCRAM-SHA-1 for the monitoring user (RFC 5802, RFC 7677): the exchange,
//! a few HMACs; the salted password comes from [`super::kdf`], off the async workers.
//!
//! The sasl crate's client derives inside `Mechanism::response`, on the caller's thread and
//! with no way to stop, and its pre-derived `Password::Pbkdf2` refuses exactly the salt and
//! count it was derived for (its checks are inverted in 0.5), so it can neither run under a
//! deadline nor reuse a derivation.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::digest;
use tokio::time::Instant;

use super::kdf::{CacheKey, Hash, SaltedPasswords};
use super::{Endpoint, Failure, Reason};
use crate::config::Secret;

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
        let client_key = self.hash.mac(salted.expose(), b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), client_key.as_ref());
        let signature = self.hash.mac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = self.hash.mac(salted.expose(), b"Server Key");
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
        // (hash, client nonce, server-first, client-final, server-final), from the RFCs.
        let sha1 = (
            Hash::Sha1,
            "fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
        let sha256 = (
            Hash::Sha256,
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
        let mut expected = Vec::new();
        for (hash, nonce, server_first, client_final, server_final) in [sha1, sha256] {
            let (message, signature) = exchange(hash, nonce, server_first, &derivation)
                .await
                .unwrap();
            assert_eq!(message, client_final);
            assert_eq!(
                verify_server_final(&signature, server_final.as_bytes()),
                Ok(())
            );
            expected = signature;
        }
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

        // Again: served from the cache. Another server: derived for it.
        exchange(Hash::Sha256, sha256.1, sha256.2, &derivation)
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
        exchange(Hash::Sha256, sha256.1, sha256.2, &elsewhere)
            .await
            .unwrap();
        assert_eq!(cache.len(), 3);

        // Over the limit: refused before deriving anything.
        let strict = Derivation {
            max_iterations: 4095,
            ..elsewhere
        };
        let refused = exchange(sha1.0, sha1.1, sha1.2, &strict).await.unwrap_err();
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
}
