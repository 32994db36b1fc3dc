//! Hermetic in-process peers for integration tests: a test CA, an authoritative DNS
//! server and an XEP-0114 component server. Everything listens on loopback only and
//! stops when dropped.

pub mod bind;
pub mod c2s;
pub mod component;
pub mod corpus;
pub mod dns;
pub mod exporter;
pub mod keytrap;
pub mod middlebox;
pub mod openssl;
pub mod pki;
pub mod xml;

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `deadline`.
pub async fn wait_for<F: FnMut() -> bool>(what: &str, deadline: Duration, mut condition: F) {
    let give_up = tokio::time::Instant::now() + deadline;
    while !condition() {
        if tokio::time::Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hands every accepted connection to `handle`, in a task of its own, for as long as this
/// runs; when it is aborted, dropping the set aborts every connection task too.
pub async fn serve_each<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(handle(tcp));
    }
}
