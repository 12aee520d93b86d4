//! Write the seed corpus of the `attach` target: `cargo run --example gen-corpus`.
//!
//! Each seed is one corruption that `Region::attach` or the operations after it must
//! survive (see `src/lib.rs` for the input format); the generator prints what attach says
//! about each.

use sadb_fuzz::{exercise, mutate, scratch_path, write_file, Image};
use std::path::Path;

/// Header edit: `off` must be even (the format counts in 2-byte units).
fn header(off: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8, (off / 2) as u8, bytes.len() as u8];
    v.extend_from_slice(bytes);
    v
}

fn absolute(off: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![2u8];
    v.extend_from_slice(&(off as u32).to_le_bytes()[..3]);
    v.push(bytes.len() as u8);
    v.extend_from_slice(bytes);
    v
}

fn resize(len: usize) -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend_from_slice(&((len / 128) as u32).to_le_bytes()[..3]);
    v
}

/// Offset of the SPI-index entry of an SPI (inbound) in an image.
fn index_entry(image: &[u8], spi: u32) -> usize {
    image
        .chunks_exact(8)
        .position(|w| {
            let v = u64::from_ne_bytes(w.try_into().unwrap());
            (v >> 32) as u32 == spi && (v & 0x8000_0000) == 0 && (1..=16).contains(&(v & 0x7fff_ffff))
        })
        .map(|i| i * 8)
        .expect("the SPI is indexed")
}

fn main() {
    let images = [Image::new(false), Image::new(true)];
    let len = images[0].bytes.len();
    let u32b = |v: u32| v.to_ne_bytes().to_vec();
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        ("image0".into(), vec![0]),
        ("image1".into(), vec![1]),
        ("image0-policy-changes".into(), vec![2]),
        ("image1-policy-changes".into(), vec![3]),
        ("bad-magic".into(), [vec![0], header(0, b"NOTSADB!")].concat()),
        ("abi-version-foreign".into(), [vec![0], header(8, &u32b(sadb::ABI_VERSION + 1))].concat()),
        ("sa-record-size".into(), [vec![0], header(16, &u32b(123))].concat()),
        ("zero-sas".into(), [vec![0], header(40, &u32b(0))].concat()),
        ("sas-17-same-size".into(), [vec![0], header(40, &u32b(17))].concat()),
        ("huge-sas".into(), [vec![1], header(40, &u32b(1 << 24))].concat()),
        ("total-size".into(), [vec![0], header(72, &(1u64 << 40).to_ne_bytes())].concat()),
        ("truncated".into(), [vec![0], resize(len / 2)].concat()),
        ("extended".into(), [vec![1], resize(len + 4096)].concat()),
        ("free-top".into(), [vec![0], header(288, &u32b(u32::MAX))].concat()),
        ("retired-tail".into(), [vec![0], header(296, &u32b(0x8000_0000))].concat()),
        ("active-index-1".into(), [vec![1], header(276, &u32b(1))].concat()),
        ("active-bank-flip".into(), [vec![0], header(272, &u32b(0))].concat()),
        ("tombstones".into(), [vec![0], header(300, &u32b(u32::MAX))].concat()),
        ("epoch-max".into(), [vec![0], header(256, &u64::MAX.to_ne_bytes())].concat()),
    ];
    for (i, img) in images.iter().enumerate() {
        let at = index_entry(&img.bytes, 0x1001);
        let entry = |low: u32| [low.to_ne_bytes(), 0x1001u32.to_ne_bytes()].concat();
        seeds.push((format!("index{i}-slot-field-0"), [vec![i as u8], absolute(at, &entry(0))].concat()));
        seeds.push((
            format!("index{i}-slot-past-table"),
            [vec![i as u8], absolute(at, &entry(1000))].concat(),
        ));
        seeds.push((
            format!("index{i}-slot-max"),
            [vec![i as u8], absolute(at, &entry(0x7fff_fffe))].concat(),
        ));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join("attach");
    std::fs::create_dir_all(&dir).unwrap();
    let path = scratch_path("gen");
    for (name, input) in &seeds {
        let (bytes, spis) = mutate(input, &images);
        write_file(&path, &bytes);
        let said = match sadb::Region::attach(&path) {
            Ok(r) => format!("attached, {} SAs listed", r.list_sas().len()),
            Err(e) => e.to_string(),
        };
        println!("{name}: {said}");
        std::fs::write(dir.join(format!("{name}.bin")), input).unwrap();
        // Run what the target runs, so a seed that panics shows here first.
        exercise(&path, &spis, input.first().is_some_and(|b| b & 2 != 0));
        let _ = std::fs::remove_file(&path);
    }
    println!("wrote {} seeds under {}", seeds.len(), dir.display());
}
