//! Every ICV, tag and HASH the gateway verifies is compared in constant time.
//!
//! A source audit over the crates that verify: this crate (ESP ICVs, both backends' adapters),
//! `ffi/ipsec-mb` (its burst and one-shot verification) and `control/ike` (HASH_I/HASH_R,
//! Quick Mode HASH(1..3), Informational HASH(1), NAT-D). Two checks:
//!
//! 1. No `==` or `!=` has an operand that names such a value (an identifier containing `icv`,
//!    `tag`, `hash`, `digest` or `mac`), except its length. `==` on slices stops at the first
//!    differing byte, which is the timing leak RFC 4303 §3.4.4 and RFC 2409 implementations
//!    avoid; the comparisons must go through `subtle` (`ct_eq`).
//! 2. The verification sites known today still call `ct_eq` (a refactor that drops one of them
//!    fails here and must say where the comparison went).
//!
//! `detector_catches_a_plain_comparison` proves check 1 can fail.

use std::path::{Path, PathBuf};

/// Words that make an operand secret-comparable.
const SECRET_WORDS: [&str; 5] = ["icv", "tag", "hash", "digest", "mac"];

/// Files where a non-constant-time comparison of such bytes is not a verification: test
/// helpers that compare two implementations' outputs.
const NOT_VERIFICATION: [&str; 1] = ["dataplane/esp/src/crypto/conformance.rs"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line: without a `//` comment (string literals holding `//` are rare enough
/// in these crates to ignore).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// The operand left of byte offset `at` (an operator's start) or right of `at` (its end),
/// up to the enclosing bracket or a `,` `;` `{` `&&` `||` at the same depth.
fn operand(code: &str, at: usize, left: bool) -> String {
    let b = code.as_bytes();
    let mut depth = 0i32;
    let mut i = at;
    let mut s = Vec::new();
    loop {
        let c = if left {
            if i == 0 {
                break;
            }
            i -= 1;
            b[i]
        } else {
            if i >= b.len() {
                break;
            }
            i += 1;
            b[i - 1]
        };
        let (open, close) = if left { (b')', b'(') } else { (b'(', b')') };
        if c == open || c == b'[' && !left || c == b']' && left {
            depth += 1;
        } else if c == close || c == b']' && !left || c == b'[' && left {
            if depth == 0 {
                break;
            }
            depth -= 1;
        } else if depth == 0 && matches!(c, b',' | b';' | b'{' | b'}' | b'|' | b'&' | b'=' | b'<' | b'>') {
            break;
        }
        s.push(c);
    }
    if left {
        s.reverse();
    }
    String::from_utf8_lossy(&s).trim().to_string()
}

/// Does this operand name a tag-like value (not only its length)?
fn names_secret(op: &str) -> bool {
    let op = op.to_ascii_lowercase();
    if op.ends_with(".len()") || op.starts_with("some(") && op.contains(".len()") {
        return false;
    }
    op.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .any(|w| SECRET_WORDS.iter().any(|s| w.contains(s)) && !w.contains("len") && !w.ends_with("alg"))
}

/// `(operator offset, left operand, right operand)` of every `==`/`!=` whose operand names
/// a tag-like value.
fn plain_comparisons(code: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let b = code.as_bytes();
    for i in 0..b.len().saturating_sub(1) {
        let op = &b[i..i + 2];
        let preceded = i > 0 && matches!(b[i - 1], b'=' | b'!' | b'<' | b'>');
        if (op == b"==" || op == b"!=") && !preceded && b.get(i + 2) != Some(&b'=') {
            let (l, r) = (operand(code, i, true), operand(code, i + 2, false));
            if names_secret(&l) || names_secret(&r) {
                found.push((l, r));
            }
        }
    }
    found
}

#[test]
fn detector_catches_a_plain_comparison() {
    for bad in [
        "if computed_icv == icv {",
        "    return tag(body).as_slice() == &icv[..16];",
        "let ok = &keys.hash3(mid, &ni, &nr)[..] == received_hash && raws.len() == 1;",
        "if expected != hash_r { return Err(e) }",
        "digest.as_ref() != want",
    ] {
        assert!(!plain_comparisons(bad).is_empty(), "missed: {bad}");
    }
    for good in [
        "if icv.len() != 16 {",
        "if usize::try_from(h.length).ok() != Some(datagram.len()) {",
        "let ok = ct_eq(&keys.hash3(mid, &ni, &nr), &received_hash) && raws.len() == 1;",
        "if !matches!(tag.len(), 8 | 12 | 16) || key.arch() != self.arch() {",
        "icv_end <= self.buf.len() && self.key.arch() == mgr.arch()",
        "if p.integrity == IntegrityAlgorithm::None {",
    ] {
        assert!(plain_comparisons(good).is_empty(), "false alarm: {good}: {:?}", plain_comparisons(good));
    }
}

#[test]
fn no_icv_tag_or_hash_is_compared_with_eq() {
    let root = root();
    let mut files = Vec::new();
    for d in ["dataplane/esp/src", "ffi/ipsec-mb/src", "control/ike/src"] {
        sources(&root.join(d), &mut files);
    }
    assert!(files.len() > 20, "the audit found only {} files", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f).to_string_lossy().replace('\\', "/");
        if NOT_VERIFICATION.iter().any(|n| rel.ends_with(n)) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for (l, r) in plain_comparisons(code(line)) {
                bad.push(format!("{rel}:{}: `{l}` vs `{r}`", n + 1));
            }
        }
    }
    assert!(bad.is_empty(), "tag-like values compared with ==/!= (use subtle's ct_eq):\n{}", bad.join("\n"));
}

#[test]
fn the_verification_sites_use_ct_eq() {
    let root = root();
    // (file, what it verifies, ct_eq calls expected at least)
    let sites = [
        ("dataplane/esp/src/crypto/rust.rs", "the GCM tag and the HMAC ICV", 2),
        ("ffi/ipsec-mb/src/burst.rs", "burst ICVs (GCM and CBC+HMAC)", 2),
        ("ffi/ipsec-mb/src/oneshot.rs", "one-shot GCM tags", 1),
        ("control/ike/src/engine/phase1.rs", "HASH_I/HASH_R and NAT-D", 3),
        ("control/ike/src/engine/quick_mode.rs", "Quick Mode HASH(1), HASH(2), HASH(3)", 2),
        ("control/ike/src/engine/informational.rs", "Informational HASH(1)", 1),
    ];
    for (file, what, want) in sites {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let calls = text.lines().map(code).map(|l| l.matches("ct_eq(").count()).sum::<usize>();
        assert!(calls >= want, "{file} ({what}): {calls} ct_eq calls, expected at least {want}");
    }
}
