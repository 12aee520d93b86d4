//! Fuzz the inbound path with fixed SAs: byte 0 picks the SA, the rest is the packet (L3).
//! Any input must give `Ok` or a `DropReason`, never a panic, and an accepted packet must
//! lie inside the buffer.
#![no_main]

use esp::{decap, PacketBuffer, VecBuffer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, pkt)) = data.split_first() else {
        return;
    };
    let mut sa = esp_fuzz::inbound(usize::from(k));
    let mut b = VecBuffer::new(pkt);
    if decap(&mut sa, &mut b).is_ok() {
        assert!(b.data_offset() + b.data_len() <= b.storage().len());
        assert!(!b.data().is_empty());
    }
});
