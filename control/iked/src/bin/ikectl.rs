//! ikectl: controls iked over its Unix socket, like swanctl.
#![forbid(unsafe_code)]

use clap::{Args as ClapArgs, Parser, Subcommand};
use iked::config::DEFAULT_CONTROL_SOCKET;
use iked::ctl::client::Client;
use iked::ctl::format;
use iked::ctl::protocol::{Command, Reply, Target};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "ikectl", version, about = "Control iked (swanctl-style)")]
struct Cli {
    /// iked's control socket.
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET, global = true)]
    socket: PathBuf,
    /// Print iked's raw JSON responses, one per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
    /// Reload the configuration file (unchanged connections are untouched).
    LoadAll,
    /// Show counters.
    Stats,
    /// Follow iked's log.
    Log,
    /// Follow SA events as they happen (IKE and child SAs up, rekeyed,
    /// down, expired; DPD; authentication failures; acquires), one per line.
    Monitor,
}

#[derive(Debug, ClapArgs)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// A child SA configuration.
    #[arg(long, value_name = "NAME")]
    child: Option<String>,
    /// A connection.
    #[arg(long, value_name = "NAME")]
    ike: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ikectl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ikectl: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> std::io::Result<ExitCode> {
    let mut client = Client::connect(&cli.socket).await?;
    let command = match cli.command {
        Cmd::ListSas { ike } => Command::ListSas { ike },
        Cmd::ListConns => Command::ListConns {},
        Cmd::Initiate(t) => Command::Initiate(Target { child: t.child, ike: t.ike }),
        Cmd::Terminate(t) => Command::Terminate(Target { child: t.child, ike: t.ike }),
        Cmd::Rekey(t) => Command::Rekey(Target { child: t.child, ike: t.ike }),
        Cmd::ListPols => Command::ListPols {},
        Cmd::LoadAll => Command::LoadAll {},
        Cmd::Stats => Command::Stats {},
        Cmd::Log => Command::Log {},
        Cmd::Monitor => Command::Monitor {},
    };
    let streaming = matches!(command, Command::Log {} | Command::Monitor {});
    client.send(command).await?;
    let mut ok = true;
    while let Some((response, raw)) = client.receive().await? {
        if cli.json {
            println!("{raw}");
        }
        let text = match &response.reply {
            Reply::Sas { ike_sas } => format::list_sas(ike_sas),
            Reply::Conns { connections } => format::list_conns(connections),
            Reply::Pols { policies } => format::list_pols(policies),
            Reply::Done { message } => format!("{message}\n"),
            Reply::Loaded(s) => format::load_summary(s),
            Reply::Stats(s) => format::stats(s),
            Reply::Log(r) => format!("{}\n", format::log_line(r)),
            Reply::LogLagged { missed } => format!("... {missed} log lines missed\n"),
            Reply::Event(r) => format!("{}\n", format::event_line(r)),
            Reply::EventsLagged { missed } => format!("... {missed} events missed\n"),
            Reply::Error(e) => {
                ok = false;
                eprintln!("ikectl: {}", e.message);
                String::new()
            }
        };
        if !cli.json {
            print!("{text}");
        }
        if !streaming || !ok {
            break;
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
