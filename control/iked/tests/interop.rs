//! Interoperability with strongSwan: our gateway (`espd` + `iked`) against charon in network
//! namespaces. The work is in `scripts/interop.sh`; this runs its CI subset (`--quick`: both
//! initiators, Main and Aggressive Mode, MODP/ECP/Curve25519, GCM and CBC+HMAC, PFS, IPv4 and
//! IPv6, both ends on their default proposals, an IKE list whose first entry we do not
//! implement, certificate authentication (RSA-2048 with us initiating, ECDSA P-256 with
//! strongSwan initiating, certificates made by strongSwan's `pki`), the wire decrypted by tshark
//! (a certificate case's ID, CERT and SIG payloads too), a rekey by each side, strongSwan re-keying its
//! ISAKMP SA under a ping, a real NAT in front of us, a NAT in front of strongSwan whose mapping
//! restarts mid-transfer, and strongSwan's own level-4 dump of every secret it derived searched
//! for in all our logs and tool output) with the binaries of this build, against both peers:
//! - Debian 12's strongSwan 5.9.8, whose userspace ESP only speaks UDP encapsulation, so every
//!   case runs over our NAT-T;
//! - strongSwan 6.0 from Debian 13 (`--peer 6`, a private root fetched by
//!   `scripts/setup-strongswan6.sh`) with `raw_esp`: plain ESP, IP protocol 50, IKE on 500.
//!
//! The full matrix and its latest results: docs/interop.md.

use std::process::Command;
use std::sync::Mutex;

mod common;
use common::bin;

/// The two runs share the machine's two cores: one at a time keeps their timings honest.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `interop.sh --quick --peer PEER` and returns its standard output, having checked
/// what both peers' runs must show.
fn quick_subset(peer: &str) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/interop.sh"))
        .args(["--quick", "--peer", peer])
        .env("IKED", env!("CARGO_BIN_EXE_iked"))
        .env("IKECTL", env!("CARGO_BIN_EXE_ikectl"))
        .env("ESPD", bin("espd"))
        .env("ESPCTL", bin("espctl"))
        .env("NS_TAG", format!("sw{peer}{}", std::process::id()))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "interop.sh --quick --peer {peer} failed (its output above says where)");
    assert!(stdout.contains("interop (quick): 16 passed, 0 failed"), "{stdout}");
    assert!(stdout.contains("ok   secrets: "), "strongSwan's secrets searched for in our logs: {stdout}");
    assert!(stdout.contains("ESP in UDP: True 4500 True"), "the NAT case saw NAT-T at work");
    // The NAT rebinding: strongSwan's new mapping, and our outbound SA moved to it in place.
    let rebinding = stdout
        .lines()
        .find(|l| l.contains("NAT rebinding") && l.contains("our outbound SA now sends to"))
        .unwrap_or_else(|| panic!("no NAT rebinding report in {stdout}"));
    assert!(rebinding.contains("peer-moved: 1;"), "{rebinding}");
    assert!(stdout.contains("ok   NAT rebinding: "), "the ESP SAs followed the new mapping");
    assert!(
        stdout.contains("ok   ISAKMP SA re-keyed by strongSwan under a 20/s ping"),
        "the child pair survived strongSwan's ISAKMP SA re-keys"
    );
    assert_eq!(stdout.matches("mirrored").count(), 9, "every matrix case compared both sides' SAs");
    // Signature authentication: each side lists the other's certificate subject as its ID, and
    // tshark, with our key log, reads both gateways' ID, CERT and SIG payloads.
    assert_eq!(stdout.matches("each the other's remote ID").count(), 2, "both certificate cases: {stdout}");
    assert!(stdout.contains("ok   us: RSA-2048 certificates"), "{stdout}");
    assert!(stdout.contains("ok   them: ECDSA P-256 certificates"), "{stdout}");
    for side in ["gw-a-rsa2048", "gw-b-rsa2048"] {
        assert!(
            stdout
                .contains(&format!("decrypted: ID (ID_DER_ASN1_DN), CERT (encoding 4) subject {side}, SIG")),
            "tshark read {side}'s certificate: {stdout}"
        );
    }
    // The proposal cases: both ends on their defaults (strongSwan's several transforms in one
    // proposal) and an IKE list led by 3DES, each side listing the expected choice.
    assert_eq!(
        stdout.matches("chosen on both sides: ").count(),
        2,
        "both proposal cases compared the choice"
    );
    assert!(
        stdout.contains(
            "chosen on both sides: IKE AES_CBC-128/HMAC_SHA2_256_128/ECP_256, ESP AES_GCM_16-128/-"
        ),
        "the IKE list case: {stdout}"
    );
    assert!(stdout.contains("ESP packets decrypted with a good ICV"), "tshark checked the wire");
    stdout
}

/// tshark's count of the wire check's outer headers: (ESP packets in UDP, ESP packets,
/// ISAKMP messages on port 4500, ISAKMP messages).
fn outer_headers(stdout: &str) -> (u32, u32, u32, u32) {
    let line = stdout.lines().find_map(|l| l.trim().strip_prefix("outer headers: ")).unwrap_or_default();
    let n: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u32::MAX))
        .collect();
    match n[..] {
        [a, b, c, d, 4500] => (a, b, c, d),
        _ => panic!("no outer-header line in {stdout}"),
    }
}

#[test]
fn strongswan_5_matrix_subset_over_nat_t() {
    let stdout = quick_subset("5");
    assert!(stdout.contains("peer: strongSwan 5."), "{stdout}");
    // 5.9.8's default offer: the first transforms we accept are Curve25519 and AES-CBC.
    assert!(stdout.contains(
        "chosen on both sides: IKE AES_CBC-128/HMAC_SHA2_256_128/CURVE_25519, ESP AES_CBC-128/HMAC_SHA2_256_128"
    ));
    assert_eq!(stdout.matches("UDP-encapsulated; packets").count(), 9, "every case over NAT-T");
    let (esp_udp, esp, ike_4500, _) = outer_headers(&stdout);
    assert!(esp > 0 && esp_udp == esp && ike_4500 > 0, "ESP in UDP after the float to 4500");
}

#[test]
fn strongswan_6_matrix_subset_with_plain_esp() {
    let stdout = quick_subset("6");
    assert!(stdout.contains("peer: strongSwan 6."), "{stdout}");
    // 6.0.1's default offer: ECP-256 and AES-GCM-128 first (as in the IKE list case).
    assert_eq!(
        stdout
            .matches("chosen on both sides: IKE AES_CBC-128/HMAC_SHA2_256_128/ECP_256, ESP AES_GCM_16-128/-")
            .count(),
        2
    );
    assert_eq!(
        stdout.matches("plain ESP; packets").count(),
        8,
        "every case but the forced encapsulation in plain ESP"
    );
    // tshark saw the outer headers: IP protocol 50, no ISAKMP message floated.
    let (esp_udp, esp, ike_4500, ike) = outer_headers(&stdout);
    assert!(esp > 0 && esp_udp == 0, "ESP in UDP against raw_esp: {esp_udp}/{esp}");
    assert!(ike > 0 && ike_4500 == 0, "IKE floated to 4500 against raw_esp: {ike_4500}/{ike}");
    // `encap = true` on our side: the same peer then carries ESP in UDP, none as protocol 50.
    let forced = stdout.lines().find_map(|l| l.trim().strip_prefix("encap = true: ESP in UDP "));
    let counts: Vec<u32> = forced
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(matches!(counts[..], [udp, 0] if udp > 0), "forced encapsulation: {forced:?}");
}
