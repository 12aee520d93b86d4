//! Inbound processing: decapsulate in place, single packet or burst.
//!
//! Stages (librte_ipsec `esp_inb.c`): **parse** the outer header(s) and ESP header, check
//! lengths, **replay pre-check** (no side effects), **crypto** the whole burst (ICV verified in
//! constant time before decryption), then **finish** each good packet: replay window update
//! (only now, RFC 4303 §3.4.3), pad check, next-header dispatch, inner header sanity, selector
//! check (RFC 4301 §5.2), ECN egress (RFC 6040), and strip in place.
//!
//! The SPI → SA lookup is the caller's; the engine checks the SPI matches.

use crate::buffer::PacketBuffer;
use crate::crypto::{CryptoJob, JobStatus, Operation};
use crate::esp_outb::move_bytes;
use crate::sa::{InboundSa, Path, TrafficSelector};
use crate::wire::esp::{self as wesp, Trailer, TrailerError};
use crate::wire::{get_u16, ip_proto, ipv4, ipv6, set_u8, udp};
use crate::{DropReason, MAX_BURST};
use core::net::IpAddr;

/// Per-packet state between the stages.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Prep {
    /// Offset of the ESP header in the storage.
    pub(crate) esp_off: usize,
    /// ESP header to end of ICV.
    pub(crate) esp_len: usize,
    /// Full sequence number from the replay pre-check.
    pub(crate) seq: u64,
    /// Outer IP header offset and the length of what precedes ESP (IP header, IPv6 extension
    /// headers, UDP), for transport mode.
    ip_off: usize,
    /// Offset (from `ip_off`) of the Next Header / Protocol byte naming ESP or UDP.
    nh_field: usize,
    /// Length of the outer IP header + extension headers that stay in transport mode.
    keep_len: usize,
    v6: bool,
    outer_ecn: u8,
    outer_dscp: u8,
}

/// ECN codepoints.
const NOT_ECT: u8 = 0;
const ECT1: u8 = 1;
const CE: u8 = 3;

/// RFC 6040 §4.2, Figure 4: the inner ECN after decapsulation, or `None` to drop.
pub fn ecn_egress(inner: u8, outer: u8) -> Option<u8> {
    match (inner & 3, outer & 3) {
        // Outer CE with a Not-ECT inner: the packet MUST be dropped.
        (NOT_ECT, CE) => None,
        (NOT_ECT, _) => Some(NOT_ECT),
        // Inner CE stays CE.
        (CE, _) => Some(CE),
        // Outer CE marks the inner.
        (_, CE) => Some(CE),
        // Inner ECT(0) with outer ECT(1): ECT(1).
        (_, ECT1) => Some(ECT1),
        (i, _) => Some(i),
    }
}

impl InboundSa {
    pub(crate) fn parse<B: PacketBuffer>(&self, b: &B) -> Result<Prep, DropReason> {
        let o = b.data_offset();
        let data = b.data();
        let version = data.first().map_or(0, |v| v >> 4);
        let (ip_len, proto, keep_len, nh_field, outer_tos, v6) = match version {
            4 => {
                let p = ipv4::Packet::new_checked(data).map_err(|_| DropReason::BadOuterHeader)?;
                if !p.verify_checksum() {
                    return Err(DropReason::BadOuterHeader);
                }
                if p.is_fragment() {
                    // Reassembly is the caller's (RFC 4303 §3.4.1).
                    return Err(DropReason::Unsupported);
                }
                let hl = p.header_len();
                let tos = (p.dscp() << 2) | p.ecn();
                (usize::from(p.total_len()), p.protocol(), hl, 9, tos, false)
            }
            6 => {
                let c = ipv6::skip_extension_headers(data).map_err(|_| DropReason::BadOuterHeader)?;
                let p = ipv6::Packet::new_unchecked(data);
                (p.total_len(), c.next_header, c.offset, c.next_header_field, p.traffic_class(), true)
            }
            _ => return Err(DropReason::BadOuterHeader),
        };
        let mut front = keep_len;
        match (proto, self.common.udp) {
            (ip_proto::ESP, None) => {}
            (ip_proto::UDP, Some(u)) => {
                let seg = data.get(keep_len..ip_len).ok_or(DropReason::BadOuterHeader)?;
                let up = udp::Packet::new_checked(seg).map_err(|_| DropReason::BadOuterHeader)?;
                if up.dst_port() != u.src_port {
                    return Err(DropReason::NotEsp);
                }
                let pl = up.payload();
                // RFC 3948 §2.2/§2.3: a one-byte 0xff payload is a NAT-keepalive; a zero
                // "SPI" is the non-ESP marker of IKE. Neither is ESP.
                if pl == [0xff] || pl.get(..4) == Some(&[0, 0, 0, 0]) {
                    return Err(DropReason::NatKeepalive);
                }
                if pl.len() < wesp::HEADER_LEN {
                    return Err(DropReason::BadLength);
                }
                front += udp::HEADER_LEN;
            }
            _ => return Err(DropReason::NotEsp),
        }
        let esp = data.get(front..ip_len).ok_or(DropReason::BadLength)?;
        let hdr = wesp::Packet::new_checked(esp).map_err(|_| DropReason::BadLength)?;
        if hdr.security_parameter_index() != self.common.spi {
            return Err(DropReason::SpiMismatch);
        }
        let lay = self.common.layout;
        let body = esp
            .len()
            .checked_sub(wesp::HEADER_LEN + lay.iv_len + lay.icv_len)
            .ok_or(DropReason::BadLength)?;
        // RFC 4303 §2.4: the ciphertext ends 4-byte aligned, a whole number of cipher blocks,
        // and holds at least pad length and next header.
        if body < wesp::TRAILER_LEN || body % lay.block_len.max(4) != 0 {
            return Err(DropReason::BadLength);
        }
        // RFC 4303 §3.4.3: replay check before the ICV, no side effects yet.
        let seq = self.hot.window.check(hdr.sequence_number())?;
        Ok(Prep {
            esp_off: o + front,
            esp_len: esp.len(),
            seq,
            ip_off: o,
            nh_field,
            keep_len,
            v6,
            outer_ecn: outer_tos & 3,
            outer_dscp: outer_tos >> 2,
        })
    }

    /// The finish stage after the crypto stage set `status`: only a packet whose ICV verified
    /// reaches the replay update and the checks after it; counters.
    pub(crate) fn finish_checked<B: PacketBuffer>(
        &mut self,
        b: &mut B,
        p: &Prep,
        status: JobStatus,
    ) -> Result<(), DropReason> {
        match status {
            JobStatus::Ok => self.finish(b, p)?,
            JobStatus::AuthFailed => return Err(DropReason::Auth),
            JobStatus::BadLength => return Err(DropReason::BadLength),
            _ => return Err(DropReason::CryptoError),
        }
        self.hot.packets += 1;
        self.hot.bytes += b.data_len() as u64;
        Ok(())
    }

    fn selectors_match(&self, pkt: &[u8], v6: bool) -> bool {
        if self.selectors.is_empty() {
            return true;
        }
        let (src, dst, proto, l4) = if v6 {
            let p = ipv6::Packet::new_unchecked(pkt);
            let Ok(c) = ipv6::skip_extension_headers(pkt) else {
                return false;
            };
            (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()), c.next_header, pkt.get(c.offset..))
        } else {
            let p = ipv4::Packet::new_unchecked(pkt);
            let l4 = if p.is_fragment() { None } else { pkt.get(p.header_len()..) };
            (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()), p.protocol(), l4)
        };
        let ports = match (proto, l4) {
            (ip_proto::TCP | ip_proto::UDP | 132, Some(l4)) if l4.len() >= 4 => {
                Some((get_u16(l4, 0), get_u16(l4, 2)))
            }
            _ => None,
        };
        self.selectors.iter().any(|ts: &TrafficSelector| ts.matches(src, dst, proto, ports))
    }

    /// Everything after a good ICV.
    fn finish<B: PacketBuffer>(&mut self, b: &mut B, p: &Prep) -> Result<(), DropReason> {
        // RFC 4303 §3.4.3: update the window only once the ICV verified. `update` re-checks,
        // catching a duplicate earlier in this burst.
        self.hot.window.update(p.seq)?;
        let lay = self.common.layout;
        let pt_off = p.esp_off + wesp::HEADER_LEN + lay.iv_len;
        let pt_end = p.esp_off + p.esp_len - lay.icv_len;
        let plain = b.storage().get(pt_off..pt_end).ok_or(DropReason::BadLength)?;
        let t = Trailer::parse(plain).map_err(|e| match e {
            TrailerError::Pad => DropReason::BadPad,
            TrailerError::Length => DropReason::BadLength,
        })?;
        // RFC 4303 §2.6: next header 59 marks a dummy packet, to be discarded.
        if t.next_header == ip_proto::NO_NEXT_HEADER {
            return Err(DropReason::BadNextHeader);
        }
        match self.common.path {
            Path::TunnelV4 | Path::TunnelV6 => self.finish_tunnel(b, p, pt_off, t),
            Path::Transport => self.finish_transport(b, p, pt_off, t),
        }
    }

    fn finish_tunnel<B: PacketBuffer>(
        &mut self,
        b: &mut B,
        p: &Prep,
        pt_off: usize,
        t: Trailer,
    ) -> Result<(), DropReason> {
        let ecn_normal = self.common.outer.ecn_normal;
        let dscp_copy = self.common.outer.dscp_decap_copy;
        let buf = b.storage_mut();
        let inner = buf.get_mut(pt_off..pt_off + t.payload_len).ok_or(DropReason::BadLength)?;
        // Inner header sanity; the inner length may be shorter than the payload (TFC
        // padding, RFC 4303 §2.7), never longer.
        let (len, v6) = match t.next_header {
            ip_proto::IPV4 => {
                let ip = ipv4::Packet::new_checked(&inner[..]).map_err(|_| DropReason::BadInnerHeader)?;
                if !ip.verify_checksum() {
                    return Err(DropReason::BadInnerHeader);
                }
                (usize::from(ip.total_len()), false)
            }
            ip_proto::IPV6 => {
                let ip = ipv6::Packet::new_checked(&inner[..]).map_err(|_| DropReason::BadInnerHeader)?;
                (ip.total_len(), true)
            }
            _ => return Err(DropReason::BadNextHeader),
        };
        let inner = inner.get_mut(..len).ok_or(DropReason::BadInnerHeader)?;
        // RFC 4301 §5.2 step 4: the decapsulated packet must match the SA's selectors.
        if !self.selectors_match(inner, v6) {
            return Err(DropReason::SelectorMismatch);
        }
        let (inner_dscp, inner_ecn) = if v6 {
            let ip = ipv6::Packet::new_unchecked(&inner[..]);
            (ip.dscp(), ip.ecn())
        } else {
            let ip = ipv4::Packet::new_unchecked(&inner[..]);
            (ip.dscp(), ip.ecn())
        };
        let ecn = if ecn_normal {
            ecn_egress(inner_ecn, p.outer_ecn).ok_or(DropReason::EcnDrop)?
        } else {
            inner_ecn
        };
        let dscp = if dscp_copy { p.outer_dscp } else { inner_dscp };
        if (dscp, ecn) != (inner_dscp, inner_ecn) {
            if v6 {
                let mut ip = ipv6::Packet::new_unchecked(&mut inner[..]);
                let flow = ip.flow_label();
                ip.set_version_tc_flow(dscp, ecn, flow);
            } else {
                let mut ip = ipv4::Packet::new_unchecked(&mut inner[..]);
                ip.set_dscp_ecn(dscp, ecn);
                ip.fill_checksum();
            }
        }
        b.set_data(pt_off, len);
        Ok(())
    }

    fn finish_transport<B: PacketBuffer>(
        &mut self,
        b: &mut B,
        p: &Prep,
        pt_off: usize,
        t: Trailer,
    ) -> Result<(), DropReason> {
        let keep = p.keep_len;
        let new_o = pt_off - keep;
        let new_len = keep + t.payload_len;
        let buf = b.storage_mut();
        // Slide the IP header (and IPv6 extension headers) up against the payload.
        move_bytes(buf, p.ip_off, new_o, keep)?;
        let hdr = buf.get_mut(new_o..new_o + keep).ok_or(DropReason::BadLength)?;
        // The header's protocol / next-header byte named ESP or UDP: it now names the payload.
        set_u8(hdr, p.nh_field, t.next_header);
        if p.v6 {
            let pl = u16::try_from(new_len - ipv6::HEADER_LEN).map_err(|_| DropReason::BadLength)?;
            ipv6::Packet::new_unchecked(&mut hdr[..]).set_payload_len(pl);
        } else {
            let mut ip = ipv4::Packet::new_unchecked(&mut hdr[..]);
            ip.set_total_len(u16::try_from(new_len).map_err(|_| DropReason::BadLength)?);
            ip.fill_checksum();
        }
        // RFC 4301 §5.2 step 4 applies in transport mode too: the rebuilt packet must match.
        let rebuilt = buf.get(new_o..new_o + new_len).ok_or(DropReason::BadLength)?;
        if !self.selectors_match(rebuilt, p.v6) {
            return Err(DropReason::SelectorMismatch);
        }
        b.set_data(new_o, new_len);
        Ok(())
    }
}

/// Decapsulate one packet in place. On success the buffer holds the inner packet (tunnel)
/// or the reconstructed IP packet (transport). On error, drop the buffer.
pub fn decap<B: PacketBuffer>(sa: &mut InboundSa, buf: &mut B) -> Result<(), DropReason> {
    let mut r = [Ok(())];
    decap_chunk::<B, 1>(sa, core::slice::from_mut(buf), &mut r);
    let [r] = r;
    r
}

/// Decapsulate a burst for one SA, stage by stage, in chunks of [`MAX_BURST`] packets.
/// `results[i]` is set for every `bufs[i]` (up to the shorter of the two); returns the number
/// of good packets.
pub fn decap_burst<B: PacketBuffer>(
    sa: &mut InboundSa,
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    crate::for_each_chunk(bufs, results, |b, r| decap_chunk::<B, MAX_BURST>(sa, b, r))
}

/// One chunk of at most `N` packets (`N` = 1 for the single-packet call keeps its stack
/// arrays small).
fn decap_chunk<B: PacketBuffer, const N: usize>(
    sa: &mut InboundSa,
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    let n = bufs.len().min(results.len());
    let mut preps = [Prep::default(); N];
    // Stage 1: parse and replay pre-check.
    for (i, (b, r)) in bufs.iter().zip(results.iter_mut()).enumerate() {
        *r = match preps.get_mut(i) {
            Some(p) => sa.parse(b).map(|x| *p = x),
            None => Err(DropReason::BadLength),
        };
    }
    // Stage 2: ICV check + decrypt, one call for the burst.
    let mut jobs: [CryptoJob<'_>; N] = core::array::from_fn(|_| CryptoJob::default());
    let mut idx = [0usize; N];
    let mut nj = 0;
    let esn = sa.common.esn;
    for (i, b) in bufs.iter_mut().enumerate().take(n.min(N)) {
        if results.get(i).is_some_and(|r| r.is_ok()) {
            let Some(p) = preps.get(i) else { continue };
            // The high half of the inferred ESN goes into the ICV input (RFC 4303 §2.2.1).
            let hi = esn.then_some((p.seq >> 32) as u32);
            let esp = b.storage_mut().get_mut(p.esp_off..p.esp_off + p.esp_len);
            if let (Some(esp), Some(j), Some(x)) = (esp, jobs.get_mut(nj), idx.get_mut(nj)) {
                *j = CryptoJob::new(esp, hi);
                *x = i;
                nj += 1;
            }
        }
    }
    if let Some(js) = jobs.get_mut(..nj) {
        sa.common.session.process(Operation::Open, js);
    }
    let mut statuses = [JobStatus::Pending; N];
    for (s, j) in statuses.iter_mut().zip(jobs.iter()).take(nj) {
        *s = j.status;
    }
    // Stage 3: finish, in arrival order (the window update order matters).
    let mut good = 0;
    for (k, &i) in idx.iter().enumerate().take(nj) {
        let (Some(r), Some(b), Some(p)) = (results.get_mut(i), bufs.get_mut(i), preps.get(i)) else {
            continue;
        };
        *r = sa.finish_checked(b, p, statuses.get(k).copied().unwrap_or(JobStatus::Pending));
        if r.is_ok() {
            good += 1;
        }
    }
    good
}

/// Decapsulate a burst whose packets belong to several SAs: `sa_of[i]` is the index in `sas` of
/// `bufs[i]`'s SA (an index out of range gives [`DropReason::NoSa`]). Runs of consecutive
/// packets of one SA go through [`decap_burst`] together, so sort the burst by SA for the best
/// batching. Packets without an `sa_of` entry get [`DropReason::NoSa`]. Returns the number of
/// good packets.
pub fn decap_burst_multi<B: PacketBuffer>(
    sas: &mut [InboundSa],
    sa_of: &[usize],
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    crate::for_each_sa_run(sas, sa_of, bufs, results, decap_burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6040 §4.2 Figure 4, row by row.
    #[test]
    fn ecn_table() {
        let rows = [
            // inner, [outer Not-ECT, ECT(0), ECT(1), CE]
            (0, [Some(0), Some(0), Some(0), None]),
            (2, [Some(2), Some(2), Some(1), Some(3)]),
            (1, [Some(1), Some(1), Some(1), Some(3)]),
            (3, [Some(3), Some(3), Some(3), Some(3)]),
        ];
        for (inner, outs) in rows {
            for (outer, want) in [0u8, 2, 1, 3].into_iter().zip(outs) {
                assert_eq!(ecn_egress(inner, outer), want, "inner {inner} outer {outer}");
            }
        }
    }
}
