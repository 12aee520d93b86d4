//! Proposal strings in strongSwan's keyword syntax.
//!
//! A proposal is a `-`-separated list of algorithm keywords in any order;
//! several algorithms of one kind are allowed and expand to their cross
//! product, as strongSwan does (`aes128-aes256-sha256-modp2048-ecp256` is
//! four IKE transforms). `default` alone stands for our default proposal.
//!
//! IKEv1 has no AEAD for phase 1, so AES-GCM is refused in `proposals`; its
//! PRF is the HMAC of the negotiated hash (RFC 2409 §4), so a `prf*` keyword
//! must name one of the proposal's hashes.

use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
use ike::engine::{EspEncryption, EspIntegrity, EspProposal, IkeProposal};

/// Our default IKE proposal (`proposals = default`).
pub const DEFAULT_IKE_PROPOSAL: &str = "aes128-aes256-sha256-sha384-ecp256-curve25519-modp3072-modp2048";
/// Our default ESP proposals (`esp_proposals = default`): one AEAD, one classic.
pub const DEFAULT_ESP_PROPOSALS: [&str; 2] = ["aes128gcm16-aes256gcm16", "aes128-aes256-sha256-sha384"];

/// Keywords strongSwan knows that we deliberately do not implement.
const UNSUPPORTED: &[&str] = &[
    "3des",
    "des",
    "blowfish",
    "cast128",
    "camellia128",
    "camellia192",
    "camellia256",
    "twofish",
    "serpent",
    "chacha20poly1305",
    "md5",
    "md5_128",
    "aesxcbc",
    "aescmac",
    "sha256_96",
    "modp768",
    "modp1024s160",
    "modp2048s224",
    "modp2048s256",
    "ecp192",
    "ecp224",
    "ecp224bp",
    "ecp256bp",
    "ecp384bp",
    "ecp512bp",
    "curve448",
    "x448",
    "aes128ctr",
    "aes192ctr",
    "aes256ctr",
    "aes128ccm16",
    "aes192ccm16",
    "aes256ccm16",
    "aes128gmac",
    "aes192gmac",
    "aes256gmac",
    "prfmd5",
    "prfaesxcbc",
    "prfaescmac",
];

/// ESP encryption as written in the configuration. [`EspCipher::Null`] is
/// parsed so it can be refused by name; the engine has no ESP_NULL yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspCipher {
    /// ESP_NULL (RFC 2410): integrity only.
    Null,
    /// AES-CBC with this key size in bits.
    AesCbc(u16),
    /// AES-GCM with a 16-octet ICV and this key size in bits.
    AesGcm16(u16),
}

impl EspCipher {
    /// The engine's transform, if the engine has one.
    pub fn to_engine(self) -> Option<EspEncryption> {
        match self {
            Self::Null => None,
            Self::AesCbc(b) => Some(EspEncryption::AesCbc(b)),
            Self::AesGcm16(b) => Some(EspEncryption::AesGcm16(b)),
        }
    }

    fn is_aead(self) -> bool {
        matches!(self, Self::AesGcm16(_))
    }
}

/// One ESP transform: a single choice of each algorithm kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspTransform {
    /// Encryption.
    pub encryption: EspCipher,
    /// Integrity; `None` with AES-GCM.
    pub integrity: Option<EspIntegrity>,
    /// PFS group for Quick Mode, if any.
    pub dh_group: Option<DhGroup>,
    /// Extended sequence numbers (RFC 4304).
    pub esn: bool,
}

impl EspTransform {
    /// The engine's proposal (without the PFS group, which the engine keeps
    /// per child), or `None` for ESP_NULL.
    pub fn to_engine(&self) -> Option<EspProposal> {
        Some(EspProposal {
            encryption: self.encryption.to_engine()?,
            integrity: self.integrity,
            esn: self.esn,
        })
    }
}

/// A proposal string and the transforms it expands to, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal<T> {
    /// As written (`default` expanded).
    pub text: String,
    /// The cross product.
    pub transforms: Vec<T>,
}

fn dh_keyword(word: &str) -> Option<DhGroup> {
    Some(match word {
        "modp1024" => DhGroup::Modp1024,
        "modp1536" => DhGroup::Modp1536,
        "modp2048" => DhGroup::Modp2048,
        "modp3072" => DhGroup::Modp3072,
        "modp4096" => DhGroup::Modp4096,
        "modp6144" => DhGroup::Modp6144,
        "modp8192" => DhGroup::Modp8192,
        "ecp256" => DhGroup::Ecp256,
        "ecp384" => DhGroup::Ecp384,
        "ecp521" => DhGroup::Ecp521,
        "curve25519" | "x25519" => DhGroup::Curve25519,
        _ => return None,
    })
}

fn hash_keyword(word: &str) -> Option<HashAlgorithm> {
    Some(match word {
        "sha1" | "sha" => HashAlgorithm::Sha1,
        "sha256" | "sha2_256" => HashAlgorithm::Sha256,
        "sha384" | "sha2_384" => HashAlgorithm::Sha384,
        "sha512" | "sha2_512" => HashAlgorithm::Sha512,
        _ => return None,
    })
}

fn esp_integrity(h: HashAlgorithm) -> EspIntegrity {
    match h {
        HashAlgorithm::Sha1 => EspIntegrity::HmacSha1,
        HashAlgorithm::Sha256 => EspIntegrity::HmacSha256,
        HashAlgorithm::Sha384 => EspIntegrity::HmacSha384,
        HashAlgorithm::Sha512 => EspIntegrity::HmacSha512,
    }
}

fn aes_bits(word: &str) -> Option<u16> {
    match word {
        "aes" | "aes128" => Some(128),
        "aes192" => Some(192),
        "aes256" => Some(256),
        _ => None,
    }
}

/// `aes128gcm16`, `aes256gcm128` (ICV in bits), `aes128gcm` (16 octets).
fn gcm_keyword(word: &str) -> Option<Result<u16, String>> {
    let rest = word.strip_prefix("aes")?;
    let gcm = rest.find("gcm")?;
    let (bits, icv) = rest.split_at(gcm);
    let icv = icv.get(3..).unwrap_or("");
    let bits = match bits {
        "" | "128" => 128,
        "192" => 192,
        "256" => 256,
        _ => return None,
    };
    Some(match icv {
        "" | "16" | "128" => Ok(bits),
        "8" | "64" | "12" | "96" => {
            Err(format!("`{word}` is not supported: only AES-GCM with a 16-octet ICV (e.g. aes{bits}gcm16)"))
        }
        _ => return None,
    })
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn unknown(word: &str, text: &str) -> String {
    if UNSUPPORTED.contains(&word) {
        format!("algorithm `{word}` in proposal `{text}` is not supported")
    } else {
        format!("unknown keyword `{word}` in proposal `{text}`")
    }
}

fn words(text: &str) -> Result<Vec<String>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty proposal".to_owned());
    }
    let ws: Vec<String> = t.split('-').map(|w| w.trim().to_ascii_lowercase()).collect();
    if ws.iter().any(String::is_empty) {
        return Err(format!("empty keyword in proposal `{text}`"));
    }
    Ok(ws)
}

/// Parses one IKE (phase 1) proposal into its transforms.
pub fn parse_ike_proposal(text: &str) -> Result<Proposal<IkeProposal>, String> {
    if text.trim() == "default" {
        let mut p = parse_ike_proposal(DEFAULT_IKE_PROPOSAL)?;
        p.text = DEFAULT_IKE_PROPOSAL.to_owned();
        return Ok(p);
    }
    let mut ciphers = Vec::new();
    let mut hashes = Vec::new();
    let mut prfs = Vec::new();
    let mut groups = Vec::new();
    for w in words(text)? {
        if let Some(bits) = aes_bits(&w) {
            match Cipher::aes_cbc(bits) {
                Some(c) => push_unique(&mut ciphers, c),
                None => return Err(unknown(&w, text)),
            }
        } else if gcm_keyword(&w).is_some() {
            return Err(format!(
                "`{w}` in proposal `{text}`: AES-GCM cannot be used for IKEv1 (phase 1 has no AEAD); \
                 use e.g. aes256-sha256-modp2048"
            ));
        } else if let Some(h) = hash_keyword(&w) {
            push_unique(&mut hashes, h);
        } else if let Some(h) = w.strip_prefix("prf").and_then(hash_keyword) {
            push_unique(&mut prfs, (w.clone(), h));
        } else if let Some(g) = dh_keyword(&w) {
            push_unique(&mut groups, g);
        } else if w == "esn" || w == "noesn" {
            return Err(format!(
                "`{w}` in proposal `{text}` belongs in esp_proposals, not in an IKE proposal"
            ));
        } else {
            return Err(unknown(&w, text));
        }
    }
    if ciphers.is_empty() {
        return Err(format!("proposal `{text}` has no encryption algorithm (e.g. aes256)"));
    }
    if hashes.is_empty() {
        // strongSwan accepts a PRF alone for IKEv1 and uses it as the hash.
        hashes.extend(prfs.iter().map(|(_, h)| *h));
        if hashes.is_empty() {
            return Err(format!("proposal `{text}` has no hash algorithm (e.g. sha256)"));
        }
    }
    if let Some((w, _)) = prfs.iter().find(|(_, h)| !hashes.contains(h)) {
        return Err(format!(
            "`{w}` in proposal `{text}`: IKEv1 uses the HMAC of the hash algorithm as PRF, \
             so the PRF must match one of the proposal's hashes"
        ));
    }
    if groups.is_empty() {
        return Err(format!("proposal `{text}` has no DH group (IKEv1 needs one, e.g. modp2048)"));
    }
    let mut transforms = Vec::new();
    for &cipher in &ciphers {
        for &hash in &hashes {
            for &group in &groups {
                transforms.push(IkeProposal { cipher, hash, group });
            }
        }
    }
    Ok(Proposal { text: text.trim().to_owned(), transforms })
}

/// Parses one ESP proposal into its transforms.
pub fn parse_esp_proposal(text: &str) -> Result<Proposal<EspTransform>, String> {
    let mut ciphers = Vec::new();
    let mut integrity = Vec::new();
    let mut groups = Vec::new();
    let mut esns = Vec::new();
    for w in words(text)? {
        if let Some(bits) = aes_bits(&w) {
            push_unique(&mut ciphers, EspCipher::AesCbc(bits));
        } else if let Some(gcm) = gcm_keyword(&w) {
            push_unique(&mut ciphers, EspCipher::AesGcm16(gcm?));
        } else if w == "null" {
            push_unique(&mut ciphers, EspCipher::Null);
        } else if let Some(h) = hash_keyword(&w) {
            push_unique(&mut integrity, esp_integrity(h));
        } else if let Some(g) = dh_keyword(&w) {
            push_unique(&mut groups, g);
        } else if w == "esn" {
            push_unique(&mut esns, true);
        } else if w == "noesn" {
            push_unique(&mut esns, false);
        } else if w.starts_with("prf") {
            return Err(format!(
                "`{w}` in proposal `{text}`: a PRF belongs in an IKE proposal, not in esp_proposals"
            ));
        } else {
            return Err(unknown(&w, text));
        }
    }
    if ciphers.is_empty() {
        return Err(format!(
            "proposal `{text}` has no encryption algorithm (e.g. aes128gcm16, aes256 or null)"
        ));
    }
    let aead = ciphers.iter().any(|c| c.is_aead());
    if aead && ciphers.iter().any(|c| !c.is_aead()) {
        return Err(format!(
            "proposal `{text}` mixes AES-GCM with non-AEAD encryption; write them as separate proposals"
        ));
    }
    if aead && !integrity.is_empty() {
        return Err(format!(
            "proposal `{text}`: AES-GCM provides integrity itself; remove the integrity algorithm"
        ));
    }
    if !aead && integrity.is_empty() {
        return Err(format!("proposal `{text}` has no integrity algorithm (e.g. sha256)"));
    }
    let integrity: Vec<Option<EspIntegrity>> =
        if aead { vec![None] } else { integrity.into_iter().map(Some).collect() };
    let groups: Vec<Option<DhGroup>> =
        if groups.is_empty() { vec![None] } else { groups.into_iter().map(Some).collect() };
    if esns.is_empty() {
        esns.push(false);
    }
    let mut transforms = Vec::new();
    for &encryption in &ciphers {
        for &integ in &integrity {
            for &dh_group in &groups {
                for &esn in &esns {
                    transforms.push(EspTransform { encryption, integrity: integ, dh_group, esn });
                }
            }
        }
    }
    Ok(Proposal { text: text.trim().to_owned(), transforms })
}

/// strongSwan's name of a DH group (`MODP_2048`, `ECP_256`, `CURVE_25519`).
pub fn dh_group_name(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Modp1024 => "MODP_1024",
        DhGroup::Modp1536 => "MODP_1536",
        DhGroup::Modp2048 => "MODP_2048",
        DhGroup::Modp3072 => "MODP_3072",
        DhGroup::Modp4096 => "MODP_4096",
        DhGroup::Modp6144 => "MODP_6144",
        DhGroup::Modp8192 => "MODP_8192",
        DhGroup::Ecp256 => "ECP_256",
        DhGroup::Ecp384 => "ECP_384",
        DhGroup::Ecp521 => "ECP_521",
        DhGroup::Curve25519 => "CURVE_25519",
    }
}

/// strongSwan's name of a hash as integrity algorithm.
pub fn integrity_name(h: EspIntegrity) -> &'static str {
    match h {
        EspIntegrity::HmacSha1 => "HMAC_SHA1_96",
        EspIntegrity::HmacSha256 => "HMAC_SHA2_256_128",
        EspIntegrity::HmacSha384 => "HMAC_SHA2_384_192",
        EspIntegrity::HmacSha512 => "HMAC_SHA2_512_256",
    }
}

/// strongSwan's name of a hash as PRF.
pub fn prf_name(h: HashAlgorithm) -> &'static str {
    match h {
        HashAlgorithm::Sha1 => "PRF_HMAC_SHA1",
        HashAlgorithm::Sha256 => "PRF_HMAC_SHA2_256",
        HashAlgorithm::Sha384 => "PRF_HMAC_SHA2_384",
        HashAlgorithm::Sha512 => "PRF_HMAC_SHA2_512",
    }
}

/// `AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048`, as
/// `swanctl --list-sas` prints an IKE SA's algorithms.
pub fn ike_transform_name(p: &IkeProposal) -> String {
    let integ = esp_integrity(p.hash);
    format!(
        "AES_CBC-{}/{}/{}/{}",
        p.cipher.key_bits(),
        integrity_name(integ),
        prf_name(p.hash),
        dh_group_name(p.group)
    )
}

/// `AES_GCM_16-128/MODP_2048` or `AES_CBC-256/HMAC_SHA2_256_128/ESN`.
pub fn esp_transform_name(t: &EspTransform) -> String {
    let mut s = match t.encryption {
        EspCipher::Null => "NULL".to_owned(),
        EspCipher::AesCbc(b) => format!("AES_CBC-{b}"),
        EspCipher::AesGcm16(b) => format!("AES_GCM_16-{b}"),
    };
    if let Some(i) = t.integrity {
        s.push('/');
        s.push_str(integrity_name(i));
    }
    if let Some(g) = t.dh_group {
        s.push('/');
        s.push_str(dh_group_name(g));
    }
    if t.esn {
        s.push_str("/ESN");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(text: &str) -> Vec<IkeProposal> {
        match parse_ike_proposal(text) {
            Ok(p) => p.transforms,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn esp(text: &str) -> Vec<EspTransform> {
        match parse_esp_proposal(text) {
            Ok(p) => p.transforms,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn ike_keywords_map_to_groups_by_iana_number() {
        let cases: &[(&str, u16)] = &[
            ("modp1024", 2),
            ("modp1536", 5),
            ("modp2048", 14),
            ("modp3072", 15),
            ("modp4096", 16),
            ("modp6144", 17),
            ("modp8192", 18),
            ("ecp256", 19),
            ("ecp384", 20),
            ("ecp521", 21),
            ("curve25519", 31),
            ("x25519", 31),
        ];
        for (kw, id) in cases {
            let t = ike(&format!("aes128-sha256-{kw}"));
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].group.id(), *id, "{kw}");
        }
    }

    /// strongSwan's `cipher-integrity[-prf]-dhgroup` keywords, any case,
    /// give the one IKE proposal they name.
    #[test]
    fn strongswan_style_ike_proposals() {
        let t = ike("aes256-sha512-modp4096");
        assert_eq!(
            t,
            vec![IkeProposal {
                cipher: Cipher::Aes256Cbc,
                hash: HashAlgorithm::Sha512,
                group: DhGroup::Modp4096
            }]
        );
        assert_eq!(ike("aes192-sha1-modp1536")[0].cipher, Cipher::Aes192Cbc);
        assert_eq!(ike("aes256-sha384-ecp384")[0].hash, HashAlgorithm::Sha384);
        assert_eq!(ike("aes128-sha256-prfsha256-modp2048").len(), 1);
        assert_eq!(ike("AES128-SHA256-MODP2048").len(), 1, "keywords are case-insensitive");
    }

    #[test]
    fn several_algorithms_expand_to_the_cross_product_in_order() {
        let t = ike("aes128-aes256-sha256-sha1-modp2048-ecp256");
        assert_eq!(t.len(), 8);
        assert_eq!(
            t[0],
            IkeProposal { cipher: Cipher::Aes128Cbc, hash: HashAlgorithm::Sha256, group: DhGroup::Modp2048 }
        );
        assert_eq!(t[1].group, DhGroup::Ecp256);
        assert_eq!(t[2].hash, HashAlgorithm::Sha1);
        assert_eq!(
            t[7],
            IkeProposal { cipher: Cipher::Aes256Cbc, hash: HashAlgorithm::Sha1, group: DhGroup::Ecp256 }
        );
        assert_eq!(ike("default").len(), 2 * 2 * 4);
    }

    #[test]
    fn ike_proposal_errors() {
        let cases: &[(&str, &str)] = &[
            ("aes128gcm16-sha256-modp2048", "`aes128gcm16` in proposal `aes128gcm16-sha256-modp2048`: AES-GCM cannot be used for IKEv1 (phase 1 has no AEAD); use e.g. aes256-sha256-modp2048"),
            ("aes128-sha256", "proposal `aes128-sha256` has no DH group (IKEv1 needs one, e.g. modp2048)"),
            ("aes128-modp2048", "proposal `aes128-modp2048` has no hash algorithm (e.g. sha256)"),
            ("sha256-modp2048", "proposal `sha256-modp2048` has no encryption algorithm (e.g. aes256)"),
            ("aes128-sha256-modp2047", "unknown keyword `modp2047` in proposal `aes128-sha256-modp2047`"),
            ("3des-sha1-modp1024", "algorithm `3des` in proposal `3des-sha1-modp1024` is not supported"),
            ("aes128-sha256-prfsha384-modp2048", "`prfsha384` in proposal `aes128-sha256-prfsha384-modp2048`: IKEv1 uses the HMAC of the hash algorithm as PRF, so the PRF must match one of the proposal's hashes"),
            ("aes128--modp2048", "empty keyword in proposal `aes128--modp2048`"),
            ("", "empty proposal"),
        ];
        for (text, msg) in cases {
            assert_eq!(parse_ike_proposal(text).err().as_deref(), Some(*msg), "{text}");
        }
    }

    #[test]
    fn aes192_esp_proposals() {
        assert_eq!(esp("aes192gcm16")[0].encryption, EspCipher::AesGcm16(192));
        assert_eq!(esp("aes192gcm128")[0].encryption, EspCipher::AesGcm16(192));
        let t = esp("aes192-sha256");
        assert_eq!(
            (t[0].encryption, t[0].integrity),
            (EspCipher::AesCbc(192), Some(EspIntegrity::HmacSha256))
        );
        assert_eq!(EspCipher::AesGcm16(192).to_engine(), Some(EspEncryption::AesGcm16(192)));
        assert_eq!(EspCipher::AesCbc(192).to_engine(), Some(EspEncryption::AesCbc(192)));
    }

    /// strongSwan's ESP keywords: AEAD and CBC+HMAC ciphers, null, the ICV
    /// length spelled either way, a PFS group, ESN and its absence, and
    /// several of a kind expanding to their combinations.
    #[test]
    fn strongswan_style_esp_proposals() {
        assert_eq!(
            esp("aes128gcm16-modp2048"),
            vec![EspTransform {
                encryption: EspCipher::AesGcm16(128),
                integrity: None,
                dh_group: Some(DhGroup::Modp2048),
                esn: false
            }]
        );
        assert_eq!(esp("aes128gcm128"), esp("aes128gcm16"));
        assert_eq!(esp("aes256gcm16")[0].encryption, EspCipher::AesGcm16(256));
        assert_eq!(esp("aes128-sha1")[0].integrity, Some(EspIntegrity::HmacSha1));
        assert_eq!(esp("aes256-sha256")[0].integrity, Some(EspIntegrity::HmacSha256));
        assert_eq!(esp("aes256-sha384")[0].integrity, Some(EspIntegrity::HmacSha384));
        assert_eq!(esp("aes256-sha512")[0].integrity, Some(EspIntegrity::HmacSha512));
        assert_eq!(esp("null-sha256")[0].encryption, EspCipher::Null);
        assert!(esp("aes128-sha256-esn")[0].esn);
        assert_eq!(esp("aes128-sha256-esn-noesn").len(), 2);
        assert_eq!(esp("aes128-aes256-sha256-sha1-modp2048").len(), 4);
    }

    #[test]
    fn esp_transforms_map_onto_the_engine() {
        let t = esp("aes256-sha256")[0];
        assert_eq!(
            t.to_engine(),
            Some(EspProposal {
                encryption: EspEncryption::AesCbc(256),
                integrity: Some(EspIntegrity::HmacSha256),
                esn: false,
            })
        );
        assert_eq!(esp("null-sha256")[0].to_engine(), None);
        // ESN reaches the engine as its own alternative, in the order written.
        let esn: Vec<bool> =
            esp("aes128gcm16-esn-noesn").iter().filter_map(|t| t.to_engine()).map(|p| p.esn).collect();
        assert_eq!(esn, vec![true, false]);
        assert_eq!(esp("aes128gcm16")[0].to_engine().map(|p| p.esn), Some(false), "noesn by default");
    }

    #[test]
    fn esp_proposal_errors() {
        let cases: &[(&str, &str)] = &[
            ("aes128gcm16-sha256", "proposal `aes128gcm16-sha256`: AES-GCM provides integrity itself; remove the integrity algorithm"),
            ("aes128", "proposal `aes128` has no integrity algorithm (e.g. sha256)"),
            ("null", "proposal `null` has no integrity algorithm (e.g. sha256)"),
            ("aes128gcm16-aes128-sha256", "proposal `aes128gcm16-aes128-sha256` mixes AES-GCM with non-AEAD encryption; write them as separate proposals"),
            ("aes128gcm12", "`aes128gcm12` is not supported: only AES-GCM with a 16-octet ICV (e.g. aes128gcm16)"),
            ("aes128-sha256-prfsha256", "`prfsha256` in proposal `aes128-sha256-prfsha256`: a PRF belongs in an IKE proposal, not in esp_proposals"),
            ("aes128gcm16-modp9999", "unknown keyword `modp9999` in proposal `aes128gcm16-modp9999`"),
            ("sha256", "proposal `sha256` has no encryption algorithm (e.g. aes128gcm16, aes256 or null)"),
        ];
        for (text, msg) in cases {
            assert_eq!(parse_esp_proposal(text).err().as_deref(), Some(*msg), "{text}");
        }
    }

    #[test]
    fn names_as_swanctl_prints_them() {
        assert_eq!(
            ike_transform_name(&ike("aes128-sha256-modp2048")[0]),
            "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
        );
        assert_eq!(esp_transform_name(&esp("aes128gcm16-modp2048")[0]), "AES_GCM_16-128/MODP_2048");
        assert_eq!(esp_transform_name(&esp("aes256-sha512-esn")[0]), "AES_CBC-256/HMAC_SHA2_512_256/ESN");
    }
}
