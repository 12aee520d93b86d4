//! Generates bindings for the system DPDK (found by pkg-config) and compiles the C shim
//! that gives DPDK's static inline functions real symbols.

use std::env;
use std::path::PathBuf;

const SETUP_HINT: &str =
    "run scripts/setup.sh (it installs dpdk-dev, libdpdk-dev, libclang-dev and pkg-config)";

fn fail(what: &str) -> ! {
    // One clear line: cargo prints the build script's stderr when it fails.
    eprintln!("dpdk-sys: {what}; {SETUP_HINT}");
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=shim/wrapper.h");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new().atleast_version("22.11").probe("libdpdk") {
        Ok(lib) => lib,
        Err(e) => fail(&format!(
            "libdpdk >= 22.11 not found by pkg-config ({})",
            e.to_string().lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no reason given")
        )),
    };

    // The cflags pkg-config gives (-I, -include rte_config.h, -march), reused for both the
    // shim and bindgen so they see the same configuration. The pkg-config crate keeps only
    // include paths and defines, so the other flags are read from the tool itself.
    let mut clang_args: Vec<String> =
        dpdk.include_paths.iter().map(|p| format!("-I{}", p.display())).collect();
    let raw_cflags = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let words: Vec<&str> = raw_cflags.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "-include" if i + 1 < words.len() => {
                clang_args.push("-include".into());
                clang_args.push(words[i + 1].into());
                i += 1;
            }
            w if w.starts_with("-march") || w.starts_with("-m") => clang_args.push(w.into()),
            _ => {}
        }
        i += 1;
    }

    let mut build = cc::Build::new();
    build.file("shim/shim.c").include("shim").opt_level(3).warnings(false);
    for p in &dpdk.include_paths {
        build.include(p);
    }
    for a in clang_args.iter().filter(|a| !a.starts_with("-I")) {
        build.flag(a);
    }
    build.compile("dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("shim/wrapper.h")
        .clang_args(&clang_args)
        .clang_arg("-Ishim")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_eal_.*|rte_lcore_.*|rte_get_.*lcore.*|rte_socket_id")
        .allowlist_function("rte_eth_.*|rte_pktmbuf_.*|rte_mempool_.*|rte_ring_create|rte_ring_free")
        .allowlist_function("rte_strerror|rte_exit|rte_delay_us_block|rte_get_tsc_hz")
        .allowlist_function("shim_.*")
        .allowlist_type("rte_mbuf|rte_mempool|rte_ring|rte_eth_.*|rte_ether_.*|rte_ipv4_hdr|rte_ipv6_hdr|rte_udp_hdr")
        .allowlist_var("RTE_ETH_.*|RTE_MBUF_.*|RTE_PKTMBUF_.*|RTE_MAX_LCORE|RTE_MAX_ETHPORTS|RING_F_.*|RTE_ETHER_.*|SOCKET_ID_ANY|RTE_MEMPOOL_.*")
        // The fast-path functions come through the shim; bindgen cannot bind static inlines.
        .blocklist_function("rte_eth_rx_burst|rte_eth_tx_burst|rte_pktmbuf_alloc|rte_pktmbuf_free")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .prepend_enum_name(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen over the DPDK headers failed ({e}); is libclang-dev installed?")));

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings ({e})")));
}
