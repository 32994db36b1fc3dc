//! The DNS side of a probe: `srv` (the SRV lookup a Callbridge makes), `resolve` (a server's
//! addresses and its TLSA records), `lookups` (the resolvers and how their errors read),
//! `dnssec` (what validation said of an answer, and why one is bogus) and `dane` (TLSA
//! records held against the chain a server sent).

mod anchors;
pub mod dane;
pub mod dnssec;
pub mod lookups;
pub mod resolve;
pub mod srv;

pub use lookups::{Lookups, ResolverSetupError, Resolvers};
