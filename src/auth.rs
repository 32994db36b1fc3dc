//! Basic authentication (RFC 7617) against bcrypt hashes, as exporter-toolkit's
//! `basic_auth_users`. A check costs one bcrypt (tens of milliseconds), so successes are
//! remembered: Prometheus pays it once per configuration, not once per scrape.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// Successes remembered at most; past it, each check pays its bcrypt again.
const REMEMBERED: usize = 1024;

pub struct BasicAuth {
    /// User name → bcrypt hash; empty: every request passes.
    users: BTreeMap<String, String>,
    /// What an unknown user is checked against, so that timing tells no user names.
    decoy: Option<String>,
    /// Digests of user and password pairs that passed.
    passed: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time: a flood of guesses cannot take every blocking thread.
    turn: Semaphore,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            decoy: users.values().next().cloned(),
            users,
            passed: Mutex::new(HashSet::new()),
            turn: Semaphore::new(1),
        }
    }

    /// Whether requests must authenticate (the web config names users).
    pub fn required(&self) -> bool {
        self.decoy.is_some()
    }

    /// Whether a request with this `Authorization` header may pass.
    pub async fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(decoy) = &self.decoy else {
            return true;
        };
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let key = digest(&user, &password);
        let passed = || self.passed.lock().unwrap_or_else(|p| p.into_inner());
        if passed().contains(&key) {
            return true;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (decoy.clone(), false),
        };
        let Ok(_turn) = self.turn.acquire().await else {
            return false;
        };
        let verified =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let allowed = verified && known;
        if allowed {
            let mut passed = passed();
            if passed.len() < REMEMBERED {
                passed.insert(key);
            }
        }
        allowed
    }
}

/// The user and password of `Basic <base64(user:password)>`.
fn credentials(header: &HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn digest(user: &str, password: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(user.as_bytes());
    context.update(b"\0");
    context.update(password.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded = BASE64.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prometheus".to_owned(), hash)]));
        assert!(auth.allows(Some(&basic("prometheus", "right"))).await);
        // Remembered: passes again without a bcrypt.
        assert!(auth.allows(Some(&basic("prometheus", "right"))).await);
        assert!(!auth.allows(Some(&basic("prometheus", "wrong"))).await);
        assert!(!auth.allows(Some(&basic("nobody", "right"))).await);
        assert!(!auth.allows(None).await);
        let bearer = HeaderValue::from_static("Bearer abc");
        assert!(!auth.allows(Some(&bearer)).await);
        let open = BasicAuth::new(BTreeMap::new());
        assert!(open.allows(None).await, "no users: no authentication");
    }
}
