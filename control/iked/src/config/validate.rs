//! From the raw file to a [`Config`]: swanctl's defaults applied, every
//! string with a syntax of its own parsed, cross-key rules checked. Each
//! error carries the key path it is about.

use super::error::key;
use super::identity::parse_identity;
use super::proposal::{parse_esp_proposal, parse_ike_proposal, EspCipher, DEFAULT_ESP_PROPOSALS};
use super::raw::{RawChild, RawConnection, RawDaemon, RawEnd, RawFile};
use super::selector::{parse_address, parse_traffic_selector, AddressSpec, TsAddressSpec};
use super::value::{split_list, ListValue};
use super::*;
use crate::logging::{LogLevels, Subsystem};
use std::collections::BTreeMap;
use std::time::Duration;

/// strongSwan's defaults (swanctl.conf(5)).
const IKE_REKEY_TIME: Duration = Duration::from_secs(4 * 3600);
const CHILD_REKEY_TIME: Duration = Duration::from_secs(3600);
/// ipsec.conf's `dpdtimeout` default, which charon applies to IKEv1.
const IKEV1_DPD_TIMEOUT: Duration = Duration::from_secs(150);
const REPLAY_WINDOW: u32 = 32;
/// The largest anti-replay window the dataplane keeps per SA (the SA
/// database's `max_replay_window` at most; 8 KiB of bitmap per SA).
pub const MAX_REPLAY_WINDOW: u32 = 65_536;
const IKE_PORT: u16 = 500;

type Result<T> = std::result::Result<T, ConfigError>;

/// Byte offset to 1-based line number.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error, key: Option<String>) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        key: key.filter(|k| !k.is_empty() && k != "."),
        reason: e.message().trim().to_owned(),
    }
}

pub(crate) fn parse(text: &str, path: &Path) -> Result<Config> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, &e, None))?;
    let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let p = e.path().to_string();
        toml_error(path, text, e.inner(), Some(p))
    })?;
    let daemon = Validator { path, swanctl_dir: Path::new("") }.daemon(raw.daemon.unwrap_or_default())?;
    let swanctl_dir = daemon.swanctl_dir.clone();
    let v = Validator { path, swanctl_dir: &swanctl_dir };
    let secrets = v.secrets(&raw.secrets)?;
    let mut connections = Vec::with_capacity(raw.connections.len());
    for (name, rc) in &raw.connections {
        connections.push(v.connection(name, rc)?);
    }
    v.unique_children(&connections)?;
    let credentials = if connections.iter().any(|c| c.local.auth == AuthMethod::Pubkey) {
        credentials::load(path, &daemon.swanctl_dir, &connections, std::time::SystemTime::now())?
    } else {
        Credentials::default()
    };
    let config = Config { daemon, connections, secrets, credentials };
    for c in config.connections.iter().filter(|c| c.local.auth == AuthMethod::Psk) {
        if best_secret(&config.secrets, c).is_none() {
            return Err(v.err(
                key(&["connections", &c.name, "local", "auth"]),
                format!(
                    "auth = \"psk\" but no secrets.ike* section matches local id {} or remote id {}",
                    id_or_addrs(&c.local.id, &c.local_addrs),
                    id_or_addrs(&c.remote.id, &c.remote_addrs)
                ),
            ));
        }
    }
    Ok(config)
}

fn id_or_addrs(id: &ConfigId, addrs: &[AddressSpec]) -> String {
    match id {
        ConfigId::Any => {
            let a: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            a.join(",")
        }
        other => other.to_string(),
    }
}

/// The identities that stand for one side when matching secrets.
fn side_ids(id: &ConfigId, addrs: &[AddressSpec]) -> Vec<ConfigId> {
    match id {
        ConfigId::Any => addrs.iter().filter_map(AddressSpec::host).map(ConfigId::Address).collect(),
        other => vec![other.clone()],
    }
}

pub(crate) fn best_secret<'a>(secrets: &'a [SharedSecret], c: &Connection) -> Option<&'a SharedSecret> {
    let local = side_ids(&c.local.id, &c.local_addrs);
    let remote = side_ids(&c.remote.id, &c.remote_addrs);
    let score = |s: &SharedSecret| -> u8 {
        let concrete: Vec<&ConfigId> = s.ids.iter().filter(|i| **i != ConfigId::Any).collect();
        if concrete.is_empty() {
            return 1;
        }
        let l = concrete.iter().any(|i| local.contains(i));
        let r = concrete.iter().any(|i| remote.contains(i));
        match (l, r) {
            (true, true) => 3,
            (true, false) | (false, true) => 2,
            (false, false) => 0,
        }
    };
    // Highest score; among equals the first section (sorted by name).
    let mut best: Option<(&SharedSecret, u8)> = None;
    for s in secrets {
        let sc = score(s);
        if sc > 0 && best.is_none_or(|(_, b)| sc > b) {
            best = Some((s, sc));
        }
    }
    best.map(|(s, _)| s)
}

struct Validator<'p> {
    path: &'p Path,
    swanctl_dir: &'p Path,
}

impl Validator<'_> {
    fn err(&self, key: String, reason: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, key, reason)
    }

    fn daemon(&self, d: RawDaemon) -> Result<DaemonSettings> {
        let listen = match d.listen {
            None => vec![IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])],
            Some(ListValue(items)) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(item.parse().map_err(|_| {
                        self.err(key(&["daemon", "listen"]), format!("invalid address `{item}`"))
                    })?);
                }
                if out.is_empty() {
                    return Err(self.err(key(&["daemon", "listen"]), "no address to listen on"));
                }
                out
            }
        };
        let port = d.port.unwrap_or(IKE_PORT);
        let port_nat_t = d.port_nat_t.unwrap_or(4500);
        if port == 0 || port_nat_t == 0 || port == port_nat_t {
            return Err(self
                .err(key(&["daemon", "port_nat_t"]), "port and port_nat_t must be different and non-zero"));
        }
        let log = match d.log {
            None => LogLevels::default(),
            Some(map) => self.log_levels(&map)?,
        };
        let non_empty = |k: &str, v: Option<String>, default: &str| -> Result<PathBuf> {
            match v {
                Some(s) if s.trim().is_empty() => Err(self.err(key(&["daemon", k]), "empty path")),
                Some(s) => Ok(PathBuf::from(s)),
                None => Ok(PathBuf::from(default)),
            }
        };
        Ok(DaemonSettings {
            sadb: non_empty("sadb", d.sadb, DEFAULT_SADB)?,
            control_socket: non_empty("control_socket", d.control_socket, DEFAULT_CONTROL_SOCKET)?,
            ctl_group: match d.ctl_group {
                Some(name) => Some(self.ctl_group(name)?),
                None => None,
            },
            listen,
            port,
            port_nat_t,
            keylog: match d.keylog {
                Some(s) if s.trim().is_empty() => {
                    return Err(self.err(key(&["daemon", "keylog"]), "empty path"))
                }
                other => other.map(PathBuf::from),
            },
            delete_sas_on_exit: d.delete_sas_on_exit.unwrap_or(true),
            half_open: self.half_open(d.init_limit_half_open, d.block_threshold, d.half_open_reserved)?,
            metrics: match d.metrics {
                None => None,
                Some(s) => Some(s.parse().map_err(|_| {
                    self.err(
                        key(&["daemon", "metrics"]),
                        format!("`{s}` is not an address and port (e.g. 127.0.0.1:9469)"),
                    )
                })?),
            },
            metrics_per_sa: d.metrics_per_sa.unwrap_or(true),
            log,
            swanctl_dir: non_empty("swanctl_dir", d.swanctl_dir, credentials::DEFAULT_SWANCTL_DIR)?,
        })
    }

    /// `daemon.init_limit_half_open`, `block_threshold` and `half_open_reserved`: each
    /// at least 1 (0, strongSwan's "unlimited", would let a flood take all memory), the
    /// per-source share and the reserve below the total.
    fn half_open(
        &self,
        total: Option<u64>,
        per_source: Option<u64>,
        reserved: Option<u64>,
    ) -> Result<HalfOpenLimits> {
        let d = HalfOpenLimits::default();
        let get = |k: &str, v: Option<u64>, default: usize| -> Result<usize> {
            match v {
                None => Ok(default),
                Some(0) => Err(self.err(key(&["daemon", k]), "must be at least 1 (there is no unlimited)")),
                Some(n) if n > 1 << 20 => Err(self.err(key(&["daemon", k]), "at most 1048576")),
                Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            }
        };
        let total = get("init_limit_half_open", total, d.total)?;
        let per_source = get("block_threshold", per_source, d.per_source.min(total))?;
        let reserved = match reserved {
            Some(0) => 0,
            other => get("half_open_reserved", other, d.reserved.min(total / 2))?,
        };
        if per_source > total {
            return Err(
                self.err(key(&["daemon", "block_threshold"]), "larger than daemon.init_limit_half_open")
            );
        }
        if reserved >= total {
            return Err(self.err(
                key(&["daemon", "half_open_reserved"]),
                "must be below daemon.init_limit_half_open (the rest is what %any connections share)",
            ));
        }
        Ok(HalfOpenLimits { total, per_source, reserved })
    }

    /// Resolves `daemon.ctl_group` in the group database, and its listed members to uids
    /// (a member with no user entry cannot connect and is left out).
    fn ctl_group(&self, name: String) -> Result<CtlGroup> {
        let k = key(&["daemon", "ctl_group"]);
        if name.trim().is_empty() {
            return Err(self.err(k, "empty group name"));
        }
        let group = match nix::unistd::Group::from_name(&name) {
            Ok(Some(g)) => g,
            Ok(None) => return Err(self.err(k, format!("unknown group `{name}`"))),
            Err(e) => return Err(self.err(k, format!("cannot look up group `{name}`: {e}"))),
        };
        let mut members: Vec<u32> = group
            .mem
            .iter()
            .filter_map(|m| nix::unistd::User::from_name(m).ok().flatten())
            .map(|u| u.uid.as_raw())
            .collect();
        members.sort_unstable();
        members.dedup();
        Ok(CtlGroup { name, gid: group.gid.as_raw(), members })
    }

    fn log_levels(&self, map: &BTreeMap<String, toml::Value>) -> Result<LogLevels> {
        let mut levels = LogLevels::default();
        for (name, value) in map {
            let k = key(&["daemon", "log", name]);
            let level = match value {
                toml::Value::Integer(n) => crate::logging::level_from_number(*n),
                toml::Value::String(s) => crate::logging::level_from_name(s),
                _ => Err(
                    "expected a strongSwan level (-1..4) or a name (off, error, warn, info, debug, trace)"
                        .into(),
                ),
            }
            .map_err(|e| self.err(k.clone(), e))?;
            if name == "default" {
                levels.default = level;
            } else {
                let sub = Subsystem::from_name(name).ok_or_else(|| {
                    self.err(
                        k,
                        format!(
                            "unknown subsystem `{name}` (expected default, {})",
                            Subsystem::NAMES.join(", ")
                        ),
                    )
                })?;
                levels.set(sub, level);
            }
        }
        Ok(levels)
    }

    fn secrets(&self, raw: &BTreeMap<String, BTreeMap<String, String>>) -> Result<Vec<SharedSecret>> {
        let mut out = Vec::new();
        for (name, fields) in raw {
            if !name.starts_with("ike") {
                return Err(self.err(
                    key(&["secrets", name]),
                    "only ike* sections (pre-shared keys) are supported; name it e.g. ike-home",
                ));
            }
            let mut ids = Vec::new();
            let mut secret = None;
            for (field, value) in fields {
                let k = key(&["secrets", name, field]);
                if field == "secret" {
                    secret = Some(parse_secret(value).map_err(|e| self.err(k, e))?);
                } else if field.starts_with("id") {
                    ids.push(parse_identity(value).map_err(|e| self.err(k, e))?);
                } else {
                    return Err(
                        self.err(k, format!("unknown key `{field}` (expected secret, id or id<suffix>)"))
                    );
                }
            }
            let secret = secret.ok_or_else(|| self.err(key(&["secrets", name, "secret"]), "missing"))?;
            out.push(SharedSecret { name: name.clone(), ids, secret });
        }
        Ok(out)
    }

    fn connection(&self, name: &str, rc: &RawConnection) -> Result<Connection> {
        let k = |parts: &[&str]| {
            let mut v = vec!["connections", name];
            v.extend_from_slice(parts);
            key(&v)
        };
        check_name(name).map_err(|e| self.err(k(&[]), e))?;
        match rc.version {
            None | Some(0) | Some(1) => {}
            Some(2) => {
                return Err(self.err(
                    k(&["version"]),
                    "IKEv2 is not supported: this daemon speaks IKEv1 only (use version = 1)",
                ))
            }
            Some(v) => {
                return Err(self.err(k(&["version"]), format!("invalid IKE version {v} (use version = 1)")))
            }
        }
        let addrs = |field: &str, v: &Option<ListValue>| -> Result<Vec<AddressSpec>> {
            let items = v.as_ref().map(|l| l.0.clone()).unwrap_or_default();
            if items.is_empty() {
                return Ok(vec![AddressSpec::Any]);
            }
            items.iter().map(|i| parse_address(i).map_err(|e| self.err(k(&[field]), e))).collect()
        };
        let local_addrs = addrs("local_addrs", &rc.local_addrs)?;
        let remote_addrs = addrs("remote_addrs", &rc.remote_addrs)?;
        let port = |field: &str, v: Option<u16>| -> Result<u16> {
            match v {
                Some(0) => Err(self.err(k(&[field]), "port 0 is not allowed")),
                Some(p) => Ok(p),
                None => Ok(IKE_PORT),
            }
        };
        let proposal_texts = match &rc.proposals {
            Some(ListValue(v)) if !v.is_empty() => v.clone(),
            Some(_) => return Err(self.err(k(&["proposals"]), "empty proposal list")),
            None => vec!["default".to_owned()],
        };
        let mut proposals = Vec::new();
        for p in &proposal_texts {
            proposals.push(parse_ike_proposal(p).map_err(|e| self.err(k(&["proposals"]), e))?);
        }
        let rekey_time = rc.rekey_time.map_or(IKE_REKEY_TIME, |t| t.0);
        let reauth_time = rc.reauth_time.map_or(Duration::ZERO, |t| t.0);
        // swanctl.conf: over_time defaults to 10% of rekey_time/reauth_time.
        let over_time = rc.over_time.map_or_else(|| rekey_time.max(reauth_time) / 10, |t| t.0);
        let rand_time = rc.rand_time.map_or(over_time, |t| t.0);
        // The earlier of the two timers that are on.
        let base =
            [rekey_time, reauth_time].into_iter().filter(|d| !d.is_zero()).min().unwrap_or(Duration::ZERO);
        if !base.is_zero() && rand_time > base {
            return Err(self.err(
                k(&["rand_time"]),
                format!(
                    "rand_time ({}) must not exceed rekey_time/reauth_time ({})",
                    value::format_duration(rand_time),
                    value::format_duration(base)
                ),
            ));
        }
        let dpd_timeout = match rc.dpd_timeout.map(|t| t.0) {
            None => IKEV1_DPD_TIMEOUT,
            Some(d) if d.is_zero() => IKEV1_DPD_TIMEOUT,
            Some(d) => d,
        };
        let local = self.endpoint(&k(&["local"]), rc.local.as_ref(), true)?;
        let remote = self.endpoint(&k(&["remote"]), rc.remote.as_ref(), false)?;
        if local.auth != remote.auth {
            return Err(self.err(
                k(&["remote", "auth"]),
                format!(
                    "IKEv1 authenticates both sides with one method: local.auth is {}, so remote.auth must be too",
                    auth_name(local.auth)
                ),
            ));
        }
        if remote.auth == AuthMethod::Pubkey && remote.id == ConfigId::Any {
            return Err(self.err(
                k(&["remote", "id"]),
                "required with auth = \"pubkey\": the identity the peer's certificate must hold \
                 (e.g. \"C=CH, O=example, CN=gw-b\" or \"@gw-b.example\")",
            ));
        }
        let send_cert = match rc.send_cert.as_deref().map(str::trim) {
            None | Some("ifasked") => SendCert::IfAsked,
            Some("always") => SendCert::Always,
            Some("never") => SendCert::Never,
            Some(other) => {
                return Err(self.err(
                    k(&["send_cert"]),
                    format!("invalid send_cert `{other}` (ifasked, always or never)"),
                ))
            }
        };
        let mut children = Vec::new();
        for (cname, rch) in &rc.children {
            children.push(self.child(name, cname, rch)?);
        }
        let conn = Connection {
            name: name.to_owned(),
            local_addrs,
            remote_addrs,
            local_port: port("local_port", rc.local_port)?,
            remote_port: port("remote_port", rc.remote_port)?,
            proposals,
            aggressive: rc.aggressive.unwrap_or(false),
            encap: rc.encap.unwrap_or(false),
            prefer_configured_proposals: rc.prefer_configured_proposals.is_some_and(|v| v.0),
            dpd_delay: rc.dpd_delay.map_or(Duration::ZERO, |t| t.0),
            dpd_timeout,
            rekey_time,
            reauth_time,
            over_time,
            rand_time,
            keyingtries: rc.keyingtries.unwrap_or(1),
            send_cert,
            send_certreq: rc.send_certreq.unwrap_or(true),
            local,
            remote,
            children,
        };
        if conn.initiate_address().is_none() {
            if let Some(ch) = conn.children.iter().find(|c| c.start_action != StartAction::None) {
                return Err(self.err(
                    k(&["children", &ch.name, "start_action"]),
                    "start_action needs a single remote address to initiate to, but remote_addrs has none",
                ));
            }
        }
        Ok(conn)
    }

    fn endpoint(&self, k: &str, raw: Option<&RawEnd>, local: bool) -> Result<Endpoint> {
        let empty = RawEnd::default();
        let raw = raw.unwrap_or(&empty);
        let auth = match raw.auth.as_deref().map(str::trim) {
            Some("psk") => AuthMethod::Psk,
            Some("pubkey") => AuthMethod::Pubkey,
            None => {
                return Err(self.err(format!("{k}.auth"), "not set: use auth = \"psk\" or auth = \"pubkey\""))
            }
            Some(other) => {
                return Err(self.err(
                    format!("{k}.auth"),
                    format!("authentication method `{other}` is not supported (psk or pubkey)"),
                ))
            }
        };
        let id = match &raw.id {
            None => ConfigId::Any,
            Some(s) => parse_identity(s).map_err(|e| self.err(format!("{k}.id"), e))?,
        };
        let files = |field: &str, v: &Option<ListValue>, sub: &str| -> Result<Vec<PathBuf>> {
            let items = v.as_ref().map(|l| l.0.clone()).unwrap_or_default();
            if !items.is_empty() && auth != AuthMethod::Pubkey {
                return Err(self.err(format!("{k}.{field}"), "only used with auth = \"pubkey\""));
            }
            items
                .iter()
                .map(|i| {
                    if i.trim().is_empty() {
                        Err(self.err(format!("{k}.{field}"), "empty file name"))
                    } else {
                        Ok(credentials::resolve(&self.swanctl_dir.join(sub), i.trim()))
                    }
                })
                .collect()
        };
        let (certs, cacerts) = if local {
            if raw.cacerts.is_some() {
                return Err(self.err(
                    format!("{k}.cacerts"),
                    "belongs to remote: the CAs trusted for the peer (remote.cacerts)",
                ));
            }
            let certs = files("certs", &raw.certs, "x509")?;
            if auth == AuthMethod::Pubkey && certs.is_empty() {
                return Err(self.err(
                    format!("{k}.certs"),
                    "required with auth = \"pubkey\": our certificate, e.g. certs = [\"gw.pem\"] in x509/",
                ));
            }
            (certs, Vec::new())
        } else {
            if raw.certs.is_some() {
                return Err(self.err(
                    format!("{k}.certs"),
                    "not supported for the remote side: put peer certificates in x509/ of daemon.swanctl_dir",
                ));
            }
            (Vec::new(), files("cacerts", &raw.cacerts, "x509ca")?)
        };
        Ok(Endpoint { auth, id, certs, cacerts })
    }

    fn child(&self, conn: &str, name: &str, rc: &RawChild) -> Result<Child> {
        let k = |field: &str| {
            if field.is_empty() {
                key(&["connections", conn, "children", name])
            } else {
                key(&["connections", conn, "children", name, field])
            }
        };
        check_name(name).map_err(|e| self.err(k(""), e))?;
        let ts = |field: &str, v: &Option<ListValue>| -> Result<Vec<TrafficSelectorSpec>> {
            let items = v.as_ref().map(|l| l.0.clone()).unwrap_or_default();
            if items.is_empty() {
                return Ok(vec![TrafficSelectorSpec {
                    address: TsAddressSpec::Dynamic,
                    protocol: 0,
                    port: 0,
                }]);
            }
            items.iter().map(|i| parse_traffic_selector(i).map_err(|e| self.err(k(field), e))).collect()
        };
        let local_ts = ts("local_ts", &rc.local_ts)?;
        let remote_ts = ts("remote_ts", &rc.remote_ts)?;
        let texts: Vec<String> = match &rc.esp_proposals {
            Some(ListValue(v)) if !v.is_empty() => v.iter().flat_map(|s| split_list(s)).collect(),
            Some(_) => return Err(self.err(k("esp_proposals"), "empty proposal list")),
            None => vec!["default".to_owned()],
        };
        let mut esp_proposals = Vec::new();
        for t in &texts {
            if t == "default" {
                for d in DEFAULT_ESP_PROPOSALS {
                    esp_proposals.push(parse_esp_proposal(d).map_err(|e| self.err(k("esp_proposals"), e))?);
                }
            } else {
                esp_proposals.push(parse_esp_proposal(t).map_err(|e| self.err(k("esp_proposals"), e))?);
            }
        }
        let transforms: Vec<EspTransform> =
            esp_proposals.iter().flat_map(|p| p.transforms.iter().copied()).collect();
        if transforms.iter().any(|t| t.encryption == EspCipher::Null) {
            return Err(self.err(
                k("esp_proposals"),
                "null encryption (ESP_NULL) is recognised but not supported by the IKE engine and dataplane yet",
            ));
        }
        let pfs_group = transforms.first().and_then(|t| t.dh_group);
        if let Some(t) = transforms.iter().find(|t| t.dh_group != pfs_group) {
            let name = |g: Option<ike::crypto::DhGroup>| g.map_or("none", proposal::dh_group_name);
            return Err(self.err(
                k("esp_proposals"),
                format!(
                    "IKEv1 Quick Mode carries one KE payload, so every ESP proposal must use the same PFS group \
                     (found {} and {})",
                    name(pfs_group),
                    name(t.dh_group)
                ),
            ));
        }
        let mode = match rc.mode.as_deref() {
            None | Some("tunnel") => ChildMode::Tunnel,
            Some("transport") => ChildMode::Transport,
            Some(m @ ("beet" | "pass" | "drop")) => {
                return Err(self.err(k("mode"), format!("mode `{m}` is not supported (tunnel or transport)")))
            }
            Some(m) => return Err(self.err(k("mode"), format!("invalid mode `{m}` (tunnel or transport)"))),
        };
        let start_action = match rc.start_action.as_deref() {
            None | Some("none") => StartAction::None,
            Some("trap") => StartAction::Trap,
            Some("start") => StartAction::Start,
            Some(a) => {
                return Err(
                    self.err(k("start_action"), format!("invalid start_action `{a}` (none, trap or start)"))
                )
            }
        };
        let dpd_action = match rc.dpd_action.as_deref() {
            None | Some("clear") => PeerGoneAction::Clear,
            Some("trap") => PeerGoneAction::Trap,
            Some("restart") => PeerGoneAction::Restart,
            Some(a) => {
                return Err(
                    self.err(k("dpd_action"), format!("invalid dpd_action `{a}` (clear, trap or restart)"))
                )
            }
        };
        let close_action = match rc.close_action.as_deref() {
            None | Some("none") => PeerGoneAction::Clear,
            Some("trap") => PeerGoneAction::Trap,
            Some("start") => PeerGoneAction::Restart,
            Some(a) => {
                return Err(
                    self.err(k("close_action"), format!("invalid close_action `{a}` (none, trap or start)"))
                )
            }
        };
        let rekey_time = rc.rekey_time.map_or(CHILD_REKEY_TIME, |t| t.0);
        let life_time = rc.life_time.map_or(rekey_time + rekey_time / 10, |t| t.0);
        if life_time.is_zero() {
            return Err(self.err(k("life_time"), "life_time must not be 0"));
        }
        if !rekey_time.is_zero() && life_time <= rekey_time {
            return Err(self.err(
                k("life_time"),
                format!(
                    "life_time ({}) must be greater than rekey_time ({})",
                    value::format_duration(life_time),
                    value::format_duration(rekey_time)
                ),
            ));
        }
        // strongSwan subtracts random() % rand_time, so rand_time == rekey_time
        // still rekeys after at least a second; the default is capped there.
        let rand_time = rc.rand_time.map_or(life_time.saturating_sub(rekey_time).min(rekey_time), |t| t.0);
        if !rekey_time.is_zero() && rand_time > rekey_time {
            return Err(self.err(
                k("rand_time"),
                format!(
                    "rand_time ({}) must not exceed rekey_time ({})",
                    value::format_duration(rand_time),
                    value::format_duration(rekey_time)
                ),
            ));
        }
        let (rekey_bytes, life_bytes, rand_bytes) = self.volume(
            &k,
            "bytes",
            rc.rekey_bytes.map(|c| c.0),
            rc.life_bytes.map(|c| c.0),
            rc.rand_bytes.map(|c| c.0),
        )?;
        let (rekey_packets, life_packets, rand_packets) = self.volume(
            &k,
            "packets",
            rc.rekey_packets.map(|c| c.0),
            rc.life_packets.map(|c| c.0),
            rc.rand_packets.map(|c| c.0),
        )?;
        Ok(Child {
            name: name.to_owned(),
            local_ts,
            remote_ts,
            esp_proposals,
            pfs_group,
            mode,
            start_action,
            dpd_action,
            close_action,
            rekey_time,
            life_time,
            rand_time,
            rekey_bytes,
            life_bytes,
            rand_bytes,
            rekey_packets,
            life_packets,
            rand_packets,
            replay_window: match rc.replay_window {
                None => REPLAY_WINDOW,
                Some(w) if w > MAX_REPLAY_WINDOW => {
                    return Err(self.err(
                        k("replay_window"),
                        format!("{w} is above {MAX_REPLAY_WINDOW}, the largest window the dataplane keeps"),
                    ))
                }
                Some(w) => w,
            },
        })
    }

    /// rekey/life/rand for bytes or packets (0 = no limit), with swanctl's
    /// defaults: life = rekey + 10%; rekey = life / 1.1 when only life is
    /// given (as current swanctl does: a hard limit alone still rekeys
    /// before it); rand = life - rekey, at most rekey.
    fn volume(
        &self,
        k: &dyn Fn(&str) -> String,
        unit: &str,
        rekey: Option<u64>,
        life: Option<u64>,
        rand: Option<u64>,
    ) -> Result<(u64, u64, u64)> {
        let rekey = match (rekey, life) {
            (Some(r), _) => r,
            (None, Some(l)) => u64::try_from(u128::from(l) * 10 / 11).unwrap_or(u64::MAX),
            (None, None) => 0,
        };
        let life = life.unwrap_or_else(|| rekey.saturating_add(rekey / 10));
        if rekey != 0 && life != 0 && life <= rekey {
            return Err(self.err(
                k(&format!("life_{unit}")),
                format!(
                    "life_{unit} ({life}) must be greater than rekey_{unit} ({rekey}): the soft limit starts the \
                     rekey, which must be done before the hard limit ends the SA"
                ),
            ));
        }
        let rand = rand.unwrap_or_else(|| if rekey == 0 { 0 } else { life.saturating_sub(rekey).min(rekey) });
        if rekey != 0 && rand > rekey {
            return Err(self.err(
                k(&format!("rand_{unit}")),
                format!("rand_{unit} ({rand}) must not exceed rekey_{unit} ({rekey})"),
            ));
        }
        Ok((rekey, life, rand))
    }

    fn unique_children(&self, conns: &[Connection]) -> Result<()> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for c in conns {
            for ch in &c.children {
                if let Some(other) = seen.insert(&ch.name, &c.name) {
                    return Err(self.err(
                        key(&["connections", &c.name, "children", &ch.name]),
                        format!(
                            "child name `{}` is also used in connection `{other}`; ikectl addresses children by name, \
                             so names must be unique",
                            ch.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The configuration file's name of a method.
pub(crate) fn auth_name(a: AuthMethod) -> &'static str {
    match a {
        AuthMethod::Psk => "psk",
        AuthMethod::Pubkey => "pubkey",
    }
}

/// Names appear in key paths, logs and ikectl: keep them printable.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("names must have 1 to 64 characters".to_owned());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(format!("name `{name}` may only contain letters, digits, `-`, `_` and `.`"));
    }
    Ok(())
}

/// swanctl secrets: `0x` + hex, or the string itself. (`0s` base64 is not
/// supported: write hex instead.)
fn parse_secret(v: &str) -> std::result::Result<PresharedKey, String> {
    if v.is_empty() {
        return Err("empty secret".to_owned());
    }
    if let Some(h) = v.strip_prefix("0x") {
        let bytes: Option<Vec<u8>> = if h.len().is_multiple_of(2) && !h.is_empty() {
            (0..h.len())
                .step_by(2)
                .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                .collect()
        } else {
            None
        };
        return bytes
            .map(|b| PresharedKey(ike::crypto::Secret::new(b)))
            .ok_or_else(|| "invalid hex after 0x".to_owned());
    }
    if v.starts_with("0s") {
        return Err("base64 secrets (0s...) are not supported; write the key as 0x<hex>".to_owned());
    }
    Ok(PresharedKey(ike::crypto::Secret::new(v.as_bytes().to_vec())))
}
