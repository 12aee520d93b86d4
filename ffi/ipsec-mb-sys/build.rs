//! Build script: bindgen over the system `intel-ipsec-mb.h` (Debian 12 ships
//! no pkg-config file for it, so the header is looked up in the system include
//! directories, or in `$IPSEC_MB_INCLUDE_DIR`), compile the C shim for the
//! macro API, link `libIPSec_MB`.

use std::env;
use std::path::{Path, PathBuf};

const NOT_FOUND: &str = "ipsec-mb-sys: intel-ipsec-mb.h / libclang not found; run scripts/setup.sh";

fn fail(line: &str) -> ! {
    // One clear line on stderr, no backtrace: cargo shows it under
    // "failed to run custom build command".
    eprintln!("{line}");
    std::process::exit(1);
}

fn find_include_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = env::var_os("IPSEC_MB_INCLUDE_DIR") {
        candidates.push(dir.into());
    }
    candidates.push("/usr/include".into());
    candidates.push("/usr/local/include".into());
    candidates.into_iter().find(|d| d.join("intel-ipsec-mb.h").is_file())
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));

    let Some(include) = find_include_dir() else {
        fail(NOT_FOUND);
    };

    // bindgen loads libclang at run time and panics when it cannot: turn that
    // panic (and its backtrace) into our one line.
    let bindings = {
        let include = include.clone();
        let manifest = manifest.clone();
        let prev_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(move || generate(&manifest, &include));
        std::panic::set_hook(prev_hook);
        match result {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                fail(&format!("ipsec-mb-sys: bindgen failed on intel-ipsec-mb.h ({e}); run scripts/setup.sh"))
            }
            Err(_) => fail(NOT_FOUND),
        }
    };
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("ipsec-mb-sys: cannot write bindings: {e}")));

    cc::Build::new()
        .file(manifest.join("shim/shim.c"))
        .include(&include)
        .include(&manifest)
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-fno-strict-aliasing")
        .compile("ipsec_mb_shim");

    if let Some(dir) = env::var_os("IPSEC_MB_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", Path::new(&dir).display());
    }
    println!("cargo:rustc-link-lib=dylib=IPSec_MB");
    println!("cargo:include={}", include.display());
}

fn generate(manifest: &Path, include: &Path) -> Result<bindgen::Bindings, bindgen::BindgenError> {
    let shim = "imb_shim_.*";
    bindgen::Builder::default()
        .header(manifest.join("wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .clang_arg(format!("-I{}", manifest.display()))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // Functions: the shim plus the handful of real exported symbols.
        .allowlist_function(shim)
        .allowlist_function("alloc_mb_mgr")
        .allowlist_function("free_mb_mgr")
        .allowlist_function("init_mb_mgr_auto")
        .allowlist_function("imb_get_errno")
        .allowlist_function("imb_get_strerror")
        .allowlist_function("imb_get_version")
        .allowlist_function("imb_get_version_str")
        .allowlist_function("imb_get_feature_flags")
        // Types filled in from Rust.
        .allowlist_type("IMB_JOB")
        .allowlist_type("gcm_key_data")
        .allowlist_type("gcm_context_data")
        .allowlist_type("IMB_ARCH")
        .allowlist_type("IMB_STATUS")
        .allowlist_type("IMB_ERR")
        .allowlist_type("IMB_CIPHER_MODE")
        .allowlist_type("IMB_CIPHER_DIRECTION")
        .allowlist_type("IMB_HASH_ALG")
        .allowlist_type("IMB_CHAIN_ORDER")
        .allowlist_type("IMB_KEY_SIZE_BYTES")
        .allowlist_var("IMB_VERSION_NUM")
        .allowlist_var("IMB_MAX_BURST_SIZE")
        .allowlist_var("IMB_MAX_JOBS")
        .allowlist_var("IMB_AES_BLOCK_SIZE")
        .allowlist_var("IMB_SHA.*")
        .allowlist_var("IMB_MAX_TAG_LEN")
        .allowlist_var("IMB_GCM_IV_DATA_LEN")
        .allowlist_var("IMB_FEATURE_.*")
        .allowlist_var("IMB_FLAG_.*")
        // The manager is only ever handled by pointer, through the shim.
        .allowlist_type("IMB_MGR")
        .opaque_type("IMB_MGR")
        // The job's algorithm-specific unions carry structs we never touch
        // (ZUC, SNOW3G, KASUMI, ...): keep them, they define the layout.
        .default_enum_style(bindgen::EnumVariation::NewType { is_bitfield: false, is_global: false })
        .prepend_enum_name(false)
        .use_core()
        .ctypes_prefix("core::ffi")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .wrap_unsafe_ops(true)
        .generate_comments(true)
        .merge_extern_blocks(true)
        .generate()
}
