//! Who is who in a run: the source addresses, and per tunnel its source,
//! identity and traffic selector, with the engine configurations of the
//! initiators and of our own responder built from the same plan.
//!
//! Tunnel `i` uses source `i % sources` (so consecutive tunnels come from
//! different addresses), proposes `ts_base + i` as its own /32 (/128) host
//! and the responder's subnet as the remote selector.

use ike::crypto::DhGroup;
use ike::engine::{
    AuthMethod, ChildConfig, ChildMode, EngineConfig, EspProposal, Identity, IkeProposal, PeerConfig,
    Phase1Mode, TrafficSelector, TsAddress,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// How each tunnel identifies itself in phase 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdKind {
    /// ID_FQDN `t<i>.load.example`: distinct per tunnel.
    Fqdn,
    /// ID_IPV4_ADDR / ID_IPV6_ADDR of the tunnel's source address.
    Address,
    /// ID_FQDN `load.example` for every tunnel: for a responder that can
    /// only check one configured identity (iked, while its `remote.id =
    /// %any` is not a wildcard).
    Shared,
}

/// Everything the initiators and our responder need to agree on.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The responder's IKE address.
    pub responder: IpAddr,
    /// Initiator source addresses.
    pub sources: Vec<IpAddr>,
    /// Number of tunnels.
    pub tunnels: usize,
    /// First tunnel's host selector.
    pub ts_base: IpAddr,
    /// A subnet holding every tunnel's host selector (what a responder
    /// accepts as remote selector, narrowed to each tunnel's host).
    pub initiator_ts: TrafficSelector,
    /// The responder's protected subnet (the initiators' remote selector).
    pub responder_ts: TrafficSelector,
    /// Identities.
    pub id_kind: IdKind,
    /// Pre-shared key.
    pub psk: Vec<u8>,
    /// The one IKE transform offered.
    pub ike: IkeProposal,
    /// The one ESP transform offered.
    pub esp: EspProposal,
    /// PFS group of Quick Mode.
    pub pfs: Option<DhGroup>,
    /// Offer and accept NAT-T (RFC 3947).
    pub nat_traversal: bool,
    /// First retransmission interval of the engines.
    pub retransmit_initial: Duration,
}

/// `base + n` in the same family, or `None` past the end of the space.
pub fn add(base: IpAddr, n: u128) -> Option<IpAddr> {
    match base {
        IpAddr::V4(a) => {
            let v = u128::from(u32::from(a)).checked_add(n)?;
            Some(IpAddr::V4(Ipv4Addr::from(u32::try_from(v).ok()?)))
        }
        IpAddr::V6(a) => Some(IpAddr::V6(Ipv6Addr::from(u128::from(a).checked_add(n)?))),
    }
}

/// `a.b.c.d/len` (or a v6 subnet) as a selector.
pub fn parse_subnet(text: &str) -> Result<TrafficSelector, String> {
    let (a, l) = text.split_once('/').ok_or_else(|| format!("`{text}`: expected address/prefix"))?;
    let addr: IpAddr = a.parse().map_err(|e| format!("`{text}`: {e}"))?;
    let len: u8 = l.parse().map_err(|e| format!("`{text}`: {e}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("`{text}`: prefix longer than {max}"));
    }
    Ok(TrafficSelector { address: TsAddress::Subnet(addr, len), protocol: 0, port: 0 }.normalized())
}

/// `inner` (a host) lies inside `outer` (a subnet or host).
fn contains(outer: TrafficSelector, inner: TrafficSelector) -> bool {
    let TsAddress::Host(h) = inner.address else {
        return false;
    };
    match outer.address {
        TsAddress::Host(a) => a == h,
        TsAddress::Subnet(a, len) => match (a, h) {
            (IpAddr::V4(a), IpAddr::V4(h)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(h) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(h)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(a) & mask == u128::from(h) & mask
            }
            _ => false,
        },
        TsAddress::Range(lo, hi) => lo <= h && h <= hi,
    }
}

fn host(a: IpAddr) -> TrafficSelector {
    TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 }
}

impl Plan {
    /// Source address of tunnel `i`.
    pub fn source_of(&self, tunnel: usize) -> usize {
        tunnel % self.sources.len().max(1)
    }

    /// Host selector of tunnel `i`.
    pub fn tunnel_ts(&self, tunnel: usize) -> Option<TrafficSelector> {
        add(self.ts_base, tunnel as u128).map(host)
    }

    /// Phase-1 identity of tunnel `i`.
    pub fn identity(&self, tunnel: usize) -> Identity {
        match self.id_kind {
            IdKind::Fqdn => Identity::Fqdn(format!("t{tunnel}.load.example")),
            IdKind::Address => {
                Identity::Address(self.sources.get(self.source_of(tunnel)).copied().unwrap_or(self.responder))
            }
            IdKind::Shared => Identity::Fqdn("load.example".into()),
        }
    }

    /// Checks that every tunnel has a selector and the families agree.
    pub fn validate(&self) -> Result<(), String> {
        if self.tunnels == 0 || self.sources.is_empty() {
            return Err("need at least one tunnel and one source address".into());
        }
        let inside = |t: usize| self.tunnel_ts(t).is_some_and(|ts| contains(self.initiator_ts, ts));
        if !inside(0) || !inside(self.tunnels - 1) {
            return Err("the tunnels' hosts (--ts-base + 0..--tunnels) must lie inside --initiator-ts".into());
        }
        let v4 = self.responder.is_ipv4();
        if self.sources.iter().any(|s| s.is_ipv4() != v4) {
            return Err("--responder and the source addresses must be of one family".into());
        }
        Ok(())
    }

    fn engine_config(&self, peers: Vec<PeerConfig>) -> EngineConfig {
        EngineConfig {
            peers,
            // Our responder is loaded on purpose: it must not drop new
            // initiators because of the defaults meant for a gateway.
            max_half_open: 1 << 16,
            retransmit_initial: self.retransmit_initial,
            ..EngineConfig::default()
        }
    }

    fn peer(&self, name: String, local: IpAddr, remote: IpAddr, ids: (Identity, Identity)) -> PeerConfig {
        PeerConfig {
            name,
            remote_address: remote,
            local_address: local,
            local_id: ids.0,
            remote_id: ids.1,
            auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(self.psk.clone())),
            mode: Phase1Mode::Main,
            accept_aggressive: false,
            ike_proposals: vec![self.ike],
            ike_lifetime: Duration::from_secs(3 * 3600),
            child: ChildConfig {
                local_ts: self.responder_ts,
                remote_ts: self.responder_ts,
                proposals: vec![self.esp],
                mode: ChildMode::Tunnel,
                pfs_group: self.pfs,
                lifetime_seconds: 3600,
                lifetime_kilobytes: 0,
            },
            nat_traversal: self.nat_traversal,
            force_encap: false,
            initial_contact: false,
            prefer_configured_proposals: false,
        }
    }

    /// The initiator engine of source `s`: one peer entry per tunnel of
    /// that source, in tunnel order. Returns the config and the tunnel
    /// index of each peer entry.
    pub fn initiator(&self, s: usize) -> (EngineConfig, Vec<usize>) {
        let Some(&local) = self.sources.get(s) else {
            return (self.engine_config(Vec::new()), Vec::new());
        };
        let mut peers = Vec::new();
        let mut tunnels = Vec::new();
        for t in (s..self.tunnels).step_by(self.sources.len().max(1)) {
            let ids = (self.identity(t), Identity::Address(self.responder));
            let mut p = self.peer(format!("t{t}"), local, self.responder, ids);
            p.child.local_ts = self.tunnel_ts(t).unwrap_or(self.responder_ts);
            peers.push(p);
            tunnels.push(t);
        }
        (self.engine_config(peers), tunnels)
    }

    /// Our responder. The engine's responder picks a peer entry by source
    /// address and then wants that entry's identity, so: with one source
    /// per tunnel, one entry per tunnel with the tunnel's identity and its
    /// exact selectors mirrored; with fewer sources, one entry per source
    /// with the address as identity (`--id address`) and `initiator_ts` as
    /// remote selector, which relies on the engine narrowing it to each
    /// tunnel's host.
    pub fn responder_config(&self) -> Result<EngineConfig, String> {
        let shared = self.sources.len() != self.tunnels;
        if shared && self.id_kind == IdKind::Fqdn {
            return Err(format!(
                "our responder picks a peer entry by source address, then checks its identity: it needs \
                 one source per tunnel (--sources {}) or --id address|shared",
                self.tunnels
            ));
        }
        let mut peers = Vec::with_capacity(self.sources.len());
        for (s, &remote) in self.sources.iter().enumerate() {
            let ids = (Identity::Address(self.responder), self.identity(s));
            let mut p = self.peer(format!("r{s}"), self.responder, remote, ids);
            p.child.remote_ts =
                if shared { self.initiator_ts } else { self.tunnel_ts(s).ok_or("selector")? };
            peers.push(p);
        }
        Ok(self.engine_config(peers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::{parse_esp, parse_ike};

    fn plan(tunnels: usize, sources: usize) -> Plan {
        let (esp, pfs) = parse_esp("aes128gcm16-modp2048").unwrap();
        Plan {
            responder: "198.18.0.1".parse().unwrap(),
            sources: (0..sources).map(|i| add("198.18.16.0".parse().unwrap(), i as u128).unwrap()).collect(),
            tunnels,
            ts_base: "198.19.0.0".parse().unwrap(),
            initiator_ts: parse_subnet("198.19.0.0/17").unwrap(),
            responder_ts: parse_subnet("198.19.128.0/24").unwrap(),
            id_kind: IdKind::Fqdn,
            psk: b"k".to_vec(),
            ike: parse_ike("aes128-sha256-modp2048").unwrap(),
            esp,
            pfs,
            nat_traversal: true,
            retransmit_initial: Duration::from_millis(500),
        }
    }

    #[test]
    fn tunnels_spread_over_sources_with_distinct_ids_and_selectors() {
        let p = plan(10, 4);
        p.validate().unwrap();
        let mut seen = Vec::new();
        for s in 0..4 {
            let (cfg, tunnels) = p.initiator(s);
            assert_eq!(cfg.peers.len(), tunnels.len());
            for (peer, t) in cfg.peers.iter().zip(&tunnels) {
                assert_eq!(p.source_of(*t), s);
                assert_eq!(peer.local_address, p.sources[s]);
                seen.push((*t, peer.local_id.clone(), peer.child.local_ts));
            }
        }
        seen.sort_by_key(|x| x.0);
        assert_eq!(seen.iter().map(|x| x.0).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        for w in seen.windows(2) {
            assert_ne!(w[0].1, w[1].1);
            assert_ne!(w[0].2, w[1].2);
        }
        assert_eq!(seen[3].2, host("198.19.0.3".parse().unwrap()));
        assert!(p.responder_config().is_err(), "4 sources for 10 tunnels, FQDN ids");
        let p = Plan { id_kind: IdKind::Address, ..p };
        let r = p.responder_config().unwrap();
        assert_eq!(r.peers.len(), 4);
        assert_eq!(r.peers[1].remote_id, Identity::Address(p.sources[1]));
        assert_eq!(r.peers[1].child.remote_ts, p.initiator_ts);
    }

    #[test]
    fn responder_mirrors_the_initiators() {
        let p = plan(3, 3);
        let r = p.responder_config().unwrap();
        for t in 0..3 {
            let (i, _) = p.initiator(t);
            let (i, r) = (&i.peers[0], &r.peers[t]);
            assert_eq!((i.local_address, i.remote_address), (r.remote_address, r.local_address));
            assert_eq!((&i.local_id, &i.remote_id), (&r.remote_id, &r.local_id));
            assert_eq!((i.child.local_ts, i.child.remote_ts), (r.child.remote_ts, r.child.local_ts));
        }
    }

    #[test]
    fn address_arithmetic() {
        assert_eq!(add("198.18.0.255".parse().unwrap(), 1), Some("198.18.1.0".parse().unwrap()));
        assert_eq!(add("255.255.255.255".parse().unwrap(), 1), None);
        assert_eq!(add("2001:db8::ffff".parse().unwrap(), 1), Some("2001:db8::1:0".parse().unwrap()));
        assert!(parse_subnet("198.19.0.0/33").is_err());
        let net = parse_subnet("198.19.0.0/17").unwrap();
        assert!(contains(net, host("198.19.127.255".parse().unwrap())));
        assert!(!contains(net, host("198.19.128.0".parse().unwrap())));
        assert!(contains(parse_subnet("0.0.0.0/0").unwrap(), host("1.2.3.4".parse().unwrap())));
        assert!(!contains(net, host("2001:db8::1".parse().unwrap())));
        let mut p = plan(3, 3);
        p.ts_base = "198.19.127.254".parse().unwrap();
        assert!(p.validate().is_err(), "third host outside the /17");
        assert_eq!(parse_subnet("198.19.0.1/32").unwrap(), host("198.19.0.1".parse().unwrap()));
    }
}
