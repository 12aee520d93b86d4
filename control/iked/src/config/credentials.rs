//! Certificates, private keys and CRLs for `auth = "pubkey"`, read from a
//! directory laid out as swanctl's (`daemon.swanctl_dir`):
//!
//! | directory   | holds                                             |
//! |-------------|---------------------------------------------------|
//! | `x509/`     | our certificates, and peer certificates           |
//! | `x509ca/`   | CA certificates, intermediates included (trusted) |
//! | `x509crl/`  | CRLs                                              |
//! | `private/`, `rsa/`, `ecdsa/` | private keys (PKCS#8, PKCS#1, SEC1) |
//!
//! Every file may be PEM or DER; a missing directory is an empty one. The
//! key of a connection's certificate is the loaded private key whose public
//! key is the certificate's. What is loaded is checked at load time (our
//! certificate within its validity period, its key present, `local.id` in
//! it) and every failure names its key and reason, so `iked --check-config`
//! and `ikectl load-all` report them like any other configuration error.

use super::error::key;
use super::{AuthMethod, ConfigError, ConfigId, Connection};
use ike::auth::{PrivateKey, PublicKey};
use ike::engine::{Identity, PublicKeyAuth};
use ike::pki::{self, CertError, Certificate, Crl, TrustStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use x509_cert::name::Name;

/// `daemon.swanctl_dir` when unset.
pub const DEFAULT_SWANCTL_DIR: &str = "/etc/iked";
/// Largest certificate or key file read.
const MAX_FILE_LEN: u64 = 1 << 20;
/// The subdirectories private keys are read from (swanctl's).
pub const KEY_DIRS: [&str; 3] = ["private", "rsa", "ecdsa"];

/// A certificate and the file it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedCert {
    /// The file.
    pub path: PathBuf,
    /// The certificate.
    pub cert: Certificate,
}

/// A CRL and the file it was read from.
#[derive(Debug, Clone)]
pub struct LoadedCrl {
    /// The file.
    pub path: PathBuf,
    /// The list.
    pub crl: Crl,
}

/// A private key and the file it was read from (never printed).
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// The file.
    pub path: PathBuf,
    /// The key.
    pub key: PrivateKey,
}

/// What one `auth = "pubkey"` connection authenticates with.
#[derive(Debug, Clone)]
pub struct ConnectionCredentials {
    /// Our certificate (then the intermediates sent with it), its key,
    /// the CAs and CRLs trusted, `send_cert`, `send_certreq`.
    pub auth: Arc<PublicKeyAuth>,
    /// The identity we send: `local.id`, or the certificate's subject.
    pub local_id: Identity,
    /// The file of our certificate.
    pub cert_path: PathBuf,
}

/// Everything read from the swanctl directory (empty when no connection
/// uses certificates).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The directory read (`None`: nothing was loaded).
    pub dir: Option<PathBuf>,
    /// `x509/` and the files `local.certs` names: ours and peers'.
    pub certs: Vec<LoadedCert>,
    /// `x509ca/` and the files `remote.cacerts` names.
    pub cas: Vec<LoadedCert>,
    /// `x509crl/`.
    pub crls: Vec<LoadedCrl>,
    /// `private/`, `rsa/`, `ecdsa/`.
    pub keys: Vec<LoadedKey>,
    /// Per `auth = "pubkey"` connection, by name.
    pub connections: BTreeMap<String, ConnectionCredentials>,
}

impl PartialEq for Credentials {
    /// The same files with the same contents (keys compared by their public
    /// half), and the same identities.
    fn eq(&self, other: &Self) -> bool {
        let crl_der = |c: &LoadedCrl| der::Encode::to_der(c.crl.list()).unwrap_or_default();
        self.dir == other.dir
            && self.certs == other.certs
            && self.cas == other.cas
            && self.crls.len() == other.crls.len()
            && self.crls.iter().zip(&other.crls).all(|(a, b)| a.path == b.path && crl_der(a) == crl_der(b))
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.path == b.path && a.key.public_key() == b.key.public_key())
            && self.connections.len() == other.connections.len()
            && self
                .connections
                .iter()
                .zip(&other.connections)
                .all(|((an, a), (bn, b))| an == bn && a.local_id == b.local_id && a.cert_path == b.cert_path)
    }
}

impl Eq for Credentials {}

impl Credentials {
    /// What is loaded but will not work, for [`super::Config::warnings`]:
    /// CA certificates outside their validity period and CRLs past their
    /// nextUpdate, at `now`.
    pub fn warnings(&self, now: SystemTime) -> Vec<String> {
        let mut w = Vec::new();
        for l in &self.cas {
            if let Err(e) = l.cert.valid_at(now) {
                w.push(format!(
                    "CA certificate {} ({}) is {}: peers it issued are refused",
                    l.path.display(),
                    subject_string(&l.cert),
                    cert_error(e)
                ));
            }
        }
        for l in &self.crls {
            let tbs = &l.crl.list().tbs_cert_list;
            if let Some(next) = &tbs.next_update {
                if next.to_system_time() < now {
                    w.push(format!(
                        "CRL {} of {} was due to be replaced on {}",
                        l.path.display(),
                        dn_string(&tbs.issuer),
                        time_text(next)
                    ));
                }
            }
        }
        w
    }

    /// The engine authentication of connection `name`.
    pub fn auth_for(&self, name: &str) -> Option<&ConnectionCredentials> {
        self.connections.get(name)
    }
}

/// A name as strongSwan prints it: `C=CH, O=strongSwan, CN=gw`.
pub fn dn_string(name: &Name) -> String {
    let parts: Vec<String> = name.0.iter().map(ToString::to_string).collect();
    parts.join(", ")
}

/// The subject of a certificate, as [`dn_string`] writes it.
pub fn subject_string(cert: &Certificate) -> String {
    dn_string(&cert.x509().tbs_certificate.subject)
}

fn key_kind(k: &PublicKey) -> String {
    use rsa::traits::PublicKeyParts;
    match k {
        PublicKey::Rsa(r) => format!("RSA-{}", r.size() * 8),
        PublicKey::EcdsaP256(_) => "ECDSA P-256".to_owned(),
        PublicKey::EcdsaP384(_) => "ECDSA P-384".to_owned(),
    }
}

/// The key type and size of a certificate's key (`RSA-2048`, `ECDSA P-256`),
/// or what is wrong with it.
pub fn key_description(cert: &Certificate) -> String {
    match cert.public_key() {
        Ok(k) => key_kind(&k),
        Err(_) => {
            let oid = cert.x509().tbs_certificate.subject_public_key_info.algorithm.oid;
            format!("unsupported ({oid})")
        }
    }
}

/// Reads a file of at most `limit` bytes.
fn read(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    // Not opened unless a regular file: a FIFO or device would block or
    // never end.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Sized up front: key bytes are not left behind in a reallocation.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len().min(limit) + 1).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{}: larger than {limit} bytes", path.display()));
    }
    Ok(bytes)
}

fn read_certs(path: &Path) -> Result<Vec<Certificate>, String> {
    let bytes = read(path, MAX_FILE_LEN)?;
    pki::load_certificates(&bytes).map_err(|e| {
        format!("{}: not an X.509 certificate in PEM or DER ({})", path.display(), cert_error(e))
    })
}

/// A refusal in words.
pub fn cert_error(e: CertError) -> &'static str {
    match e {
        CertError::Malformed => "malformed, truncated or too large",
        CertError::NoCertificate => "no certificate",
        CertError::UntrustedIssuer => "no path to a trusted CA",
        CertError::BadCertificateSignature => "a signature does not verify",
        CertError::UnsupportedAlgorithm => {
            "unsupported algorithm (RSA of at least 2048 bits, ECDSA P-256 or P-384, SHA-2 signatures)"
        }
        CertError::Expired => "expired",
        CertError::NotYetValid => "not yet valid",
        CertError::NotCa => "not a CA",
        CertError::KeyUsage => "key usage does not allow it",
        CertError::Revoked => "revoked",
        CertError::PathTooLong => "path too long",
        CertError::IdMismatch => "identity not in the certificate",
        CertError::BadSignature => "bad signature",
        CertError::NoClock => "no clock",
    }
}

/// The regular files of `dir`, sorted by name, dot files left out; a
/// missing directory has none.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read directory {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') || !path.is_file() {
            continue;
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

/// A connection's file name: relative ones are under `base`.
pub(crate) fn resolve(base: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn time_text(t: &x509_cert::time::Time) -> String {
    t.to_date_time().to_string()
}

/// Reads the swanctl directory `dir` for `connections` (of configuration
/// file `file`, for errors) at wall-clock time `now`.
pub(crate) fn load(
    file: &Path,
    dir: &Path,
    connections: &[Connection],
    now: SystemTime,
) -> Result<Credentials, ConfigError> {
    let dir_err = |reason: String| ConfigError::at(file, key(&["daemon", "swanctl_dir"]), reason);
    let mut creds = Credentials { dir: Some(dir.to_path_buf()), ..Credentials::default() };
    let pubkey: Vec<&Connection> =
        connections.iter().filter(|c| c.local.auth == AuthMethod::Pubkey).collect();
    // Files a connection names first, so that their errors name its keys.
    for c in &pubkey {
        let k = key(&["connections", &c.name, "local", "certs"]);
        for path in &c.local.certs {
            if creds.certs.iter().any(|l| &l.path == path) {
                continue;
            }
            let certs = read_certs(path).map_err(|e| ConfigError::at(file, k.clone(), e))?;
            creds.certs.extend(certs.into_iter().map(|cert| LoadedCert { path: path.clone(), cert }));
        }
        let k = key(&["connections", &c.name, "remote", "cacerts"]);
        for path in &c.remote.cacerts {
            if creds.cas.iter().any(|l| &l.path == path) {
                continue;
            }
            let certs = read_certs(path).map_err(|e| ConfigError::at(file, k.clone(), e))?;
            creds.cas.extend(certs.into_iter().map(|cert| LoadedCert { path: path.clone(), cert }));
        }
    }
    for path in files_in(&dir.join("x509")).map_err(dir_err)? {
        if !creds.certs.iter().any(|l| l.path == path) {
            let certs = read_certs(&path).map_err(dir_err)?;
            creds.certs.extend(certs.into_iter().map(|cert| LoadedCert { path: path.clone(), cert }));
        }
    }
    for path in files_in(&dir.join("x509ca")).map_err(dir_err)? {
        if !creds.cas.iter().any(|l| l.path == path) {
            let certs = read_certs(&path).map_err(dir_err)?;
            creds.cas.extend(certs.into_iter().map(|cert| LoadedCert { path: path.clone(), cert }));
        }
    }
    for path in files_in(&dir.join("x509crl")).map_err(dir_err)? {
        let bytes = read(&path, pki::MAX_CRL_LEN as u64).map_err(dir_err)?;
        let crl = Crl::from_pem_or_der(&bytes).map_err(|e| {
            dir_err(format!("{}: not a CRL in PEM or DER ({})", path.display(), cert_error(e)))
        })?;
        creds.crls.push(LoadedCrl { path, crl });
    }
    for sub in KEY_DIRS {
        for path in files_in(&dir.join(sub)).map_err(dir_err)? {
            let bytes = zeroize::Zeroizing::new(read(&path, MAX_FILE_LEN).map_err(dir_err)?);
            let key = PrivateKey::from_pem_or_der(&bytes).map_err(|_| {
                dir_err(format!(
                    "{}: not a private key (RSA or ECDSA P-256/P-384; PKCS#8, PKCS#1 or SEC1, PEM or DER; \
                     encrypted keys are not supported)",
                    path.display()
                ))
            })?;
            creds.keys.push(LoadedKey { path, key });
        }
    }
    for c in &pubkey {
        let cc = connection_credentials(file, &creds, c, now)?;
        creds.connections.insert(c.name.clone(), cc);
    }
    Ok(creds)
}

/// Our certificate, key, identity and trust for one connection.
fn connection_credentials(
    file: &Path,
    creds: &Credentials,
    c: &Connection,
    now: SystemTime,
) -> Result<ConnectionCredentials, ConfigError> {
    let k_certs = key(&["connections", &c.name, "local", "certs"]);
    let err = |reason: String| ConfigError::at(file, k_certs.clone(), reason);
    let mut mine: Vec<&LoadedCert> = Vec::new();
    for path in &c.local.certs {
        mine.extend(creds.certs.iter().filter(|l| &l.path == path));
    }
    let Some(own) = mine.first() else {
        return Err(err("no certificate".to_owned()));
    };
    let path = own.path.display();
    let subject = subject_string(&own.cert);
    let validity = &own.cert.x509().tbs_certificate.validity;
    match own.cert.valid_at(now) {
        Ok(()) => {}
        Err(CertError::NotYetValid) => {
            return Err(err(format!(
                "certificate {path} ({subject}) is not valid before {}",
                time_text(&validity.not_before)
            )))
        }
        Err(_) => {
            return Err(err(format!(
                "certificate {path} ({subject}) expired on {}",
                time_text(&validity.not_after)
            )))
        }
    }
    let public = own.cert.public_key().map_err(|e| {
        err(format!("certificate {path} ({subject}): {} ({})", cert_error(e), key_description(&own.cert)))
    })?;
    let private = creds.keys.iter().find(|k| k.key.public_key() == public).ok_or_else(|| {
        let dir = creds.dir.as_deref().unwrap_or(Path::new(".")).display().to_string();
        err(format!(
            "no private key in {dir}/private, {dir}/rsa or {dir}/ecdsa matches certificate {path} ({subject})"
        ))
    })?;
    let subject_der = own.cert.subject_der();
    // Our ID must be in our certificate (RFC 4945 §3.1): the subject, or a
    // subjectAltName of the ID's type.
    let in_certificate = |id: &ConfigId| match id {
        ConfigId::Any => true,
        ConfigId::Dn { der, .. } => pki::dn_matches(&subject_der, der),
        other => other.to_engine().is_some_and(|e| {
            let p = e.to_payload();
            own.cert.matches_id(p.id_type, &p.data)
        }),
    };
    if !in_certificate(&c.local.id) {
        return Err(ConfigError::at(
            file,
            key(&["connections", &c.name, "local", "id"]),
            format!(
                "`{}` is neither the subject nor a subjectAltName of certificate {path} ({subject})",
                c.local.id
            ),
        ));
    }
    // A DN is sent as the certificate encodes it, so that the peer's byte
    // comparison with the subject holds.
    let local_id = match c.local.id.to_engine() {
        None | Some(Identity::DistinguishedName(_)) => Identity::DistinguishedName(subject_der.clone()),
        Some(id) => id,
    };
    // Sent after our certificate: the rest of local.certs, then the CAs of
    // x509ca/ up our chain short of the self-signed root.
    let mut chain: Vec<Certificate> = mine.iter().map(|l| l.cert.clone()).collect();
    let mut current = own.cert.clone();
    for _ in 1..pki::MAX_PATH_LEN {
        let issuer = &current.x509().tbs_certificate.issuer;
        let Some(ca) = creds.cas.iter().map(|l| &l.cert).find(|ca| {
            ca.x509().tbs_certificate.subject == *issuer
                && ca.x509().tbs_certificate.subject != ca.x509().tbs_certificate.issuer
        }) else {
            break;
        };
        if chain.contains(ca) {
            break;
        }
        chain.push(ca.clone());
        current = ca.clone();
    }
    let authorities: Vec<Certificate> = if c.remote.cacerts.is_empty() {
        creds.cas.iter().map(|l| l.cert.clone()).collect()
    } else {
        creds.cas.iter().filter(|l| c.remote.cacerts.contains(&l.path)).map(|l| l.cert.clone()).collect()
    };
    let trust = TrustStore {
        authorities,
        crls: creds.crls.iter().map(|l| l.crl.clone()).collect(),
        peer_certificates: creds
            .certs
            .iter()
            .filter(|l| l.cert != own.cert)
            .map(|l| l.cert.clone())
            .collect(),
    };
    Ok(ConnectionCredentials {
        auth: Arc::new(PublicKeyAuth {
            certificates: chain,
            private_key: private.key.clone(),
            trust,
            send_cert: c.send_cert,
            send_certreq: c.send_certreq,
        }),
        local_id,
        cert_path: own.path.clone(),
    })
}
