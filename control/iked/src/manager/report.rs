//! What `ikectl` is told: `list-sas`, `list-pols` and the SA counts of
//! `stats`.

use super::child::{ChildSa, ChildState};
use super::{local_address, Manager};
use crate::config::selector::DisplayTs;
use crate::ctl::protocol::{ChildSaInfo, IkeSaInfo, PolicyInfo};
use crate::daemon::EngineCounts;
use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
use ike::engine::{Encapsulation, EspEncryption, EspIntegrity, IkeSaId};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn secs_until(now: Instant, t: Option<Instant>) -> Option<u64> {
    t.map(|t| t.saturating_duration_since(now).as_secs())
}

fn alg_names(e: EspEncryption, i: Option<EspIntegrity>) -> (String, u16, Option<String>) {
    let (name, bits) = match e {
        EspEncryption::AesCbc(b) => ("AES_CBC", b),
        EspEncryption::AesGcm16(b) => ("AES_GCM_16", b),
    };
    let integ = i.map(|i| {
        match i {
            EspIntegrity::HmacSha1 => "HMAC_SHA1_96",
            EspIntegrity::HmacSha256 => "HMAC_SHA2_256_128",
            EspIntegrity::HmacSha384 => "HMAC_SHA2_384_192",
            EspIntegrity::HmacSha512 => "HMAC_SHA2_512_256",
        }
        .to_owned()
    });
    (name.to_owned(), bits, integ)
}

fn dh_name(g: DhGroup) -> String {
    format!("{g:?}").to_uppercase().replace("MODP", "MODP_").replace("ECP", "ECP_").replace("CURVE", "CURVE_")
}

fn hash_names(h: HashAlgorithm) -> (&'static str, &'static str) {
    match h {
        HashAlgorithm::Sha1 => ("HMAC_SHA1_96", "PRF_HMAC_SHA1"),
        HashAlgorithm::Sha256 => ("HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256"),
        HashAlgorithm::Sha384 => ("HMAC_SHA2_384_192", "PRF_HMAC_SHA2_384"),
        HashAlgorithm::Sha512 => ("HMAC_SHA2_512_256", "PRF_HMAC_SHA2_512"),
    }
}

fn cipher_bits(c: Cipher) -> u16 {
    match c {
        Cipher::Aes128Cbc => 128,
        Cipher::Aes192Cbc => 192,
        Cipher::Aes256Cbc => 256,
    }
}

fn hex8(b: &[u8; 8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Manager {
    /// SA counts for `stats`.
    pub fn counts(&self) -> EngineCounts {
        let sas = self.engine.ike_sas();
        EngineCounts {
            ike_sas: sas.len() as u64,
            ike_sas_half_open: sas.iter().filter(|s| !s.established).count() as u64,
            child_sas: self.children.iter().filter(|c| c.spi_out != 0).count() as u64,
            ike_datagrams: self
                .engine
                .stats()
                .named()
                .into_iter()
                .map(|(k, _, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// The dataplane's counters.
    pub fn dataplane_stats(&self) -> crate::ctl::protocol::DataplaneStats {
        self.kernel.dataplane_stats()
    }

    /// Each dataplane worker's counters.
    pub fn lcore_counters(&self) -> Vec<crate::metrics::LcoreCounters> {
        self.kernel.lcore_counters()
    }

    /// `list-pols`: the policy pair of every reqid iked holds, with what
    /// the dataplane says of it (the SA it sends on, packets matched).
    pub fn list_pols(&self) -> Vec<PolicyInfo> {
        let in_db: BTreeMap<u32, sadb::PolicyEntry> =
            self.kernel.region().list_policies().into_iter().map(|p| (p.config.id, p)).collect();
        self.bindings
            .iter()
            .filter_map(|(&reqid, b)| {
                let e = self.entries.get(b.entry)?;
                let mode =
                    self.child_config(b.entry).map_or("TUNNEL", |ch| crate::daemon::mode_name(ch.mode));
                let [out_id, in_id] = crate::sadb_writer::policy_ids(reqid);
                let (out, inb) = (in_db.get(&out_id), in_db.get(&in_id));
                let spi_out = out
                    .and_then(|p| p.sa_slot)
                    .and_then(|s| self.kernel.region().sa_entry(s))
                    .map(|sa| format!("{:08x}", sa.config.spi));
                let negotiating = self.children.iter().any(|c| c.reqid == reqid);
                let state = match (&spi_out, negotiating) {
                    (Some(_), _) => "INSTALLED",
                    (None, true) => "PENDING",
                    (None, false) => "TRAP",
                };
                Some(PolicyInfo {
                    name: e.child.clone(),
                    ike: e.conn.clone(),
                    reqid,
                    mode: mode.to_owned(),
                    state: state.to_owned(),
                    local_ts: vec![DisplayTs(b.local_ts).to_string()],
                    remote_ts: vec![DisplayTs(b.remote_ts).to_string()],
                    spi_out,
                    packets_out: out.map_or(0, |p| p.hits),
                    packets_in: inb.map_or(0, |p| p.hits),
                })
            })
            .collect()
    }

    /// `list-sas` at `now`. `wall` is the same moment on the wall clock:
    /// the dataplane stamps an SA's last use in Unix seconds.
    pub fn list_sas(&self, now: Instant, wall: SystemTime) -> Vec<IkeSaInfo> {
        let mut out = Vec::new();
        for s in self.engine.ike_sas() {
            let st = self.ike.get(&s.id);
            let entry = self.entries.get(s.peer);
            let conn = entry.and_then(|e| self.conn_config(&e.conn));
            let (encr_alg, encr_keysize, integ_alg, prf_alg, dh_group) = match s.proposal {
                Some(p) => {
                    let (i, prf) = hash_names(p.hash);
                    (
                        "AES_CBC".to_owned(),
                        cipher_bits(p.cipher),
                        i.to_owned(),
                        prf.to_owned(),
                        dh_name(p.group),
                    )
                }
                None => Default::default(),
            };
            let state = match st {
                _ if !s.established => "CONNECTING",
                Some(x) if x.dead => "DELETING",
                Some(x) if x.replaced => "REKEYED",
                _ => "ESTABLISHED",
            };
            let child_sas = self
                .children
                .iter()
                .filter(|c| c.ike_sa == s.id)
                .map(|c| self.child_info(now, wall, c))
                .collect();
            out.push(IkeSaInfo {
                name: entry.map_or_else(String::new, |e| e.conn.clone()),
                uniqueid: s.id.0,
                state: state.to_owned(),
                local_host: s.local.ip().to_string(),
                local_port: s.local.port(),
                local_id: conn.map_or_else(String::new, |c| self.config.local_id_text(c)),
                remote_host: s.remote.ip().to_string(),
                remote_port: s.remote.port(),
                remote_id: conn.map_or_else(String::new, |c| c.remote.id.to_string()),
                initiator: s.initiator,
                initiator_spi: hex8(&s.cookies.0),
                responder_spi: hex8(&s.cookies.1),
                nat_local: s.nat.local_behind,
                nat_remote: s.nat.remote_behind,
                encr_alg,
                encr_keysize,
                integ_alg,
                prf_alg,
                dh_group,
                established: st
                    .and_then(|x| x.established)
                    .map(|e| now.saturating_duration_since(e).as_secs()),
                rekey_time: st.and_then(|x| secs_until(now, x.reauth_at)),
                child_sas,
            });
        }
        out.extend(self.orphans_info(now, wall));
        out
    }

    /// Child pairs whose ISAKMP SA is gone (they keep forwarding until a new
    /// one adopts them or they expire), one entry per connection and peer:
    /// uniqueid 0 and state `DELETED` stand for the missing ISAKMP SA; the
    /// rest comes from the configuration, no cookies, algorithms or ports.
    /// Pairs an earlier run left (see `Leftover`) are among them, with
    /// child uniqueid 0 and their deadline as `life_time`.
    fn orphans_info(&self, now: Instant, wall: SystemTime) -> Vec<IkeSaInfo> {
        let live: std::collections::HashSet<IkeSaId> = self.engine.ike_sas().iter().map(|s| s.id).collect();
        let mut groups: BTreeMap<(String, IpAddr), Vec<ChildSaInfo>> = BTreeMap::new();
        for c in self.children.iter().filter(|c| !live.contains(&c.ike_sa)) {
            let conn = self.entries.get(c.entry).map_or_else(String::new, |e| e.conn.clone());
            groups.entry((conn, c.remote)).or_default().push(self.child_info(now, wall, c));
        }
        for (key, info) in self.leftovers_info(now, wall) {
            groups.entry(key).or_default().push(info);
        }
        groups
            .into_iter()
            .map(|((name, remote), child_sas)| {
                let conn = self.conn_config(&name);
                let local = conn.and_then(|c| local_address(&self.config, c, Some(remote)));
                IkeSaInfo {
                    local_host: local.map_or_else(String::new, |a| a.to_string()),
                    local_id: conn.map_or_else(String::new, |c| self.config.local_id_text(c)),
                    remote_host: remote.to_string(),
                    remote_id: conn.map_or_else(String::new, |c| c.remote.id.to_string()),
                    name,
                    uniqueid: 0,
                    state: "DELETED".to_owned(),
                    child_sas,
                    ..IkeSaInfo::default()
                }
            })
            .collect()
    }

    /// The SAs an earlier run left, as pairs per reqid (either SPI 0 when
    /// its half is gone), keyed by the owning connection (if the reqid is a
    /// configured one) and the peer's address. Only what the SA records
    /// hold: SPIs, selectors, mode, counters.
    fn leftovers_info(&self, now: Instant, wall: SystemTime) -> Vec<((String, IpAddr), ChildSaInfo)> {
        let mut pairs: BTreeMap<u32, [Option<u32>; 2]> = BTreeMap::new();
        for l in &self.leftovers {
            let [spi_in, spi_out] = pairs.entry(l.reqid).or_default();
            *(if l.inbound { spi_in } else { spi_out }) = Some(l.spi);
        }
        let due = self.leftovers_due_of();
        pairs
            .into_iter()
            .filter_map(|(reqid, [spi_in, spi_out])| {
                let outline_in = spi_in.and_then(|s| self.kernel.sa_outline(s, true, Some(reqid)));
                let outline_out = spi_out.and_then(|s| self.kernel.sa_outline(s, false, Some(reqid)));
                let o = outline_out.or(outline_in)?;
                let remote = if outline_out.is_some() { o.dst } else { o.src };
                let entry = self.reqid_owner(reqid);
                let stats = |s: Option<u32>, inbound: bool| {
                    s.and_then(|s| self.kernel.sa_stats(s, inbound, Some(reqid)))
                };
                let info = ChildSaInfo {
                    name: entry.map_or_else(String::new, |e| e.child.clone()),
                    state: "INSTALLED".to_owned(),
                    spi_in: format!("{:08x}", spi_in.unwrap_or(0)),
                    spi_out: format!("{:08x}", spi_out.unwrap_or(0)),
                    life_time: secs_until(now, due(reqid)),
                    local_ts: vec![DisplayTs(o.local_ts).to_string()],
                    remote_ts: vec![DisplayTs(o.remote_ts).to_string()],
                    ..traffic_info(o.encapsulation, [stats(spi_in, true), stats(spi_out, false)], wall)
                };
                let conn = entry.map_or_else(String::new, |e| e.conn.clone());
                Some(((conn, remote), info))
            })
            .collect()
    }

    fn child_info(&self, now: Instant, wall: SystemTime, c: &ChildSa) -> ChildSaInfo {
        let (encr_alg, encr_keysize, integ_alg) = alg_names(c.encryption, c.integrity);
        let e = self.entries.get(c.entry);
        let ch = self.child_config(c.entry);
        let stat_in = if c.spi_in != 0 { self.kernel.sa_stats(c.spi_in, true, None) } else { None };
        let stat_out =
            if c.spi_out != 0 { self.kernel.sa_stats(c.spi_out, false, Some(c.reqid)) } else { None };
        ChildSaInfo {
            name: e.map_or_else(String::new, |e| e.child.clone()),
            uniqueid: c.id,
            state: match c.state {
                ChildState::Inbound => "INSTALLING",
                ChildState::Installed => "INSTALLED",
                ChildState::Rekeying | ChildState::PeerRekeying => "REKEYING",
                ChildState::Superseded => "REKEYED",
            }
            .to_owned(),
            spi_in: format!("{:08x}", c.spi_in),
            spi_out: format!("{:08x}", c.spi_out),
            encr_alg,
            encr_keysize,
            integ_alg,
            dh_group: ch.and_then(|ch| ch.pfs_group).map(dh_name),
            esn: false,
            rekey_time: secs_until(now, c.rekey_at),
            life_time: secs_until(now, c.expire_at),
            install_time: now.saturating_duration_since(c.installed).as_secs(),
            local_ts: vec![DisplayTs(c.local_ts).to_string()],
            remote_ts: vec![DisplayTs(c.remote_ts).to_string()],
            ..traffic_info(c.encapsulation, [stat_in, stat_out], wall)
        }
    }
}

/// What a child SA pair's entry takes from its SA records: mode, protocol,
/// encapsulation and the counters of its inbound and outbound SAs.
fn traffic_info(
    encapsulation: Encapsulation,
    stats: [Option<sadb::SaStats>; 2],
    wall: SystemTime,
) -> ChildSaInfo {
    let wall = unix(wall);
    let used =
        |s: Option<sadb::SaStats>| s.filter(|s| s.last_used > 0).map(|s| wall.saturating_sub(s.last_used));
    let [stat_in, stat_out] = stats;
    ChildSaInfo {
        mode: match encapsulation {
            Encapsulation::Tunnel | Encapsulation::UdpTunnel => "TUNNEL",
            Encapsulation::Transport | Encapsulation::UdpTransport => "TRANSPORT",
        }
        .to_owned(),
        protocol: "ESP".to_owned(),
        encap: matches!(encapsulation, Encapsulation::UdpTunnel | Encapsulation::UdpTransport),
        bytes_in: stat_in.map_or(0, |s| s.bytes),
        packets_in: stat_in.map_or(0, |s| s.packets),
        use_in: used(stat_in),
        bytes_out: stat_out.map_or(0, |s| s.bytes),
        packets_out: stat_out.map_or(0, |s| s.packets),
        use_out: used(stat_out),
        ..ChildSaInfo::default()
    }
}
