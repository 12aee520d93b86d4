//! ISAKMP payloads (RFC 2408 §3.2–§3.16, RFC 3947 §3.2 and §5.2).
//!
//! `parse_*` and `emit_*` mirror each other: for every value produced by a
//! parse, emitting it gives back the same bytes. Every payload body is parsed
//! from a [`Reader`] cut to the length in its generic header, and must consume
//! it exactly.

use super::codec::{Put, Reader};
use super::enums::{IdType, NotifyType, PayloadType, ProtocolId};
use super::error::DecodeError;

/// Most payloads accepted in one message.
pub const MAX_PAYLOADS: usize = 32;
/// Most proposals in one SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// Most transforms in one proposal.
pub const MAX_TRANSFORMS: usize = 64;
/// Most attributes in one transform.
pub const MAX_ATTRIBUTES: usize = 32;

/// A data attribute (RFC 2408 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute type, without the AF bit.
    pub kind: u16,
    /// The value, in the encoding it was (or will be) sent in.
    pub value: AttributeValue,
}

/// Attribute value: TV (AF=1) or TLV (AF=0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// Type/Value, two bytes.
    Basic(u16),
    /// Type/Length/Value.
    Variable(Vec<u8>),
}

impl Attribute {
    /// A TV attribute.
    pub fn basic(kind: u16, value: u16) -> Self {
        Self { kind, value: AttributeValue::Basic(value) }
    }

    /// A TLV attribute.
    pub fn variable(kind: u16, value: Vec<u8>) -> Self {
        Self { kind, value: AttributeValue::Variable(value) }
    }

    /// A life duration: TV when it fits 16 bits, else a 4-byte TLV.
    pub fn duration(kind: u16, value: u32) -> Self {
        match u16::try_from(value) {
            Ok(v) => Self::basic(kind, v),
            Err(_) => Self::variable(kind, value.to_be_bytes().to_vec()),
        }
    }

    /// The value as an integer, when it fits 64 bits.
    pub fn as_u64(&self) -> Option<u64> {
        match &self.value {
            AttributeValue::Basic(v) => Some(u64::from(*v)),
            AttributeValue::Variable(b) if b.len() <= 8 => {
                Some(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
            }
            AttributeValue::Variable(_) => None,
        }
    }

    /// Reads one attribute (also used for attribute lists inside Notify
    /// data, e.g. RESPONDER-LIFETIME).
    pub fn parse(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.u16().ok_or(DecodeError::AttributeOverflow)?;
        let kind = t & 0x7fff;
        if t & 0x8000 != 0 {
            let v = r.u16().ok_or(DecodeError::AttributeOverflow)?;
            Ok(Self::basic(kind, v))
        } else {
            let len = r.u16().ok_or(DecodeError::AttributeOverflow)?;
            let v = r.take(usize::from(len)).ok_or(DecodeError::AttributeOverflow)?;
            Ok(Self::variable(kind, v.to_vec()))
        }
    }

    /// Appends the attribute in its TV or TLV form.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match &self.value {
            AttributeValue::Basic(v) => {
                out.put_u16(0x8000 | (self.kind & 0x7fff));
                out.put_u16(*v);
            }
            AttributeValue::Variable(b) => {
                out.put_u16(self.kind & 0x7fff);
                out.put_u16(u16::try_from(b.len()).unwrap_or(u16::MAX));
                out.put(b.get(..usize::from(u16::MAX)).unwrap_or(b));
            }
        }
    }
}

/// Transform payload (RFC 2408 §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform #.
    pub number: u8,
    /// Transform-Id (KEY_IKE in phase 1, ESP_* in phase 2).
    pub transform_id: u8,
    /// SA attributes.
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// First attribute of class `kind`.
    pub fn attribute(&self, kind: u16) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.kind == kind)
    }
}

/// Proposal payload (RFC 2408 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal #.
    pub number: u8,
    /// Protocol-Id.
    pub protocol: ProtocolId,
    /// SPI (empty in phase 1, 4 bytes for ESP).
    pub spi: Vec<u8>,
    /// Transforms, in order of preference.
    pub transforms: Vec<Transform>,
}

/// Security Association payload (RFC 2408 §3.4, RFC 2407 §4.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload {
    /// Domain of Interpretation.
    pub doi: u32,
    /// Situation (only the 4-byte SIT_IDENTITY_ONLY form is supported).
    pub situation: u32,
    /// Proposals.
    pub proposals: Vec<Proposal>,
}

/// Identification payload (RFC 2407 §4.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// ID Type.
    pub id_type: IdType,
    /// IP protocol id (0 = any).
    pub protocol: u8,
    /// Port (0 = any).
    pub port: u16,
    /// Identification data.
    pub data: Vec<u8>,
}

/// Certificate or Certificate Request payload (RFC 2408 §3.9, §3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPayload {
    /// Certificate encoding / type.
    pub encoding: u8,
    /// Certificate data or certificate authority.
    pub data: Vec<u8>,
}

/// Notification payload (RFC 2408 §3.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    /// Domain of Interpretation.
    pub doi: u32,
    /// Protocol-Id.
    pub protocol: ProtocolId,
    /// Notify Message Type.
    pub notify_type: NotifyType,
    /// SPI (may be empty, or the 16 bytes of both cookies).
    pub spi: Vec<u8>,
    /// Notification data.
    pub data: Vec<u8>,
}

/// Delete payload (RFC 2408 §3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    /// Domain of Interpretation.
    pub doi: u32,
    /// Protocol-Id.
    pub protocol: ProtocolId,
    /// SPI size; every entry of `spis` has this length.
    pub spi_size: u8,
    /// SPIs to delete.
    pub spis: Vec<Vec<u8>>,
}

/// NAT-OA payload (RFC 3947 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatOaPayload {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    pub id_type: IdType,
    /// The original address.
    pub address: Vec<u8>,
}

/// One decoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Payload {
    Sa(SaPayload),
    Ke(Vec<u8>),
    Id(IdPayload),
    Cert(CertPayload),
    CertReq(CertPayload),
    Hash(Vec<u8>),
    Sig(Vec<u8>),
    Nonce(Vec<u8>),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    VendorId(Vec<u8>),
    NatD(Vec<u8>),
    NatOa(NatOaPayload),
    /// NAT-D with the draft-02/03 payload type (130).
    NatDDraft(Vec<u8>),
    /// NAT-OA with the draft-02/03 payload type (131).
    NatOaDraft(NatOaPayload),
}

impl Payload {
    /// The payload type of this payload.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Self::Sa(_) => PayloadType::SA,
            Self::Ke(_) => PayloadType::KE,
            Self::Id(_) => PayloadType::ID,
            Self::Cert(_) => PayloadType::CERT,
            Self::CertReq(_) => PayloadType::CERTREQ,
            Self::Hash(_) => PayloadType::HASH,
            Self::Sig(_) => PayloadType::SIG,
            Self::Nonce(_) => PayloadType::NONCE,
            Self::Notify(_) => PayloadType::NOTIFY,
            Self::Delete(_) => PayloadType::DELETE,
            Self::VendorId(_) => PayloadType::VENDOR_ID,
            Self::NatD(_) => PayloadType::NAT_D,
            Self::NatOa(_) => PayloadType::NAT_OA,
            Self::NatDDraft(_) => PayloadType::NAT_D_DRAFT,
            Self::NatOaDraft(_) => PayloadType::NAT_OA_DRAFT,
        }
    }

    fn parse_body(pt: PayloadType, mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let short = DecodeError::PayloadLengthTooShort(pt);
        let p = match pt {
            PayloadType::SA => Self::Sa(parse_sa(&mut r)?),
            PayloadType::KE => Self::Ke(r.rest().to_vec()),
            PayloadType::ID => {
                let id_type = IdType(r.u8().ok_or(short.clone())?);
                let protocol = r.u8().ok_or(short.clone())?;
                let port = r.u16().ok_or(short)?;
                Self::Id(IdPayload { id_type, protocol, port, data: r.rest().to_vec() })
            }
            PayloadType::CERT | PayloadType::CERTREQ => {
                let c = CertPayload { encoding: r.u8().ok_or(short)?, data: r.rest().to_vec() };
                if pt == PayloadType::CERT {
                    Self::Cert(c)
                } else {
                    Self::CertReq(c)
                }
            }
            PayloadType::HASH => Self::Hash(r.rest().to_vec()),
            PayloadType::SIG => Self::Sig(r.rest().to_vec()),
            PayloadType::NONCE => Self::Nonce(r.rest().to_vec()),
            PayloadType::NOTIFY => {
                let doi = r.u32().ok_or(short.clone())?;
                let protocol = ProtocolId(r.u8().ok_or(short.clone())?);
                let spi_size = r.u8().ok_or(short.clone())?;
                let notify_type = NotifyType(r.u16().ok_or(short)?);
                let spi = r.take(usize::from(spi_size)).ok_or(DecodeError::InconsistentLength(pt))?.to_vec();
                Self::Notify(NotifyPayload { doi, protocol, notify_type, spi, data: r.rest().to_vec() })
            }
            PayloadType::DELETE => {
                let doi = r.u32().ok_or(short.clone())?;
                let protocol = ProtocolId(r.u8().ok_or(short.clone())?);
                let spi_size = r.u8().ok_or(short.clone())?;
                let count = r.u16().ok_or(short)?;
                let total = usize::from(spi_size) * usize::from(count);
                if r.left() != total || (spi_size == 0 && count != 0) {
                    return Err(DecodeError::InconsistentLength(pt));
                }
                if usize::from(count) > MAX_PROPOSALS {
                    return Err(DecodeError::TooManyElements);
                }
                let mut spis = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let s = r.take(usize::from(spi_size)).ok_or(DecodeError::InconsistentLength(pt))?;
                    spis.push(s.to_vec());
                }
                Self::Delete(DeletePayload { doi, protocol, spi_size, spis })
            }
            PayloadType::VENDOR_ID => Self::VendorId(r.rest().to_vec()),
            PayloadType::NAT_D => Self::NatD(r.rest().to_vec()),
            PayloadType::NAT_D_DRAFT => Self::NatDDraft(r.rest().to_vec()),
            PayloadType::NAT_OA => Self::NatOa(parse_nat_oa(pt, &mut r)?),
            PayloadType::NAT_OA_DRAFT => Self::NatOaDraft(parse_nat_oa(pt, &mut r)?),
            PayloadType::PROPOSAL | PayloadType::TRANSFORM => return Err(DecodeError::MisplacedPayload(pt)),
            other => return Err(DecodeError::UnknownPayloadType(other.0)),
        };
        if !r.is_empty() {
            return Err(DecodeError::InconsistentLength(pt));
        }
        Ok(p)
    }

    /// Appends the payload body (without the generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::Sa(sa) => emit_sa(sa, out),
            Self::Ke(b)
            | Self::Hash(b)
            | Self::Sig(b)
            | Self::Nonce(b)
            | Self::VendorId(b)
            | Self::NatD(b)
            | Self::NatDDraft(b) => out.put(b),
            Self::Id(id) => {
                out.put_u8(id.id_type.0);
                out.put_u8(id.protocol);
                out.put_u16(id.port);
                out.put(&id.data);
            }
            Self::Cert(c) | Self::CertReq(c) => {
                out.put_u8(c.encoding);
                out.put(&c.data);
            }
            Self::Notify(n) => {
                out.put_u32(n.doi);
                out.put_u8(n.protocol.0);
                out.put_u8(u8::try_from(n.spi.len()).unwrap_or(u8::MAX));
                out.put_u16(n.notify_type.0);
                out.put(n.spi.get(..usize::from(u8::MAX)).unwrap_or(&n.spi));
                out.put(&n.data);
            }
            Self::Delete(d) => {
                out.put_u32(d.doi);
                out.put_u8(d.protocol.0);
                out.put_u8(d.spi_size);
                out.put_u16(u16::try_from(d.spis.len()).unwrap_or(u16::MAX));
                for s in &d.spis {
                    out.put(s);
                }
            }
            Self::NatOa(n) | Self::NatOaDraft(n) => {
                out.put_u8(n.id_type.0);
                out.put(&[0, 0, 0]);
                out.put(&n.address);
            }
        }
    }
}

/// A payload as received, with the bytes it came in (generic header
/// included), which HASH computations need verbatim.
#[derive(Debug, Clone)]
pub struct RawPayload<'a> {
    /// The decoded payload.
    pub payload: Payload,
    /// The payload's bytes on the wire, generic header included.
    pub raw: &'a [u8],
}

impl RawPayload<'_> {
    /// The payload body: the bytes after the 4-byte generic header.
    pub fn body(&self) -> &[u8] {
        self.raw.get(4..).unwrap_or(&[])
    }
}

/// Reads one generic payload header and returns (next, sub-reader over the
/// body, raw bytes including the header).
fn generic<'a>(
    r: &mut Reader<'a>,
    pt: PayloadType,
) -> Result<(PayloadType, Reader<'a>, &'a [u8]), DecodeError> {
    let start = r.clone();
    let next = PayloadType(r.u8().ok_or(DecodeError::PayloadTruncated(pt))?);
    let reserved = r.u8().ok_or(DecodeError::PayloadTruncated(pt))?;
    let len = r.u16().ok_or(DecodeError::PayloadTruncated(pt))?;
    // RFC 2408 §3.2: the length includes the 4-byte generic header; anything
    // shorter (zero in particular) would never advance.
    let body_len = usize::from(len).checked_sub(4).ok_or(DecodeError::PayloadLengthTooShort(pt))?;
    let body = r.sub(body_len).ok_or(DecodeError::PayloadTruncated(pt))?;
    // RFC 2408 §3.2: RESERVED "MUST be set to 0".
    if reserved != 0 {
        return Err(DecodeError::ReservedNotZero(pt));
    }
    let mut s = start;
    let raw = s.take(usize::from(len)).ok_or(DecodeError::PayloadTruncated(pt))?;
    Ok((next, body, raw))
}

/// Parses a payload chain starting with `first`. With `padded` (decrypted
/// bodies, RFC 2409 §5.3 padding), bytes after the last payload are ignored;
/// otherwise they are an error.
pub fn parse_chain<'a>(
    first: PayloadType,
    buf: &'a [u8],
    padded: bool,
) -> Result<Vec<RawPayload<'a>>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut next = first;
    let mut out = Vec::new();
    while next != PayloadType::NONE {
        if out.len() >= MAX_PAYLOADS {
            return Err(DecodeError::TooManyElements);
        }
        if !is_known(next) {
            return Err(DecodeError::UnknownPayloadType(next.0));
        }
        let (n, body, raw) = generic(&mut r, next)?;
        let payload = Payload::parse_body(next, body)?;
        out.push(RawPayload { payload, raw });
        next = n;
    }
    if !padded && !r.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(out)
}

fn is_known(pt: PayloadType) -> bool {
    matches!(pt.0, 1..=13 | 20 | 21 | 130 | 131)
}

/// Emits a payload chain; returns the first payload type and the bytes.
pub fn emit_chain(payloads: &[Payload]) -> (PayloadType, Vec<u8>) {
    let mut out = Vec::new();
    let mut iter = payloads.iter().peekable();
    while let Some(p) = iter.next() {
        let next = iter.peek().map_or(PayloadType::NONE, |n| n.payload_type());
        emit_generic(&mut out, next, |o| p.emit_body(o));
    }
    let first = payloads.first().map_or(PayloadType::NONE, Payload::payload_type);
    (first, out)
}

/// Emits one payload with its generic header.
pub fn emit_one(p: &Payload, next: PayloadType) -> Vec<u8> {
    let mut out = Vec::new();
    emit_generic(&mut out, next, |o| p.emit_body(o));
    out
}

fn emit_generic(out: &mut Vec<u8>, next: PayloadType, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.put_u8(next.0);
    out.put_u8(0);
    out.put_u16(0);
    body(out);
    let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out.patch_u16(start + 2, len);
}

/// NAT-OA body (RFC 3947 §5.2; the drafts' type 131 has the same layout).
fn parse_nat_oa(pt: PayloadType, r: &mut Reader<'_>) -> Result<NatOaPayload, DecodeError> {
    let short = DecodeError::PayloadLengthTooShort(pt);
    let id_type = IdType(r.u8().ok_or(short.clone())?);
    let reserved = r.take(3).ok_or(short)?;
    if reserved.iter().any(|b| *b != 0) {
        return Err(DecodeError::ReservedNotZero(pt));
    }
    Ok(NatOaPayload { id_type, address: r.rest().to_vec() })
}

fn parse_sa(r: &mut Reader<'_>) -> Result<SaPayload, DecodeError> {
    let short = DecodeError::PayloadLengthTooShort(PayloadType::SA);
    let doi = r.u32().ok_or(short.clone())?;
    let situation = r.u32().ok_or(short)?;
    let mut proposals: Vec<Proposal> = Vec::new();
    if r.is_empty() {
        return Err(DecodeError::EmptyProposal);
    }
    let mut next = PayloadType::PROPOSAL;
    while next != PayloadType::NONE {
        if next != PayloadType::PROPOSAL {
            return Err(DecodeError::MisplacedPayload(next));
        }
        if proposals.len() >= MAX_PROPOSALS {
            return Err(DecodeError::TooManyElements);
        }
        let (n, mut body, _) = generic(r, PayloadType::PROPOSAL)?;
        let p = parse_proposal(&mut body)?;
        // RFC 2408 §4.2: proposal numbers "MUST be monotonically increasing";
        // equal numbers form one logical proposal (AND).
        if let Some(last) = proposals.last() {
            if p.number < last.number {
                return Err(DecodeError::ProposalNumbering);
            }
        }
        proposals.push(p);
        next = n;
    }
    if !r.is_empty() {
        return Err(DecodeError::InconsistentLength(PayloadType::SA));
    }
    Ok(SaPayload { doi, situation, proposals })
}

fn parse_proposal(r: &mut Reader<'_>) -> Result<Proposal, DecodeError> {
    let short = DecodeError::PayloadLengthTooShort(PayloadType::PROPOSAL);
    let number = r.u8().ok_or(short.clone())?;
    let protocol = ProtocolId(r.u8().ok_or(short.clone())?);
    let spi_size = r.u8().ok_or(short.clone())?;
    let count = r.u8().ok_or(short)?;
    let spi =
        r.take(usize::from(spi_size)).ok_or(DecodeError::InconsistentLength(PayloadType::PROPOSAL))?.to_vec();
    if count == 0 {
        return Err(DecodeError::EmptyProposal);
    }
    let mut transforms: Vec<Transform> = Vec::new();
    let mut next = PayloadType::TRANSFORM;
    while next != PayloadType::NONE {
        if next != PayloadType::TRANSFORM {
            return Err(DecodeError::MisplacedPayload(next));
        }
        if transforms.len() >= usize::from(count) || transforms.len() >= MAX_TRANSFORMS {
            return Err(DecodeError::TransformNumbering);
        }
        let (n, mut body, _) = generic(r, PayloadType::TRANSFORM)?;
        let t = parse_transform(&mut body)?;
        // RFC 2408 §3.6: each transform of a proposal has a unique number;
        // we require them strictly increasing, which implies uniqueness.
        if let Some(last) = transforms.last() {
            if t.number <= last.number {
                return Err(DecodeError::TransformNumbering);
            }
        }
        transforms.push(t);
        next = n;
    }
    // RFC 2408 §3.5: "# of Transforms" must match the transforms present.
    if transforms.len() != usize::from(count) {
        return Err(DecodeError::TransformNumbering);
    }
    if !r.is_empty() {
        return Err(DecodeError::InconsistentLength(PayloadType::PROPOSAL));
    }
    Ok(Proposal { number, protocol, spi, transforms })
}

fn parse_transform(r: &mut Reader<'_>) -> Result<Transform, DecodeError> {
    let short = DecodeError::PayloadLengthTooShort(PayloadType::TRANSFORM);
    let number = r.u8().ok_or(short.clone())?;
    let transform_id = r.u8().ok_or(short.clone())?;
    let reserved = r.u16().ok_or(short)?;
    if reserved != 0 {
        return Err(DecodeError::ReservedNotZero(PayloadType::TRANSFORM));
    }
    let mut attributes = Vec::new();
    while !r.is_empty() {
        if attributes.len() >= MAX_ATTRIBUTES {
            return Err(DecodeError::TooManyElements);
        }
        attributes.push(Attribute::parse(r)?);
    }
    Ok(Transform { number, transform_id, attributes })
}

fn emit_sa(sa: &SaPayload, out: &mut Vec<u8>) {
    out.put_u32(sa.doi);
    out.put_u32(sa.situation);
    let mut it = sa.proposals.iter().peekable();
    while let Some(p) = it.next() {
        let next = if it.peek().is_some() { PayloadType::PROPOSAL } else { PayloadType::NONE };
        emit_generic(out, next, |o| {
            o.put_u8(p.number);
            o.put_u8(p.protocol.0);
            o.put_u8(u8::try_from(p.spi.len()).unwrap_or(u8::MAX));
            o.put_u8(u8::try_from(p.transforms.len()).unwrap_or(u8::MAX));
            o.put(p.spi.get(..usize::from(u8::MAX)).unwrap_or(&p.spi));
            let mut ti = p.transforms.iter().peekable();
            while let Some(t) = ti.next() {
                let tn = if ti.peek().is_some() { PayloadType::TRANSFORM } else { PayloadType::NONE };
                emit_generic(o, tn, |o2| {
                    o2.put_u8(t.number);
                    o2.put_u8(t.transform_id);
                    o2.put_u16(0);
                    for a in &t.attributes {
                        a.emit(o2);
                    }
                });
            }
        });
    }
}
