//! Write the seed corpus of `engine_signature`: `cargo run --example gen-corpus-signature`.
//!
//! The initiator's datagrams of a Main Mode with signatures (MM1, MM3 and the encrypted MM5
//! with IDii and SIG_I, which the fuzzed responder checks and refuses: it has no certificate
//! for the initiator), and an Aggressive Mode message 1 followed by a forged, unencrypted
//! message 3 carrying a CERT (garbage, and the P-256 certificate of the `pki_parse` seeds)
//! and a SIG.

use ike::engine::{Command, Engine, Phase1Mode};
use ike::msgs::{CertPayload, ExchangeType, Header, Message, Payload, CERT_X509_SIGNATURE};
use ike_fuzz::{port500, signature_engine, signature_responder, INITIATOR, RESPONDER, SEPARATOR};
use std::path::Path;
use std::time::Instant;

/// Runs `a` (initiator) against `b` until both are quiet; returns what `a` sent and the
/// first datagram `b` sent.
fn exchange(a: &mut Engine, b: &mut Engine, now: Instant) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let (mut sent, mut first_reply) = (Vec::new(), None);
    for _ in 0..50 {
        if let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, port500(RESPONDER), port500(INITIATOR), &t.contents);
            sent.push(t.contents);
        } else if let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, port500(INITIATOR), port500(RESPONDER), &t.contents);
            first_reply.get_or_insert(t.contents);
        } else {
            break;
        }
    }
    (sent, first_reply)
}

/// Writes a seed after checking that it takes the target's responder to its signature check
/// (a refusal counted under `discarded-certificate`).
fn write(dir: &Path, name: &str, datagrams: &[Vec<u8>]) {
    assert!(datagrams.iter().all(|d| !d.windows(2).any(|w| w == SEPARATOR)), "{name}: separator");
    let now = Instant::now();
    let mut e = signature_responder(now);
    for d in datagrams {
        e.handle_datagram(now, port500(RESPONDER), port500(INITIATOR), d);
        while e.poll_transmit().is_some() {}
    }
    let refused = e.stats().discarded_certificate;
    assert!(refused > 0, "{name} does not reach the signature check");
    println!("{name}: {refused} refused at the signature check");
    std::fs::write(dir.join(name), datagrams.join(&SEPARATOR[..])).unwrap();
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/engine_signature");
    std::fs::create_dir_all(&dir).unwrap();
    let now = Instant::now();
    for seed in 1..20 {
        let mut a = signature_engine(INITIATOR, RESPONDER, Phase1Mode::Main, seed, now);
        let mut b = signature_responder(now);
        a.handle_command(now, Command::Initiate { peer: 0 });
        let (sent, _) = exchange(&mut a, &mut b, now);
        if sent.len() >= 3 && sent.iter().all(|d| !d.windows(2).any(|w| w == SEPARATOR)) {
            write(&dir, "main-sig.bin", &sent);
            break;
        }
    }
    let mut a = signature_engine(INITIATOR, RESPONDER, Phase1Mode::Aggressive, 1, now);
    let mut b = signature_responder(now);
    a.handle_command(now, Command::Initiate { peer: 0 });
    let (sent, reply) = exchange(&mut a, &mut b, now);
    let am1 = sent.first().expect("AM1").clone();
    let am2 = Header::parse(&reply.expect("AM2"), usize::MAX).expect("AM2 header");
    let certificate = include_bytes!("../corpus/pki_parse/cert-p256.der").to_vec();
    for (name, cert) in
        [("aggr-garbage-cert.bin", vec![0x30, 0x82, 0x01, 0x00, 0x02]), ("aggr-cert.bin", certificate)]
    {
        let header = Header { exchange_type: ExchangeType::AGGRESSIVE, flags: 0, message_id: 0, ..am2 };
        let am3 = Message {
            header,
            payloads: vec![
                Payload::Cert(CertPayload { encoding: CERT_X509_SIGNATURE, data: cert }),
                Payload::Sig(vec![0x42; 64]),
            ],
        }
        .emit();
        write(&dir, name, &[am1.clone(), am3]);
    }
    println!("wrote {}", dir.display());
}
