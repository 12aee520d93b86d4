//! Parse arbitrary bytes as an ISAKMP message; whatever parses must
//! re-encode to bytes that parse to the same payloads.
#![no_main]

use ike::msgs::{Message, DEFAULT_MAX_MESSAGE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data, DEFAULT_MAX_MESSAGE_LEN) {
        let again =
            Message::parse(&m.emit(), DEFAULT_MAX_MESSAGE_LEN).expect("re-encoded message must parse");
        assert_eq!(again.payloads, m.payloads);
        if !m.header.is_encrypted() {
            assert_eq!(m.emit(), data, "plaintext parse/emit must be symmetric");
        }
    }
});
