//! The configuration file: one TOML file whose tables and keys are
//! swanctl.conf's, so a strongSwan configuration translates line by line
//! (`docs/configuration.md` has the table).
//!
//! [`load`] reads, parses and validates; what it returns is complete: every
//! default applied, every proposal expanded, every PSK connection with a
//! secret, every certificate connection with its certificate, key and
//! trusted CAs read from `daemon.swanctl_dir` ([`credentials`]). Errors name the file, the key path and the reason
//! ([`ConfigError`]).

pub mod credentials;
pub mod engine;
mod error;
pub mod identity;
pub mod proposal;
mod raw;
mod render;
pub mod selector;
mod validate;
pub mod value;

#[cfg(test)]
mod tests;

pub use credentials::Credentials;
pub use error::ConfigError;
pub use identity::ConfigId;
pub use proposal::{EspCipher, EspTransform, Proposal};
pub use render::render;
pub use selector::{AddressSpec, TrafficSelectorSpec, TsAddressSpec};

use crate::logging::LogLevels;
use ike::engine::{ChildMode, IkeProposal, SendCert};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/iked/iked.sock";
/// Default SA database (the `sadb` crate's default, in its private 0700 directory).
pub const DEFAULT_SADB: &str = sadb::DEFAULT_PATH;
/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/iked/iked.toml";
/// Largest configuration file read (hostile or mistaken input).
pub const MAX_FILE_LEN: u64 = 4 << 20;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `[daemon]` table.
    pub daemon: DaemonSettings,
    /// `connections.<name>`, sorted by name.
    pub connections: Vec<Connection>,
    /// `secrets.ike*`, sorted by section name.
    pub secrets: Vec<SharedSecret>,
    /// Certificates, keys and CRLs of `daemon.swanctl_dir` (empty when no
    /// connection uses `auth = "pubkey"`).
    pub credentials: Credentials,
}

/// Process-wide settings (`[daemon]`; strongSwan keeps these in
/// strongswan.conf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// The SA database file, created if absent.
    pub sadb: PathBuf,
    /// The ikectl Unix socket.
    pub control_socket: PathBuf,
    /// Besides root and iked's own uid, the members of this group may use the
    /// control socket (`None`: nobody else).
    pub ctl_group: Option<CtlGroup>,
    /// Addresses the IKE sockets bind to (charon.interfaces_use).
    pub listen: Vec<IpAddr>,
    /// IKE port (charon.port), 500.
    pub port: u16,
    /// NAT-T port (charon.port_nat_t), 4500.
    pub port_nat_t: u16,
    /// Directory for Wireshark's `ikev1_decryption_table` and `esp_sa`
    /// (strongSwan's save-keys plugin); `None` = secrets are never written.
    pub keylog: Option<PathBuf>,
    /// SIGTERM sends Deletes and removes this daemon's SAs (true) or leaves
    /// them installed in the dataplane (false).
    pub delete_sas_on_exit: bool,
    /// Half-open (not yet authenticated) responder IKE SAs: most in total
    /// (charon.init_limit_half_open), most per source address
    /// (charon.block_threshold), and the part of the total left to connections
    /// that name the peer's address (`%any` connections share the rest).
    pub half_open: HalfOpenLimits,
    /// Where the OpenMetrics endpoint listens (`None`: off).
    pub metrics: Option<std::net::SocketAddr>,
    /// The endpoint exports per-SA series (4 per child SA pair).
    pub metrics_per_sa: bool,
    /// Per-subsystem log levels (charondebug).
    pub log: LogLevels,
    /// The directory of certificates, keys and CRLs, laid out as swanctl's
    /// (`x509/`, `x509ca/`, `x509crl/`, `private/`, `rsa/`, `ecdsa/`); read
    /// only when a connection uses `auth = "pubkey"`.
    pub swanctl_dir: PathBuf,
}

/// `daemon.init_limit_half_open`, `daemon.block_threshold`, `daemon.half_open_reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfOpenLimits {
    /// Most in total.
    pub total: usize,
    /// Most per source address.
    pub per_source: usize,
    /// Of `total`, the part only connections naming the peer's address may use.
    pub reserved: usize,
}

impl Default for HalfOpenLimits {
    /// The engine's defaults.
    fn default() -> Self {
        let e = ike::engine::EngineConfig::default();
        Self { total: e.max_half_open, per_source: e.max_half_open_per_peer, reserved: e.half_open_reserved }
    }
}

/// `daemon.ctl_group`, resolved when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlGroup {
    /// The group's name as configured.
    pub name: String,
    /// Its gid: a caller whose (effective) gid this is may connect.
    pub gid: u32,
    /// The uids of the users the group database lists as its members.
    pub members: Vec<u32>,
}

/// Phase-1 authentication of one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Pre-shared key (`auth = psk`).
    Psk,
    /// X.509 certificates and signatures (`auth = pubkey`: RSA, ECDSA).
    Pubkey,
}

/// `local` / `remote` of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `auth`.
    pub auth: AuthMethod,
    /// `id`; [`ConfigId::Any`] when unset.
    pub id: ConfigId,
    /// `certs` (local side): our certificate first, resolved under
    /// `<swanctl_dir>/x509/`.
    pub certs: Vec<PathBuf>,
    /// `cacerts` (remote side): the CAs trusted for the peer, resolved
    /// under `<swanctl_dir>/x509ca/` (empty: every CA of `x509ca/`).
    pub cacerts: Vec<PathBuf>,
}

/// `connections.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The section name.
    pub name: String,
    /// `local_addrs` (default `%any`).
    pub local_addrs: Vec<AddressSpec>,
    /// `remote_addrs` (default `%any`: responder only).
    pub remote_addrs: Vec<AddressSpec>,
    /// `local_port` (500).
    pub local_port: u16,
    /// `remote_port` (500).
    pub remote_port: u16,
    /// `proposals`, each expanded.
    pub proposals: Vec<Proposal<IkeProposal>>,
    /// `aggressive`: initiate with Aggressive Mode and accept it.
    pub aggressive: bool,
    /// `encap`: force UDP encapsulation (NAT-T) even without a NAT.
    pub encap: bool,
    /// `prefer_configured_proposals` (no): as responder, choose by our
    /// order of `proposals` / `esp_proposals` instead of the initiator's.
    pub prefer_configured_proposals: bool,
    /// `dpd_delay` (0 = no DPD).
    pub dpd_delay: Duration,
    /// `dpd_timeout` (IKEv1; default 150s).
    pub dpd_timeout: Duration,
    /// `rekey_time` (4h): IKEv1 has no IKE rekey, the ISAKMP SA is
    /// re-established.
    pub rekey_time: Duration,
    /// `reauth_time` (0 = off).
    pub reauth_time: Duration,
    /// `over_time`: hard expiry after rekey/reauth time.
    pub over_time: Duration,
    /// `rand_time`: random jitter subtracted from rekey/reauth time.
    pub rand_time: Duration,
    /// `keyingtries` (0 = forever).
    pub keyingtries: u32,
    /// `send_cert` (ifasked): when our certificate goes with our signature.
    pub send_cert: SendCert,
    /// `send_certreq` (yes): ask for the peer's certificate, naming our CAs.
    pub send_certreq: bool,
    /// `local`.
    pub local: Endpoint,
    /// `remote`.
    pub remote: Endpoint,
    /// `children.<name>`, sorted by name.
    pub children: Vec<Child>,
}

impl Connection {
    /// All IKE transforms in order of preference.
    pub fn ike_transforms(&self) -> Vec<IkeProposal> {
        self.proposals.iter().flat_map(|p| p.transforms.iter().copied()).collect()
    }

    /// The remote address to initiate to, if `remote_addrs` names one.
    pub fn initiate_address(&self) -> Option<IpAddr> {
        self.remote_addrs.iter().find_map(AddressSpec::host)
    }

    /// The IKE SA's hard lifetime: rekey (or reauth) time plus over_time.
    pub fn ike_lifetime(&self) -> Duration {
        let base = match (self.rekey_time.is_zero(), self.reauth_time.is_zero()) {
            (false, false) => self.rekey_time.min(self.reauth_time),
            (false, true) => self.rekey_time,
            (true, _) => self.reauth_time,
        };
        base + self.over_time
    }
}

/// `start_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartAction {
    /// Wait for the peer or an ikectl initiate.
    None,
    /// Install the policy without SA; initiate on the first packet (acquire).
    Trap,
    /// Initiate when loaded.
    Start,
}

/// `dpd_action` and `close_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerGoneAction {
    /// Remove the SAs (`clear`; `none` for close_action).
    Clear,
    /// Install a trap policy so traffic re-initiates.
    Trap,
    /// Re-initiate at once (`restart` / `start`).
    Restart,
}

/// `connections.<conn>.children.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The section name.
    pub name: String,
    /// `local_ts` (default `dynamic`).
    pub local_ts: Vec<TrafficSelectorSpec>,
    /// `remote_ts` (default `dynamic`).
    pub remote_ts: Vec<TrafficSelectorSpec>,
    /// `esp_proposals`, each expanded.
    pub esp_proposals: Vec<Proposal<EspTransform>>,
    /// The Quick Mode PFS group: IKEv1 sends one KE payload, so all ESP
    /// proposals carry the same group or none.
    pub pfs_group: Option<ike::crypto::DhGroup>,
    /// `mode`.
    pub mode: ChildMode,
    /// `start_action`.
    pub start_action: StartAction,
    /// `dpd_action`.
    pub dpd_action: PeerGoneAction,
    /// `close_action`.
    pub close_action: PeerGoneAction,
    /// `rekey_time` (1h).
    pub rekey_time: Duration,
    /// `life_time` (rekey_time + 10%).
    pub life_time: Duration,
    /// `rand_time` (life_time - rekey_time).
    pub rand_time: Duration,
    /// `rekey_bytes` (0 = off).
    pub rekey_bytes: u64,
    /// `life_bytes` (rekey_bytes + 10%).
    pub life_bytes: u64,
    /// `rand_bytes` (life_bytes - rekey_bytes).
    pub rand_bytes: u64,
    /// `rekey_packets` (0 = off).
    pub rekey_packets: u64,
    /// `life_packets` (rekey_packets + 10%).
    pub life_packets: u64,
    /// `rand_packets` (life_packets - rekey_packets).
    pub rand_packets: u64,
    /// `replay_window` (32).
    pub replay_window: u32,
}

impl Child {
    /// All ESP transforms in order of preference.
    pub fn esp_transforms(&self) -> Vec<EspTransform> {
        self.esp_proposals.iter().flat_map(|p| p.transforms.iter().copied()).collect()
    }
}

/// A pre-shared key, wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey(pub ike::crypto::Secret);

impl std::fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresharedKey(..)")
    }
}

/// `secrets.ike<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSecret {
    /// The section name (`ike-home`).
    pub name: String,
    /// `id`, `id-1`, ... (empty = matches every connection).
    pub ids: Vec<ConfigId>,
    /// `secret`.
    pub secret: PresharedKey,
}

impl Config {
    /// What is valid but weakens the tunnels, said at start and by
    /// `--check-config`, each naming its key.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for c in &self.connections {
            for ch in c.children.iter().filter(|ch| ch.replay_window == 0) {
                w.push(format!(
                    "connections.{}.children.{}.replay_window = 0: anti-replay protection is off for its SAs",
                    c.name, ch.name
                ));
            }
        }
        w.extend(
            self.credentials
                .warnings(std::time::SystemTime::now())
                .into_iter()
                .map(|m| format!("daemon.swanctl_dir: {m}")),
        );
        w
    }

    /// Our identity in `conn` as `list-sas` shows it: `local.id`, or with
    /// certificates and no `local.id` the certificate's subject.
    pub fn local_id_text(&self, conn: &Connection) -> String {
        match (&conn.local.id, self.credentials.auth_for(&conn.name)) {
            (ConfigId::Any, Some(c)) => c
                .auth
                .certificates
                .first()
                .map_or_else(|| conn.local.id.to_string(), credentials::subject_string),
            (id, _) => id.to_string(),
        }
    }

    /// The connection called `name`.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// The connection owning the child called `name` (child names are unique).
    pub fn child(&self, name: &str) -> Option<(&Connection, &Child)> {
        self.connections.iter().find_map(|c| c.children.iter().find(|ch| ch.name == name).map(|ch| (c, ch)))
    }

    /// The PSK for a connection, chosen as strongSwan does: the secret whose
    /// ids match both our and the peer's identity wins over one matching
    /// one side, which wins over one without ids (or `%any`). When an id is
    /// unset, the configured addresses stand in for it.
    pub fn psk_for(&self, conn: &Connection) -> Option<&PresharedKey> {
        validate::best_secret(&self.secrets, conn).map(|s| &s.secret)
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    let mut text = String::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(ConfigError::file(path, format!("file is larger than {MAX_FILE_LEN} bytes")));
    }
    parse(&text, path)
}

/// Parses and validates configuration text; `path` is used in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    validate::parse(text, path)
}
