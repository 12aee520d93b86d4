//! The Debian package on a fresh Debian 12 (`scripts/package-test.sh`): built by
//! `scripts/package.sh` (cargo-deb, release binaries, units, example configurations, manual
//! pages), installed by apt into a debootstrapped bookworm root with its dependencies from the
//! archive, and both units started from what it installed, their `ExecStartPre=` checks
//! included; then stopped with SIGTERM. Needs root and the Debian archive, as CI has.

#[test]
fn the_package_installs_on_a_fresh_debian_and_both_units_start() {
    if std::env::var_os("CI").is_none() && !is_root() {
        eprintln!("skipped: needs root (debootstrap, chroot)");
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/package-test.sh"))
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "package-test.sh failed (its output above says where)");
    assert!(stdout.contains("espgw 0.1.0-1 install ok installed"), "dpkg's record: {stdout}");
    assert!(stdout.contains("espd: SA database attached, readers: "), "{stdout}");
    assert!(stdout.contains("package-test: 1 passed, 0 failed"), "{stdout}");
}

/// Whether this process runs as root (`id -u`).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
