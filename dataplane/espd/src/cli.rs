//! Command line. DPDK's own EAL arguments follow `--`, as testpmd users expect:
//! `espd --stats-interval 1 -- -l 0,1 --no-pci --vdev net_null0 --vdev net_null1`.

use clap::{Parser, ValueEnum};

/// What the workers do with a received burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
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
    #[arg(long, value_enum, default_value_t = Mode::Io)]
    pub mode: Mode,

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
}
