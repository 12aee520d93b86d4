//! espd entry point: parse the command line, start the EAL, run, report.
//!
//! `espd bench`'s traffic source (`bench/`) is a module of this binary, not of the gateway
//! library, and only with the default feature `bench`: a build without it
//! (`--no-default-features`) is the gateway alone.

#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
mod bench;

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
    if let Some(espd::cli::Command::Bench(bench)) = &args.command {
        return bench_main(bench, stop);
    }
    let config = match &args.config {
        None => None,
        Some(path) => match espd::config::Config::load(path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("espd: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if args.check_config {
        println!(
            "espd: {} is valid",
            args.config.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let eal_args = match (&config, args.eal.is_empty()) {
        (Some(c), true) => c.eal.clone(),
        _ => args.eal.clone(),
    };
    let eal = match dpdk::Eal::init("espd", &eal_args) {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("espd: EAL initialisation failed: {e} (EAL arguments: {eal_args:?})");
            return ExitCode::FAILURE;
        }
    };
    if let Some(cfg) = &config {
        let limits = espd::gw::app::RunLimits {
            duration: args.duration.map(std::time::Duration::from_secs_f64),
            idle_exit: args.idle_exit_ms.map(std::time::Duration::from_millis),
            stats_interval: None,
        };
        let code = match espd::gw::app::run(&eal, cfg, &limits, stop) {
            Ok(report) => {
                if args.json {
                    match serde_json::to_string(&report) {
                        Ok(line) => println!("{line}"),
                        Err(e) => eprintln!("espd: cannot encode the report: {e}"),
                    }
                } else {
                    eprintln!(
                        "espd: stopped after {:.1} s; counters: {:?}",
                        report.elapsed_s, report.counters
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("espd: {e}");
                ExitCode::FAILURE
            }
        };
        drop(eal);
        return code;
    }
    let code = match espd::fwd::run(&eal, &args, stop) {
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

/// `espd bench`: the EAL from the subcommand's `--` arguments, then every configuration.
#[cfg(feature = "bench")]
fn bench_main(bench: &espd::cli::BenchArgs, stop: Arc<AtomicBool>) -> ExitCode {
    let eal = match dpdk::Eal::init("espd", &bench.eal) {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("espd: EAL initialisation failed: {e} (EAL arguments: {:?})", bench.eal);
            return ExitCode::FAILURE;
        }
    };
    let code = match bench::run(&eal, bench, stop) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("espd bench: {e}");
            ExitCode::FAILURE
        }
    };
    drop(eal);
    code
}

/// `espd bench` in a build without the traffic source: say so, as for a bad argument.
#[cfg(not(feature = "bench"))]
fn bench_main(_: &espd::cli::BenchArgs, _: Arc<AtomicBool>) -> ExitCode {
    eprintln!("espd: this espd was built without `espd bench` (cargo feature `bench`)");
    ExitCode::from(2)
}
