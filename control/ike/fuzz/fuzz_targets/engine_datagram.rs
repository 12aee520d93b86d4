//! Feed arbitrary datagrams to a responder engine configured for one peer;
//! it must never panic and never emit an established SA.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    // The input may hold several datagrams separated by a 0xfe 0xfe marker.
    ike_fuzz::feed_responder(ike_fuzz::responder(), now, data);
});
