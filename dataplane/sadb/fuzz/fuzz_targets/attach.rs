//! Attach to a region file whose bytes are a genuine region corrupted by the fuzzer (see
//! the crate's documentation for the input format), then use it as espd, espctl and iked
//! do. Nothing may panic, and no slot outside the tables may be handed out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sadb_fuzz::{exercise, mutate, scratch_path, write_file, Image};
use std::sync::OnceLock;

static IMAGES: OnceLock<[Image; 2]> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let images = IMAGES.get_or_init(|| [Image::new(false), Image::new(true)]);
    let (bytes, spis) = mutate(data, images);
    let path = scratch_path("attach");
    write_file(&path, &bytes);
    exercise(&path, &spis, data.first().is_some_and(|b| b & 2 != 0));
    let _ = std::fs::remove_file(&path);
});
