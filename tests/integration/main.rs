//! The exporter against in-process peers that speak the real protocols: an authoritative DNS
//! server (real DNS messages), XEP-0114 component servers (real TLS, real XML) and a test CA.
//! One test binary, so that a helper no test uses is reported as dead code.

#[path = "../support/mod.rs"]
mod support;

mod exposition;
mod operations;
mod peers;
mod probe;
