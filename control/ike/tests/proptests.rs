//! Property tests: codec round trips, hostile bytes, and bit flips on the
//! wire between two engines.

use ike::msgs::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x7fff, any::<u16>()).prop_map(|(k, v)| Attribute::basic(k, v)),
        (0u16..0x7fff, bytes(16)).prop_map(|(k, v)| Attribute::variable(k, v)),
    ]
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (any::<u8>(), any::<u8>(), bytes(8), vec((any::<u8>(), vec(attribute(), 0..6)), 1..5)).prop_map(
        |(number, protocol, spi, ts)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms: ts
                .into_iter()
                .enumerate()
                .map(|(i, (id, attributes))| Transform { number: i as u8 + 1, transform_id: id, attributes })
                .collect(),
        },
    )
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), vec(proposal(), 1..4)).prop_map(|(doi, situation, mut proposals)| {
            proposals.sort_by_key(|p| p.number);
            Payload::Sa(SaPayload { doi, situation, proposals })
        }),
        bytes(300).prop_map(Payload::Ke),
        (any::<u8>(), any::<u8>(), any::<u16>(), bytes(40)).prop_map(|(t, protocol, port, data)| {
            Payload::Id(IdPayload { id_type: IdType(t), protocol, port, data })
        }),
        (any::<u8>(), bytes(60)).prop_map(|(encoding, data)| Payload::Cert(CertPayload { encoding, data })),
        (any::<u8>(), bytes(60))
            .prop_map(|(encoding, data)| Payload::CertReq(CertPayload { encoding, data })),
        bytes(64).prop_map(Payload::Hash),
        bytes(64).prop_map(Payload::Sig),
        bytes(64).prop_map(Payload::Nonce),
        (any::<u32>(), any::<u8>(), any::<u16>(), bytes(16), bytes(16)).prop_map(|(doi, p, t, spi, data)| {
            Payload::Notify(NotifyPayload {
                doi,
                protocol: ProtocolId(p),
                notify_type: NotifyType(t),
                spi,
                data,
            })
        }),
        (any::<u32>(), any::<u8>(), 1u8..17, 0usize..4).prop_map(|(doi, p, size, n)| {
            Payload::Delete(DeletePayload {
                doi,
                protocol: ProtocolId(p),
                spi_size: size,
                spis: (0..n).map(|i| vec![i as u8; usize::from(size)]).collect(),
            })
        }),
        bytes(32).prop_map(Payload::VendorId),
        bytes(64).prop_map(Payload::NatD),
        (any::<u8>(), bytes(16))
            .prop_map(|(t, address)| Payload::NatOa(NatOaPayload { id_type: IdType(t), address })),
        bytes(64).prop_map(Payload::NatDDraft),
        (any::<u8>(), bytes(16))
            .prop_map(|(t, address)| Payload::NatOaDraft(NatOaPayload { id_type: IdType(t), address })),
    ]
}

fn header(exchange: u8, message_id: u32) -> Header {
    Header {
        initiator_cookie: [3; 8],
        responder_cookie: [4; 8],
        next_payload: PayloadType::NONE,
        version: ISAKMP_VERSION,
        exchange_type: ExchangeType(exchange),
        flags: 0,
        message_id,
        length: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// parse(emit(m)) == m, and emit(parse(b)) == b.
    #[test]
    fn message_round_trip(payloads in vec(payload(), 0..8), ex in any::<u8>(), mid in any::<u32>()) {
        let m = Message { header: header(ex, mid), payloads };
        let b = m.emit();
        let back = Message::parse(&b, 1 << 20).unwrap();
        prop_assert_eq!(&back.payloads, &m.payloads);
        prop_assert_eq!(back.emit(), b);
    }

    /// Arbitrary bytes never panic the decoder; what parses re-encodes.
    #[test]
    fn arbitrary_bytes(mut b in bytes(400), len_ok in any::<bool>()) {
        if len_ok && b.len() >= 28 {
            let l = b.len() as u32;
            b[24..28].copy_from_slice(&l.to_be_bytes());
            b[17] = ISAKMP_VERSION;
        }
        if let Ok(m) = Message::parse(&b, DEFAULT_MAX_MESSAGE_LEN) {
            let again = Message::parse(&m.emit(), DEFAULT_MAX_MESSAGE_LEN).unwrap();
            prop_assert_eq!(again.payloads, m.payloads);
        }
    }

    /// Any single bit flipped in a valid message either fails to parse or
    /// parses to something different (nothing is silently ignored), except
    /// in the header fields that carry no payload semantics.
    #[test]
    fn bit_flips_are_visible(payloads in vec(payload(), 1..5), bit in any::<prop::sample::Index>()) {
        let m = Message { header: header(2, 0), payloads };
        let b = m.emit();
        let i = bit.index(b.len() * 8);
        let mut f = b.clone();
        f[i / 8] ^= 1 << (i % 8);
        if let Ok(p) = Message::parse(&f, 1 << 20) {
            prop_assert!(p != m || f == b);
        }
    }
}
