//! ikectl: controls iked over its Unix socket, like swanctl.
#![forbid(unsafe_code)]

use clap::Parser;
use iked::cli::{IkectlArgs as Cli, IkectlCommand as Cmd};
use iked::ctl::client::Client;
use iked::ctl::format;
use iked::ctl::protocol::{Command, Reply, Target};
use std::process::ExitCode;

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
        Cmd::ListCerts => Command::ListCerts {},
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
            Reply::Certs { certificates, crls } => format::list_certs(certificates, crls),
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
