//! The command lines of `iked` and `ikectl` (clap), in the library so that
//! their manual pages are generated from the same definitions.

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;

use crate::config::{DEFAULT_CONFIG, DEFAULT_CONTROL_SOCKET};

/// `iked`.
#[derive(Debug, Parser)]
#[command(name = "iked", version, about = "IKEv1 daemon for the espd IPsec gateway")]
pub struct IkedArgs {
    /// Configuration file.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Validate FILE and exit: 0 when valid, 1 with the error otherwise.
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
    /// With --check-config: print the configuration with every default
    /// spelled out (secrets included).
    #[arg(long, requires = "check_config")]
    pub print: bool,
    /// Write Wireshark's ikev1_decryption_table and esp_sa into DIR
    /// (overrides daemon.keylog). These files hold keys.
    #[arg(long, value_name = "DIR")]
    pub keylog: Option<PathBuf>,
}

/// `ikectl`.
#[derive(Debug, Parser)]
#[command(name = "ikectl", version, about = "Control iked (swanctl-style)")]
pub struct IkectlArgs {
    /// iked's control socket.
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Print iked's raw JSON responses, one per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: IkectlCommand,
}

/// What `ikectl` does.
#[derive(Debug, Subcommand)]
pub enum IkectlCommand {
    /// List IKE SAs and their child SAs.
    ListSas {
        /// Only SAs of this connection.
        #[arg(long, value_name = "NAME")]
        ike: Option<String>,
    },
    /// List loaded connections.
    ListConns,
    /// Initiate a connection.
    Initiate(TargetArgs),
    /// Terminate a connection.
    Terminate(TargetArgs),
    /// Rekey a child's SAs now, or re-establish a connection's IKE SAs.
    Rekey(TargetArgs),
    /// List the policies iked installed in the dataplane.
    ListPols,
    /// Reload the configuration file and the certificates, keys and CRLs
    /// of daemon.swanctl_dir (unchanged connections and their SAs are
    /// untouched; new exchanges use the new material).
    LoadAll,
    /// List loaded certificates (ours, peers', CAs) and CRLs.
    ListCerts,
    /// Show counters.
    Stats,
    /// Follow iked's log.
    Log,
    /// Follow SA events as they happen (IKE and child SAs up, rekeyed,
    /// down, expired; DPD; authentication failures; acquires), one per line.
    Monitor,
}

/// `--child NAME` or `--ike NAME`.
#[derive(Debug, ClapArgs)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// A child SA configuration.
    #[arg(long, value_name = "NAME")]
    pub child: Option<String>,
    /// A connection.
    #[arg(long, value_name = "NAME")]
    pub ike: Option<String>,
}
