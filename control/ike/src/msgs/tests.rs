use super::*;

fn hdr(next: PayloadType) -> Header {
    Header {
        initiator_cookie: [1; 8],
        responder_cookie: [2; 8],
        next_payload: next,
        version: ISAKMP_VERSION,
        exchange_type: ExchangeType::MAIN_MODE,
        flags: 0,
        message_id: 0,
        length: 0,
    }
}

fn every_payload() -> Vec<Payload> {
    vec![
        Payload::Sa(SaPayload {
            doi: DOI_IPSEC,
            situation: SIT_IDENTITY_ONLY,
            proposals: vec![
                Proposal {
                    number: 1,
                    protocol: ProtocolId::ESP,
                    spi: vec![1, 2, 3, 4],
                    transforms: vec![
                        Transform {
                            number: 1,
                            transform_id: 12,
                            attributes: vec![
                                Attribute::basic(1, 1),
                                Attribute::variable(2, vec![0, 1, 0, 0]),
                                Attribute::basic(6, 256),
                            ],
                        },
                        Transform { number: 2, transform_id: 20, attributes: vec![] },
                    ],
                },
                Proposal {
                    number: 2,
                    protocol: ProtocolId::ISAKMP,
                    spi: vec![],
                    transforms: vec![Transform {
                        number: 1,
                        transform_id: 1,
                        attributes: vec![Attribute::basic(4, 14)],
                    }],
                },
            ],
        }),
        Payload::Ke(vec![7; 256]),
        Payload::Id(IdPayload {
            id_type: IdType::FQDN,
            protocol: 17,
            port: 500,
            data: b"gw.example".to_vec(),
        }),
        Payload::Cert(CertPayload { encoding: 4, data: vec![0x30, 0x00] }),
        Payload::CertReq(CertPayload { encoding: 4, data: vec![] }),
        Payload::Hash(vec![9; 20]),
        Payload::Sig(vec![8; 64]),
        Payload::Nonce(vec![5; 32]),
        Payload::Notify(NotifyPayload {
            doi: DOI_IPSEC,
            protocol: ProtocolId::ISAKMP,
            notify_type: NotifyType::R_U_THERE,
            spi: vec![3; 16],
            data: 42u32.to_be_bytes().to_vec(),
        }),
        Payload::Delete(DeletePayload {
            doi: DOI_IPSEC,
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
        }),
        Payload::VendorId(vec![0x4a, 0x13, 0x1c, 0x81]),
        Payload::NatD(vec![0xaa; 20]),
        Payload::NatOa(NatOaPayload { id_type: IdType::IPV4_ADDR, address: vec![10, 0, 0, 1] }),
        Payload::NatDDraft(vec![0xbb; 20]),
        Payload::NatOaDraft(NatOaPayload { id_type: IdType::IPV6_ADDR, address: vec![0x20; 16] }),
    ]
}

#[test]
fn round_trip_every_payload() {
    let msg = Message { header: hdr(PayloadType::NONE), payloads: every_payload() };
    let bytes = msg.emit();
    let back = Message::parse(&bytes, DEFAULT_MAX_MESSAGE_LEN).unwrap();
    assert_eq!(back.payloads, msg.payloads);
    assert_eq!(back.header.next_payload, PayloadType::SA);
    assert_eq!(back.header.length as usize, bytes.len());
    assert_eq!(back.emit(), bytes);
}

#[test]
fn round_trip_each_payload_alone() {
    for p in every_payload() {
        let msg = Message { header: hdr(PayloadType::NONE), payloads: vec![p.clone()] };
        let bytes = msg.emit();
        let back = Message::parse(&bytes, DEFAULT_MAX_MESSAGE_LEN).unwrap();
        assert_eq!(back.payloads, vec![p]);
    }
}

#[test]
fn raw_payload_spans_are_exact() {
    let (first, body) = emit_chain(&every_payload());
    let raws = parse_chain(first, &body, false).unwrap();
    let joined: Vec<u8> = raws.iter().flat_map(|r| r.raw.to_vec()).collect();
    assert_eq!(joined, body);
    assert_eq!(raws[1].body(), &[7u8; 256][..]);
}

/// draft-ietf-ipsec-nat-t-ike-02/03 number NAT-D 130 and NAT-OA 131 (RFC 3947: 20, 21);
/// the bodies are the same, and a bad NAT-OA reserved field is refused under either number.
#[test]
fn draft_nat_payloads_carry_their_own_type_numbers() {
    let oa = NatOaPayload { id_type: IdType::IPV4_ADDR, address: vec![10, 0, 0, 1] };
    for (p, number) in [
        (Payload::NatD(vec![0xaa; 20]), 20u8),
        (Payload::NatOa(oa.clone()), 21),
        (Payload::NatDDraft(vec![0xaa; 20]), 130),
        (Payload::NatOaDraft(oa.clone()), 131),
    ] {
        let b = one(p.clone());
        // The header's next-payload field names the first payload.
        assert_eq!(b[16], number, "{p:?}");
        assert_eq!(p.payload_type().0, number);
    }
    // Same body bytes under both numbers.
    assert_eq!(one(Payload::NatD(vec![0xaa; 20]))[28..], one(Payload::NatDDraft(vec![0xaa; 20]))[28..]);
    assert_eq!(one(Payload::NatOa(oa.clone()))[28..], one(Payload::NatOaDraft(oa.clone()))[28..]);
    let mut bad = one(Payload::NatOaDraft(oa));
    bad[33] = 1;
    assert_eq!(parse(&bad).unwrap_err(), DecodeError::ReservedNotZero(PayloadType::NAT_OA_DRAFT));
    // Other private-use numbers stay unknown.
    let mut unknown = one(Payload::NatDDraft(vec![0xaa; 20]));
    unknown[16] = 133;
    assert_eq!(parse(&unknown).unwrap_err(), DecodeError::UnknownPayloadType(133));
}

#[test]
fn large_duration_uses_tlv() {
    let a = Attribute::duration(2, 86_400);
    assert_eq!(a.value, AttributeValue::Variable(86_400u32.to_be_bytes().to_vec()));
    assert_eq!(a.as_u64(), Some(86_400));
    assert_eq!(Attribute::duration(2, 3600).value, AttributeValue::Basic(3600));
}

fn one(p: Payload) -> Vec<u8> {
    Message { header: hdr(PayloadType::NONE), payloads: vec![p] }.emit()
}

fn parse(b: &[u8]) -> Result<Message, DecodeError> {
    Message::parse(b, DEFAULT_MAX_MESSAGE_LEN)
}

fn set_len(b: &mut [u8]) {
    let l = b.len() as u32;
    b[24..28].copy_from_slice(&l.to_be_bytes());
}

#[test]
fn truncated_header() {
    let b = one(Payload::Nonce(vec![1; 16]));
    let e = parse(&b[..27]).unwrap_err();
    assert_eq!(e, DecodeError::TruncatedHeader);
    assert_eq!(e.notify_type(), NotifyType::PAYLOAD_MALFORMED);
}

#[test]
fn header_length_disagrees_with_datagram() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    b.push(0);
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::LengthMismatch { header: (b.len() - 1) as u32, actual: b.len() });
    assert_eq!(e.notify_type(), NotifyType::UNEQUAL_PAYLOAD_LENGTHS);
}

#[test]
fn payload_length_beyond_message() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    // Payload length 20 -> 200.
    b[30..32].copy_from_slice(&200u16.to_be_bytes());
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::PayloadTruncated(PayloadType::NONCE));
    assert_eq!(e.notify_type(), NotifyType::PAYLOAD_MALFORMED);
}

#[test]
fn zero_length_payload_cannot_loop() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    b[28] = PayloadType::NONCE.0; // claims another nonce follows
    b[30..32].copy_from_slice(&0u16.to_be_bytes());
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::PayloadLengthTooShort(PayloadType::NONCE));
    assert_eq!(e.notify_type(), NotifyType::PAYLOAD_MALFORMED);
}

#[test]
fn unknown_payload_type() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    b[16] = 99;
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::UnknownPayloadType(99));
    assert_eq!(e.notify_type(), NotifyType::INVALID_PAYLOAD_TYPE);
}

#[test]
fn proposal_at_top_level_is_misplaced() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    b[16] = PayloadType::PROPOSAL.0;
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::MisplacedPayload(PayloadType::PROPOSAL));
    assert_eq!(e.notify_type(), NotifyType::INVALID_PAYLOAD_TYPE);
}

#[test]
fn reserved_must_be_zero() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    b[29] = 1;
    assert_eq!(parse(&b).unwrap_err(), DecodeError::ReservedNotZero(PayloadType::NONCE));
}

fn sa_with(attrs: Vec<Attribute>) -> Payload {
    Payload::Sa(SaPayload {
        doi: DOI_IPSEC,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ISAKMP,
            spi: vec![],
            transforms: vec![Transform { number: 1, transform_id: KEY_IKE, attributes: attrs }],
        }],
    })
}

#[test]
fn attribute_length_overflow() {
    let mut b = one(sa_with(vec![Attribute::variable(12, vec![0, 0, 1, 0])]));
    // SA(4) + doi/sit(8) + proposal hdr(4)+4 + transform hdr(4)+4 = attr at 28+28
    let at = 28 + 28;
    assert_eq!(&b[at..at + 4], &[0, 12, 0, 4]);
    b[at + 2..at + 4].copy_from_slice(&5u16.to_be_bytes());
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::AttributeOverflow);
    assert_eq!(e.notify_type(), NotifyType::PAYLOAD_MALFORMED);
}

#[test]
fn truncated_basic_attribute() {
    // A transform body with 2 attribute bytes only: shrink the lengths.
    let mut b = one(sa_with(vec![Attribute::basic(1, 7)]));
    b.truncate(b.len() - 2);
    for (at, l) in [(30usize, 4u16), (42, 4), (50, 4)] {
        let v = u16::from_be_bytes([b[at], b[at + 1]]) - l + 2;
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    set_len(&mut b);
    assert_eq!(parse(&b).unwrap_err(), DecodeError::AttributeOverflow);
}

#[test]
fn proposal_numbers_must_increase() {
    let mut sa = sa_with(vec![]);
    if let Payload::Sa(s) = &mut sa {
        let mut p2 = s.proposals[0].clone();
        p2.number = 0;
        s.proposals.push(p2);
    }
    let e = parse(&one(sa)).unwrap_err();
    assert_eq!(e, DecodeError::ProposalNumbering);
    assert_eq!(e.notify_type(), NotifyType::BAD_PROPOSAL_SYNTAX);
}

#[test]
fn equal_proposal_numbers_are_allowed() {
    let mut sa = sa_with(vec![]);
    if let Payload::Sa(s) = &mut sa {
        let p2 = s.proposals[0].clone();
        s.proposals.push(p2);
    }
    assert!(parse(&one(sa)).is_ok());
}

#[test]
fn transform_numbers_must_increase() {
    let mut sa = sa_with(vec![]);
    if let Payload::Sa(s) = &mut sa {
        let t = s.proposals[0].transforms[0].clone();
        s.proposals[0].transforms.push(t);
    }
    let e = parse(&one(sa)).unwrap_err();
    assert_eq!(e, DecodeError::TransformNumbering);
    assert_eq!(e.notify_type(), NotifyType::BAD_PROPOSAL_SYNTAX);
}

#[test]
fn transform_count_must_match() {
    let mut b = one(sa_with(vec![]));
    // "# of Transforms" of the only proposal: 1 -> 2.
    assert_eq!(b[28 + 12 + 7], 1);
    b[28 + 12 + 7] = 2;
    assert_eq!(parse(&b).unwrap_err(), DecodeError::TransformNumbering);
}

#[test]
fn empty_sa_is_bad_syntax() {
    let b = one(Payload::Sa(SaPayload { doi: DOI_IPSEC, situation: SIT_IDENTITY_ONLY, proposals: vec![] }));
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::EmptyProposal);
    assert_eq!(e.notify_type(), NotifyType::BAD_PROPOSAL_SYNTAX);
}

#[test]
fn oversize_message() {
    let b = one(Payload::VendorId(vec![0; 2000]));
    let e = Message::parse(&b, 1024).unwrap_err();
    assert_eq!(e, DecodeError::MessageTooLarge(b.len()));
    assert_eq!(e.notify_type(), NotifyType::PAYLOAD_MALFORMED);
}

#[test]
fn invalid_major_version() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    b[17] = 0x20;
    let e = parse(&b).unwrap_err();
    assert_eq!(e, DecodeError::InvalidMajorVersion(2));
    assert_eq!(e.notify_type(), NotifyType::INVALID_MAJOR_VERSION);
}

#[test]
fn trailing_bytes_in_plaintext() {
    let mut b = one(Payload::Nonce(vec![1; 16]));
    b.extend_from_slice(&[0, 0]);
    set_len(&mut b);
    assert_eq!(parse(&b).unwrap_err(), DecodeError::TrailingBytes);
    // ...but padding is fine after decryption.
    let body = &b[28..];
    assert_eq!(parse_chain(PayloadType::NONCE, body, true).unwrap().len(), 1);
}

#[test]
fn delete_spi_count_must_match_length() {
    let mut b = one(Payload::Delete(DeletePayload {
        doi: DOI_IPSEC,
        protocol: ProtocolId::ESP,
        spi_size: 4,
        spis: vec![vec![0; 4]],
    }));
    b[28 + 4 + 6..28 + 4 + 8].copy_from_slice(&2u16.to_be_bytes());
    assert_eq!(parse(&b).unwrap_err(), DecodeError::InconsistentLength(PayloadType::DELETE));
}

#[test]
fn notify_spi_size_beyond_payload() {
    let mut b = one(Payload::Notify(NotifyPayload {
        doi: DOI_IPSEC,
        protocol: ProtocolId::ISAKMP,
        notify_type: NotifyType::INITIAL_CONTACT,
        spi: vec![],
        data: vec![],
    }));
    b[28 + 4 + 5] = 16;
    assert_eq!(parse(&b).unwrap_err(), DecodeError::InconsistentLength(PayloadType::NOTIFY));
}

#[test]
fn too_many_payloads() {
    let payloads = vec![Payload::VendorId(vec![1]); MAX_PAYLOADS + 1];
    let b = Message { header: hdr(PayloadType::NONE), payloads }.emit();
    assert_eq!(parse(&b).unwrap_err(), DecodeError::TooManyElements);
}

/// Every truncation and every single-byte corruption of a valid message is
/// handled without a panic (a poor man's fuzzer over a dense message).
#[test]
fn hostile_mutations_never_panic() {
    let b = Message { header: hdr(PayloadType::NONE), payloads: every_payload() }.emit();
    for cut in 0..b.len() {
        let mut t = b[..cut].to_vec();
        if t.len() >= 28 {
            set_len(&mut t);
        }
        let _ = parse(&t);
    }
    for i in 0..b.len() {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut t = b.clone();
            t[i] = v;
            if let Ok(m) = parse(&t) {
                // Whatever parses must re-emit to something that parses the same.
                let again = parse(&m.emit()).unwrap();
                assert_eq!(again.payloads, m.payloads);
            }
        }
    }
}
