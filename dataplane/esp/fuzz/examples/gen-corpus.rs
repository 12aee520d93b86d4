//! Write genuine ESP packets for every fuzzed SA into `corpus/inbound/`:
//! `cargo run --example gen-corpus`.

use esp::{encap, PacketBuffer, VecBuffer};

fn ipv4_udp(len: usize) -> Vec<u8> {
    let total = 28 + len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let c = esp::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&1234u16.to_be_bytes());
    p[22..24].copy_from_slice(&53u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    p
}

fn ipv6_udp(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; 48 + len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[23] = 1;
    p[39] = 2;
    p[40..42].copy_from_slice(&1234u16.to_be_bytes());
    p[42..44].copy_from_slice(&53u16.to_be_bytes());
    p[44..46].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    p
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/inbound");
    std::fs::create_dir_all(&dir).unwrap();
    let n = esp_fuzz::configs().len();
    for k in 0..n {
        let mut sa = esp_fuzz::outbound(k);
        // SA 1 is transport mode over IPv4; the v6 tunnels also carry v6 inner packets.
        for (j, len) in [0usize, 40, 200].into_iter().enumerate() {
            let inner = if k >= 2 && j == 1 { ipv6_udp(len) } else { ipv4_udp(len) };
            let mut b = VecBuffer::new(&inner);
            encap(&mut sa, &mut b).unwrap();
            let mut out = vec![k as u8];
            out.extend_from_slice(b.data());
            std::fs::write(dir.join(format!("sa{k}-{j}.bin")), out).unwrap();
        }
    }
    println!("wrote {} seeds to {}", n * 3, dir.display());
}
