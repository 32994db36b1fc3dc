//! Step `handshake`: prove the shared secret (XEP-0114 §3) and read the server's verdict.

use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite};

use super::cert::hex;
use super::stream::unexpected;
use super::xmpp::{Incoming, XmppConn};
use super::{Failure, Reason};
use crate::config::Secret;

/// Lowercase hex SHA-1 of stream id + secret; lowercase because ejabberd compares exactly.
pub fn digest(stream_id: &str, secret: &Secret) -> String {
    let mut sha = Sha1::new();
    sha.update(stream_id.as_bytes());
    sha.update(secret.expose().as_bytes());
    hex(&sha.finalize())
}

/// Sends the digest; success is `<handshake/>` (or Openfire's `<handshake></handshake>`).
/// Stanzas the server may send first are skipped; the byte cap bounds how many.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    stream_id: &str,
    secret: &Secret,
) -> Result<(), Failure> {
    // A server answers our handshake after it has read it: a `<handshake/>` that came before
    // accepts nobody. (A stream error may come early: Openfire refuses at the header.)
    let early = conn.has_unread_input();
    conn.send(&format!(
        "<handshake>{}</handshake>",
        digest(stream_id, secret)
    ))
    .await?;
    loop {
        match conn.next().await? {
            Incoming::Handshake if early => {
                return Err(Failure::new(
                    Reason::Protocol,
                    "the server sent <handshake/> before it had our handshake",
                ))
            }
            Incoming::Handshake => return Ok(()),
            Incoming::Element(_) => continue,
            other => return Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_lowercase_sha1_of_id_then_secret() {
        // python3 -c "import hashlib; print(hashlib.sha1(b'3BF96D75secret').hexdigest())"
        assert_eq!(
            digest("3BF96D75", &Secret::new("secret")),
            "20631b4b87b2d6381daeb556438f05036e09ad66"
        );
    }
}
