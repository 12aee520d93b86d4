//! The daemon's state behind the control socket, and the seam for the IKE
//! engine loop.
//!
//! [`Daemon`] owns the configuration (reloaded by SIGHUP and `load-all`),
//! answers `list-conns`, `load-all` and `stats` itself, and passes SA work
//! to an [`EngineControl`]: the engine loop (`crate::driver::EngineHandle`)
//! in the daemon; [`Detached`] (nothing to list, `initiate`/`terminate`
//! refused with `unavailable`) where no loop runs, as in the
//! configuration tests of `tests/daemon.rs`.

use crate::config::{self, AuthMethod, Child, Config, ConfigError, Connection, PeerGoneAction, StartAction};
use crate::ctl::protocol::*;
use crate::ctl::ControlHandler;
use crate::logging::LogHandle;
use ike::engine::ChildMode;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::broadcast;

/// SA counts for `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineCounts {
    /// IKE SAs in any state.
    pub ike_sas: u64,
    /// Of which not yet authenticated.
    pub ike_sas_half_open: u64,
    /// Installed child SA pairs.
    pub child_sas: u64,
    /// What became of received IKE datagrams (counter name → count).
    pub ike_datagrams: std::collections::BTreeMap<String, u64>,
}

/// What the engine loop provides to the rest of the daemon. Calls are
/// short: implementations post commands to the engine task and return.
pub trait EngineControl: Send + Sync + 'static {
    /// Current IKE and child SAs with dataplane counters.
    fn list_sas(&self) -> Vec<IkeSaInfo>;
    /// Starts `conn` (and `child`, or every child when `None`).
    fn initiate(&self, conn: &Connection, child: Option<&Child>) -> Result<String, CtlError>;
    /// Deletes the SAs of `conn` (only `child`'s when given), sending Deletes.
    fn terminate(&self, conn: &str, child: Option<&str>) -> Result<String, CtlError>;
    /// Rekeys `child`'s pairs, or re-establishes `conn`'s ISAKMP SAs.
    fn rekey(&self, conn: &str, child: Option<&str>) -> Result<String, CtlError>;
    /// The policies installed for the connections' children.
    fn list_pols(&self) -> Vec<PolicyInfo>;
    /// A new configuration was loaded: `summary` says which connections were
    /// added, changed or removed; unchanged ones must be left alone.
    fn reconfigure(&self, config: &Arc<Config>, summary: &LoadSummary);
    /// SA counts.
    fn counts(&self) -> EngineCounts;
    /// Dataplane counters, when the SA database is attached.
    fn dataplane_stats(&self) -> Option<DataplaneStats>;
    /// The daemon is stopping: with `delete_sas`, send Deletes and remove
    /// this daemon's SAs from the dataplane; otherwise leave them installed.
    fn shutdown(&self, delete_sas: bool);
    /// A receiver of the SA events from now on (`ikectl monitor`).
    fn follow_events(&self) -> Result<broadcast::Receiver<EventRecord>, CtlError>;
    /// What the metrics show of the engine and the dataplane: the SA list
    /// when `per_sa`, the events counted, the workers' counters.
    fn metrics(&self, per_sa: bool) -> crate::metrics::Snapshot;
}

/// No engine attached (yet).
#[derive(Debug, Default, Clone, Copy)]
pub struct Detached;

impl EngineControl for Detached {
    fn list_sas(&self) -> Vec<IkeSaInfo> {
        Vec::new()
    }
    fn initiate(&self, conn: &Connection, _child: Option<&Child>) -> Result<String, CtlError> {
        Err(CtlError::new(
            ErrorCode::Unavailable,
            format!("cannot initiate `{}`: no IKE engine attached", conn.name),
        ))
    }
    fn terminate(&self, conn: &str, _child: Option<&str>) -> Result<String, CtlError> {
        Err(CtlError::new(
            ErrorCode::Unavailable,
            format!("cannot terminate `{conn}`: no IKE engine attached"),
        ))
    }
    fn rekey(&self, conn: &str, _child: Option<&str>) -> Result<String, CtlError> {
        Err(CtlError::new(ErrorCode::Unavailable, format!("cannot rekey `{conn}`: no IKE engine attached")))
    }
    fn list_pols(&self) -> Vec<PolicyInfo> {
        Vec::new()
    }
    fn reconfigure(&self, _config: &Arc<Config>, _summary: &LoadSummary) {}
    fn counts(&self) -> EngineCounts {
        EngineCounts::default()
    }
    fn dataplane_stats(&self) -> Option<DataplaneStats> {
        None
    }
    fn shutdown(&self, _delete_sas: bool) {}
    fn follow_events(&self) -> Result<broadcast::Receiver<EventRecord>, CtlError> {
        Err(CtlError::new(ErrorCode::Unavailable, "no IKE engine attached"))
    }
    fn metrics(&self, _per_sa: bool) -> crate::metrics::Snapshot {
        crate::metrics::Snapshot::default()
    }
}

/// The daemon state shared by the control server and signal handling.
#[derive(Debug)]
pub struct Daemon<E> {
    config_path: PathBuf,
    config: RwLock<Arc<Config>>,
    engine: E,
    log: Option<LogHandle>,
    started: Instant,
}

impl<E: EngineControl> Daemon<E> {
    /// A daemon with a validated configuration read from `config_path`.
    pub fn new(config_path: PathBuf, config: Config, engine: E, log: Option<LogHandle>) -> Self {
        Self { config_path, config: RwLock::new(Arc::new(config)), engine, log, started: Instant::now() }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().map(|c| Arc::clone(&c)).unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Re-reads the configuration file (SIGHUP, `load-all`). On error the old
    /// configuration stays in force.
    pub fn reload(&self) -> Result<LoadSummary, ConfigError> {
        let new = Arc::new(config::load(&self.config_path)?);
        let old = self.config();
        let mut summary = diff(&old, &new);
        let creds = &new.credentials;
        summary.certs = creds.certs.len() as u64;
        summary.cacerts = creds.cas.len() as u64;
        summary.crls = creds.crls.len() as u64;
        summary.keys = creds.keys.len() as u64;
        if old.daemon.control_socket != new.daemon.control_socket
            || old.daemon.listen != new.daemon.listen
            || old.daemon.sadb != new.daemon.sadb
            || old.daemon.port != new.daemon.port
            || old.daemon.port_nat_t != new.daemon.port_nat_t
        {
            tracing::warn!(target: "cfg", "daemon sockets and SA database paths change only on restart");
        }
        if old.daemon.half_open != new.daemon.half_open || old.daemon.ctl_group != new.daemon.ctl_group {
            tracing::warn!(target: "cfg", "daemon.init_limit_half_open, block_threshold, half_open_reserved and ctl_group change only on restart");
        }
        if let Some(log) = &self.log {
            log.set_levels(new.daemon.log.clone());
        }
        if let Ok(mut c) = self.config.write() {
            *c = Arc::clone(&new);
        }
        self.engine.reconfigure(&new, &summary);
        tracing::info!(
            target: "cfg",
            "loaded {}: {} added, {} changed, {} removed, {} unchanged; {} certificates, {} CA certificates, {} CRLs, {} private keys",
            self.config_path.display(),
            summary.added.len(),
            summary.changed.len(),
            summary.removed.len(),
            summary.unchanged.len(),
            summary.certs,
            summary.cacerts,
            summary.crls,
            summary.keys
        );
        for w in new.warnings() {
            tracing::warn!(target: "cfg", "{w}");
        }
        Ok(summary)
    }

    fn find(&self, target: &TargetName) -> Result<(Arc<Config>, String, Option<String>), CtlError> {
        let config = self.config();
        let (conn, child) = match target {
            TargetName::Ike(name) => match config.connection(name) {
                Some(c) => (c.name.clone(), None),
                None => return Err(CtlError::new(ErrorCode::NotFound, format!("no connection `{name}`"))),
            },
            TargetName::Child(name) => match config.child(name) {
                Some((c, ch)) => (c.name.clone(), Some(ch.name.clone())),
                None => return Err(CtlError::new(ErrorCode::NotFound, format!("no child `{name}`"))),
            },
        };
        Ok((config, conn, child))
    }
}

/// Which connections changed between two configurations. A connection is
/// unchanged when every setting, children and its PSK included, is equal,
/// and with certificates when it sends the same identity: new certificates,
/// keys or CRLs alone leave it unchanged (its SAs stay; new exchanges use
/// them).
pub fn diff(old: &Config, new: &Config) -> LoadSummary {
    let mut s = LoadSummary::default();
    let identity = |c: &Config, name: &str| c.credentials.auth_for(name).map(|a| a.local_id.clone());
    for c in &new.connections {
        match old.connection(&c.name) {
            None => s.added.push(c.name.clone()),
            Some(o)
                if o == c
                    && old.psk_for(o) == new.psk_for(c)
                    && identity(old, &c.name) == identity(new, &c.name) =>
            {
                s.unchanged.push(c.name.clone())
            }
            Some(_) => s.changed.push(c.name.clone()),
        }
    }
    for c in &old.connections {
        if new.connection(&c.name).is_none() {
            s.removed.push(c.name.clone());
        }
    }
    s
}

pub(crate) fn mode_name(m: ChildMode) -> &'static str {
    match m {
        ChildMode::Tunnel => "TUNNEL",
        ChildMode::Transport => "TRANSPORT",
    }
}

fn action_name(a: PeerGoneAction, restart: &'static str, clear: &'static str) -> &'static str {
    match a {
        PeerGoneAction::Clear => clear,
        PeerGoneAction::Trap => "trap",
        PeerGoneAction::Restart => restart,
    }
}

/// `list-conns` entry for a connection.
pub fn connection_info(c: &Connection) -> ConnectionInfo {
    let auth = |a: AuthMethod| match a {
        AuthMethod::Psk => "pre-shared key".to_owned(),
        AuthMethod::Pubkey => "public key".to_owned(),
    };
    ConnectionInfo {
        name: c.name.clone(),
        version: "IKEv1".to_owned(),
        local_addrs: c.local_addrs.iter().map(ToString::to_string).collect(),
        remote_addrs: c.remote_addrs.iter().map(ToString::to_string).collect(),
        local_port: c.local_port,
        remote_port: c.remote_port,
        proposals: c.proposals.iter().map(|p| p.text.clone()).collect(),
        aggressive: c.aggressive,
        encap: c.encap,
        dpd_delay: c.dpd_delay.as_secs(),
        dpd_timeout: c.dpd_timeout.as_secs(),
        rekey_time: c.rekey_time.as_secs(),
        reauth_time: c.reauth_time.as_secs(),
        keyingtries: c.keyingtries,
        local_auth: auth(c.local.auth),
        local_id: c.local.id.to_string(),
        remote_auth: auth(c.remote.auth),
        remote_id: c.remote.id.to_string(),
        children: c
            .children
            .iter()
            .map(|ch| ChildConfigInfo {
                name: ch.name.clone(),
                mode: mode_name(ch.mode).to_owned(),
                start_action: match ch.start_action {
                    StartAction::None => "none",
                    StartAction::Trap => "trap",
                    StartAction::Start => "start",
                }
                .to_owned(),
                dpd_action: action_name(ch.dpd_action, "restart", "clear").to_owned(),
                close_action: action_name(ch.close_action, "start", "none").to_owned(),
                rekey_time: ch.rekey_time.as_secs(),
                life_time: ch.life_time.as_secs(),
                esp_proposals: ch.esp_proposals.iter().map(|p| p.text.clone()).collect(),
                local_ts: ch.local_ts.iter().map(ToString::to_string).collect(),
                remote_ts: ch.remote_ts.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }
}

/// `list-certs`: every loaded certificate (`x509/` first, then `x509ca/`)
/// and CRL.
pub fn certificate_list(creds: &config::Credentials) -> (Vec<CertInfo>, Vec<CrlInfo>) {
    use config::credentials::{dn_string, key_description};
    use x509_cert::ext::pkix::{name::GeneralName, BasicConstraints, SubjectAltName};
    let time = |t: &x509_cert::time::Time| t.to_date_time().to_string();
    let info = |l: &config::credentials::LoadedCert, source: &str| {
        let tbs = &l.cert.x509().tbs_certificate;
        let sans = match tbs.get::<SubjectAltName>() {
            Ok(Some((_, san))) => san
                .0
                .iter()
                .map(|n| match n {
                    GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
                    GeneralName::Rfc822Name(m) => format!("email:{}", m.as_str()),
                    GeneralName::UniformResourceIdentifier(u) => format!("URI:{}", u.as_str()),
                    GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                        4 | 16 => {
                            let b = ip.as_bytes();
                            let addr = <[u8; 4]>::try_from(b)
                                .map(std::net::IpAddr::from)
                                .or_else(|_| <[u8; 16]>::try_from(b).map(std::net::IpAddr::from));
                            addr.map_or_else(|_| "IP:?".to_owned(), |a| format!("IP:{a}"))
                        }
                        _ => "IP:?".to_owned(),
                    },
                    GeneralName::DirectoryName(d) => format!("dirName:{}", dn_string(d)),
                    _ => "other".to_owned(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let serial: Vec<String> = tbs.serial_number.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let public = l.cert.public_key().ok();
        CertInfo {
            path: l.path.display().to_string(),
            source: source.to_owned(),
            subject: dn_string(&tbs.subject),
            issuer: dn_string(&tbs.issuer),
            sans,
            serial: serial.join(":"),
            not_before: time(&tbs.validity.not_before),
            not_after: time(&tbs.validity.not_after),
            key: key_description(&l.cert),
            ca: matches!(tbs.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca),
            has_private_key: public.is_some_and(|p| creds.keys.iter().any(|k| k.key.public_key() == p)),
            connections: creds
                .connections
                .iter()
                .filter(|(_, c)| c.auth.certificates.first() == Some(&l.cert))
                .map(|(n, _)| n.clone())
                .collect(),
        }
    };
    let certs =
        creds.certs.iter().map(|l| info(l, "x509")).chain(creds.cas.iter().map(|l| info(l, "x509ca")));
    let crls = creds
        .crls
        .iter()
        .map(|l| {
            let tbs = &l.crl.list().tbs_cert_list;
            CrlInfo {
                path: l.path.display().to_string(),
                issuer: dn_string(&tbs.issuer),
                this_update: time(&tbs.this_update),
                next_update: tbs.next_update.as_ref().map(time),
                revoked: tbs.revoked_certificates.as_ref().map_or(0, |r| r.len() as u64),
            }
        })
        .collect();
    (certs.collect(), crls)
}

impl<E: EngineControl> Daemon<E> {
    /// What `stats` shows, but the control server's own counters.
    fn stats_now(&self) -> Stats {
        let counts = self.engine.counts();
        Stats {
            uptime: self.started.elapsed().as_secs(),
            connections: self.config().connections.len() as u64,
            ike_sas: counts.ike_sas,
            ike_sas_half_open: counts.ike_sas_half_open,
            child_sas: counts.child_sas,
            ctl_requests: 0,
            ctl_errors: 0,
            ctl_refused: 0,
            dataplane: self.engine.dataplane_stats(),
            ike_datagrams: counts.ike_datagrams,
        }
    }
}

impl<E: EngineControl> crate::metrics::Source for Daemon<E> {
    fn snapshot(&self, per_sa: bool) -> crate::metrics::Snapshot {
        crate::metrics::Snapshot { stats: self.stats_now(), ..self.engine.metrics(per_sa) }
    }
}

impl<E: EngineControl> ControlHandler for Daemon<E> {
    async fn list_sas(&self, ike: Option<String>) -> Result<Vec<IkeSaInfo>, CtlError> {
        let mut sas = self.engine.list_sas();
        if let Some(name) = ike {
            sas.retain(|s| s.name == name);
        }
        Ok(sas)
    }

    async fn list_conns(&self) -> Result<Vec<ConnectionInfo>, CtlError> {
        let config = self.config();
        Ok(config
            .connections
            .iter()
            .map(|c| ConnectionInfo { local_id: config.local_id_text(c), ..connection_info(c) })
            .collect())
    }

    async fn initiate(&self, target: TargetName) -> Result<String, CtlError> {
        let (config, conn, child) = self.find(&target)?;
        let c = config
            .connection(&conn)
            .ok_or_else(|| CtlError::new(ErrorCode::NotFound, "connection vanished"))?;
        let ch = child.as_deref().and_then(|n| c.children.iter().find(|x| x.name == n));
        self.engine.initiate(c, ch)
    }

    async fn terminate(&self, target: TargetName) -> Result<String, CtlError> {
        let (_, conn, child) = self.find(&target)?;
        self.engine.terminate(&conn, child.as_deref())
    }

    async fn rekey(&self, target: TargetName) -> Result<String, CtlError> {
        let (_, conn, child) = self.find(&target)?;
        self.engine.rekey(&conn, child.as_deref())
    }

    async fn list_pols(&self) -> Result<Vec<PolicyInfo>, CtlError> {
        Ok(self.engine.list_pols())
    }

    async fn load_all(&self) -> Result<LoadSummary, CtlError> {
        self.reload().map_err(|e| CtlError::new(ErrorCode::ConfigInvalid, e.to_string()))
    }

    async fn list_certs(&self) -> Result<(Vec<CertInfo>, Vec<CrlInfo>), CtlError> {
        Ok(certificate_list(&self.config().credentials))
    }

    async fn stats(&self) -> Result<Stats, CtlError> {
        Ok(self.stats_now())
    }

    fn follow_log(&self) -> Result<broadcast::Receiver<LogRecord>, CtlError> {
        self.log
            .as_ref()
            .map(LogHandle::subscribe)
            .ok_or_else(|| CtlError::new(ErrorCode::Unavailable, "logging is not set up in this process"))
    }

    fn follow_events(&self) -> Result<broadcast::Receiver<EventRecord>, CtlError> {
        self.engine.follow_events()
    }
}
