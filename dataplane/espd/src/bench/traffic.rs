//! What the bench sends and the state it sends it through: the gateway's configuration
//! (two ports, addresses, a route to the remote networks, static neighbours), the SA
//! database it fills (one outbound SA and policy, one inbound SA per tunnel), and the
//! frames its workers copy into mbufs.
//!
//! Addresses: the outside port is 198.18.0.1 (2001:db8::1), the peer gateway 198.18.0.2
//! (2001:db8::2); the inside port 198.18.1.1 (2001:db8:1::1), the host behind it
//! 198.18.1.10 (2001:db8:1::10). Tunnel `i` protects the traffic between the host and remote
//! address `10.0.0.0 + i` (`2001:db8:100::i`), so a packet picks its SA by destination
//! (outbound, one /32 or /128 policy per tunnel) or by SPI (inbound).

use std::net::IpAddr;
use std::path::Path;

use esp::crypto::{CounterIvSource, CryptoBackend};
use esp::{OutboundSa, PacketBuffer, VecBuffer};
use sadb::{Action, Backend, Cipher, Direction, Integ, PolicyConfig, SaConfig, SaMode};

use espd::cli::{Algorithm, BenchBackend, Family};

/// Peer gateway's MAC (static neighbour).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The inside host's MAC (static neighbour).
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x10];
/// First outbound SPI (tunnel `i` uses `OUT_SPI + i`).
pub const OUT_SPI: u32 = 0x1000_0000;
/// First inbound SPI.
pub const IN_SPI: u32 = 0x2000_0000;
/// Replay window of the inbound SAs (RFC 4303's default size).
pub const REPLAY_WINDOW: u32 = 64;
/// Ethernet header.
pub const ETH: usize = 14;
/// The IMIX pattern (7:4:1 of 64, 570 and 1518-byte frames), interleaved.
pub const IMIX: [usize; 12] = [64, 570, 64, 64, 1518, 64, 570, 64, 64, 570, 64, 570];

/// The addresses of one family.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Inner and outer family.
    pub family: Family,
}

impl Plan {
    fn v6(self) -> bool {
        self.family == Family::V6
    }

    /// Our outside address.
    pub fn outside(self) -> IpAddr {
        if self.v6() {
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])
        } else {
            IpAddr::from([198, 18, 0, 1])
        }
    }

    /// The peer gateway.
    pub fn peer(self) -> IpAddr {
        if self.v6() {
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2])
        } else {
            IpAddr::from([198, 18, 0, 2])
        }
    }

    /// The host behind the inside port.
    pub fn host(self) -> IpAddr {
        if self.v6() {
            IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10])
        } else {
            IpAddr::from([198, 18, 1, 10])
        }
    }

    /// Remote address of tunnel `i`.
    pub fn remote(self, i: u32) -> IpAddr {
        if self.v6() {
            let hi = (i >> 16) as u16;
            let lo = (i & 0xffff) as u16;
            IpAddr::from([0x2001, 0xdb8, 0x100, 0, 0, 0, hi, lo])
        } else {
            IpAddr::from((10u32 << 24 | (i & 0x00ff_ffff)).to_be_bytes())
        }
    }

    /// The gateway's configuration file: `outside` and `inside` are DPDK device names.
    pub fn gateway_toml(self, outside: &str, inside: &str, db: &Path, burst: u16, mbufs: u32) -> String {
        let (out_net, in_net, remote_net) = if self.v6() {
            ("2001:db8::1/64", "2001:db8:1::1/64", "2001:db8:100::/64")
        } else {
            ("198.18.0.1/24", "198.18.1.1/24", "10.0.0.0/8")
        };
        let db = serde_json::to_string(&db.display().to_string()).unwrap_or_default();
        let mac = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        format!(
            r#"
[dataplane]
burst = {burst}
mbufs = {mbufs}
stats_interval = 0.0
rss = false
[sadb]
path = {db}
[[ports]]
name = "outside"
device = "{outside}"
role = "outside"
addresses = ["{out_net}"]
mtu = 9000
[[ports]]
name = "inside"
device = "{inside}"
role = "inside"
addresses = ["{in_net}"]
mtu = 9000
[[routes]]
prefix = "{remote_net}"
via = "{peer}"
[[neighbors]]
ip = "{peer}"
mac = "{peer_mac}"
port = "outside"
[[neighbors]]
ip = "{host}"
mac = "{host_mac}"
port = "inside"
"#,
            peer = self.peer(),
            host = self.host(),
            peer_mac = mac(PEER_MAC),
            host_mac = mac(HOST_MAC),
        )
    }
}

fn ip16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => {
            let mut x = [0u8; 16];
            x[..4].copy_from_slice(&v.octets());
            x
        }
        IpAddr::V6(v) => v.octets(),
    }
}

/// Cipher, key lengths and integrity of the bench's SAs.
pub fn algorithm_codes(algo: Algorithm, key_bits: u16) -> (Cipher, u8, Integ, u8) {
    let klen = if key_bits == 256 { 32 } else { 16 };
    match algo {
        Algorithm::AesGcm => (Cipher::AesGcm16, klen, Integ::None, 0),
        Algorithm::AesCbcSha1 => (Cipher::AesCbc, klen, Integ::HmacSha1_96, 20),
        Algorithm::AesCbcSha256 => (Cipher::AesCbc, klen, Integ::HmacSha256_128, 32),
    }
}

/// The SA database record of tunnel `i` in direction `dir`, with keys derived from `i`.
pub fn sa_record(
    plan: Plan,
    i: u32,
    dir: Direction,
    algo: Algorithm,
    key_bits: u16,
    backend: BenchBackend,
) -> SaConfig {
    let (cipher, klen, integ, ilen) = algorithm_codes(algo, key_bits);
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    let (spi, src, dst) = match dir {
        Direction::Out => (OUT_SPI.wrapping_add(i), plan.outside(), plan.peer()),
        _ => (IN_SPI.wrapping_add(i), plan.peer(), plan.outside()),
    };
    c.spi = spi;
    c.reqid = i + 1;
    c.direction = dir as u8;
    c.mode = SaMode::Tunnel as u8;
    c.family = if plan.v6() { 6 } else { 4 };
    c.cipher = cipher as u8;
    c.cipher_key_len = klen;
    c.integ = integ as u8;
    c.integ_key_len = ilen;
    c.backend = match backend {
        BenchBackend::IpsecMb => Backend::IpsecMb as u8,
        BenchBackend::Rust => Backend::Rust as u8,
    };
    let seed = spi.to_be_bytes();
    for (k, b) in c.cipher_key.iter_mut().enumerate() {
        *b = seed[k % 4] ^ (k as u8).wrapping_mul(29);
    }
    for (k, b) in c.integ_key.iter_mut().enumerate() {
        *b = seed[k % 4] ^ (k as u8).wrapping_mul(53) ^ 0x5c;
    }
    c.salt = [seed[3], 0xa5, seed[2], 0x3c];
    c.replay_window = REPLAY_WINDOW;
    c.src = ip16(src);
    c.dst = ip16(dst);
    c.dscp = 0xff;
    c
}

/// The outbound policy of tunnel `i`: host network to remote address `i`, bound to the SA
/// whose reqid is `i + 1`.
pub fn policy(plan: Plan, i: u32) -> PolicyConfig {
    let (src_plen, dst_plen) = if plan.v6() { (64, 128) } else { (24, 32) };
    let mut src = ip16(plan.host());
    if plan.v6() {
        src[8..].fill(0);
    } else {
        src[3] = 0;
    }
    PolicyConfig {
        id: i + 1,
        priority: 10,
        reqid: i + 1,
        direction: Direction::Out as u8,
        action: Action::Protect as u8,
        family: if plan.v6() { 6 } else { 4 },
        proto: 0,
        src,
        dst: ip16(plan.remote(i)),
        src_plen,
        dst_plen,
        _pad: [0; 2],
        sport: [0, 65535],
        dport: [0, 65535],
        _pad2: 0,
    }
}

fn checksum(h: &[u8]) -> u16 {
    let mut s: u32 =
        h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IP/UDP packet of `ip_len` bytes (at least the headers) from `src` to `dst`.
pub fn ip_udp(src: IpAddr, dst: IpAddr, ip_len: usize) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let hdr = if v6 { 40 } else { 20 };
    let ip_len = ip_len.max(hdr + 8);
    let mut p = vec![0u8; ip_len];
    let udp_len = (ip_len - hdr) as u16;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p[0] = 0x45;
            p[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            p[8] = 64;
            p[9] = 17;
            p[12..16].copy_from_slice(&s.octets());
            p[16..20].copy_from_slice(&d.octets());
            let c = checksum(&p[..20]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (s, d) => {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&udp_len.to_be_bytes());
            p[6] = 17;
            p[7] = 64;
            p[8..24].copy_from_slice(&ip16(s));
            p[24..40].copy_from_slice(&ip16(d));
        }
    }
    p[hdr..hdr + 2].copy_from_slice(&5000u16.to_be_bytes());
    p[hdr + 2..hdr + 4].copy_from_slice(&7u16.to_be_bytes());
    p[hdr + 4..hdr + 6].copy_from_slice(&udp_len.to_be_bytes());
    for (i, b) in p[hdr + 8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    if v6 {
        // RFC 8200 §8.1: the UDP checksum is mandatory over IPv6.
        let mut pseudo = Vec::with_capacity(40 + p.len() - hdr);
        pseudo.extend_from_slice(&p[8..40]);
        pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        pseudo.extend_from_slice(&p[hdr..]);
        let c = checksum(&pseudo);
        p[hdr + 6..hdr + 8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    }
    p
}

/// An Ethernet frame around an IP packet.
pub fn ether(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH + ip.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(if ip.first().is_some_and(|b| b >> 4 == 6) { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip);
    f
}

/// Plaintext from the host to the remote networks: one template frame per size, whose
/// destination is rewritten per packet to pick the tunnel.
#[derive(Debug, Clone)]
pub struct PlainSource {
    plan: Plan,
    /// One template per size of the pattern, in pattern order.
    templates: Vec<Vec<u8>>,
    /// Tunnels to spread over.
    tunnels: u32,
    next_tunnel: u32,
    next_size: usize,
}

impl PlainSource {
    /// Frames of `sizes` (cycled) to the inside port's MAC, over `tunnels` tunnels.
    pub fn new(plan: Plan, sizes: &[usize], tunnels: u32, inside_mac: [u8; 6]) -> PlainSource {
        let templates = sizes
            .iter()
            .map(|&s| {
                ether(inside_mac, HOST_MAC, &ip_udp(plan.host(), plan.remote(0), s.saturating_sub(ETH)))
            })
            .collect();
        PlainSource { plan, templates, tunnels: tunnels.max(1), next_tunnel: 0, next_size: 0 }
    }

    /// Writes the next frame into `out` (which has room for it: see [`PlainSource::next_len`])
    /// and returns its length; with `headers_only`, only the headers are copied (as testpmd's
    /// txonly does: the payload is whatever the buffer held).
    #[inline]
    pub fn fill(&mut self, out: &mut [u8], headers_only: bool) -> usize {
        let Some(t) = self.templates.get(self.next_size) else { return 0 };
        let len = t.len().min(out.len());
        let copy = if headers_only { len.min(ETH + 48) } else { len };
        out[..copy].copy_from_slice(&t[..copy]);
        let i = self.next_tunnel;
        if self.plan.v6() {
            // The low 32 bits of the destination; the UDP checksum is left as the template's
            // (the gateway does not read inner L4 checksums).
            if let Some(d) = out.get_mut(ETH + 36..ETH + 40) {
                d.copy_from_slice(&i.to_be_bytes());
            }
        } else if let Some(ip) = out.get_mut(ETH..ETH + 20) {
            ip[16..20].copy_from_slice(&(10u32 << 24 | (i & 0x00ff_ffff)).to_be_bytes());
            ip[10..12].fill(0);
            let c = checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        self.next_tunnel = if i + 1 >= self.tunnels { 0 } else { i + 1 };
        self.next_size = if self.next_size + 1 >= self.templates.len() { 0 } else { self.next_size + 1 };
        len
    }

    /// Length of the frame the next `fill` writes.
    #[inline]
    pub fn next_len(&self) -> usize {
        self.templates.get(self.next_size).map_or(0, Vec::len)
    }

    /// Tunnels the frames are spread over.
    pub fn tunnels(&self) -> u32 {
        self.tunnels
    }
}

/// Pre-generated ESP frames from the peer, packet `k` of tunnel `tunnels[k % n]` carrying
/// that tunnel's next sequence number, so one pass over the pool is a valid stream for every
/// SA; the SAs' windows are re-armed between passes.
#[derive(Debug)]
pub struct EspPool {
    data: Vec<u8>,
    stride: usize,
    lens: Vec<u16>,
    /// The plaintext frame size of each packet (for inner Gbit/s).
    plain_lens: Vec<u16>,
    next: usize,
}

/// Why a pool could not be built.
#[derive(Debug, Clone)]
pub struct PoolError(pub String);

impl EspPool {
    /// Builds the pool for `tunnels` (the tunnel indexes this worker sends for): at least
    /// `min_packets` and one packet per tunnel, sizes cycled from `sizes`, at most
    /// `max_bytes` of frames.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: Plan,
        algo: Algorithm,
        key_bits: u16,
        tunnels: &[u32],
        sizes: &[usize],
        outside_mac: [u8; 6],
        min_packets: usize,
        max_bytes: usize,
    ) -> Result<EspPool, PoolError> {
        let n = tunnels.len().max(1);
        let packets = min_packets.max(n).div_ceil(n) * n;
        let largest = sizes.iter().copied().max().unwrap_or(64);
        let stride = (largest + 128).next_multiple_of(64);
        if packets.saturating_mul(stride) > max_bytes {
            return Err(PoolError(format!(
                "{packets} pre-generated ESP packets of up to {largest} B need {} MiB (> --pool-mb {}): \
                 use fewer SAs or raise --pool-mb",
                (packets * stride) >> 20,
                max_bytes >> 20
            )));
        }
        let backend: Box<dyn CryptoBackend> = match esp::crypto::ipsec_mb::IpsecMbBackend::new() {
            Ok(b) => Box::new(b),
            Err(_) => Box::new(esp::crypto::rust::RustBackend),
        };
        let mut pool = EspPool {
            data: vec![0u8; packets * stride],
            stride,
            lens: vec![0; packets],
            plain_lens: vec![0; packets],
            next: 0,
        };
        for (t, &tunnel) in tunnels.iter().enumerate() {
            // The peer's outbound SA is our inbound record, seen from the other side.
            let rec = sa_record(plan, tunnel, Direction::In, algo, key_bits, BenchBackend::IpsecMb);
            let cfg = espd::gw::sa_ctx::engine_config(&rec).map_err(|e| PoolError(e.0))?;
            let iv = CounterIvSource { next: u128::from(tunnel) << 64 | 1, fixed: None };
            let mut peer = OutboundSa::new(&cfg, backend.as_ref(), Box::new(iv))
                .map_err(|e| PoolError(format!("peer SA {tunnel}: {e:?}")))?;
            for k in (t..packets).step_by(n) {
                let size = sizes.get(k % sizes.len().max(1)).copied().unwrap_or(64);
                let inner = ip_udp(plan.remote(tunnel), plan.host(), size.saturating_sub(ETH));
                let mut b = VecBuffer::new(&inner);
                esp::encap(&mut peer, &mut b).map_err(|e| PoolError(format!("encap: {e:?}")))?;
                let f = ether(outside_mac, PEER_MAC, b.data());
                let slot = pool.data.get_mut(k * stride..k * stride + f.len()).ok_or_else(|| {
                    PoolError(format!("an ESP frame of {} B exceeds the pool's stride", f.len()))
                })?;
                slot.copy_from_slice(&f);
                pool.lens[k] = f.len() as u16;
                pool.plain_lens[k] = (ETH + inner.len()) as u16;
            }
        }
        Ok(pool)
    }

    /// Packets in one pass.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Packets left before the end of the current pass.
    #[inline]
    pub fn left_in_pass(&self) -> usize {
        self.lens.len() - self.next
    }

    /// Length of the frame the next `fill` writes.
    #[inline]
    pub fn next_len(&self) -> usize {
        self.lens.get(self.next).map_or(0, |&l| usize::from(l))
    }

    /// Copies the next frame into `out` and returns (frame length, plaintext frame length);
    /// wraps to the start of the pool after the last packet (the caller re-arms the SAs).
    #[inline]
    pub fn fill(&mut self, out: &mut [u8]) -> (usize, usize) {
        let k = self.next;
        let (len, plain) = match (self.lens.get(k), self.plain_lens.get(k)) {
            (Some(&l), Some(&p)) => (usize::from(l), usize::from(p)),
            _ => return (0, 0),
        };
        let src = self.data.get(k * self.stride..k * self.stride + len);
        match (src, out.get_mut(..len)) {
            (Some(s), Some(d)) => d.copy_from_slice(s),
            _ => return (0, 0),
        }
        self.next = if k + 1 >= self.lens.len() { 0 } else { k + 1 };
        (len, plain)
    }
}
