//! Algorithm names. `--enc` takes an ESP proposal as strongSwan writes one for a single SA
//! (`aes128gcm16`, `aes256-sha256`, `aes128-sha1-esn`): one cipher, at most one integrity
//! algorithm, optionally `esn` or `noesn`, joined by `-`. A bare cipher (`aes256`) takes its
//! integrity algorithm from `--integ`, as before. The keywords are the ones `iked` reads in
//! `esp_proposals`, limited to what the SA database can hold.

use sadb::{Cipher, Integ, SaConfig};

/// The algorithms of one SA, as `--enc` (and `--integ`) name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Algorithms {
    /// The cipher.
    pub cipher: Cipher,
    /// Its key length in bytes (without the GCM salt).
    pub key_len: usize,
    /// The integrity algorithm, if the proposal names one.
    pub integ: Option<Integ>,
    /// `esn` or `noesn`, if the proposal says.
    pub esn: Option<bool>,
}

/// A cipher keyword: `null`, `aes` / `aes128` / `aes192` / `aes256` (CBC), or AES-GCM as
/// `aes128gcm16`, `aes128gcm128` (the ICV in bits) or `aes128gcm`, with 192 and 256 alike.
fn cipher_keyword(w: &str) -> Option<Result<(Cipher, usize), String>> {
    let bytes = |bits: &str| match bits {
        "" | "128" => Some(16),
        "192" => Some(24),
        "256" => Some(32),
        _ => None,
    };
    if w == "null" {
        return Some(Ok((Cipher::Null, 0)));
    }
    let rest = w.strip_prefix("aes")?;
    let Some(at) = rest.find("gcm") else {
        return bytes(rest).map(|n| Ok((Cipher::AesCbc, n)));
    };
    let (bits, icv) = rest.split_at(at);
    let n = bytes(bits)?;
    Some(match icv.get(3..).unwrap_or("") {
        "" | "16" | "128" => Ok((Cipher::AesGcm16, n)),
        // RFC 4106 §6: the 16-octet ICV is the one that MUST be supported.
        "8" | "64" | "12" | "96" => {
            Err(format!("{w} is not supported: only AES-GCM with a 16-octet ICV (aes{}gcm16)", n * 8))
        }
        _ => return None,
    })
}

/// An integrity keyword: `sha1` (`sha`), `sha256` (`sha2_256`), `sha384`, `sha512`.
fn integ_keyword(w: &str) -> Option<Integ> {
    Some(match w {
        "sha1" | "sha" => Integ::HmacSha1_96,
        "sha256" | "sha2_256" => Integ::HmacSha256_128,
        "sha384" | "sha2_384" => Integ::HmacSha384_192,
        "sha512" | "sha2_512" => Integ::HmacSha512_256,
        _ => return None,
    })
}

/// Parses `--enc`.
pub(crate) fn parse_enc(s: &str) -> Result<Algorithms, String> {
    let text = s.trim().to_ascii_lowercase();
    let mut cipher = None;
    let mut integ = None;
    let mut esn = None;
    for w in text.split('-') {
        if w.is_empty() {
            return Err(format!("{s:?} has an empty keyword"));
        }
        if let Some(c) = cipher_keyword(w) {
            if cipher.replace(c?).is_some() {
                return Err("an SA has one cipher; give one proposal per SA".into());
            }
        } else if let Some(i) = integ_keyword(w) {
            if integ.replace(i).is_some() {
                return Err("an SA has one integrity algorithm".into());
            }
        } else if w == "esn" || w == "noesn" {
            esn = Some(w == "esn");
        } else if ["modp", "ecp", "curve", "x25519", "x448"].iter().any(|p| w.starts_with(p)) {
            return Err(format!("{w} is a Diffie-Hellman group: IKE uses it, an SA has none"));
        } else if w.starts_with("sha") || w.starts_with("md5") || w.starts_with("aes") {
            return Err(format!("{w} is not supported"));
        } else {
            return Err(format!(
                "unknown algorithm {w:?}; e.g. aes128gcm16, aes256-sha256, null-sha256, or aes256 with --integ"
            ));
        }
    }
    let Some((cipher, key_len)) = cipher else {
        return Err(format!("{s:?} names no cipher (e.g. aes128gcm16 or aes256-sha256)"));
    };
    if cipher == Cipher::AesGcm16 && integ.is_some() {
        return Err("AES-GCM authenticates itself; name no integrity algorithm".into());
    }
    Ok(Algorithms { cipher, key_len, integ, esn })
}

/// Parses `--integ`.
pub(crate) fn parse_integ(s: &str) -> Result<Integ, String> {
    integ_keyword(&s.trim().to_ascii_lowercase())
        .ok_or_else(|| format!("{s:?} is not sha1, sha256, sha384 or sha512"))
}

/// The key length of an integrity algorithm in bytes.
pub(crate) fn integ_key_len(i: Integ) -> usize {
    match i {
        Integ::None => 0,
        Integ::HmacSha1_96 => 20,
        Integ::HmacSha256_128 => 32,
        Integ::HmacSha384_192 => 48,
        Integ::HmacSha512_256 => 64,
    }
}

/// The cipher's keyword, as `--enc` takes it.
pub(crate) fn enc_name(c: &SaConfig) -> &'static str {
    match (Cipher::from_code(c.cipher), c.cipher_key_len) {
        (Some(Cipher::AesGcm16), 16) => "aes128gcm16",
        (Some(Cipher::AesGcm16), 24) => "aes192gcm16",
        (Some(Cipher::AesGcm16), _) => "aes256gcm16",
        (Some(Cipher::AesCbc), 16) => "aes128",
        (Some(Cipher::AesCbc), 24) => "aes192",
        (Some(Cipher::AesCbc), _) => "aes256",
        (Some(Cipher::Null), _) => "null",
        (None, _) => "?",
    }
}

/// The integrity algorithm's keyword, `-` for none.
pub(crate) fn integ_name(c: &SaConfig) -> &'static str {
    match Integ::from_code(c.integ) {
        Some(Integ::None) => "-",
        Some(Integ::HmacSha1_96) => "sha1",
        Some(Integ::HmacSha256_128) => "sha256",
        Some(Integ::HmacSha384_192) => "sha384",
        Some(Integ::HmacSha512_256) => "sha512",
        None => "?",
    }
}

/// The SA's algorithms as one strongSwan proposal: `aes128gcm16`, `aes256-sha256`.
pub(crate) fn proposal_name(c: &SaConfig) -> String {
    match integ_name(c) {
        "-" => enc_name(c).to_owned(),
        i => format!("{}-{i}", enc_name(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn algs(s: &str) -> (Cipher, usize, Option<Integ>, Option<bool>) {
        let a = parse_enc(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (a.cipher, a.key_len, a.integ, a.esn)
    }

    #[test]
    fn strongswan_keywords_and_aliases() {
        use Cipher::*;
        use Integ as I;
        for (s, want) in [
            ("aes128gcm16", (AesGcm16, 16, None, None)),
            ("aes128gcm128", (AesGcm16, 16, None, None)),
            ("aes128gcm", (AesGcm16, 16, None, None)),
            ("aes192gcm16", (AesGcm16, 24, None, None)),
            ("aes192gcm128", (AesGcm16, 24, None, None)),
            ("aes256gcm16", (AesGcm16, 32, None, None)),
            ("aes256gcm128", (AesGcm16, 32, None, None)),
            ("AES256GCM16-ESN", (AesGcm16, 32, None, Some(true))),
            ("aes128", (AesCbc, 16, None, None)),
            ("aes", (AesCbc, 16, None, None)),
            ("aes128-sha1", (AesCbc, 16, Some(I::HmacSha1_96), None)),
            ("aes128-sha", (AesCbc, 16, Some(I::HmacSha1_96), None)),
            ("aes192-sha256", (AesCbc, 24, Some(I::HmacSha256_128), None)),
            ("aes256-sha256", (AesCbc, 32, Some(I::HmacSha256_128), None)),
            ("aes256-sha2_256", (AesCbc, 32, Some(I::HmacSha256_128), None)),
            ("aes256-sha384", (AesCbc, 32, Some(I::HmacSha384_192), None)),
            ("aes256-sha512-noesn", (AesCbc, 32, Some(I::HmacSha512_256), Some(false))),
            ("sha256-aes256", (AesCbc, 32, Some(I::HmacSha256_128), None)),
            ("null-sha256", (Null, 0, Some(I::HmacSha256_128), None)),
        ] {
            assert_eq!(algs(s), want, "{s}");
        }
    }

    #[test]
    fn refusals_say_why() {
        for (s, why) in [
            ("aes128gcm8", "only AES-GCM with a 16-octet ICV (aes128gcm16)"),
            ("aes256gcm96", "only AES-GCM with a 16-octet ICV (aes256gcm16)"),
            ("aes128gcm16-sha256", "AES-GCM authenticates itself"),
            ("aes128-aes256-sha1", "one cipher"),
            ("aes128-sha1-sha256", "one integrity algorithm"),
            ("aes128-sha256-modp2048", "modp2048 is a Diffie-Hellman group"),
            ("sha256", "names no cipher"),
            ("aes128--sha1", "empty keyword"),
            ("3des-sha1", "unknown algorithm \"3des\""),
            ("aes128ctr-sha1", "aes128ctr is not supported"),
            ("aes128-sha256_96", "sha256_96 is not supported"),
        ] {
            let e = parse_enc(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e:?} lacks {why:?}");
        }
        assert_eq!(parse_integ("SHA384"), Ok(Integ::HmacSha384_192));
        assert!(parse_integ("md5").unwrap_err().contains("not sha1, sha256"));
    }
}
