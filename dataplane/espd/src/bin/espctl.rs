//! espctl: manual keying and inspection of the SA database, as `ip xfrm` is for the kernel.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    espd::espctl::main(std::env::args_os())
}
