//! Check `tls.check_legacy_versions`: does the server still accept TLS 1.0 or 1.1?
//!
//! rustls cannot speak them (by design), so this writes one TLS 1.1 ClientHello by hand and
//! reads only the head of the first record that answers it: a ServerHello's version, or an
//! alert. No handshake is completed; nothing is trusted or sent beyond the hello.

use std::net::SocketAddr;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::LegacyTls;

const HANDSHAKE: u8 = 22;
const ALERT: u8 = 21;
const SERVER_HELLO: u8 = 2;
/// The highest version offered: TLS 1.1 (a server that only has 1.0 answers with that).
const TLS11: u16 = 0x0302;
/// What TLS 1.0 and 1.1 servers agree on: ECDHE and RSA key exchange, AES-CBC and 3DES.
const SUITES: [u16; 10] = [
    0xc013, 0xc014, 0xc009, 0xc00a, 0x0033, 0x0039, 0x002f, 0x0035, 0x000a, 0x00ff,
];

/// Offers TLS 1.1 at most to `address` (with SNI `server_name` when it is a DNS name) and
/// says what the server did with it.
pub async fn check(address: SocketAddr, server_name: Option<&str>, deadline: Instant) -> LegacyTls {
    match timeout_at(deadline, ask(address, server_name)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => LegacyTls::Unknown(format!("no answer to a TLS 1.1 hello: {error}")),
        Err(_) => LegacyTls::Unknown("no answer to a TLS 1.1 hello before the deadline".into()),
    }
}

async fn ask(address: SocketAddr, server_name: Option<&str>) -> std::io::Result<LegacyTls> {
    let mut tcp = TcpStream::connect(address).await?;
    tcp.write_all(&client_hello(server_name)?).await?;
    // Only the record header and the ServerHello's first six bytes are read: bounded.
    let mut header = [0u8; 5];
    match tcp.read_exact(&mut header).await {
        Ok(_) => {}
        // Closing on a version it does not speak is a refusal too.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(LegacyTls::Refused),
        Err(e) => return Err(e),
    }
    let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
    match header[0] {
        ALERT => Ok(LegacyTls::Refused),
        HANDSHAKE if length >= 6 => {
            let mut hello = [0u8; 6];
            tcp.read_exact(&mut hello).await?;
            let version = u16::from_be_bytes([hello[4], hello[5]]);
            Ok(match hello[0] {
                SERVER_HELLO if version <= TLS11 => LegacyTls::Accepted(version),
                // A server that answers 1.2 to a 1.1 hello did not accept the old version.
                SERVER_HELLO => LegacyTls::Refused,
                other => LegacyTls::Unknown(format!(
                    "the server answered a TLS 1.1 hello with handshake message type {other}"
                )),
            })
        }
        other => Ok(LegacyTls::Unknown(format!(
            "the server answered a TLS 1.1 hello with record type {other}"
        ))),
    }
}

/// A TLS 1.1 ClientHello in its record (RFC 4346 and the extensions of RFC 6066, 8422, 5746).
fn client_hello(server_name: Option<&str>) -> std::io::Result<Vec<u8>> {
    let mut random = [0u8; 32];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| std::io::Error::other("no randomness for a TLS hello"))?;
    let mut extensions = Vec::new();
    if let Some(name) = server_name.filter(|n| n.len() < 256) {
        let name = name.as_bytes();
        let entry = [&[0u8][..], &u16_be(name.len()), name].concat();
        extension(
            &mut extensions,
            0x0000,
            &[&u16_be(entry.len())[..], &entry].concat(),
        );
    }
    // supported_groups: x25519, secp256r1, secp384r1; ec_point_formats: uncompressed.
    extension(&mut extensions, 0x000a, &[0, 6, 0, 29, 0, 23, 0, 24]);
    extension(&mut extensions, 0x000b, &[1, 0]);
    let suites: Vec<u8> = SUITES.iter().flat_map(|s| s.to_be_bytes()).collect();
    let body = [
        &TLS11.to_be_bytes()[..],
        &random,
        &[0], // no session id
        &u16_be(suites.len()),
        &suites,
        &[1, 0], // null compression only
        &u16_be(extensions.len()),
        &extensions,
    ]
    .concat();
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes();
    let handshake = [&[1u8][..], &length[1..], &body].concat();
    Ok([&[HANDSHAKE, 3, 1][..], &u16_be(handshake.len()), &handshake].concat())
}

/// `TLSv1.1`, as `cms_xmpp_tls_info` names versions.
pub fn version_name(version: u16) -> String {
    match version {
        0x0300 => "SSLv3".to_owned(),
        0x0301 => "TLSv1.0".to_owned(),
        0x0302 => "TLSv1.1".to_owned(),
        other => format!("0x{other:04x}"),
    }
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16_be(data.len()));
    out.extend_from_slice(data);
}

fn u16_be(length: usize) -> [u8; 2] {
    u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_is_one_well_formed_tls_1_1_record() {
        let hello = client_hello(Some("xmpp.example.com")).unwrap();
        assert_eq!(&hello[..3], &[HANDSHAKE, 3, 1]);
        let record = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record, hello.len() - 5);
        assert_eq!(hello[5], 1, "client_hello");
        let body = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(body, record - 4);
        assert_eq!(&hello[9..11], &TLS11.to_be_bytes());
        assert!(hello
            .windows(b"xmpp.example.com".len())
            .any(|w| w == b"xmpp.example.com"));
        let without_sni = client_hello(None).unwrap();
        assert_eq!(hello.len() - without_sni.len(), 4 + 2 + 3 + 16);
    }
}
