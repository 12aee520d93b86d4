//! Writes the manual pages of the gateway's commands (section 8) into the
//! directory given, from their clap definitions: `iked`, `ikectl`, `espd`,
//! `espctl`.
//! `scripts/package.sh` runs it for the Debian package.

use clap::CommandFactory;
use std::path::PathBuf;
use std::process::ExitCode;

fn write(dir: &std::path::Path, cmd: clap::Command) -> std::io::Result<()> {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.8")), out)
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: manpages DIR");
        return ExitCode::FAILURE;
    };
    let pages = [
        iked::cli::IkedArgs::command(),
        iked::cli::IkectlArgs::command(),
        espd::cli::Args::command().name("espd"),
        espctl::command(),
    ];
    let result =
        std::fs::create_dir_all(&dir).and_then(|()| pages.into_iter().try_for_each(|c| write(&dir, c)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("manpages: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
