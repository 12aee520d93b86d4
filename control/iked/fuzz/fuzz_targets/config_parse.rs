//! Parse arbitrary text as an iked configuration file. It must never panic; whatever
//! validates must render back to TOML that validates to the same configuration (what
//! `iked --check-config --print` relies on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match iked::config::parse(text, Path::new("fuzz.toml")) {
        Ok(c) => {
            let rendered = iked::config::render(&c);
            let again = iked::config::parse(&rendered, Path::new("rendered.toml"))
                .unwrap_or_else(|e| panic!("a rendered configuration must parse: {e}\n{rendered}"));
            assert_eq!(again, c, "render/parse must round-trip\n{rendered}");
        }
        Err(e) => {
            // Errors name the file; formatting them must not panic either.
            assert!(e.to_string().contains("fuzz.toml"), "{e}");
        }
    }
});
