//! espd entry point: parse the command line, start the EAL, run, report.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use espd::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("espd: cannot install the handler for signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let eal = match dpdk::Eal::init("espd", &args.eal) {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("espd: EAL initialisation failed: {e} (EAL arguments: {:?})", args.eal);
            return ExitCode::FAILURE;
        }
    };
    let code = match espd::fwd::run(&args, stop) {
        Ok(report) => {
            eprint!("{}", report.table(None));
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("espd: cannot encode the report: {e}"),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("espd: {e}");
            ExitCode::FAILURE
        }
    };
    drop(eal);
    code
}
