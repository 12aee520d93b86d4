//! Times MODP exponentiation with `crypto-bigint` (what the crate uses) and
//! `num-bigint` (the alternative), for the bignum choice in `docs/ike.md`.
//!
//! `cargo run --release -p ike --example modpow_timing`

use ike::crypto::dh::{modp_pow, modp_prime};
use ike::crypto::DhGroup;
use std::time::Instant;

fn main() {
    let iters = 20u32;
    for group in [DhGroup::Modp2048, DhGroup::Modp3072, DhGroup::Modp4096] {
        let p_bytes = modp_prime(group).unwrap_or_default();
        let p = num_bigint::BigUint::from_bytes_be(&p_bytes);
        let base_bytes = modp_pow(group, &[2], &[0x5a; 40]).unwrap_or_default();
        let base = num_bigint::BigUint::from_bytes_be(&base_bytes);
        for exp_bits in [group.exponent_bits(), p_bytes.len() * 8] {
            let exp = vec![0xa5u8; exp_bits / 8];
            let t = Instant::now();
            let mut a = Vec::new();
            for _ in 0..iters {
                a = modp_pow(group, &base_bytes, &exp).unwrap_or_default();
            }
            let cb = t.elapsed() / iters;
            let e = num_bigint::BigUint::from_bytes_be(&exp);
            let t = Instant::now();
            let mut b = num_bigint::BigUint::default();
            for _ in 0..iters {
                b = base.modpow(&e, &p);
            }
            let nb = t.elapsed() / iters;
            let same = num_bigint::BigUint::from_bytes_be(&a) == b;
            println!(
                "group {:2} exponent {:4} bits: crypto-bigint {:>9.3?}  num-bigint {:>9.3?}  (results equal: {same})",
                group.id(),
                exp_bits,
                cb,
                nb
            );
        }
    }
}
