//! Feed arbitrary datagrams to a responder engine configured for one peer;
//! it must never panic and never emit an established SA.
#![no_main]

use ike::engine::Event;
use ike_fuzz::{datagrams, port500, INITIATOR, RESPONDER};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut e = ike_fuzz::responder();
    let now = Instant::now();
    // The input may hold several datagrams separated by a 0xfe 0xfe marker.
    for d in datagrams(data) {
        e.handle_datagram(now, port500(RESPONDER), port500(INITIATOR), d);
        e.handle_timeout(now + Duration::from_secs(1));
        while e.poll_transmit().is_some() {}
        while let Some(ev) = e.poll_event() {
            assert!(!matches!(ev, Event::IkeSaEstablished { .. }));
        }
    }
});
