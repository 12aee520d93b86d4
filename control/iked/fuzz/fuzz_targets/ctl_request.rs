//! Decode arbitrary bytes as an ikectl request line, as iked's control socket does. It must
//! never panic; an accepted request re-encodes to a line that decodes to the same request.
#![no_main]

use iked::ctl::{parse_request, Command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_request(data) else { return };
    let line = serde_json::to_vec(&req).expect("a request serializes");
    assert_eq!(parse_request(&line).expect("a re-encoded request parses"), req);
    if let Command::Initiate(t) | Command::Terminate(t) = &req.command {
        // Exactly one of child/ike: resolve decides, never panics.
        let ok = t.resolve().is_ok();
        assert_eq!(ok, t.child.is_some() != t.ike.is_some(), "{t:?}");
    }
});
