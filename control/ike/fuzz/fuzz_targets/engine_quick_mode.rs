//! Quick Mode and Informational exchanges after phase 1, on both sides: two engines
//! establish an IKE SA, then the fuzzer's payload chains are sealed under its keys (right
//! cookies, IV and, unless the input says otherwise, HASH) and fed to the responder or the
//! initiator (see `src/quick_mode.rs` for the input format). Nothing may panic.
#![no_main]

use ike_fuzz::datagrams;
use ike_fuzz::quick_mode::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = Session::new();
    for d in datagrams(data).take(16) {
        s.send(d);
    }
    // Whatever happened, both engines still answer queries and run their timers.
    let _ = (s.initiator.ike_sas(), s.responder.ike_sas());
    let later = s.now + std::time::Duration::from_secs(4000);
    s.initiator.handle_timeout(later);
    s.responder.handle_timeout(later);
});
