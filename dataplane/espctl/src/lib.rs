//! `espctl`: writes and reads the shared-memory SA database directly, so the dataplane can
//! be keyed, tested and benchmarked without `iked`. Its commands mirror `ip xfrm`:
//!
//! ```text
//! espctl create [--sas N] [--policies N] [--readers N] [--replay-max N] [--spi-dst]
//! espctl sa add --spi 0x1000 --dir in --mode tunnel --src 198.18.0.1 --dst 198.18.0.2 \
//!               --enc aes128gcm16 --enc-key <40 hex digits: key + salt> [--replay-window 64] ...
//! espctl sa add ... --enc aes256-sha256 --enc-key <64 hex> --integ-key <64 hex> [--seq N]
//! espctl sa del --spi 0x1000 --dir in [--dst ADDR] | sa list | sa flush
//! espctl policy add --id 1 --dir out --src 198.18.1.0/24 --dst 198.19.1.0/24 --action protect --reqid 1
//! espctl policy del --id 1 | policy list | policy flush
//! espctl stats | events | ports
//! ```
//!
//! `--enc` takes strongSwan's ESP proposal keywords for one SA (module `alg`). Every
//! command takes `--json`. A bad argument gives one line naming it and the reason; a
//! questionable one that is still valid (a reserved SPI, selectors of mixed families) a
//! warning line on stderr, and the command goes on. Keys are never printed. Tables are laid
//! out as `column -t` does (module `columns`).
//!
//! [`run`] is the whole program with its output streams passed in: the binary calls it with
//! the process's stdout and stderr, a test or another tool with buffers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::ffi::OsString;
use std::io::Write;
use std::net::IpAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sadb::{
    Action, Backend, Capacities, Cipher, Direction, Integ, PolicyConfig, Region, SaConfig, SaKey, SaMode,
    Selector, SA_FLAG_DF, SA_FLAG_ESN, SA_FLAG_NO_REPLAY, SA_FLAG_UDP_ENCAP,
};
use serde_json::json;

use sadb::counters;

mod alg;
mod columns;
mod ports;

use alg::{enc_name, integ_name, proposal_name, Algorithms};

#[derive(Debug, Parser)]
#[command(name = "espctl", version, about = "Manual keying and inspection of the espgw SA database")]
struct Cli {
    /// The SA database region.
    #[arg(long, global = true, default_value = sadb::DEFAULT_PATH)]
    sadb: std::path::PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create the region file.
    Create(CreateArgs),
    /// Security associations.
    #[command(subcommand)]
    Sa(SaCmd),
    /// Security policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Per-lcore and per-reason counters of the dataplane.
    Stats,
    /// Take and print the dataplane's queued events (expiry, acquire).
    Events,
    /// espd's ports: MAC, link, addresses and device counters (from the file espd publishes
    /// beside the SA database, SADB.ports).
    Ports,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// SA slots.
    #[arg(long, default_value_t = 65_536)]
    sas: u32,
    /// Policy slots.
    #[arg(long, default_value_t = 32_768)]
    policies: u32,
    /// Dataplane lcores that can attach.
    #[arg(long, default_value_t = 64)]
    readers: u32,
    /// Largest anti-replay window, in packets (multiple of 64).
    #[arg(long, default_value_t = 1_024)]
    replay_max: u32,
    /// Find inbound SAs by SPI and destination address.
    #[arg(long)]
    spi_dst: bool,
}

#[derive(Debug, Subcommand)]
enum SaCmd {
    /// Install an SA.
    Add(Box<SaAddArgs>),
    /// Delete an SA.
    Del(SaKeyArgs),
    /// List the SAs with their counters.
    List,
    /// Delete every SA.
    Flush,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dir {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Tunnel,
    Transport,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Default,
    IpsecMb,
    Rust,
}

#[derive(Debug, Args)]
struct SaKeyArgs {
    /// SPI (decimal or 0x hex).
    #[arg(long, value_parser = parse_u32)]
    spi: u32,
    /// Direction.
    #[arg(long, value_enum)]
    dir: Dir,
    /// Destination address: names an outbound SA when several share its SPI (peers choose
    /// outbound SPIs, so two may choose the same one), and an inbound SA in regions indexed
    /// by SPI and destination. Without it, a change to an SPI several SAs share is refused.
    #[arg(long)]
    dst: Option<IpAddr>,
}

#[derive(Debug, Args)]
struct SaAddArgs {
    /// SPI (decimal or 0x hex).
    #[arg(long, value_parser = parse_u32)]
    spi: u32,
    /// Direction.
    #[arg(long, value_enum)]
    dir: Dir,
    /// Mode.
    #[arg(long, value_enum, default_value = "tunnel")]
    mode: ModeArg,
    /// Outer source address.
    #[arg(long)]
    src: IpAddr,
    /// Outer destination address.
    #[arg(long)]
    dst: IpAddr,
    /// Algorithms, as a strongSwan ESP proposal for one SA: aes128gcm16, aes192gcm16,
    /// aes256gcm16 (also aes128gcm128, aes128gcm; key + 4-byte salt), or a cipher (aes128,
    /// aes192, aes256 (CBC), null) with an integrity algorithm (sha1, sha256, sha384, sha512):
    /// aes128-sha1, aes256-sha256, null-sha256; `-esn` or `-noesn` may follow. A bare cipher
    /// takes --integ.
    #[arg(long, value_parser = alg::parse_enc)]
    enc: Algorithms,
    /// Encryption key in hex (for GCM: the key followed by the 4-byte salt, as RFC 4106 and
    /// `ip xfrm ... aead rfc4106` take it).
    #[arg(long, default_value = "")]
    enc_key: String,
    /// Integrity algorithm, when --enc names only the cipher (not with GCM): sha1, sha256,
    /// sha384, sha512.
    #[arg(long, value_parser = alg::parse_integ)]
    integ: Option<Integ>,
    /// Integrity key in hex.
    #[arg(long, default_value = "")]
    integ_key: String,
    /// reqid linking the SA to its policies.
    #[arg(long, default_value_t = 1)]
    reqid: u32,
    /// Anti-replay window in packets (inbound): 0 turns the check off, otherwise 32 up to
    /// the database's largest window (`espctl create --replay-max`, 1024 by default).
    #[arg(long, default_value_t = 64)]
    replay_window: u32,
    /// Turn the anti-replay check off (inbound), as --replay-window 0 does.
    #[arg(long)]
    no_replay: bool,
    /// Preset sequence number (to move an SA from another gateway, or in tests). Outbound:
    /// the last number sent, so the first packet carries N+1 (as `ip xfrm state ...
    /// replay-oseq`); inbound: the highest number received, every number up to it counting
    /// as seen. At most 2^32-1 without --esn.
    #[arg(long, default_value_t = 0)]
    seq: u64,
    /// 64-bit extended sequence numbers (RFC 4304).
    #[arg(long)]
    esn: bool,
    /// UDP encapsulation (RFC 3948): source port.
    #[arg(long)]
    encap_sport: Option<u16>,
    /// UDP encapsulation (RFC 3948): destination port.
    #[arg(long)]
    encap_dport: Option<u16>,
    /// Our traffic selector (CIDR); default: any.
    #[arg(long)]
    local_ts: Option<String>,
    /// The peer's traffic selector (CIDR); default: any.
    #[arg(long)]
    remote_ts: Option<String>,
    /// Soft lifetime in bytes: espd asks for a rekey (0: none).
    #[arg(long, default_value_t = 0)]
    soft_bytes: u64,
    /// Hard lifetime in bytes: espd stops using the SA (0: none).
    #[arg(long, default_value_t = 0)]
    hard_bytes: u64,
    /// Soft lifetime in packets (0: none).
    #[arg(long, default_value_t = 0)]
    soft_packets: u64,
    /// Hard lifetime in packets (0: none).
    #[arg(long, default_value_t = 0)]
    hard_packets: u64,
    /// Crypto backend.
    #[arg(long, value_enum, default_value = "default")]
    backend: BackendArg,
    /// Outer TTL / hop limit (0: 64).
    #[arg(long, default_value_t = 0)]
    ttl: u8,
    /// Outer DSCP (0..=63); default: copy the inner one.
    #[arg(long)]
    dscp: Option<u8>,
    /// Set DF on the outer IPv4 header.
    #[arg(long)]
    df: bool,
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Add a policy.
    Add(PolicyAddArgs),
    /// Delete a policy by id.
    Del {
        /// The policy id.
        #[arg(long)]
        id: u32,
    },
    /// List the policies.
    List,
    /// Delete every policy.
    Flush,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ActionArg {
    Protect,
    Bypass,
    Discard,
}

#[derive(Debug, Args)]
struct PolicyAddArgs {
    /// Policy id (unique).
    #[arg(long)]
    id: u32,
    /// Direction.
    #[arg(long, value_enum)]
    dir: Dir,
    /// Source prefix (CIDR).
    #[arg(long)]
    src: String,
    /// Destination prefix (CIDR).
    #[arg(long)]
    dst: String,
    /// IP protocol: tcp, udp, icmp, ipv6-icmp, any, or a number.
    #[arg(long, default_value = "any")]
    proto: String,
    /// Source ports: N or N-M.
    #[arg(long)]
    sport: Option<String>,
    /// Destination ports: N or N-M.
    #[arg(long)]
    dport: Option<String>,
    /// What to do.
    #[arg(long, value_enum)]
    action: ActionArg,
    /// reqid of the SAs that protect this traffic.
    #[arg(long, default_value_t = 0)]
    reqid: u32,
    /// Lower is tried first.
    #[arg(long, default_value_t = 1000)]
    priority: u32,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a 32-bit number"))
}

/// An error for one argument: `--name: reason`.
struct ArgError(String);

fn arg_err(name: &str, reason: impl std::fmt::Display) -> ArgError {
    ArgError(format!("{name}: {reason}"))
}

fn addr16(a: IpAddr) -> ([u8; 16], u8) {
    let mut x = [0u8; 16];
    match a {
        IpAddr::V4(v) => {
            x[..4].copy_from_slice(&v.octets());
            (x, 4)
        }
        IpAddr::V6(v) => (v.octets(), 6),
    }
}

fn show_addr(a: &[u8; 16], family: u8) -> String {
    if family == 4 {
        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
    } else {
        std::net::Ipv6Addr::from(*a).to_string()
    }
}

/// Parses `ADDR/LEN` (or a bare address) into address bytes, family and prefix length.
fn parse_cidr(name: &str, s: &str) -> Result<([u8; 16], u8, u8), ArgError> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = a.parse().map_err(|_| arg_err(name, format!("{a:?} is not an IP address")))?;
    let (bytes, fam) = addr16(ip);
    let max = if fam == 4 { 32 } else { 128 };
    let len = match l {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&v| v <= max)
            .ok_or_else(|| arg_err(name, format!("prefix length {l:?} is not 0..={max}")))?,
        None => max,
    };
    Ok((bytes, fam, len))
}

fn selector(name: &str, s: Option<&str>) -> Result<Selector, ArgError> {
    let Some(s) = s else { return Ok(Selector::default()) };
    let (a, fam, len) = parse_cidr(name, s)?;
    let bits = if fam == 4 { 32u32 } else { 128 };
    let v = if fam == 4 {
        u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
    } else {
        u128::from_be_bytes(a)
    };
    let host = if u32::from(len) == bits { 0 } else { (u128::MAX >> (128 - bits)) >> len };
    let to16 = |x: u128| -> [u8; 16] {
        let mut o = [0u8; 16];
        if fam == 4 {
            o[..4].copy_from_slice(&(x as u32).to_be_bytes());
        } else {
            o = x.to_be_bytes();
        }
        o
    };
    Ok(Selector {
        addr_start: to16(v & !host),
        addr_end: to16(v | host),
        family: fam,
        proto: 0,
        _pad: [0; 2],
        port_start: 0,
        port_end: u16::MAX,
    })
}

/// Key bytes from hex: wiped when dropped, and allocated at their final size (a growing `Vec`
/// would free a copy unwiped).
fn hex(name: &str, s: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, ArgError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err(arg_err(name, "odd number of hex digits"));
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for i in (0..s.len()).step_by(2) {
        out.push(
            u8::from_str_radix(s.get(i..i + 2).unwrap_or(""), 16)
                .map_err(|_| arg_err(name, "not hexadecimal"))?,
        );
    }
    Ok(out)
}

fn ports(name: &str, s: Option<&str>) -> Result<[u16; 2], ArgError> {
    let Some(s) = s else { return Ok([0, u16::MAX]) };
    let bad = || arg_err(name, format!("{s:?} is not PORT or PORT-PORT"));
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let p = s.parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if a > b {
        return Err(arg_err(name, "range ends before it starts"));
    }
    Ok([a, b])
}

fn proto(s: &str) -> Result<u8, ArgError> {
    Ok(match s {
        "any" => 0,
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "ipv6-icmp" | "icmpv6" => 58,
        n => n.parse().map_err(|_| {
            arg_err("--proto", format!("{n:?} is not tcp, udp, icmp, ipv6-icmp, any or a number"))
        })?,
    })
}

/// The smallest anti-replay window the dataplane takes (its replay window's `MIN_WINDOW`).
const MIN_REPLAY_WINDOW: u32 = 32;

/// Fills `c` from `sa add`'s arguments and returns the warnings to print. On an error `c` may
/// hold key bytes already: the caller wipes it either way.
fn build_sa(a: &SaAddArgs, c: &mut SaConfig) -> Result<Vec<String>, ArgError> {
    let mut warnings = Vec::new();
    // RFC 4303 §2.1: SPI 0 is reserved for local use and MUST NOT be sent; 1-255 are
    // reserved by IANA for future use.
    match a.spi {
        0 => return Err(arg_err("--spi", "0 is not a valid SPI (RFC 4303 §2.1: never sent on the wire)")),
        1..=255 => warnings.push(format!(
            "--spi {:#x}: SPIs 1-255 are reserved by IANA (RFC 4303 §2.1); a peer may drop this SA's packets",
            a.spi
        )),
        _ => {}
    }
    c.spi = a.spi;
    c.reqid = a.reqid;
    c.direction = match a.dir {
        Dir::In => Direction::In,
        Dir::Out => Direction::Out,
    } as u8;
    c.mode = match a.mode {
        ModeArg::Tunnel => SaMode::Tunnel,
        ModeArg::Transport => SaMode::Transport,
    } as u8;
    let (src, fs) = addr16(a.src);
    let (dst, fd) = addr16(a.dst);
    if fs != fd {
        return Err(arg_err("--dst", "--src and --dst are of different address families"));
    }
    (c.src, c.dst, c.family) = (src, dst, fs);
    let Algorithms { cipher, key_len: klen, integ: named_integ, esn } = a.enc;
    let key = hex("--enc-key", &a.enc_key)?;
    let want = if cipher == Cipher::AesGcm16 { klen + 4 } else { klen };
    if key.len() != want {
        let what = if cipher == Cipher::AesGcm16 { " (key + 4-byte salt)" } else { "" };
        return Err(arg_err("--enc-key", format!("{} bytes given, {want} expected{what}", key.len())));
    }
    c.cipher = cipher as u8;
    c.cipher_key_len = klen as u8;
    c.cipher_key[..klen].copy_from_slice(&key[..klen]);
    if cipher == Cipher::AesGcm16 {
        c.salt.copy_from_slice(&key[klen..]);
    }
    let integ = match (named_integ, a.integ, cipher) {
        (_, Some(_), Cipher::AesGcm16) => {
            return Err(arg_err("--integ", "AES-GCM authenticates itself; give no --integ"))
        }
        (None, None, Cipher::AesGcm16) => Integ::None,
        (Some(p), Some(i), _) if p != i => {
            return Err(arg_err("--integ", "differs from the integrity algorithm --enc names"))
        }
        (Some(i), _, _) | (None, Some(i), _) => i,
        (None, None, _) => {
            return Err(arg_err(
                "--integ",
                "AES-CBC and NULL need an integrity algorithm (--integ sha256, or --enc aes256-sha256)",
            ))
        }
    };
    let ilen = alg::integ_key_len(integ);
    let ikey = hex("--integ-key", &a.integ_key)?;
    if ikey.len() != ilen {
        return Err(arg_err("--integ-key", format!("{} bytes given, {ilen} expected", ikey.len())));
    }
    c.integ = integ as u8;
    c.integ_key_len = ilen as u8;
    c.integ_key[..ilen].copy_from_slice(&ikey);
    let esn = match (esn, a.esn) {
        (Some(false), true) => return Err(arg_err("--esn", "--enc says noesn")),
        (e, flag) => e.unwrap_or(false) || flag,
    };
    let no_replay = a.no_replay || a.replay_window == 0;
    c.replay_window = if no_replay { 0 } else { a.replay_window };
    // The window is the inbound side's: an outbound SA keeps what it is given, unchecked.
    let inbound = matches!(a.dir, Dir::In);
    if inbound && !no_replay && a.replay_window < MIN_REPLAY_WINDOW {
        return Err(arg_err(
            "--replay-window",
            format!(
                "{} is below {MIN_REPLAY_WINDOW}, the dataplane's smallest window (0 turns the check off)",
                a.replay_window
            ),
        ));
    }
    c.flags = if no_replay { SA_FLAG_NO_REPLAY } else { 0 }
        | if esn { SA_FLAG_ESN } else { 0 }
        | if a.df { SA_FLAG_DF } else { 0 };
    if !esn && a.seq > u64::from(u32::MAX) {
        return Err(arg_err(
            "--seq",
            format!("{} is beyond 2^32-1; a 64-bit sequence number needs --esn", a.seq),
        ));
    }
    match (a.encap_sport, a.encap_dport) {
        (None, None) => {}
        (Some(s), Some(d)) => {
            c.flags |= SA_FLAG_UDP_ENCAP;
            (c.encap_sport, c.encap_dport) = (s, d);
        }
        _ => {
            return Err(arg_err(
                "--encap-dport",
                "UDP encapsulation needs both --encap-sport and --encap-dport",
            ))
        }
    }
    c.ts_local = selector("--local-ts", a.local_ts.as_deref())?;
    c.ts_remote = selector("--remote-ts", a.remote_ts.as_deref())?;
    warnings.extend(selector_warnings(c));
    (c.soft_bytes, c.hard_bytes, c.soft_packets, c.hard_packets) =
        (a.soft_bytes, a.hard_bytes, a.soft_packets, a.hard_packets);
    c.backend = match a.backend {
        BackendArg::Default => Backend::Default,
        BackendArg::IpsecMb => Backend::IpsecMb,
        BackendArg::Rust => Backend::Rust,
    } as u8;
    c.ttl = a.ttl;
    c.dscp = match a.dscp {
        None => 0xff,
        Some(d) if d < 64 => d,
        Some(d) => return Err(arg_err("--dscp", format!("{d} is not 0..=63"))),
    };
    c.added_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(warnings)
}

/// Selectors that no packet can match, or that carry one family inside the other.
fn selector_warnings(c: &SaConfig) -> Vec<String> {
    let (l, r) = (c.ts_local.family, c.ts_remote.family);
    let mut w = Vec::new();
    if l != 0 && r != 0 && l != r {
        w.push(format!(
            "--local-ts is IPv{l} and --remote-ts IPv{r}: no packet has a source and a destination of both"
        ));
    }
    let transport = c.mode == SaMode::Transport as u8;
    for (name, fam) in [("--local-ts", l), ("--remote-ts", r)] {
        if fam == 0 || fam == c.family {
            continue;
        }
        w.push(if transport {
            format!(
                "{name} is IPv{fam}, the SA's addresses IPv{}: a transport SA carries its endpoints' \
                 family only, and the dataplane will not use this one",
                c.family
            )
        } else {
            format!("{name} is IPv{fam} inside an IPv{} tunnel: make sure both gateways mean it", c.family)
        });
    }
    w
}

fn build_policy(a: &PolicyAddArgs) -> Result<PolicyConfig, ArgError> {
    let (src, fs, src_plen) = parse_cidr("--src", &a.src)?;
    let (dst, fd, dst_plen) = parse_cidr("--dst", &a.dst)?;
    if fs != fd {
        return Err(arg_err("--dst", "--src and --dst are of different address families"));
    }
    let action = match a.action {
        ActionArg::Protect => Action::Protect,
        ActionArg::Bypass => Action::Bypass,
        ActionArg::Discard => Action::Discard,
    };
    if action == Action::Protect && a.reqid == 0 {
        return Err(arg_err("--reqid", "a protect policy needs the reqid of its SAs"));
    }
    Ok(PolicyConfig {
        id: a.id,
        priority: a.priority,
        reqid: a.reqid,
        direction: match a.dir {
            Dir::In => Direction::In,
            Dir::Out => Direction::Out,
        } as u8,
        action: action as u8,
        family: fs,
        proto: proto(&a.proto)?,
        src,
        dst,
        src_plen,
        dst_plen,
        _pad: [0; 2],
        sport: ports("--sport", a.sport.as_deref())?,
        dport: ports("--dport", a.dport.as_deref())?,
        _pad2: 0,
    })
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

fn ports_text(p: [u16; 2]) -> String {
    match p {
        [0, u16::MAX] => "any".into(),
        [a, b] if a == b => a.to_string(),
        [a, b] => format!("{a}-{b}"),
    }
}

/// A selector as strongSwan prints one: `198.18.1.0/24`, or `first..last` for a range that
/// is no prefix, then `[udp/500]` when it names a protocol or ports; `None` when unset (any).
fn selector_text(s: &Selector) -> Option<String> {
    let bits = match s.family {
        4 => 32,
        6 => 128,
        _ => return None,
    };
    let num = |a: &[u8; 16]| -> u128 {
        if bits == 32 {
            u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
        } else {
            u128::from_be_bytes(*a)
        }
    };
    let (lo, hi) = (num(&s.addr_start), num(&s.addr_end));
    let span = lo ^ hi;
    let mut t = if lo & span == 0 && span.checked_add(1).is_none_or(|n| n.is_power_of_two()) {
        format!("{}/{}", show_addr(&s.addr_start, s.family), bits - span.count_ones())
    } else {
        format!("{}..{}", show_addr(&s.addr_start, s.family), show_addr(&s.addr_end, s.family))
    };
    let ports = [s.port_start, s.port_end];
    match (s.proto, ports) {
        (0, [0, u16::MAX]) => {}
        (p, [0, u16::MAX]) => t += &format!("[{}]", proto_name(p)),
        (p, ports) => t += &format!("[{}/{}]", proto_name(p), ports_text(ports)),
    }
    Some(t)
}

fn backend_name(c: &SaConfig) -> &'static str {
    match Backend::from_code(c.backend) {
        Some(Backend::Default) => "default",
        Some(Backend::IpsecMb) => "ipsec-mb",
        Some(Backend::Rust) => "rust",
        None => "?",
    }
}

/// A soft/hard lifetime pair for the table: `-` for none, `soft/hard` otherwise.
fn lifetime_text(soft: u64, hard: u64) -> String {
    let one = |v: u64| if v == 0 { "-".to_owned() } else { v.to_string() };
    if soft == 0 && hard == 0 {
        "-".into()
    } else {
        format!("{}/{}", one(soft), one(hard))
    }
}

fn sa_json(e: &sadb::SaEntry) -> serde_json::Value {
    let c = &e.config;
    let drops: serde_json::Map<String, serde_json::Value> = e
        .stats
        .drops
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| (counters::drop_name(i).to_string(), json!(n)))
        .collect();
    json!({
        "slot": e.slot,
        "spi": format!("{:#010x}", c.spi),
        "dir": if c.direction == Direction::In as u8 { "in" } else { "out" },
        "mode": if c.mode == SaMode::Tunnel as u8 { "tunnel" } else { "transport" },
        "src": show_addr(&c.src, c.family),
        "dst": show_addr(&c.dst, c.family),
        "reqid": c.reqid,
        "proposal": proposal_name(c),
        "enc": enc_name(c),
        "integ": integ_name(c),
        "esn": c.flags & SA_FLAG_ESN != 0,
        "backend": backend_name(c),
        "udp_encap": (c.flags & SA_FLAG_UDP_ENCAP != 0).then(|| json!([c.encap_sport, c.encap_dport])),
        "local_ts": selector_text(&c.ts_local),
        "remote_ts": selector_text(&c.ts_remote),
        "replay_window": c.replay_window,
        "soft_bytes": c.soft_bytes,
        "hard_bytes": c.hard_bytes,
        "soft_packets": c.soft_packets,
        "hard_packets": c.hard_packets,
        "seq": e.stats.seq,
        "packets": e.stats.packets,
        "bytes": e.stats.bytes,
        "drops": drops,
    })
}

/// `sa list` as a table: the same fields as its JSON, one SA a row.
fn sa_table(sas: &[sadb::SaEntry]) -> String {
    let rows: Vec<Vec<String>> = sas
        .iter()
        .map(|e| {
            let c = &e.config;
            let j = sa_json(e);
            let s = |k: &str| j[k].as_str().unwrap_or("-").to_owned();
            let drops: u64 = e.stats.drops.iter().sum();
            vec![
                e.slot.to_string(),
                s("spi"),
                s("dir"),
                s("mode"),
                s("src"),
                s("dst"),
                c.reqid.to_string(),
                s("proposal"),
                (if c.flags & SA_FLAG_ESN != 0 { "esn" } else { "-" }).into(),
                s("backend"),
                if c.flags & SA_FLAG_UDP_ENCAP != 0 {
                    format!("{}:{}", c.encap_sport, c.encap_dport)
                } else {
                    "-".into()
                },
                selector_text(&c.ts_local).unwrap_or_else(|| "any".into()),
                selector_text(&c.ts_remote).unwrap_or_else(|| "any".into()),
                match (c.direction == Direction::In as u8, c.replay_window) {
                    (false, _) => "-".into(),
                    (true, 0) => "off".into(),
                    (true, w) => w.to_string(),
                },
                lifetime_text(c.soft_bytes, c.hard_bytes),
                lifetime_text(c.soft_packets, c.hard_packets),
                e.stats.seq.to_string(),
                e.stats.packets.to_string(),
                e.stats.bytes.to_string(),
                drops.to_string(),
            ]
        })
        .collect();
    columns::render(
        &[
            "slot",
            "spi",
            "dir",
            "mode",
            "src",
            "dst",
            "reqid",
            "proposal",
            "esn",
            "backend",
            "udp-encap",
            "local-ts",
            "remote-ts",
            "replay",
            "bytes-soft/hard",
            "packets-soft/hard",
            "seq",
            "packets",
            "bytes",
            "drops",
        ],
        &rows,
    )
}

/// What espd's readers left in the region: while espd runs, its registered lcores; once it
/// has stopped (no registered reader's process exists), every slot a process held, with
/// the counters as that process last wrote them.
fn stats(r: &Region, as_json: bool) -> String {
    let records = r.reader_records();
    let running = records.iter().any(|x| x.registered && x.alive);
    let shown: Vec<&sadb::ReaderRecord> = records.iter().filter(|x| !running || x.registered).collect();
    let mut totals = vec![0u64; sadb::READER_COUNTERS];
    for x in &shown {
        for (t, c) in totals.iter_mut().zip(&x.info.counters) {
            *t += c;
        }
    }
    // Declaration order, as espd reports them.
    let nonzero = |v: &[u64]| -> Vec<(String, u64)> {
        v.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &n)| (counters::name(i), n)).collect()
    };
    let named = |v: &[u64]| -> serde_json::Map<String, serde_json::Value> {
        nonzero(v).into_iter().map(|(k, n)| (k, json!(n))).collect()
    };
    let state = |x: &sadb::ReaderRecord| match (x.registered, x.alive) {
        (true, true) => "running",
        (true, false) => "died",
        (false, _) => "exited",
    };
    let note = match (running, shown.is_empty()) {
        (true, _) => None,
        (false, false) => Some("espd not running; counters as last written"),
        (false, true) => Some("espd not running; no counters written yet"),
    };
    if as_json {
        return json!({
            "sas": r.sa_count(),
            "policies": r.policy_count(),
            "espd_running": running,
            "note": note,
            "lcores": shown.iter().map(|x| json!({
                "lcore": x.info.lcore,
                "pid": x.info.pid,
                "state": state(x),
                "bursts": x.info.passes,
                "events_dropped": x.info.events_dropped,
                "counters": named(&x.info.counters),
            })).collect::<Vec<_>>(),
            "total": named(&totals),
        })
        .to_string();
    }
    let mut s = note.map_or(String::new(), |n| format!("{n}\n"));
    s += &format!(
        "SAs: {}   policies: {}   dataplane lcores: {}\n",
        r.sa_count(),
        r.policy_count(),
        shown.len()
    );
    let mut pids: Vec<u32> = shown.iter().map(|x| x.info.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    for x in &shown {
        s += &format!(
            "lcore {} (pid {}, {}): {} bursts, {} events dropped\n",
            x.info.lcore,
            x.info.pid,
            state(x),
            x.info.passes,
            x.info.events_dropped
        );
    }
    if pids.len() > 1 && !running {
        s += &format!("(the lcores above belonged to {} processes; the totals add them)\n", pids.len());
    }
    let rows: Vec<Vec<String>> = nonzero(&totals).into_iter().map(|(k, n)| vec![k, n.to_string()]).collect();
    s + &columns::render(&["counter", "total"], &rows)
}

/// Runs a parsed command: what to print, with the warnings to print before it on stderr.
fn execute(cli: Cli, warnings: &mut Vec<String>) -> Result<String, String> {
    let open = || Region::attach(&cli.sadb).map_err(|e| e.to_string());
    let out = match cli.cmd {
        Cmd::Create(a) => {
            let caps = Capacities {
                sas: a.sas,
                policies: a.policies,
                readers: a.readers,
                event_ring: Capacities::default().event_ring,
                max_replay_window: a.replay_max,
                spi_dst_index: a.spi_dst,
            };
            Region::create(&cli.sadb, &caps).map_err(|e| e.to_string())?;
            if cli.json {
                json!({"created": cli.sadb}).to_string()
            } else {
                format!("created {}", cli.sadb.display())
            }
        }
        Cmd::Sa(SaCmd::Add(a)) => {
            let mut cfg: SaConfig = bytemuck::Zeroable::zeroed();
            let added = build_sa(&a, &mut cfg).map_err(|e| e.0).and_then(|w| {
                let r = open()?;
                let max = r.capacities().max_replay_window;
                if cfg.direction == Direction::In as u8 && cfg.replay_window > max {
                    return Err(arg_err(
                        "--replay-window",
                        format!(
                            "{} is beyond this database's largest window, {max} (espctl create --replay-max)",
                            cfg.replay_window
                        ),
                    )
                    .0);
                }
                warnings.extend(w);
                r.writer().and_then(|mut w| w.add_sa_with_seq(&cfg, a.seq)).map_err(|e| e.to_string())
            });
            cfg.wipe_keys();
            let slot = added?;
            if cli.json {
                json!({"slot": slot}).to_string()
            } else {
                format!("added SPI {:#010x} in slot {slot}", a.spi)
            }
        }
        Cmd::Sa(SaCmd::Del(k)) => {
            let r = open()?;
            let key = SaKey {
                spi: k.spi,
                direction: match k.dir {
                    Dir::In => Direction::In,
                    Dir::Out => Direction::Out,
                },
                dst: k.dst.map(|d| addr16(d).0),
            };
            r.writer().and_then(|mut w| w.del_sa(&key)).map_err(|e| e.to_string())?;
            if cli.json {
                json!({"deleted": format!("{:#010x}", k.spi)}).to_string()
            } else {
                format!("deleted {key}")
            }
        }
        Cmd::Sa(SaCmd::List) => {
            let r = open()?;
            let sas = r.list_sas();
            if cli.json {
                serde_json::Value::Array(sas.iter().map(sa_json).collect()).to_string()
            } else {
                sa_table(&sas)
            }
        }
        Cmd::Sa(SaCmd::Flush) => {
            let r = open()?;
            let n = r.writer().map(|mut w| w.flush_sas()).map_err(|e| e.to_string())?;
            if cli.json {
                json!({"deleted": n}).to_string()
            } else {
                format!("deleted {n} SAs")
            }
        }
        Cmd::Policy(PolicyCmd::Add(a)) => {
            let p = build_policy(&a).map_err(|e| e.0)?;
            let r = open()?;
            r.writer().and_then(|mut w| w.add_policy(&p)).map_err(|e| e.to_string())?;
            if cli.json {
                json!({"added": a.id}).to_string()
            } else {
                format!("added policy {}", a.id)
            }
        }
        Cmd::Policy(PolicyCmd::Del { id }) => {
            let r = open()?;
            r.writer().and_then(|mut w| w.del_policy(id)).map_err(|e| e.to_string())?;
            if cli.json {
                json!({"deleted": id}).to_string()
            } else {
                format!("deleted policy {id}")
            }
        }
        Cmd::Policy(PolicyCmd::List) => {
            let r = open()?;
            let ps: Vec<serde_json::Value> = r
                .list_policies()
                .iter()
                .map(|e| {
                    let p = &e.config;
                    json!({
                        "id": p.id,
                        "dir": if p.direction == Direction::In as u8 { "in" } else { "out" },
                        "src": format!("{}/{}", show_addr(&p.src, p.family), p.src_plen),
                        "dst": format!("{}/{}", show_addr(&p.dst, p.family), p.dst_plen),
                        "proto": p.proto,
                        "sport": p.sport,
                        "dport": p.dport,
                        "action": match Action::from_code(p.action) {
                            Some(Action::Protect) => "protect",
                            Some(Action::Bypass) => "bypass",
                            Some(Action::Discard) => "discard",
                            None => "?",
                        },
                        "reqid": p.reqid,
                        "priority": p.priority,
                        "sa_slot": e.sa_slot,
                        "hits": e.hits,
                    })
                })
                .collect();
            if cli.json {
                serde_json::Value::Array(ps).to_string()
            } else {
                let rows: Vec<Vec<String>> = ps
                    .iter()
                    .map(|p| {
                        let s = |k: &str| p[k].as_str().unwrap_or("-").to_owned();
                        let ports = |k: &str| {
                            let v: Vec<u16> = p[k]
                                .as_array()
                                .map(|a| a.iter().filter_map(|x| x.as_u64()?.try_into().ok()).collect())
                                .unwrap_or_default();
                            v.try_into().map_or("?".into(), ports_text)
                        };
                        let proto = p["proto"].as_u64().and_then(|v| u8::try_from(v).ok()).unwrap_or(0);
                        vec![
                            p["id"].to_string(),
                            s("dir"),
                            s("src"),
                            s("dst"),
                            if proto == 0 { "any".into() } else { proto_name(proto) },
                            ports("sport"),
                            ports("dport"),
                            s("action"),
                            p["reqid"].to_string(),
                            p["priority"].to_string(),
                            p["sa_slot"].as_u64().map_or("-".into(), |v| v.to_string()),
                            p["hits"].to_string(),
                        ]
                    })
                    .collect();
                columns::render(
                    &[
                        "id", "dir", "src", "dst", "proto", "sport", "dport", "action", "reqid", "priority",
                        "sa-slot", "hits",
                    ],
                    &rows,
                )
            }
        }
        Cmd::Policy(PolicyCmd::Flush) => {
            let r = open()?;
            let n = r.writer().and_then(|mut w| w.flush_policies()).map_err(|e| e.to_string())?;
            if cli.json {
                json!({"deleted": n}).to_string()
            } else {
                format!("deleted {n} policies")
            }
        }
        Cmd::Stats => stats(&open()?, cli.json),
        Cmd::Ports => ports::show(&cli.sadb, cli.json)?,
        Cmd::Events => {
            let r = open()?;
            let mut evs = Vec::new();
            r.writer()
                .map(|mut w| {
                    w.drain_events(|rd, e| evs.push((rd, e)));
                })
                .map_err(|e| e.to_string())?;
            let js: Vec<serde_json::Value> = evs
                .iter()
                .map(|(rd, e)| {
                    json!({
                        "reader": rd,
                        "kind": match sadb::EventKind::from_code(e.kind) {
                            Some(sadb::EventKind::SoftExpire) => "soft-expire",
                            Some(sadb::EventKind::HardExpire) => "hard-expire",
                            Some(sadb::EventKind::SeqNearOverflow) => "seq-near-overflow",
                            Some(sadb::EventKind::Acquire) => "acquire",
                            None => "?",
                        },
                        "spi": format!("{:#010x}", e.spi),
                        "reqid": e.reqid,
                        "value": e.value,
                        "policy": e.policy,
                        "src": show_addr(&e.src, e.family.max(4)),
                        "dst": show_addr(&e.dst, e.family.max(4)),
                    })
                })
                .collect();
            if cli.json {
                serde_json::Value::Array(js).to_string()
            } else {
                js.iter().map(|j| format!("{j}\n")).collect()
            }
        }
    };
    Ok(out)
}

/// espctl's command line, for its manual page.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
}

/// Runs espctl with these arguments (the first is the program's name, as in
/// `std::env::args_os`), writing what it prints to `stdout` and its one-line errors to
/// `stderr`. Returns the exit status: 0 on success, 1 on a refused operation, 2 on a bad
/// argument.
pub fn run<I, T>(args: I, stdout: &mut impl Write, stderr: &mut impl Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let text = e.render().to_string();
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                return status(write!(stdout, "{text}"), 0);
            }
            // One line: clap's first, which names the argument and the reason.
            let line = text.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
            return status(writeln!(stderr, "espctl: {line}"), 2);
        }
    };
    let mut warnings = Vec::new();
    let result = execute(cli, &mut warnings);
    for w in &warnings {
        if writeln!(stderr, "espctl: warning: {w}").is_err() {
            return 1;
        }
    }
    match result {
        Ok(out) => {
            let newline = if out.ends_with('\n') { "" } else { "\n" };
            status(write!(stdout, "{out}{newline}"), 0)
        }
        Err(e) => status(writeln!(stderr, "espctl: {e}"), if e.starts_with("--") { 2 } else { 1 }),
    }
}

/// `code`, or 1 if the output it stands for could not be written (a closed pipe).
fn status(written: std::io::Result<()>, code: u8) -> u8 {
    if written.is_ok() {
        code
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::run;

    /// Runs espctl in process: (status, stdout, stderr).
    fn espctl(args: &[&str]) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(std::iter::once("espctl").chain(args.iter().copied()), &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn help_goes_to_stdout_and_succeeds() {
        let (code, out, err) = espctl(&["--help"]);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.starts_with("Manual keying and inspection of the espgw SA database"), "{out:?}");
        assert!(out.contains("policy") && out.contains("--sadb"), "{out:?}");
    }

    #[test]
    fn a_bad_argument_is_one_line_on_stderr_with_status_2() {
        let (code, out, err) = espctl(&["sa", "add", "--spi", "0x1000", "--dir", "sideways"]);
        assert_eq!((code, out.as_str()), (2, ""));
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(err.starts_with("espctl: ") && err.contains("sideways"), "{err:?}");
    }

    #[test]
    fn a_refused_operation_names_the_file_with_status_1_and_a_success_ends_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sadb");
        let db = db.to_str().unwrap();
        let (code, out, err) = espctl(&["--sadb", db, "sa", "list"]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.starts_with("espctl: ") && err.contains(db) && err.ends_with('\n'), "{err:?}");
        let (code, out, err) =
            espctl(&["--sadb", db, "create", "--sas", "16", "--policies", "4", "--readers", "1"]);
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, format!("created {db}\n"));
        let (code, out, _) = espctl(&["--sadb", db, "--json", "sa", "list"]);
        assert_eq!((code, out.as_str()), (0, "[]\n"));
    }
}
