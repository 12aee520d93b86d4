//! Outbound processing: encapsulate in place, single packet or burst.
//!
//! Stages (librte_ipsec `esp_outb.c`): **prepare** every packet (check room, take a sequence
//! number, write outer header, ESP header, IV, TFC padding and trailer around the untouched
//! payload), **crypto** the whole burst through the SA's session, **finish** (outer UDP
//! checksum over IPv6, counters). The payload is never copied: headers go into the headroom, the
//! trailer and ICV into the tailroom; in transport mode only the IP header moves.

use crate::buffer::PacketBuffer;
use crate::crypto::{CryptoJob, JobStatus, Operation};
use crate::sa::{DfMode, DscpMode, OutboundSa, Path};
use crate::wire::esp::{self as wesp, Trailer};
use crate::wire::{checksum, ip_proto, ipv4, ipv6, set_u16, set_u8, udp};
use crate::{DropReason, MAX_BURST};

/// Per-packet state between the stages.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Prep {
    /// Offset of the ESP header in the storage.
    pub(crate) esp_off: usize,
    /// ESP header to end of ICV.
    pub(crate) esp_len: usize,
    pub(crate) esn_high: Option<u32>,
    /// Outer IPv6 with UDP: offset of the IPv6 header (for the UDP checksum).
    v6_udp: Option<(usize, usize)>,
}

/// Move `len` bytes at `from` to `to` inside `buf`, checking bounds (no panic).
pub(crate) fn move_bytes(buf: &mut [u8], from: usize, to: usize, len: usize) -> Result<(), DropReason> {
    let n = buf.len();
    if from.checked_add(len).is_none_or(|e| e > n) || to.checked_add(len).is_none_or(|e| e > n) {
        return Err(DropReason::NoRoom);
    }
    buf.copy_within(from..from + len, to);
    Ok(())
}

fn pad_len(payload: usize, block: usize) -> usize {
    // RFC 4303 §2.4: payload + padding + pad length + next header is a multiple of the
    // cipher block size and of 4.
    let b = block.max(4);
    (b - (payload + wesp::TRAILER_LEN) % b) % b
}

impl OutboundSa {
    /// RFC 4303 §3.3.3: the counter is incremented per packet; without ESN it MUST NOT cycle:
    /// the SA must be rekeyed before 2^32 - 1 packets, so the overflow is refused.
    fn next_seq(&mut self) -> Result<u64, DropReason> {
        let limit = if self.common.esn { u64::MAX } else { u64::from(u32::MAX) };
        if self.hot.seq >= limit {
            return Err(DropReason::SeqOverflow);
        }
        self.hot.seq += 1;
        Ok(self.hot.seq)
    }

    fn write_esp_header_iv(&mut self, buf: &mut [u8], off: usize, seq: u64) {
        // Splitting the 64-bit sequence number: low half on the wire (RFC 4304 §2).
        #[allow(clippy::cast_possible_truncation)]
        let lo = seq as u32;
        if let Some(h) = buf.get_mut(off..off + wesp::HEADER_LEN) {
            wesp::Repr { spi: self.common.spi, seq: lo }.emit(&mut wesp::Packet::new_unchecked(h));
        }
        let iv_len = self.common.layout.iv_len;
        let ivo = off + wesp::HEADER_LEN;
        if let Some(iv) = buf.get_mut(ivo..ivo + iv_len) {
            if iv_len == 8 {
                // RFC 4106 §3.1: the IV must not repeat under a key; the 64-bit sequence
                // number is unique per SA.
                iv.copy_from_slice(&seq.to_be_bytes());
            } else if iv_len > 0 {
                // RFC 3602 §2.3: unpredictable IV for CBC.
                self.iv.fill(iv);
            }
        }
    }

    /// The finish stage of a packet whose crypto succeeded: the outer UDP checksum over IPv6
    /// (it covers the ciphertext), counters.
    pub(crate) fn finish<B: PacketBuffer>(&mut self, b: &mut B, p: &Prep) {
        if let Some((ip, uo)) = p.v6_udp {
            fill_udp6_checksum(b.storage_mut(), ip, uo);
        }
        self.hot.packets += 1;
        self.hot.bytes += b.data_len() as u64;
    }

    fn esn_high(&self, seq: u64) -> Option<u32> {
        // RFC 4304 §2: the high 32 bits are in the ICV input only.
        self.common.esn.then_some((seq >> 32) as u32)
    }

    pub(crate) fn prepare<B: PacketBuffer>(&mut self, b: &mut B) -> Result<Prep, DropReason> {
        match self.common.path {
            Path::TunnelV4 | Path::TunnelV6 => self.prepare_tunnel(b),
            Path::Transport => self.prepare_transport(b),
        }
    }

    fn prepare_tunnel<B: PacketBuffer>(&mut self, b: &mut B) -> Result<Prep, DropReason> {
        let o = b.data_offset();
        let data = b.data();
        let version = data.first().map_or(0, |v| v >> 4);
        // Inner header: length and family decide the next header; ECN/DSCP/DF feed the outer.
        let (inner_len, nh, dscp, ecn, df) = match version {
            4 => {
                let p = ipv4::Packet::new_checked(data).map_err(|_| DropReason::BadInnerHeader)?;
                (usize::from(p.total_len()), ip_proto::IPV4, p.dscp(), p.ecn(), p.dont_frag())
            }
            6 => {
                let p = ipv6::Packet::new_checked(data).map_err(|_| DropReason::BadInnerHeader)?;
                (p.total_len(), ip_proto::IPV6, p.dscp(), p.ecn(), true)
            }
            _ => return Err(DropReason::BadInnerHeader),
        };
        let lay = self.common.layout;
        // RFC 4303 §2.7: TFC padding follows the payload, inside the encryption.
        let tfc = self.tfc_pad_to.saturating_sub(inner_len);
        let pad = pad_len(inner_len + tfc, lay.block_len);
        let plain = inner_len + tfc + pad + wesp::TRAILER_LEN;
        let v4 = self.common.path == Path::TunnelV4;
        let ip_len = if v4 { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
        let front = ip_len + self.common.esp_overhead_front();
        let esp_len = wesp::HEADER_LEN + lay.iv_len + plain + lay.icv_len;
        let udp_len = if self.common.udp.is_some() { udp::HEADER_LEN } else { 0 };
        let total = front + plain + lay.icv_len;
        if total > usize::from(u16::MAX) {
            return Err(DropReason::BadLength);
        }
        let tail_needed = tfc + pad + wesp::TRAILER_LEN + lay.icv_len;
        if b.headroom() < front || b.storage().len().saturating_sub(o + inner_len) < tail_needed {
            return Err(DropReason::NoRoom);
        }
        let seq = self.next_seq()?;
        let new_o = o - front;
        let ident = self.hot.ident;
        self.hot.ident = ident.wrapping_add(1);
        let outer = self.common.outer;
        let out_dscp = match outer.dscp {
            DscpMode::Copy => dscp,
            DscpMode::Set(d) => d,
        };
        // RFC 6040 §4.1.1 normal mode: copy the inner ECN field to the outer header.
        let out_ecn = if outer.ecn_normal { ecn } else { 0 };
        let df = match outer.df {
            DfMode::Copy => df,
            DfMode::Set => true,
            DfMode::Clear => false,
        };
        let tmpl = &self.tmpl;
        let hdr_len = ip_len + udp_len;
        let buf = b.storage_mut();
        let hdr = buf.get_mut(new_o..new_o + hdr_len).ok_or(DropReason::NoRoom)?;
        let t = tmpl.bytes.get(..hdr_len).ok_or(DropReason::Unsupported)?;
        hdr.copy_from_slice(t);
        // Lengths fit u16: `total` was checked above.
        let total16 = u16::try_from(total).map_err(|_| DropReason::BadLength)?;
        let tos = (out_dscp << 2) | (out_ecn & 3);
        if v4 {
            // Patch the precomputed header: TOS, total length, ident, DF; checksum from the
            // template's partial sum plus the patched words.
            let flags: u16 = if df { 0x4000 } else { 0 };
            set_u8(hdr, 1, tos);
            set_u16(hdr, 2, total16);
            set_u16(hdr, 4, ident);
            set_u16(hdr, 6, flags);
            let sum = tmpl.sum + u32::from(tos) + u32::from(total16) + u32::from(ident) + u32::from(flags);
            set_u16(hdr, 10, checksum::fold(sum));
        } else {
            let mut p = ipv6::Packet::new_unchecked(&mut hdr[..]);
            p.set_version_tc_flow(out_dscp, out_ecn, 0);
            p.set_payload_len(total16 - ipv6::HEADER_LEN as u16);
        }
        let mut v6_udp = None;
        if udp_len != 0 {
            // ESP fits: esp_len < total <= 65535.
            set_u16(hdr, ip_len + 4, u16::try_from(udp::HEADER_LEN + esp_len).unwrap_or(0));
            if !v4 {
                v6_udp = Some((new_o, new_o + ip_len));
            }
        }
        let esp_off = new_o + ip_len + udp_len;
        let tfc_at = o + inner_len;
        if let Some(t) = buf.get_mut(tfc_at..tfc_at + tfc) {
            t.fill(0);
        }
        let tr = tfc_at + tfc;
        let trailer = buf.get_mut(tr..tr + pad + wesp::TRAILER_LEN).ok_or(DropReason::NoRoom)?;
        Trailer::emit(trailer, nh);
        self.write_esp_header_iv(b.storage_mut(), esp_off, seq);
        b.set_data(new_o, total);
        Ok(Prep { esp_off, esp_len, esn_high: self.esn_high(seq), v6_udp })
    }

    fn prepare_transport<B: PacketBuffer>(&mut self, b: &mut B) -> Result<Prep, DropReason> {
        let o = b.data_offset();
        let data = b.data();
        let version = data.first().map_or(0, |v| v >> 4);
        // (header bytes that stay in front, total length, next-header byte offset, upper proto)
        let (hl, total, nh_field, nh) = match version {
            4 => {
                let p = ipv4::Packet::new_checked(data).map_err(|_| DropReason::BadInnerHeader)?;
                if p.is_fragment() {
                    // RFC 4301 §7: transport mode protects whole datagrams.
                    return Err(DropReason::Unsupported);
                }
                (p.header_len(), usize::from(p.total_len()), 9, p.protocol())
            }
            6 => {
                let c = ipv6::esp_insertion_point(data).map_err(|_| DropReason::BadInnerHeader)?;
                let p = ipv6::Packet::new_unchecked(data);
                (c.offset, p.total_len(), c.next_header_field, c.next_header)
            }
            _ => return Err(DropReason::BadInnerHeader),
        };
        let lay = self.common.layout;
        let upper = total - hl;
        let pad = pad_len(upper, lay.block_len);
        let plain = upper + pad + wesp::TRAILER_LEN;
        let shift = self.common.esp_overhead_front();
        let esp_len = wesp::HEADER_LEN + lay.iv_len + plain + lay.icv_len;
        let new_total = hl + shift + plain + lay.icv_len;
        let tail_needed = pad + wesp::TRAILER_LEN + lay.icv_len;
        if new_total > usize::from(u16::MAX) + if version == 6 { ipv6::HEADER_LEN } else { 0 } {
            return Err(DropReason::BadLength);
        }
        if b.headroom() < shift || b.storage().len().saturating_sub(o + total) < tail_needed {
            return Err(DropReason::NoRoom);
        }
        let seq = self.next_seq()?;
        let new_o = o - shift;
        let proto = self.common.outer_protocol();
        let udp_cfg = self.common.udp;
        let buf = b.storage_mut();
        move_bytes(buf, o, new_o, hl)?;
        let hdr = buf.get_mut(new_o..new_o + hl).ok_or(DropReason::NoRoom)?;
        set_u8(hdr, nh_field, proto);
        let mut v6_udp = None;
        if version == 4 {
            let mut p = ipv4::Packet::new_unchecked(&mut hdr[..]);
            p.set_total_len(u16::try_from(new_total).map_err(|_| DropReason::BadLength)?);
            p.fill_checksum();
        } else {
            let pl = u16::try_from(new_total - ipv6::HEADER_LEN).map_err(|_| DropReason::BadLength)?;
            ipv6::Packet::new_unchecked(&mut hdr[..]).set_payload_len(pl);
        }
        if let Some(u) = udp_cfg {
            let uo = new_o + hl;
            let h = buf.get_mut(uo..uo + udp::HEADER_LEN).ok_or(DropReason::NoRoom)?;
            udp::Repr { src_port: u.src_port, dst_port: u.dst_port, payload_len: esp_len }
                .emit(&mut udp::Packet::new_unchecked(h))
                .map_err(|_| DropReason::BadLength)?;
            if version == 6 {
                v6_udp = Some((new_o, uo));
            }
        }
        let esp_off = new_o + hl + if udp_cfg.is_some() { udp::HEADER_LEN } else { 0 };
        let tr = o + total;
        let trailer = buf.get_mut(tr..tr + pad + wesp::TRAILER_LEN).ok_or(DropReason::NoRoom)?;
        Trailer::emit(trailer, nh);
        self.write_esp_header_iv(b.storage_mut(), esp_off, seq);
        b.set_data(new_o, new_total);
        Ok(Prep { esp_off, esp_len, esn_high: self.esn_high(seq), v6_udp })
    }
}

/// UDP checksum over IPv6 (RFC 8200 §8.1: mandatory for UDP over IPv6; RFC 3948 only
/// allows a zero checksum over IPv4).
fn fill_udp6_checksum(buf: &mut [u8], ip_off: usize, udp_off: usize) {
    let (src, dst) = {
        let p = ipv6::Packet::new_unchecked(buf.get(ip_off..).unwrap_or(&[]));
        (p.src_addr(), p.dst_addr())
    };
    let ulen = crate::wire::get_u16(buf, udp_off + 4);
    let Some(seg) = buf.get(udp_off..udp_off + usize::from(ulen)) else {
        return;
    };
    let mut s = checksum::sum(&src.octets()) + checksum::sum(&dst.octets());
    s += u32::from(ulen) + u32::from(ip_proto::UDP);
    s += checksum::sum(seg);
    let mut c = checksum::fold(s);
    if c == 0 {
        c = 0xffff;
    }
    set_u16(buf, udp_off + 6, c);
}

/// Encapsulate one packet in place. On success the buffer holds the ESP packet (data offset
/// and length updated). On error the buffer content is unspecified and must be dropped.
pub fn encap<B: PacketBuffer>(sa: &mut OutboundSa, buf: &mut B) -> Result<(), DropReason> {
    let mut r = [Ok(())];
    encap_chunk::<B, 1>(sa, core::slice::from_mut(buf), &mut r);
    let [r] = r;
    r
}

/// Encapsulate a burst for one SA, stage by stage, in chunks of [`MAX_BURST`] packets.
/// `results[i]` is set for every `bufs[i]` (up to the shorter of the two); returns the number
/// of good packets.
pub fn encap_burst<B: PacketBuffer>(
    sa: &mut OutboundSa,
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    crate::for_each_chunk(bufs, results, |b, r| encap_chunk::<B, MAX_BURST>(sa, b, r))
}

/// One chunk of at most `N` packets (`N` = 1 for the single-packet call keeps its stack
/// arrays small).
fn encap_chunk<B: PacketBuffer, const N: usize>(
    sa: &mut OutboundSa,
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    let n = bufs.len().min(results.len());
    let mut preps = [Prep::default(); N];
    // Stage 1: prepare.
    for (i, (b, r)) in bufs.iter_mut().zip(results.iter_mut()).enumerate() {
        *r = match preps.get_mut(i) {
            Some(p) => sa.prepare(b).map(|x| *p = x),
            None => Err(DropReason::BadLength),
        };
    }
    // Stage 2: crypto, one call for the whole burst.
    let mut jobs: [CryptoJob<'_>; N] = core::array::from_fn(|_| CryptoJob::default());
    let mut idx = [0usize; N];
    let mut nj = 0;
    for (i, b) in bufs.iter_mut().enumerate().take(n.min(N)) {
        if results.get(i).is_some_and(|r| r.is_ok()) {
            let Some(p) = preps.get(i) else { continue };
            let esp = b.storage_mut().get_mut(p.esp_off..p.esp_off + p.esp_len);
            if let (Some(esp), Some(j), Some(x)) = (esp, jobs.get_mut(nj), idx.get_mut(nj)) {
                *j = CryptoJob::new(esp, p.esn_high);
                *x = i;
                nj += 1;
            }
        }
    }
    if let Some(js) = jobs.get_mut(..nj) {
        sa.common.session.process(Operation::Seal, js);
    }
    let mut statuses = [JobStatus::Pending; N];
    for (s, j) in statuses.iter_mut().zip(jobs.iter()).take(nj) {
        *s = j.status;
    }
    // Stage 3: finish.
    let mut good = 0;
    for (k, &i) in idx.iter().enumerate().take(nj) {
        let (Some(r), Some(b), Some(p)) = (results.get_mut(i), bufs.get_mut(i), preps.get(i)) else {
            continue;
        };
        if statuses.get(k) != Some(&JobStatus::Ok) {
            *r = Err(DropReason::CryptoError);
            continue;
        }
        sa.finish(b, p);
        good += 1;
    }
    good
}

/// Encapsulate a burst whose packets belong to several SAs: `sa_of[i]` is the index in `sas` of
/// `bufs[i]`'s SA (an index out of range gives [`DropReason::NoSa`]). Runs of consecutive
/// packets of one SA go through [`encap_burst`] together, so sort the burst by SA for the best
/// batching. Packets without an `sa_of` entry get [`DropReason::NoSa`]. Returns the number of
/// good packets.
pub fn encap_burst_multi<B: PacketBuffer>(
    sas: &mut [OutboundSa],
    sa_of: &[usize],
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    crate::for_each_sa_run(sas, sa_of, bufs, results, encap_burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rule() {
        assert_eq!(pad_len(0, 16), 14);
        assert_eq!(pad_len(14, 16), 0);
        assert_eq!(pad_len(15, 16), 15);
        assert_eq!(pad_len(2, 4), 0);
        assert_eq!(pad_len(3, 4), 3);
        assert_eq!(pad_len(100, 1), 2);
    }

    #[test]
    fn move_bytes_checks_bounds() {
        let mut b = [1u8, 2, 3, 4];
        assert_eq!(move_bytes(&mut b, 2, 0, 2), Ok(()));
        assert_eq!(b, [3, 4, 3, 4]);
        assert_eq!(move_bytes(&mut b, 3, 0, 2), Err(DropReason::NoRoom));
        assert_eq!(move_bytes(&mut b, 0, usize::MAX, 2), Err(DropReason::NoRoom));
    }
}
