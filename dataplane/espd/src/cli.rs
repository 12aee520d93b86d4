//! Command line. DPDK's own EAL arguments follow `--`, as testpmd users expect:
//! `espd --stats-interval 1 -- -l 0,1 --no-pci --vdev net_null0 --vdev net_null1`.

use clap::{Parser, ValueEnum};

/// What the workers do with a received burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunMode {
    /// Forward every frame unchanged to the paired port (testpmd's io mode).
    Io,
}

/// espd: DPDK poll-mode ESP gateway.
#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about,
    after_help = "EAL arguments go after `--`, e.g. `-- -l 0,1 --no-pci --no-huge -m 1024 --vdev net_null0 --vdev net_null1`"
)]
pub struct Args {
    /// Run as the ESP gateway described by this TOML file (see docs/espd.md); without it,
    /// espd forwards frames between ports as testpmd's io mode does.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,

    /// Validate the configuration file and exit.
    #[arg(long, requires = "config")]
    pub check_config: bool,

    /// Forwarding mode without --config.
    #[arg(long, value_enum, default_value_t = RunMode::Io)]
    pub mode: RunMode,

    /// Ports to use, by DPDK port id, paired in order (0↔1, 2↔3); a single port forwards
    /// back out of itself (one-arm). Default: every port the EAL found.
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<u16>,

    /// Packets per RX/TX burst (1..=64).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub burst: u16,

    /// RX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    pub rxd: u16,

    /// TX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    pub txd: u16,

    /// Mbufs in the packet pool.
    #[arg(long, default_value_t = 16383)]
    pub mbufs: u32,

    /// Seconds between statistics tables on the terminal (0: only at exit).
    #[arg(long, default_value_t = 1.0)]
    pub stats_interval: f64,

    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,

    /// Stop once no packet has been received for this many milliseconds (pcap-driven runs).
    #[arg(long)]
    pub idle_exit_ms: Option<u64>,

    /// At exit, print the final counters as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,

    /// EAL arguments (after `--`); with --config they replace the file's `eal`.
    #[arg(last = true)]
    pub eal: Vec<String>,

    /// A subcommand (`espd bench --help`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; without one, espd is the gateway (`--config`) or the io forwarder.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Built-in traffic source (as testpmd's txonly): each worker fills mbufs from templates
    /// and pushes them through the real gateway pipeline, then reports Mpps, Gbit/s, cycles
    /// per packet and latency, one JSON line per configuration (see docs/benchmarks.md).
    Bench(BenchArgs),
}

/// What the bench's workers push through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    /// Plaintext from the inside port, encapsulated and sent out of the outside port.
    Encap,
    /// ESP from the peer on the outside port, decapsulated and sent out of the inside port.
    Decap,
    /// Both directions, alternating packets in every burst.
    Both,
    /// The traffic source straight to TX with no gateway (the I/O baseline).
    Io,
}

/// ESP algorithms (the key size is `--key-bits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// AES-GCM with a 16-byte ICV (RFC 4106).
    AesGcm,
    /// AES-CBC with HMAC-SHA1-96.
    AesCbcSha1,
    /// AES-CBC with HMAC-SHA256-128.
    AesCbcSha256,
}

/// Crypto backend of the bench's SAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchBackend {
    /// Intel's multi-buffer library.
    IpsecMb,
    /// The portable Rust backend.
    Rust,
}

/// Inner and outer IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub enum Family {
    /// IPv4 in IPv4.
    #[value(name = "4")]
    V4,
    /// IPv6 in IPv6.
    #[value(name = "6")]
    V6,
}

/// A frame size (plaintext Ethernet frame, FCS excluded) or the IMIX mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketSize {
    /// One size.
    Fixed(usize),
    /// 7:4:1 of 64, 570 and 1518-byte frames.
    Imix,
}

fn parse_key_bits(s: &str) -> Result<u16, String> {
    match s {
        "128" => Ok(128),
        "256" => Ok(256),
        _ => Err(format!("{s:?}: AES keys are 128 or 256 bits")),
    }
}

fn parse_size(s: &str) -> Result<PacketSize, String> {
    if s.eq_ignore_ascii_case("imix") {
        return Ok(PacketSize::Imix);
    }
    match s.parse::<usize>() {
        Ok(n) if (64..=1518).contains(&n) => Ok(PacketSize::Fixed(n)),
        _ => Err(format!("{s:?}: a frame size is 64..=1518 bytes, or imix")),
    }
}

/// `espd bench` options (testpmd-like). Lists (comma-separated) run one configuration
/// after another in the same process.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Modes to run: encap, decap, both, io.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "encap")]
    pub mode: Vec<BenchMode>,

    /// ESP algorithm.
    #[arg(long, value_enum, default_value_t = Algorithm::AesGcm)]
    pub algo: Algorithm,

    /// AES key size in bits (128 or 256).
    #[arg(long, default_value_t = 128, value_parser = parse_key_bits)]
    pub key_bits: u16,

    /// Crypto backend of the SAs.
    #[arg(long, value_enum, default_value_t = BenchBackend::IpsecMb)]
    pub backend: BenchBackend,

    /// Frame sizes in bytes (plaintext frame, FCS excluded), or imix.
    #[arg(long, value_delimiter = ',', default_value = "64", value_parser = parse_size)]
    pub size: Vec<PacketSize>,

    /// Numbers of tunnels (SA pairs and policies), traffic spread round-robin over them.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sas: Vec<u32>,

    /// Inner and outer IP family.
    #[arg(long, value_enum, default_value_t = Family::V4)]
    pub family: Family,

    /// Packets per burst (1..=64).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub burst: u16,

    /// Worker lcores to use (default: every EAL lcore but the first).
    #[arg(long)]
    pub workers: Option<usize>,

    /// Seconds measured per configuration.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,

    /// Seconds of warm-up before measuring (at least one pass over every SA is made).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,

    /// Offered load per worker in Mpps (paced by the TSC); default: as fast as possible.
    #[arg(long)]
    pub rate_mpps: Option<f64>,

    /// Copy only the headers of plaintext frames into the mbufs (testpmd's txonly does the
    /// same); by default whole frames are copied. ESP frames are always copied whole.
    #[arg(long)]
    pub headers_only: bool,

    /// Time the worker's stages with the TSC (a few reads per burst) and report the cycles
    /// per packet of each (`stages` in the JSON line).
    #[arg(long)]
    pub stages: bool,

    /// Pre-generated ESP packets per worker (at least one per SA): each SA's window is
    /// re-armed after every pass over them.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_packets: u32,

    /// Largest memory for the pre-generated ESP packets, per worker, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub pool_mb: usize,

    /// Mbufs in the packet pool.
    #[arg(long, default_value_t = 16383)]
    pub mbufs: u32,

    /// Seconds between statistics tables on stderr (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub stats_interval: f64,

    /// EAL arguments (after `--`); two ports: the first is the outside port, the second the
    /// inside port (e.g. `--vdev net_null0 --vdev net_null1`).
    #[arg(last = true)]
    pub eal: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "espd", "bench", "--size", "64,imix", "--sas", "1,1000", "--", "-l", "0,1",
        ])
        .unwrap();
        let Some(Command::Bench(b)) = a.command else { panic!("a bench subcommand") };
        assert_eq!(b.size, vec![PacketSize::Fixed(64), PacketSize::Imix]);
        assert_eq!(b.sas, vec![1, 1000]);
        assert_eq!(b.eal, vec!["-l", "0,1"]);
        assert!(Args::try_parse_from(["espd", "bench", "--key-bits", "192"]).is_err());
        assert!(Args::try_parse_from(["espd", "bench", "--sas", "0"]).is_err());
        // Without the subcommand, the io forwarder's command line is unchanged.
        let a = Args::try_parse_from(["espd", "--duration", "1", "--", "-l", "0,1"]).unwrap();
        assert!(a.command.is_none() && a.eal == ["-l", "0,1"]);
    }
}
