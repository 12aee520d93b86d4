//! Write the seed corpora of the three targets: `cargo run --example gen-corpus`.
//!
//! - `corpus/config_parse/`: the shipped example, a minimal and an IPv6 configuration.
//! - `corpus/ctl_request/`: one genuine request line per ikectl command.
//! - `corpus/ctl_response/`: one genuine response line per reply type.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut n = 0;
    let mut write = |dir: &str, name: String, bytes: &[u8]| {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
        n += 1;
    };
    for (name, text) in [
        ("example.toml", iked_fuzz::EXAMPLE_CONFIG),
        ("minimal.toml", iked_fuzz::MINIMAL_CONFIG),
        ("v6.toml", iked_fuzz::V6_CONFIG),
    ] {
        iked::config::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
        write("config_parse", name.to_owned(), text.as_bytes());
    }
    for (i, line) in iked_fuzz::request_lines().iter().enumerate() {
        iked::ctl::parse_request(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        write("ctl_request", format!("request-{i:02}.json"), line.as_bytes());
    }
    for (i, line) in iked_fuzz::response_lines().iter().enumerate() {
        serde_json::from_str::<iked::ctl::Response>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        write("ctl_response", format!("response-{i:02}.json"), format!("{line}\n").as_bytes());
    }
    println!("wrote {n} seeds under {}", root.display());
}
