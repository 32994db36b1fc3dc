//! The DNS side of a probe: `srv` (the SRV lookup a Callbridge makes), `resolve` (a server's
//! addresses and its TLSA records), `lookups` (plain or validating, and how their errors
//! read), `resolver` (how a hickory resolver is set up), `validating` (the validating
//! resolver, on a thread of its own), `anchors` (the trust anchors file's keys proven the way
//! BIND proves them), `keytrap` (zones whose key sets are shaped for KeyTrap, refused
//! whatever order their records come in), `dnssec` (what validation said of an answer, and
//! why one is bogus) and `dane` (TLSA records held against the chain a server sent).

mod anchors;
pub mod dane;
pub mod dnssec;
mod keytrap;
pub mod lookups;
pub mod resolve;
mod resolver;
pub mod srv;
mod validating;

pub use lookups::{Lookups, Resolvers};
pub use resolver::ResolverSetupError;
