//! Feed arbitrary datagrams to a responder engine with signature
//! authentication (CERT, CERTREQ and SIG payloads reach the certificate
//! parser, the ID match and the path validation); it must never panic and
//! never emit an established SA. Seeds: `cargo run --example gen-corpus-signature`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    ike_fuzz::feed_responder(ike_fuzz::signature_responder(now), now, data);
});
