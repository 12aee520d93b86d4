//! From a validated [`Config`] to the `ike` engine's [`PeerConfig`]s: the
//! seam the engine loop uses.
//!
//! The engine negotiates one child and one selector pair per peer entry
//! (IKEv1 Quick Mode carries one IDci/IDcr pair), so a child with several
//! `local_ts`/`remote_ts` becomes one entry per pair, as strongSwan's
//! ipsec.conf starter splits IKEv1 connections with several subnets. The
//! caller supplies the concrete addresses: an initiator's from
//! [`Connection::initiate_address`], a responder's from the datagram.
//! Unset identities become the IKE addresses (IKEv1 PSK convention).

use super::*;
use ike::engine::{AuthMethod as EngineAuth, ChildConfig, Identity, PeerConfig, Phase1Mode};

/// Why a connection cannot be handed to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineMappingError(pub String);

impl std::fmt::Display for EngineMappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn seconds(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The engine entries for child `child` of connection `conn`, one per
/// selector pair, between `local` and `remote`.
pub fn peer_configs(
    config: &Config,
    conn: &Connection,
    child: &Child,
    local: IpAddr,
    remote: IpAddr,
) -> Result<Vec<PeerConfig>, EngineMappingError> {
    let err =
        |m: String| EngineMappingError(format!("connection `{}`, child `{}`: {m}", conn.name, child.name));
    if !conn.local_addrs.iter().any(|a| a.contains(local)) {
        return Err(err(format!("{local} is not in local_addrs")));
    }
    if !conn.remote_addrs.iter().any(|a| a.contains(remote)) {
        return Err(err(format!("{remote} is not in remote_addrs")));
    }
    let (auth, local_id) = match conn.local.auth {
        AuthMethod::Psk => {
            let psk = config.psk_for(conn).ok_or_else(|| err("no pre-shared key".to_owned()))?;
            (
                EngineAuth::PreSharedKey(psk.0.clone()),
                conn.local.id.to_engine().unwrap_or(Identity::Address(local)),
            )
        }
        AuthMethod::Pubkey => {
            let c = config
                .credentials
                .auth_for(&conn.name)
                .ok_or_else(|| err("no certificate loaded".to_owned()))?;
            (EngineAuth::PublicKey(std::sync::Arc::clone(&c.auth)), c.local_id.clone())
        }
    };
    // Unset, the peer's identity is its address (IKEv1 PSK convention); a
    // responder for any address (`%any`) then accepts any identity.
    let remote_id = conn.remote.id.to_engine().unwrap_or(if remote.is_unspecified() {
        Identity::Any
    } else {
        Identity::Address(remote)
    });
    let mut proposals = Vec::new();
    for t in child.esp_transforms() {
        proposals
            .push(t.to_engine().ok_or_else(|| err("ESP_NULL is not supported by the engine".to_owned()))?);
    }
    proposals.dedup();
    let mut out = Vec::new();
    for lts in &child.local_ts {
        for rts in &child.remote_ts {
            out.push(PeerConfig {
                name: format!("{}/{}", conn.name, child.name),
                remote_address: remote,
                local_address: local,
                local_id: local_id.clone(),
                remote_id: remote_id.clone(),
                auth: auth.clone(),
                mode: if conn.aggressive { Phase1Mode::Aggressive } else { Phase1Mode::Main },
                accept_aggressive: conn.aggressive,
                ike_proposals: conn.ike_transforms(),
                ike_lifetime: conn.ike_lifetime(),
                child: ChildConfig {
                    local_ts: lts.resolve(local),
                    remote_ts: rts.resolve(remote),
                    proposals: proposals.clone(),
                    mode: child.mode,
                    pfs_group: child.pfs_group,
                    lifetime_seconds: seconds(child.life_time),
                    lifetime_kilobytes: u32::try_from(child.life_bytes / 1024).unwrap_or(u32::MAX),
                },
                nat_traversal: true,
                initial_contact: true,
                prefer_configured_proposals: conn.prefer_configured_proposals,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ike::engine::{EspEncryption, EspProposal, TrafficSelector, TsAddress};

    const TEXT: &str = r#"
[connections.home]
local_addrs = "192.0.2.1"
remote_addrs = "198.51.100.2"
proposals = "aes256-sha256-modp2048"
local.auth = "psk"
remote.auth = "psk"
remote.id = "@b.example"
[connections.home.children.net]
local_ts = "10.1.0.0/16, dynamic[udp/500]"
remote_ts = "10.2.0.0/16"
esp_proposals = "aes128gcm16-modp2048"
life_bytes = "2m"
rekey_bytes = "1m"
[secrets.ike-b]
id = "@b.example"
secret = "k"
"#;

    #[test]
    fn one_engine_entry_per_selector_pair() {
        let config = parse(TEXT, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let (conn, child) = config.child("net").unwrap_or_else(|| panic!("net"));
        let local: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let remote: IpAddr = "198.51.100.2".parse().unwrap_or(IpAddr::from([0; 4]));
        let peers = peer_configs(&config, conn, child, local, remote).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(peers.len(), 2);
        let p = &peers[0];
        assert_eq!(p.name, "home/net");
        assert_eq!(p.local_id, Identity::Address(local), "unset local.id is our address");
        assert_eq!(p.remote_id, Identity::Fqdn("b.example".into()));
        assert_eq!(p.mode, Phase1Mode::Main);
        assert!(!p.prefer_configured_proposals);
        assert_eq!(p.ike_proposals.len(), 1);
        assert_eq!(p.ike_lifetime, Duration::from_secs(4 * 3600 + 1440));
        assert!(matches!(&p.auth, EngineAuth::PreSharedKey(k) if k.as_slice() == b"k"));
        assert_eq!(
            p.child.proposals,
            vec![EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None }]
        );
        assert_eq!(p.child.pfs_group, Some(ike::crypto::DhGroup::Modp2048));
        assert_eq!((p.child.lifetime_seconds, p.child.lifetime_kilobytes), (3960, 2048));
        let ten_one = IpAddr::from([10, 1, 0, 0]);
        assert_eq!(
            p.child.local_ts,
            TrafficSelector { address: TsAddress::Subnet(ten_one, 16), protocol: 0, port: 0 }
        );
        assert_eq!(
            peers[1].child.local_ts,
            TrafficSelector { address: TsAddress::Host(local), protocol: 17, port: 500 },
            "dynamic is the IKE address"
        );
        let other: IpAddr = "203.0.113.1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(
            peer_configs(&config, conn, child, local, other).err().map(|e| e.to_string()),
            Some("connection `home`, child `net`: 203.0.113.1 is not in remote_addrs".to_owned())
        );
    }

    #[test]
    fn prefer_configured_proposals_reaches_every_entry() {
        let text = TEXT.replace(
            "proposals = \"aes256-sha256-modp2048\"\n",
            "proposals = \"aes256-sha256-modp2048\"\nprefer_configured_proposals = \"yes\"\n",
        );
        let config = parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let (conn, child) = config.child("net").unwrap_or_else(|| panic!("net"));
        let local: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let remote: IpAddr = "198.51.100.2".parse().unwrap_or(IpAddr::from([0; 4]));
        let peers = peer_configs(&config, conn, child, local, remote).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(peers.len(), 2);
        assert!(peers.iter().all(|p| p.prefer_configured_proposals));
    }

    #[test]
    fn a_responder_for_any_peer_accepts_any_identity() {
        let text = TEXT
            .replace("remote_addrs = \"198.51.100.2\"", "remote_addrs = \"%any\"")
            .replace("remote.id = \"@b.example\"\n", "");
        let text = text.replace("[secrets.ike-b]\nid = \"@b.example\"\n", "[secrets.ike-b]\n");
        let config = parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let (conn, child) = config.child("net").unwrap_or_else(|| panic!("net"));
        let local: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let any = IpAddr::from([0u8; 4]);
        let peers = peer_configs(&config, conn, child, local, any).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(peers[0].remote_id, Identity::Any);
        assert!(peers[0].remote_id.matches(&Identity::Fqdn("whoever.example".into()).to_payload()));
    }
}
