//! Certificates made at test time by the `openssl` command (no binary
//! fixtures): root and intermediate CAs, end entities with subjectAltNames,
//! validity windows in the past or the future, revocation and CRLs. Each CA
//! is an `openssl ca` directory inside one temporary directory.

use ike::auth::PrivateKey;
use ike::pki::{Certificate, Crl};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Key algorithm of a CA or end entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    P256,
    P384,
}

impl KeyKind {
    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            Self::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Self::P256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Self::P384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        }
    }

    /// The digest CAs of this kind sign with.
    fn digest(self) -> &'static str {
        match self {
            Self::P384 => "sha384",
            _ => "sha256",
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    openssl_with_san(dir, args, "email:unused@invalid");
}

/// `SAN` fills `subjectAltName = $ENV::SAN` of the end-entity extensions
/// (openssl wants it set whenever it reads the configuration).
fn openssl_with_san(dir: &Path, args: &[&str], san: &str) {
    let out =
        Command::new("openssl").current_dir(dir).args(args).env("SAN", san).output().expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A CA: its `openssl ca` directory, certificate and kind.
pub struct Ca {
    dir: PathBuf,
    pub kind: KeyKind,
    pub cert: Certificate,
}

/// An end entity: its certificate (PEM path for revocation) and key.
pub struct Leaf {
    pem: PathBuf,
    /// The private key, PKCS#8 PEM as `openssl genpkey` wrote it.
    pub key_path: PathBuf,
    pub cert: Certificate,
    pub key: PrivateKey,
}

/// When a certificate is valid, relative to the time the test runs.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From now on, 30 days.
    Current,
    /// Ended a year ago.
    Expired,
    /// Starts in a year.
    NotYetValid,
}

const CA_CONFIG: &str = "\
[ca]
default_ca = ca_default
[ca_default]
dir = .
database = ./index.txt
new_certs_dir = ./issued
certificate = ./ca.pem
private_key = ./ca.key
serial = ./serial
crlnumber = ./crlnumber
default_md = DIGEST
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
[policy_any]
organizationName = optional
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ext_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
[ext_leaf]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
subjectAltName = $ENV::SAN
[ext_leaf_key_encipherment]
basicConstraints = CA:false
keyUsage = critical,keyEncipherment
subjectAltName = $ENV::SAN
";

impl Ca {
    /// A self-signed root CA in `base/name`.
    pub fn root(base: &Path, name: &str, kind: KeyKind) -> Self {
        let dir = Self::prepare(base, name, kind);
        let subj = format!("/O=Test/CN={name}");
        let args = ["req", "-config", "ca.cnf", "-x509", "-new", "-key", "ca.key", "-days", "3650"];
        openssl(&dir, &[&args[..], &["-extensions", "ext_ca", "-subj", &subj, "-out", "ca.pem"]].concat());
        let cert = Certificate::from_der(&pem_to_der(&dir, "ca.pem")).expect("CA certificate");
        Self { dir, kind, cert }
    }

    /// An intermediate CA in `base/name`, issued by `self`.
    pub fn intermediate(&self, base: &Path, name: &str, kind: KeyKind) -> Self {
        self.intermediate_with(base, name, kind, "ext_ca")
    }

    /// An intermediate issued with the extensions of section `extensions`
    /// (`ext_leaf` makes one that is no CA).
    pub fn intermediate_with(&self, base: &Path, name: &str, kind: KeyKind, extensions: &str) -> Self {
        let dir = Self::prepare(base, name, kind);
        openssl(
            &dir,
            &[
                "req",
                "-config",
                "ca.cnf",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                &format!("/O=Test/CN={name}"),
                "-out",
                "ca.csr",
            ],
        );
        let csr = dir.join("ca.csr");
        let pem = dir.join("ca.pem");
        self.issue(&csr, &pem, extensions, "", Validity::Current, None);
        let cert = Certificate::from_der(&pem_to_der(&dir, "ca.pem")).expect("intermediate certificate");
        Self { dir, kind, cert }
    }

    /// An end entity `name` with subjectAltNames `san` (openssl syntax).
    pub fn leaf(&self, name: &str, kind: KeyKind, san: &str, validity: Validity) -> Leaf {
        self.leaf_with(name, kind, san, validity, "ext_leaf", None)
    }

    /// An end entity with the extensions of section `extensions`, signed
    /// with digest `md` (the CA's default if `None`).
    pub fn leaf_with(
        &self,
        name: &str,
        kind: KeyKind,
        san: &str,
        validity: Validity,
        extensions: &str,
        md: Option<&str>,
    ) -> Leaf {
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let pem = self.dir.join(format!("{name}.pem"));
        let mut args = vec!["genpkey", "-out"];
        let key_s = key.to_string_lossy().into_owned();
        args.push(&key_s);
        args.extend_from_slice(kind.genpkey_args());
        openssl(&self.dir, &args);
        let subj = format!("/O=Test/CN={name}");
        openssl(
            &self.dir,
            &[
                "req",
                "-config",
                "ca.cnf",
                "-new",
                "-key",
                &key_s,
                "-subj",
                &subj,
                "-out",
                &csr.to_string_lossy(),
            ],
        );
        self.issue(&csr, &pem, extensions, san, validity, md);
        let cert =
            Certificate::from_der(&pem_to_der(&self.dir, &pem.to_string_lossy())).expect("leaf certificate");
        let key_path = key;
        let key = PrivateKey::from_pem_or_der(&read(&key_path)).expect("leaf key");
        Leaf { pem, key_path, cert, key }
    }

    /// Revokes `leaf` (or an intermediate's certificate) in this CA's database.
    pub fn revoke(&self, pem: &Path) {
        openssl(&self.dir, &["ca", "-config", "ca.cnf", "-batch", "-revoke", &pem.to_string_lossy()]);
    }

    /// This CA's current CRL, PEM.
    pub fn crl(&self) -> Crl {
        Crl::from_pem_or_der(&self.crl_pem()).expect("CRL")
    }

    /// This CA's current CRL as `openssl ca -gencrl` writes it (PEM).
    pub fn crl_pem(&self) -> Vec<u8> {
        openssl(&self.dir, &["ca", "-config", "ca.cnf", "-batch", "-gencrl", "-out", "crl.pem"]);
        read(&self.dir.join("crl.pem"))
    }

    /// The CA's directory (for conversions of its files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn prepare(base: &Path, name: &str, kind: KeyKind) -> PathBuf {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("issued")).expect("CA directory");
        std::fs::write(dir.join("ca.cnf"), CA_CONFIG.replace("DIGEST", kind.digest())).expect("config");
        std::fs::write(dir.join("index.txt"), "").expect("index");
        std::fs::write(dir.join("serial"), "1000\n").expect("serial");
        std::fs::write(dir.join("crlnumber"), "1000\n").expect("crlnumber");
        let mut args = vec!["genpkey", "-out", "ca.key"];
        args.extend_from_slice(kind.genpkey_args());
        openssl(&dir, &args);
        dir
    }

    fn issue(
        &self,
        csr: &Path,
        out: &Path,
        extensions: &str,
        san: &str,
        validity: Validity,
        md: Option<&str>,
    ) {
        let (csr, out) = (csr.to_string_lossy(), out.to_string_lossy());
        let mut args = vec![
            "ca",
            "-config",
            "ca.cnf",
            "-batch",
            "-notext",
            "-extensions",
            extensions,
            "-in",
            &csr,
            "-out",
            &out,
        ];
        let day = 86_400;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let dates = match validity {
            Validity::Current => None,
            Validity::Expired => Some((now - 400 * day, now - 365 * day)),
            Validity::NotYetValid => Some((now + 365 * day, now + 400 * day)),
        }
        .map(|(a, b)| (asn1_time(a), asn1_time(b)));
        if let Some((start, end)) = &dates {
            args.extend_from_slice(&["-startdate", start, "-enddate", end]);
        }
        if let Some(md) = md {
            args.extend_from_slice(&["-md", md]);
        }
        openssl_with_san(&self.dir, &args, if san.is_empty() { "email:unused@invalid" } else { san });
    }
}

impl Leaf {
    /// Where the PEM is (for [`Ca::revoke`]).
    pub fn pem_path(&self) -> &Path {
        &self.pem
    }
}

/// Runs `openssl` in `dir` (for format conversions in tests).
pub fn run_openssl(dir: &Path, args: &[&str]) {
    openssl(dir, args);
}

/// The DER of a PEM certificate file, through our own PEM reader.
fn pem_to_der(dir: &Path, file: &str) -> Vec<u8> {
    let certs = ike::pki::load_certificates(&read(&dir.join(file))).expect("PEM certificate");
    certs.first().expect("one certificate").der().to_vec()
}

/// `openssl ca -startdate` format, GeneralizedTime YYYYMMDDHHMMSSZ.
fn asn1_time(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}
