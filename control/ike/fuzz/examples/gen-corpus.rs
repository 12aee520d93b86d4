//! Write the seed corpora of both targets: `cargo run --example gen-corpus`.
//!
//! - `corpus/decode_message/`: every datagram of genuine Main and Aggressive Mode exchanges with
//!   Quick Mode, a DPD and a Delete (plaintext and encrypted messages).
//! - `corpus/engine_datagram/`: the initiator's side of those exchanges as the fuzzed responder
//!   sees them, cut before the message that would establish the SA (the target asserts that
//!   nothing does), plus the same exchanges with a wrong pre-shared key.

use ike::engine::{Command, Engine, Phase1Mode};
use ike_fuzz::{port500, responder, INITIATOR, RESPONDER, SEPARATOR};
use std::path::Path;
use std::time::Instant;

/// Runs `a` (initiator) against `b` until both are quiet; returns (sent by a, datagram).
fn exchange(a: &mut Engine, b: &mut Engine, now: Instant) -> Vec<(bool, Vec<u8>)> {
    let mut log = Vec::new();
    for _ in 0..50 {
        if let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, t.destination, t.source, &t.contents);
            log.push((true, t.contents));
        } else if let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, t.destination, t.source, &t.contents);
            log.push((false, t.contents));
        } else {
            break;
        }
    }
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    log
}

type Datagrams = Vec<Vec<u8>>;

/// All datagrams of one exchange and the initiator's alone, or `None` if one of the
/// initiator's holds the separator.
fn handshake(psk: &[u8], mode: Phase1Mode, seed: u64) -> Option<(Datagrams, Datagrams)> {
    let now = Instant::now();
    let (mut a, mut b) = (ike_fuzz::initiator(psk, mode, seed), responder());
    a.handle_command(now, Command::Initiate { peer: 0 });
    let mut all = exchange(&mut a, &mut b, now);
    if let Some(sa) = a.ike_sas().first().filter(|sa| sa.state == "Established") {
        a.handle_command(now, Command::DeadPeerDetection(sa.id));
        all.extend(exchange(&mut a, &mut b, now));
        a.handle_command(now, Command::Delete(sa.id));
        all.extend(exchange(&mut a, &mut b, now));
    }
    let sent: Datagrams = all.iter().filter(|(i, _)| *i).map(|(_, d)| d.clone()).collect();
    if sent.iter().any(|d| d.windows(2).any(|w| w == SEPARATOR)) {
        return None;
    }
    Some((all.into_iter().map(|(_, d)| d).collect(), sent))
}

fn write(dir: &Path, name: &str, datagrams: &[Vec<u8>]) {
    std::fs::write(dir.join(name), datagrams.join(&SEPARATOR[..])).unwrap();
}

/// Where an `engine_datagram` seed leaves the target's responder (its IKE SA's state).
fn responder_state(datagrams: &[Vec<u8>]) -> String {
    let now = Instant::now();
    let mut b = responder();
    for d in datagrams {
        b.handle_datagram(now, port500(RESPONDER), port500(INITIATOR), d);
        while b.poll_transmit().is_some() {}
    }
    b.ike_sas().iter().map(|sa| sa.state).collect::<Vec<_>>().join(",")
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (decode, engine) = (root.join("decode_message"), root.join("engine_datagram"));
    for d in [&decode, &engine] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut n = 0;
    for (mode, tag, established_after) in [(Phase1Mode::Main, "main", 3), (Phase1Mode::Aggressive, "aggr", 2)]
    {
        // The first initiator seed whose datagrams hold no separator.
        let (all, sent, wrong_key) = (1..)
            .find_map(|seed| {
                let (all, sent) = handshake(ike_fuzz::PSK, mode, seed)?;
                let (_, wrong) = handshake(b"wrong", mode, seed)?;
                Some((all, sent, wrong))
            })
            .unwrap();
        for (i, d) in all.iter().enumerate() {
            write(&decode, &format!("{tag}-{i:02}.bin"), std::slice::from_ref(d));
            n += 1;
        }
        // Each prefix that does not yet establish the SA.
        for k in 1..established_after.min(sent.len() + 1) {
            write(&engine, &format!("{tag}-{k}.bin"), &sent[..k]);
            println!("engine_datagram/{tag}-{k}.bin: responder in {}", responder_state(&sent[..k]));
            n += 1;
        }
        write(&engine, &format!("{tag}-wrong-key.bin"), &wrong_key);
        println!("engine_datagram/{tag}-wrong-key.bin: responder in {}", responder_state(&wrong_key));
        n += 1;
    }
    println!("wrote {n} seeds under {}", root.display());
}
