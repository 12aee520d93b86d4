//! Key log for Wireshark, written only when `--keylog DIR` (or
//! `daemon.keylog`) is set: the two UAT files of a Wireshark profile, in the
//! formats strongSwan's save-keys plugin writes.
//!
//! - `ikev1_decryption_table`: `<initiator cookie hex>,<encryption key hex>`
//!   per ISAKMP SA (tshark `-o uat:ikev1_decryption_table:...`).
//! - `esp_sa`: `"IPv4","<src>","<dst>","0x<spi>","<encryption>","0x<key>",
//!   "<authentication>","0x<key>"` per ESP SA, with the algorithm names of
//!   Wireshark's ESP dissector (`AES-GCM with 16 octet ICV [RFC4106]`,
//!   `AES-CBC [RFC3602]`, `HMAC-SHA-256-128 [RFC4868]`, `NULL`). For GCM
//!   the key is followed by the 4-byte salt, as Wireshark expects.
//!
//! Files and directory are created owner-only (0600/0700): they hold keys.

use ike::engine::{EspEncryption, EspIntegrity, EspSaDescription};
use sadb::file::LooseMode;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

/// IKEv1 table file name in a Wireshark profile directory.
pub const IKEV1_TABLE: &str = "ikev1_decryption_table";
/// ESP SA table file name in a Wireshark profile directory.
pub const ESP_TABLE: &str = "esp_sa";

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Wireshark's name for an ESP encryption algorithm.
pub fn wireshark_encryption(e: Option<EspEncryption>) -> &'static str {
    match e {
        None => "NULL",
        Some(EspEncryption::AesCbc(_)) => "AES-CBC [RFC3602]",
        Some(EspEncryption::AesGcm16(_)) => "AES-GCM with 16 octet ICV [RFC4106]",
    }
}

/// Wireshark's name for an ESP integrity algorithm.
pub fn wireshark_integrity(i: Option<EspIntegrity>) -> &'static str {
    match i {
        None => "NULL",
        Some(EspIntegrity::HmacSha1) => "HMAC-SHA-1-96 [RFC2404]",
        Some(EspIntegrity::HmacSha256) => "HMAC-SHA-256-128 [RFC4868]",
        Some(EspIntegrity::HmacSha384) => "HMAC-SHA-384-192 [RFC4868]",
        Some(EspIntegrity::HmacSha512) => "HMAC-SHA-512-256 [RFC4868]",
    }
}

/// One `ikev1_decryption_table` line (without newline).
pub fn ikev1_line(initiator_cookie: &[u8; 8], encryption_key: &[u8]) -> String {
    format!("{},{}", hex(initiator_cookie), hex(encryption_key))
}

/// One ESP SA as the `esp_sa` table needs it.
#[derive(Debug, Clone, Copy)]
pub struct EspKeys<'a> {
    /// Outer source address.
    pub source: IpAddr,
    /// Outer destination address.
    pub destination: IpAddr,
    /// SPI.
    pub spi: u32,
    /// Encryption, `None` = ESP_NULL.
    pub encryption: Option<EspEncryption>,
    /// Encryption key without salt.
    pub encryption_key: &'a [u8],
    /// GCM salt (4 bytes) or empty.
    pub salt: &'a [u8],
    /// Integrity, `None` for AEAD or none.
    pub integrity: Option<EspIntegrity>,
    /// Integrity key or empty.
    pub integrity_key: &'a [u8],
}

impl<'a> EspKeys<'a> {
    /// From the engine's SA description.
    pub fn from_description(d: &'a EspSaDescription) -> Self {
        Self {
            source: d.source.ip(),
            destination: d.destination.ip(),
            spi: d.spi,
            encryption: Some(d.encryption),
            encryption_key: &d.encryption_key,
            salt: &d.salt,
            integrity: d.integrity,
            integrity_key: &d.integrity_key,
        }
    }
}

/// One `esp_sa` line (without newline).
pub fn esp_line(k: &EspKeys<'_>) -> String {
    let family = if k.source.is_ipv4() { "IPv4" } else { "IPv6" };
    let key = |bytes: &[u8]| if bytes.is_empty() { String::new() } else { format!("0x{}", hex(bytes)) };
    // Key || salt at its final size (a growing `Vec` frees a copy unwiped), wiped after.
    let mut enc_key = zeroize::Zeroizing::new(Vec::with_capacity(k.encryption_key.len() + k.salt.len()));
    enc_key.extend_from_slice(k.encryption_key);
    enc_key.extend_from_slice(k.salt);
    format!(
        "\"{family}\",\"{}\",\"{}\",\"0x{:08x}\",\"{}\",\"{}\",\"{}\",\"{}\"",
        k.source,
        k.destination,
        k.spi,
        wireshark_encryption(k.encryption),
        key(&enc_key),
        wireshark_integrity(k.integrity),
        key(k.integrity_key),
    )
}

/// Opens a key log file for appending: created 0600 if missing; an existing one
/// must be a regular file of ours (not a symbolic link), and is narrowed to 0600
/// if its mode lets others in. Another owner's file is refused, never chmodded.
fn open_secret_file(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.append(true);
    sadb::file::create_or_open(path, "a key log file", &opts, LooseMode::Narrow)
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))
}

/// The open key log files.
#[derive(Debug)]
pub struct KeyLog {
    ikev1: Mutex<File>,
    esp: Mutex<File>,
}

impl KeyLog {
    /// Opens (creating 0700/0600) `dir/ikev1_decryption_table` and
    /// `dir/esp_sa`, appending. The directory and the files must be ours and
    /// not symbolic links; ours with a wider mode are narrowed.
    pub fn open(dir: &Path) -> io::Result<Self> {
        // Created 0700; an existing directory must be ours and no symbolic link,
        // and is narrowed to 0700.
        sadb::file::private_dir(dir, "the key log directory", LooseMode::Narrow)
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))?;
        Ok(Self {
            ikev1: Mutex::new(open_secret_file(&dir.join(IKEV1_TABLE))?),
            esp: Mutex::new(open_secret_file(&dir.join(ESP_TABLE))?),
        })
    }

    /// Records an ISAKMP SA's encryption key.
    pub fn log_ike_sa(&self, initiator_cookie: &[u8; 8], encryption_key: &[u8]) -> io::Result<()> {
        Self::append(&self.ikev1, &ikev1_line(initiator_cookie, encryption_key))
    }

    /// Records one ESP SA.
    pub fn log_esp_sa(&self, keys: &EspKeys<'_>) -> io::Result<()> {
        Self::append(&self.esp, &esp_line(keys))
    }

    fn append(file: &Mutex<File>, line: &str) -> io::Result<()> {
        let mut f = file.lock().map_err(|_| io::Error::other("key log lock poisoned"))?;
        // One write per line so concurrent readers never see half a line.
        f.write_all(format!("{line}\n").as_bytes())?;
        f.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ikev1_table_line() {
        let cky = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        assert_eq!(ikev1_line(&cky, &[0xde, 0xad, 0xbe, 0xef]), "0123456789abcdef,deadbeef");
    }

    #[test]
    fn esp_table_lines_use_wiresharks_names() {
        let gcm = EspKeys {
            source: "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4])),
            destination: "198.51.100.2".parse().unwrap_or(IpAddr::from([0; 4])),
            spi: 0xc0ffee,
            encryption: Some(EspEncryption::AesGcm16(128)),
            encryption_key: &[0x11; 16],
            salt: &[0xaa, 0xbb, 0xcc, 0xdd],
            integrity: None,
            integrity_key: &[],
        };
        assert_eq!(
            esp_line(&gcm),
            "\"IPv4\",\"192.0.2.1\",\"198.51.100.2\",\"0x00c0ffee\",\"AES-GCM with 16 octet ICV [RFC4106]\",\
             \"0x11111111111111111111111111111111aabbccdd\",\"NULL\",\"\""
        );
        let cbc = EspKeys {
            source: "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4])),
            destination: "2001:db8::2".parse().unwrap_or(IpAddr::from([0; 4])),
            spi: 0x12345678,
            encryption: Some(EspEncryption::AesCbc(256)),
            encryption_key: &[0x22; 32],
            salt: &[],
            integrity: Some(EspIntegrity::HmacSha256),
            integrity_key: &[0x33; 32],
        };
        assert_eq!(
            esp_line(&cbc),
            format!(
                "\"IPv6\",\"2001:db8::1\",\"2001:db8::2\",\"0x12345678\",\"AES-CBC [RFC3602]\",\"0x{}\",\
                 \"HMAC-SHA-256-128 [RFC4868]\",\"0x{}\"",
                "22".repeat(32),
                "33".repeat(32)
            )
        );
        assert_eq!(wireshark_integrity(Some(EspIntegrity::HmacSha1)), "HMAC-SHA-1-96 [RFC2404]");
        assert_eq!(wireshark_integrity(Some(EspIntegrity::HmacSha384)), "HMAC-SHA-384-192 [RFC4868]");
        assert_eq!(wireshark_integrity(Some(EspIntegrity::HmacSha512)), "HMAC-SHA-512-256 [RFC4868]");
        assert_eq!(wireshark_encryption(None), "NULL");
    }

    #[test]
    fn files_are_owner_only_and_appended() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kl_dir = dir.path().join("keys");
        // Left by an earlier run with the usual umask: a 0755 directory, a 0644 file with a
        // line in it. Both are narrowed, and the line is kept.
        std::fs::create_dir(&kl_dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&kl_dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let old = kl_dir.join(IKEV1_TABLE);
        std::fs::write(&old, "0000000000000000,00\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let log = KeyLog::open(&kl_dir).unwrap_or_else(|e| panic!("{e}"));
        log.log_ike_sa(&[1; 8], &[2; 16]).unwrap_or_else(|e| panic!("{e}"));
        log.log_ike_sa(&[3; 8], &[4; 16]).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(kl_dir.join(IKEV1_TABLE)).unwrap_or_default();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("0000000000000000,00\n0101010101010101,0202"));
        for f in [IKEV1_TABLE, ESP_TABLE] {
            let mode = std::fs::metadata(kl_dir.join(f)).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600, "{f}");
        }
        let mode = std::fs::metadata(&kl_dir).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn an_existing_file_is_narrowed_to_owner_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(ESP_TABLE);
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let _log = KeyLog::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
    }
}
