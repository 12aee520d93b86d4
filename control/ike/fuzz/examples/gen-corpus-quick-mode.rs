//! Write the seed corpus of `engine_quick_mode`: `cargo run --example gen-corpus-quick-mode`.
//!
//! Genuine Quick Mode and Informational payload chains, taken from a twin session (same
//! seeds, so the same message ids, nonces and SPIs) and re-sealed by the target's rules, so
//! that each seed drives an engine through a whole exchange. The generator checks that it
//! does and prints what each seed makes the engines do.

use ike::engine::{Command, Event};
use ike::msgs::PayloadType;
use ike_fuzz::quick_mode::{Session, Side};
use ike_fuzz::SEPARATOR;
use std::path::Path;

/// An input datagram: control byte, first payload type, message id, body.
fn datagram(control: u8, first: PayloadType, mid: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![control, first.0];
    v.extend_from_slice(&mid.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// The chain after HASH of the next message an engine of a twin session sends.
fn chain_of(twin: &mut Session, side: Side, cmd: impl FnOnce(&mut Session)) -> (PayloadType, u32, Vec<u8>) {
    cmd(twin);
    let t = match side {
        Side::Initiator => twin.initiator.poll_transmit(),
        Side::Responder => twin.responder.poll_transmit(),
    }
    .expect("a message");
    let h = ike::msgs::Header::parse(&t.contents, ike::msgs::DEFAULT_MAX_MESSAGE_LEN).unwrap();
    let iv = twin.iv(side, h.message_id);
    let (first, body) = twin.open_with(&iv, &t.contents).expect("decrypts");
    (first, h.message_id, body)
}

fn installs(s: &Session, side: Side) -> usize {
    s.events.iter().filter(|(x, e)| *x == side && matches!(e, Event::InstallSa { .. })).count()
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join("engine_quick_mode");
    std::fs::create_dir_all(&dir).unwrap();
    let mut seeds: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();

    // The held-back QM1's chain, proposed to the responder as a new exchange, then QM3.
    let s = Session::new();
    let iv = s.keys.phase2_iv(&s.last_block, s.held_mid);
    let (qm1_first, qm1) = s.open_with(&iv, &s.held_qm1).unwrap();
    let fresh = 0x0102_0304;
    seeds.push((
        "responder-qm1-qm3",
        vec![datagram(0x10, qm1_first, fresh, &qm1), datagram(2 << 1, PayloadType::NONE, 0, &[])],
    ));

    // The responder's genuine QM2 to the held QM1, as an answer to the initiator.
    let mut twin = Session::new();
    let held = twin.held_qm1.clone();
    let qm2 = twin.deliver(Side::Responder, &held);
    assert_eq!(qm2.len(), 1, "the twin's responder answers QM1");
    let iv = held[held.len() - 16..].to_vec();
    let (qm2_first, qm2_body) = twin.open_with(&iv, &qm2[0]).unwrap();
    seeds.push(("initiator-qm2", vec![datagram(1 | (1 << 1), qm2_first, 0, &qm2_body)]));

    // Informational: DPD, a child's Delete, the IKE SA's Delete, to either side.
    let mut twin = Session::new();
    let sa = twin.initiator.ike_sas()[0].id;
    let (f, mid, dpd) = chain_of(&mut twin, Side::Initiator, |t| {
        t.initiator.handle_command(t.now, Command::DeadPeerDetection(sa))
    });
    seeds.push(("responder-dpd", vec![datagram(8 | 0x10, f, mid, &dpd)]));
    let child = twin.initiator.ike_sas()[0].children[0].0;
    let (f, mid, del) = chain_of(&mut twin, Side::Initiator, |t| {
        t.initiator.handle_command(t.now, Command::DeleteChild { ike_sa: sa, inbound_spi: child })
    });
    seeds.push(("responder-delete-child", vec![datagram(8 | 0x10, f, mid, &del)]));
    let rsa = twin.responder.ike_sas()[0].id;
    let (f, mid, rdpd) = chain_of(&mut twin, Side::Responder, |t| {
        t.responder.handle_command(t.now, Command::DeadPeerDetection(rsa))
    });
    seeds.push(("initiator-dpd", vec![datagram(1 | 8 | 0x10, f, mid, &rdpd)]));
    let (f, mid, idel) =
        chain_of(&mut twin, Side::Initiator, |t| t.initiator.handle_command(t.now, Command::Delete(sa)));
    seeds.push(("responder-delete-ike", vec![datagram(8 | 0x10, f, mid, &idel)]));
    // Unauthenticated variants the engines must refuse: no HASH, plaintext.
    seeds.push(("responder-qm1-no-hash", vec![datagram(0x10 | (3 << 1), qm1_first, fresh, &qm1)]));
    seeds.push(("responder-qm1-plaintext", vec![datagram(0x10 | 0x20, qm1_first, fresh, &qm1)]));
    seeds.push(("initiator-qm2-wrong-hash", vec![datagram(1, qm2_first, 0, &qm2_body)]));

    for (name, dgs) in &seeds {
        let bytes = dgs.join(&SEPARATOR[..]);
        assert!(dgs.iter().all(|d| !d.windows(2).any(|w| w == SEPARATOR)), "{name} holds the separator");
        let mut s = Session::new();
        let before = (installs(&s, Side::Responder), installs(&s, Side::Initiator));
        let mut replies = 0;
        for d in ike_fuzz::datagrams(&bytes) {
            replies += s.send(d).len();
        }
        let after = (installs(&s, Side::Responder), installs(&s, Side::Initiator));
        let responder = s.responder.ike_sas().iter().map(|x| x.state).collect::<Vec<_>>().join(",");
        let initiator = s.initiator.ike_sas().iter().map(|x| x.state).collect::<Vec<_>>().join(",");
        println!(
            "engine_quick_mode/{name}.bin: {replies} replies, SAs installed +{} responder +{} initiator; \
             IKE SAs: responder [{responder}], initiator [{initiator}]",
            after.0 - before.0,
            after.1 - before.1
        );
        match *name {
            "responder-qm1-qm3" => assert_eq!(after.0 - before.0, 1, "the responder installs the child"),
            "initiator-qm2" => assert_eq!(after.1 - before.1, 1, "the initiator installs the child"),
            "responder-dpd" | "initiator-dpd" => assert_eq!(replies, 1, "R-U-THERE-ACK"),
            n if n.contains("no-hash") || n.contains("plaintext") || n.contains("wrong") => {
                // Refused: no SA (a notification back is allowed).
                assert_eq!(after, before, "{n} is refused")
            }
            _ => {}
        }
        std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
    }
    println!("wrote {} seeds under {}", seeds.len(), dir.display());
}
