//! strongSwan proposal strings (`aes128-sha256-modp2048`,
//! `aes128gcm16-modp2048`) for the two proposals the benchmark uses, parsed
//! into the engine's types. Only one algorithm of each kind per string: the
//! generator offers exactly one transform, so that every responder is
//! measured on the same one.

use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
use ike::engine::{EspEncryption, EspIntegrity, EspProposal, IkeProposal};

/// A DH group by strongSwan keyword.
fn group(word: &str) -> Option<DhGroup> {
    let id = match word {
        "modp1024" => 2,
        "modp1536" => 5,
        "modp2048" => 14,
        "modp3072" => 15,
        "modp4096" => 16,
        "modp6144" => 17,
        "modp8192" => 18,
        "ecp256" => 19,
        "ecp384" => 20,
        "ecp521" => 21,
        "curve25519" | "x25519" => 31,
        _ => return None,
    };
    DhGroup::from_id(id)
}

fn hash(word: &str) -> Option<HashAlgorithm> {
    Some(match word {
        "sha1" | "sha" => HashAlgorithm::Sha1,
        "sha256" | "sha2_256" => HashAlgorithm::Sha256,
        "sha384" => HashAlgorithm::Sha384,
        "sha512" => HashAlgorithm::Sha512,
        _ => return None,
    })
}

fn integrity(word: &str) -> Option<EspIntegrity> {
    Some(match word {
        "sha1" | "sha" => EspIntegrity::HmacSha1,
        "sha256" | "sha2_256" => EspIntegrity::HmacSha256,
        "sha384" => EspIntegrity::HmacSha384,
        "sha512" => EspIntegrity::HmacSha512,
        _ => return None,
    })
}

fn cbc_bits(word: &str) -> Option<u16> {
    match word {
        "aes128" | "aes" => Some(128),
        "aes192" => Some(192),
        "aes256" => Some(256),
        _ => None,
    }
}

fn gcm_bits(word: &str) -> Option<u16> {
    match word {
        "aes128gcm16" | "aes128gcm128" | "aes128gcm" => Some(128),
        "aes192gcm16" | "aes192gcm128" | "aes192gcm" => Some(192),
        "aes256gcm16" | "aes256gcm128" | "aes256gcm" => Some(256),
        _ => None,
    }
}

/// Sets `slot` once; a second algorithm of the same kind is an error.
fn once<T>(slot: &mut Option<T>, value: T, text: &str, kind: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("`{text}`: one {kind} only (the generator offers a single transform)"));
    }
    *slot = Some(value);
    Ok(())
}

/// An IKE proposal: encryption, hash and DH group, e.g. `aes128-sha256-ecp256`.
pub fn parse_ike(text: &str) -> Result<IkeProposal, String> {
    let (mut cipher, mut h, mut g) = (None, None, None);
    for word in text.to_ascii_lowercase().split('-') {
        if let Some(bits) = cbc_bits(word) {
            let c = Cipher::aes_cbc(bits).ok_or_else(|| format!("`{text}`: bad key size"))?;
            once(&mut cipher, c, text, "encryption algorithm")?;
        } else if let Some(x) = hash(word) {
            once(&mut h, x, text, "hash")?;
        } else if let Some(x) = group(word) {
            once(&mut g, x, text, "DH group")?;
        } else {
            return Err(format!("`{text}`: unknown or unsupported IKE keyword `{word}`"));
        }
    }
    match (cipher, h, g) {
        (Some(cipher), Some(hash), Some(group)) => Ok(IkeProposal { cipher, hash, group }),
        _ => Err(format!("`{text}`: an IKE proposal needs encryption, hash and DH group")),
    }
}

/// An ESP proposal with an optional PFS group, e.g. `aes128gcm16-modp2048`
/// or `aes128-sha256-modp2048`.
pub fn parse_esp(text: &str) -> Result<(EspProposal, Option<DhGroup>), String> {
    let (mut encryption, mut integ, mut pfs) = (None, None, None);
    for word in text.to_ascii_lowercase().split('-') {
        if let Some(bits) = gcm_bits(word) {
            once(&mut encryption, EspEncryption::AesGcm16(bits), text, "encryption algorithm")?;
        } else if let Some(bits) = cbc_bits(word) {
            once(&mut encryption, EspEncryption::AesCbc(bits), text, "encryption algorithm")?;
        } else if let Some(x) = integrity(word) {
            once(&mut integ, x, text, "integrity algorithm")?;
        } else if let Some(x) = group(word) {
            once(&mut pfs, x, text, "PFS group")?;
        } else {
            return Err(format!("`{text}`: unknown or unsupported ESP keyword `{word}`"));
        }
    }
    match (encryption, integ) {
        (Some(e @ EspEncryption::AesGcm16(_)), None) => {
            Ok((EspProposal { encryption: e, integrity: None, esn: false }, pfs))
        }
        (Some(EspEncryption::AesGcm16(_)), Some(_)) => {
            Err(format!("`{text}`: AES-GCM takes no integrity algorithm"))
        }
        (Some(e @ EspEncryption::AesCbc(_)), Some(i)) => {
            Ok((EspProposal { encryption: e, integrity: Some(i), esn: false }, pfs))
        }
        (Some(EspEncryption::AesCbc(_)), None) => {
            Err(format!("`{text}`: AES-CBC needs an integrity algorithm"))
        }
        (None, _) => Err(format!("`{text}`: an ESP proposal needs an encryption algorithm")),
    }
}

/// The ESP proposal used with an IKE proposal when none is given:
/// AES-128-GCM-16 with the IKE proposal's group as PFS group.
pub fn default_esp(ike: &str) -> Result<String, String> {
    let dh = ike
        .split('-')
        .find(|w| group(&w.to_ascii_lowercase()).is_some())
        .ok_or_else(|| format!("`{ike}`: no DH group"))?;
    Ok(format!("aes128gcm16-{dh}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_proposals() {
        let p = parse_ike("aes128-sha256-modp2048").unwrap();
        assert_eq!(p.group.id(), 14);
        assert_eq!(p.hash, HashAlgorithm::Sha256);
        assert_eq!(p.cipher.key_bits(), 128);
        assert_eq!(parse_ike("aes128-sha256-ecp256").unwrap().group.id(), 19);
        let (e, pfs) = parse_esp("aes128gcm16-modp2048").unwrap();
        assert_eq!(e, EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None, esn: false });
        assert_eq!(pfs.map(DhGroup::id), Some(14));
        let (e, pfs) = parse_esp("aes128-sha256-modp2048").unwrap();
        assert_eq!(e.integrity, Some(EspIntegrity::HmacSha256));
        assert_eq!(pfs.map(DhGroup::id), Some(14));
        assert_eq!(parse_esp("aes256gcm16").unwrap().1, None);
        assert_eq!(default_esp("aes128-sha256-ecp256").unwrap(), "aes128gcm16-ecp256");
    }

    #[test]
    fn refused() {
        for bad in [
            "aes128-sha256",
            "aes128-aes256-sha256-modp2048",
            "aes128gcm16-sha256-modp2048",
            "3des-md5-modp1024",
            "",
        ] {
            assert!(parse_ike(bad).is_err(), "{bad}");
        }
        for bad in ["aes128gcm16-sha256", "aes128-modp2048", "sha256", "aes128gcm16-modp2048-ecp256"] {
            assert!(parse_esp(bad).is_err(), "{bad}");
        }
    }
}
