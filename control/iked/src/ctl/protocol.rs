//! The ikectl protocol, version 1: newline-delimited JSON over a Unix
//! stream socket. One request per line, one response per line, any number
//! of requests per connection. `log` answers with a stream of `log` lines,
//! `monitor` with a stream of `event` lines, until the client closes the
//! connection.
//!
//! ```text
//! → {"version":1,"command":"list-sas"}
//! ← {"version":1,"type":"sas","ike_sas":[...]}
//! → {"version":1,"command":"initiate","child":"net"}
//! ← {"version":1,"type":"done","message":"..."}
//! → {"version":7,"command":"stats"}
//! ← {"version":1,"type":"error","code":"unsupported-version","message":"..."}
//! ```
//!
//! Field names inside SA and connection descriptions follow strongSwan's
//! vici `list-sas` / `list-conns` (`spi-in`, `bytes-out`, `rekey-time`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Longest request line accepted, newline included.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// What the client asks for (`command` is the tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// IKE SAs and their child SAs; optionally only those of one connection.
    ListSas {
        /// Only this connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ike: Option<String>,
    },
    /// Loaded connections.
    ListConns {},
    /// Start a connection.
    Initiate(Target),
    /// Tear a connection down (Delete sent).
    Terminate(Target),
    /// Rekey now: a child's pairs (Quick Mode, make-before-break), or a
    /// connection's ISAKMP SAs (re-established, their children moved).
    Rekey(Target),
    /// The policies iked keeps in the dataplane, by child.
    ListPols {},
    /// Reload the configuration file (as SIGHUP), and with it the
    /// certificates, keys and CRLs of `daemon.swanctl_dir`; unchanged
    /// connections are left alone (their SAs stay, new exchanges use the new
    /// material).
    LoadAll {},
    /// Loaded certificates (ours, peers', CAs') and CRLs.
    ListCerts {},
    /// Counters.
    Stats {},
    /// Follow the log.
    Log {},
    /// Follow the SA lifecycle's events as they happen (swanctl `--log`'s
    /// use for alerting, structured).
    Monitor {},
}

/// `--child NAME` or `--ike NAME`: exactly one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A child SA configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
    /// A connection (IKE SA configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike: Option<String>,
}

/// Target resolved: one of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetName {
    /// `--child`.
    Child(String),
    /// `--ike`.
    Ike(String),
}

impl Target {
    /// Exactly one of `child`/`ike`.
    pub fn resolve(&self) -> Result<TargetName, CtlError> {
        match (&self.child, &self.ike) {
            (Some(c), None) => Ok(TargetName::Child(c.clone())),
            (None, Some(i)) => Ok(TargetName::Ike(i.clone())),
            _ => Err(CtlError::new(ErrorCode::BadRequest, "give exactly one of `child` and `ike`")),
        }
    }
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version; must be [`VERSION`].
    pub version: u32,
    /// The command and its arguments.
    #[serde(flatten)]
    pub command: Command,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown command or fields.
    BadRequest,
    /// Line longer than [`MAX_REQUEST_LEN`].
    TooLong,
    /// `version` other than [`VERSION`].
    UnsupportedVersion,
    /// No such connection or child.
    NotFound,
    /// The configuration file did not validate (load-all).
    ConfigInvalid,
    /// The IKE engine is not attached or refused.
    Unavailable,
    /// The command failed in the daemon.
    Failed,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlError {
    /// Machine-readable.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl CtlError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A response line: the version plus one reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// [`VERSION`].
    pub version: u32,
    /// The reply (`type` is the tag).
    #[serde(flatten)]
    pub reply: Reply,
}

impl Response {
    /// A version-1 response.
    pub fn new(reply: Reply) -> Self {
        Self { version: VERSION, reply }
    }
}

/// Replies, one per command, plus `error` and streamed `log` lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reply {
    /// To `list-sas`.
    Sas {
        /// IKE SAs.
        ike_sas: Vec<IkeSaInfo>,
    },
    /// To `list-conns`.
    Conns {
        /// Connections.
        connections: Vec<ConnectionInfo>,
    },
    /// To `list-pols`.
    Pols {
        /// One per reqid (a child's selector pair).
        policies: Vec<PolicyInfo>,
    },
    /// To `initiate`/`terminate`/`rekey`.
    Done {
        /// What happened.
        message: String,
    },
    /// To `load-all`.
    Loaded(LoadSummary),
    /// To `list-certs`.
    Certs {
        /// Certificates: `x509/` (and `local.certs`), then `x509ca/`.
        certificates: Vec<CertInfo>,
        /// CRLs of `x509crl/`.
        crls: Vec<CrlInfo>,
    },
    /// To `stats`.
    Stats(Stats),
    /// One line of a `log` stream.
    Log(LogRecord),
    /// Log lines were dropped because the client read too slowly.
    LogLagged {
        /// How many.
        missed: u64,
    },
    /// One event of a `monitor` stream.
    Event(EventRecord),
    /// Events were dropped because the client read too slowly.
    EventsLagged {
        /// How many.
        missed: u64,
    },
    /// Any failure.
    Error(CtlError),
}

/// One IKE SA (vici `list-sas` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IkeSaInfo {
    /// Connection name.
    pub name: String,
    /// Unique id of this SA in the daemon; 0 for the child SAs of a
    /// connection and peer whose ISAKMP SA is gone (state `DELETED`).
    pub uniqueid: u64,
    /// CONNECTING, ESTABLISHED, REKEYED, DELETING; DELETED: no ISAKMP SA,
    /// only the child SAs that outlived it (they keep forwarding until a new
    /// ISAKMP SA adopts them or they expire).
    pub state: String,
    /// Our address.
    pub local_host: String,
    /// Our port.
    pub local_port: u16,
    /// Our identity.
    pub local_id: String,
    /// Peer address.
    pub remote_host: String,
    /// Peer port.
    pub remote_port: u16,
    /// Peer identity.
    pub remote_id: String,
    /// Whether we initiated.
    pub initiator: bool,
    /// Initiator cookie, 16 hex digits.
    pub initiator_spi: String,
    /// Responder cookie, 16 hex digits.
    pub responder_spi: String,
    /// NAT detected on our side.
    pub nat_local: bool,
    /// NAT detected on the peer's side.
    pub nat_remote: bool,
    /// Encryption (`AES_CBC`).
    pub encr_alg: String,
    /// Key size in bits.
    pub encr_keysize: u16,
    /// Integrity (`HMAC_SHA2_256_128`).
    pub integ_alg: String,
    /// PRF (`PRF_HMAC_SHA2_256`).
    pub prf_alg: String,
    /// DH group (`MODP_2048`).
    pub dh_group: String,
    /// Seconds since established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established: Option<u64>,
    /// Seconds until re-establishment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_time: Option<u64>,
    /// Child SAs.
    pub child_sas: Vec<ChildSaInfo>,
}

/// One child SA pair (vici `list-sas` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChildSaInfo {
    /// Child name.
    pub name: String,
    /// Unique id.
    pub uniqueid: u64,
    /// INSTALLED, REKEYING, DELETING.
    pub state: String,
    /// TUNNEL or TRANSPORT.
    pub mode: String,
    /// ESP.
    pub protocol: String,
    /// UDP-encapsulated.
    pub encap: bool,
    /// Inbound SPI, 8 hex digits.
    pub spi_in: String,
    /// Outbound SPI, 8 hex digits.
    pub spi_out: String,
    /// Encryption (`AES_GCM_16`).
    pub encr_alg: String,
    /// Key size in bits.
    pub encr_keysize: u16,
    /// Integrity, absent for AEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integ_alg: Option<String>,
    /// PFS group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dh_group: Option<String>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Bytes received (dataplane counter).
    pub bytes_in: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Seconds since the last inbound packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_in: Option<u64>,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Seconds since the last outbound packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_out: Option<u64>,
    /// Seconds until rekey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_time: Option<u64>,
    /// Seconds until hard expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub life_time: Option<u64>,
    /// Seconds since installed.
    pub install_time: u64,
    /// Our selectors.
    pub local_ts: Vec<String>,
    /// The peer's selectors.
    pub remote_ts: Vec<String>,
}

/// One connection (vici `list-conns` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConnectionInfo {
    /// Name.
    pub name: String,
    /// Always IKEv1.
    pub version: String,
    /// `local_addrs`.
    pub local_addrs: Vec<String>,
    /// `remote_addrs`.
    pub remote_addrs: Vec<String>,
    /// `local_port`.
    pub local_port: u16,
    /// `remote_port`.
    pub remote_port: u16,
    /// IKE proposals as written.
    pub proposals: Vec<String>,
    /// Aggressive Mode.
    pub aggressive: bool,
    /// Forced UDP encapsulation.
    pub encap: bool,
    /// Seconds.
    pub dpd_delay: u64,
    /// Seconds.
    pub dpd_timeout: u64,
    /// Seconds.
    pub rekey_time: u64,
    /// Seconds.
    pub reauth_time: u64,
    /// Attempts, 0 = forever.
    pub keyingtries: u32,
    /// `local.auth`.
    pub local_auth: String,
    /// `local.id`.
    pub local_id: String,
    /// `remote.auth`.
    pub remote_auth: String,
    /// `remote.id`.
    pub remote_id: String,
    /// Children.
    pub children: Vec<ChildConfigInfo>,
}

/// One child configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChildConfigInfo {
    /// Name.
    pub name: String,
    /// TUNNEL or TRANSPORT.
    pub mode: String,
    /// none, trap, start.
    pub start_action: String,
    /// clear, trap, restart.
    pub dpd_action: String,
    /// none, trap, start.
    pub close_action: String,
    /// Seconds.
    pub rekey_time: u64,
    /// Seconds.
    pub life_time: u64,
    /// ESP proposals as written.
    pub esp_proposals: Vec<String>,
    /// `local_ts`.
    pub local_ts: Vec<String>,
    /// `remote_ts`.
    pub remote_ts: Vec<String>,
}

/// What `load-all` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSummary {
    /// New connections.
    pub added: Vec<String>,
    /// Connections whose settings changed (their SAs are re-negotiated).
    pub changed: Vec<String>,
    /// Connections gone (their SAs are deleted).
    pub removed: Vec<String>,
    /// Untouched.
    pub unchanged: Vec<String>,
    /// Certificates loaded from `x509/` and `local.certs`.
    #[serde(default)]
    pub certs: u64,
    /// CA certificates loaded from `x509ca/` and `remote.cacerts`.
    #[serde(default)]
    pub cacerts: u64,
    /// CRLs loaded from `x509crl/`.
    #[serde(default)]
    pub crls: u64,
    /// Private keys loaded from `private/`, `rsa/`, `ecdsa/`.
    #[serde(default)]
    pub keys: u64,
}

/// One loaded certificate (`list-certs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CertInfo {
    /// The file it was read from.
    pub path: String,
    /// `x509` (ours or a peer's) or `x509ca` (a CA, trusted).
    pub source: String,
    /// Subject, as strongSwan writes it (`C=CH, O=strongSwan, CN=gw`).
    pub subject: String,
    /// Issuer, the same way.
    pub issuer: String,
    /// subjectAltNames (`DNS:gw.example`, `IP:192.0.2.1`, `email:a@b`).
    pub sans: Vec<String>,
    /// Serial number, hex bytes separated by `:`.
    pub serial: String,
    /// Start of validity (RFC 3339, UTC).
    pub not_before: String,
    /// End of validity (RFC 3339, UTC).
    pub not_after: String,
    /// Key type and size: `RSA-2048`, `ECDSA P-256`, `ECDSA P-384`.
    pub key: String,
    /// basicConstraints CA:TRUE.
    pub ca: bool,
    /// Whether we hold its private key.
    pub has_private_key: bool,
    /// The connections that authenticate with it (`local.certs`).
    pub connections: Vec<String>,
}

/// One loaded CRL (`list-certs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CrlInfo {
    /// The file it was read from.
    pub path: String,
    /// The CA that issued it.
    pub issuer: String,
    /// thisUpdate (RFC 3339, UTC).
    pub this_update: String,
    /// nextUpdate, if given.
    pub next_update: Option<String>,
    /// How many certificates it revokes.
    pub revoked: u64,
}

/// Counters for `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Seconds since start.
    pub uptime: u64,
    /// Loaded connections.
    pub connections: u64,
    /// IKE SAs in any state.
    pub ike_sas: u64,
    /// IKE SAs not yet authenticated.
    pub ike_sas_half_open: u64,
    /// Installed child SA pairs.
    pub child_sas: u64,
    /// Control requests served.
    pub ctl_requests: u64,
    /// Control requests answered with an error.
    pub ctl_errors: u64,
    /// Control-socket callers refused by their credentials (`SO_PEERCRED`).
    #[serde(default)]
    pub ctl_refused: u64,
    /// Dataplane counters, when the SA database is attached: drop reason →
    /// count, plus totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<DataplaneStats>,
    /// What became of received IKE datagrams: `received`, `processed`,
    /// `dropped-malformed`, `dropped-unknown-sa`, `dropped-no-config`,
    /// `dropped-half-open-limit`, `failed`, `auth-failed`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ike_datagrams: BTreeMap<String, u64>,
}

/// Dataplane counters read from the SA database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneStats {
    /// Packets received on all ports.
    pub rx_packets: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Drops by reason (VPP-style names: `REPLAY`, `INTEG_ERROR`, ...).
    pub drops: BTreeMap<String, u64>,
}

/// One log line for `ikectl log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// ERROR, WARN, INFO, DEBUG, TRACE.
    pub level: String,
    /// `ike`, `cfg`, `net`, `enc`, `knl`, `dmn` or another target.
    pub subsystem: String,
    /// Message and fields.
    pub message: String,
}

/// A child's policy pair in the dataplane (vici `list-pols`, plus the
/// dataplane's view).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyInfo {
    /// Child name.
    pub name: String,
    /// Connection name.
    pub ike: String,
    /// The reqid naming the pair (outbound policy `2 reqid`, inbound
    /// `2 reqid + 1`).
    pub reqid: u32,
    /// TUNNEL or TRANSPORT.
    pub mode: String,
    /// INSTALLED (the outbound policy sends on an SA), TRAP (no SA:
    /// traffic acquires one) or PENDING (an SA is being negotiated).
    pub state: String,
    /// Our selector.
    pub local_ts: Vec<String>,
    /// The peer's selector.
    pub remote_ts: Vec<String>,
    /// The outbound SA the policy sends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spi_out: Option<String>,
    /// Packets that matched the outbound policy.
    pub packets_out: u64,
    /// Packets that matched the inbound policy.
    pub packets_in: u64,
}

/// Milliseconds since the Unix epoch of `t` (the `time_ms` of log lines and
/// events).
pub fn time_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One event of `ikectl monitor`, stamped when the daemon read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What happened (`event` is the tag).
    #[serde(flatten)]
    pub event: MonitorEvent,
}

/// What happened to an SA. `ike` names the connection, `child` the child
/// configuration; `uniqueid`s are those of `list-sas` (an IKE SA's, a child
/// SA's); SPIs are hexadecimal as in `list-sas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case", rename_all_fields = "kebab-case")]
pub enum MonitorEvent {
    /// Phase 1 completed.
    IkeUp {
        /// Connection.
        ike: String,
        /// The IKE SA.
        uniqueid: u64,
        /// Our address and port.
        local: String,
        /// The peer's address and port.
        remote: String,
    },
    /// A new IKE SA replaced an older one of the same peer (a
    /// re-establishment by either end); `ike-up` of the new one came first.
    IkeRekeyed {
        /// Connection.
        ike: String,
        /// The replaced IKE SA.
        old: u64,
        /// The one replacing it.
        new: u64,
    },
    /// An IKE SA is gone.
    IkeDown {
        /// Connection.
        ike: String,
        /// The IKE SA.
        uniqueid: u64,
        /// `deleted`, `dead` (DPD) or `failed` (phase 1 did not complete).
        reason: String,
    },
    /// A child SA pair is installed (both directions).
    ChildUp {
        /// Connection.
        ike: String,
        /// Child configuration.
        child: String,
        /// The child SA.
        uniqueid: u64,
        /// Inbound SPI.
        spi_in: String,
        /// Outbound SPI.
        spi_out: String,
        /// Our selector.
        local_ts: String,
        /// The peer's selector.
        remote_ts: String,
    },
    /// A child SA pair replaced an older one of the same reqid (a rekey by
    /// either end); `child-up` of the new one came first.
    ChildRekeyed {
        /// Connection.
        ike: String,
        /// Child configuration.
        child: String,
        /// The replaced child SA.
        old: u64,
        /// The one replacing it.
        new: u64,
    },
    /// A child SA reached its hard lifetime (time or volume); `child-down`
    /// follows.
    ChildExpired {
        /// Connection.
        ike: String,
        /// Child configuration.
        child: String,
        /// The child SA.
        uniqueid: u64,
    },
    /// A child SA pair is gone from the dataplane.
    ChildDown {
        /// Connection.
        ike: String,
        /// Child configuration.
        child: String,
        /// The child SA.
        uniqueid: u64,
        /// Inbound SPI.
        spi_in: String,
        /// Outbound SPI.
        spi_out: String,
    },
    /// An idle peer was sent an R-U-THERE.
    DpdProbe {
        /// Connection.
        ike: String,
        /// The IKE SA.
        uniqueid: u64,
    },
    /// An R-U-THERE went unanswered within `dpd_timeout`: the peer is dead.
    DpdDead {
        /// Connection.
        ike: String,
        /// The IKE SA.
        uniqueid: u64,
    },
    /// A peer failed to authenticate (wrong key, wrong identity).
    AuthFailed {
        /// Connection, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ike: Option<String>,
        /// The peer's address and port, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<String>,
        /// What failed.
        reason: String,
    },
    /// Traffic met a trap policy: the child is negotiated.
    Acquire {
        /// Connection.
        ike: String,
        /// Child configuration.
        child: String,
        /// The policy's reqid.
        reqid: u32,
    },
}

impl MonitorEvent {
    /// Its `event` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::IkeUp { .. } => "ike-up",
            Self::IkeRekeyed { .. } => "ike-rekeyed",
            Self::IkeDown { .. } => "ike-down",
            Self::ChildUp { .. } => "child-up",
            Self::ChildRekeyed { .. } => "child-rekeyed",
            Self::ChildExpired { .. } => "child-expired",
            Self::ChildDown { .. } => "child-down",
            Self::DpdProbe { .. } => "dpd-probe",
            Self::DpdDead { .. } => "dpd-dead",
            Self::AuthFailed { .. } => "auth-failed",
            Self::Acquire { .. } => "acquire",
        }
    }
}

/// Parses one request line. A wrong version is reported before anything
/// else about the request, so an old client hears "unsupported version"
/// rather than "unknown command".
pub fn parse_request(line: &[u8]) -> Result<Request, CtlError> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| CtlError::new(ErrorCode::BadRequest, format!("malformed JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(CtlError::new(ErrorCode::BadRequest, "a request is a JSON object"));
    };
    match obj.get("version").map(|v| v.as_u64()) {
        None => return Err(CtlError::new(ErrorCode::BadRequest, "missing `version`")),
        Some(Some(v)) if v == u64::from(VERSION) => {}
        Some(v) => {
            let shown = v.map_or_else(|| "not a number".to_owned(), |n| n.to_string());
            return Err(CtlError::new(
                ErrorCode::UnsupportedVersion,
                format!("unsupported protocol version {shown}; this iked speaks version {VERSION}"),
            ));
        }
    }
    let mut rest = obj.clone();
    rest.remove("version");
    let command: Command = serde_json::from_value(serde_json::Value::Object(rest))
        .map_err(|e| CtlError::new(ErrorCode::BadRequest, format!("bad request: {e}")))?;
    Ok(Request { version: VERSION, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_documented() {
        let cases: &[(&str, Command)] = &[
            (r#"{"version":1,"command":"list-sas"}"#, Command::ListSas { ike: None }),
            (
                r#"{"version":1,"command":"list-sas","ike":"home"}"#,
                Command::ListSas { ike: Some("home".into()) },
            ),
            (r#"{"version":1,"command":"list-conns"}"#, Command::ListConns {}),
            (
                r#"{"version":1,"command":"initiate","child":"net"}"#,
                Command::Initiate(Target { child: Some("net".into()), ike: None }),
            ),
            (
                r#"{"version":1,"command":"terminate","ike":"home"}"#,
                Command::Terminate(Target { child: None, ike: Some("home".into()) }),
            ),
            (
                r#"{"version":1,"command":"rekey","child":"net"}"#,
                Command::Rekey(Target { child: Some("net".into()), ike: None }),
            ),
            (r#"{"version":1,"command":"list-pols"}"#, Command::ListPols {}),
            (r#"{"version":1,"command":"load-all"}"#, Command::LoadAll {}),
            (r#"{"version":1,"command":"list-certs"}"#, Command::ListCerts {}),
            (r#"{"version":1,"command":"stats"}"#, Command::Stats {}),
            (r#"{"version":1,"command":"log"}"#, Command::Log {}),
            (r#"{"version":1,"command":"monitor"}"#, Command::Monitor {}),
        ];
        for (line, cmd) in cases {
            let req = parse_request(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(&req.command, cmd);
            let json = serde_json::to_string(&req).unwrap_or_default();
            assert_eq!(&json, line, "serialization matches the documented form");
        }
    }

    #[test]
    fn bad_requests_say_why() {
        let cases: &[(&[u8], ErrorCode, &str)] = &[
            (b"[1]", ErrorCode::BadRequest, "a request is a JSON object"),
            (br#"{"command":"stats"}"#, ErrorCode::BadRequest, "missing `version`"),
            (
                br#"{"version":2,"command":"stats"}"#,
                ErrorCode::UnsupportedVersion,
                "unsupported protocol version 2; this iked speaks version 1",
            ),
            (
                br#"{"version":"1","command":"stats"}"#,
                ErrorCode::UnsupportedVersion,
                "unsupported protocol version not a number; this iked speaks version 1",
            ),
        ];
        for (line, code, msg) in cases {
            let e = parse_request(line).err().unwrap_or_else(|| panic!("accepted"));
            assert_eq!((e.code, e.message.as_str()), (*code, *msg));
        }
        let e = parse_request(br#"{"version":1,"command":"reboot"}"#).err().map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::BadRequest));
        let e = parse_request(br#"{"version":1,"command":"stats","x":1}"#).err().map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::BadRequest), "unknown fields are refused");
        let e = parse_request(b"{\"version\":1,").err().map(|e| e.message);
        assert!(e.is_some_and(|m| m.starts_with("malformed JSON: ")));
    }

    #[test]
    fn target_needs_exactly_one_name() {
        assert_eq!(
            Target { child: Some("a".into()), ike: None }.resolve(),
            Ok(TargetName::Child("a".into()))
        );
        assert!(Target { child: None, ike: None }.resolve().is_err());
        assert!(Target { child: Some("a".into()), ike: Some("b".into()) }.resolve().is_err());
    }

    #[test]
    fn responses_are_flat_objects_tagged_by_type() {
        let r = Response::new(Reply::Error(CtlError::new(ErrorCode::NotFound, "no child `x`")));
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(json, r#"{"version":1,"type":"error","code":"not-found","message":"no child `x`"}"#);
        let back: Response = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
        let sa =
            IkeSaInfo { name: "home".into(), child_sas: vec![ChildSaInfo::default()], ..Default::default() };
        let json =
            serde_json::to_string(&Response::new(Reply::Sas { ike_sas: vec![sa] })).unwrap_or_default();
        assert!(
            json.contains(r#""initiator-spi":"#)
                && json.contains(r#""spi-in":"#)
                && json.contains(r#""child-sas":"#)
        );
    }
}
