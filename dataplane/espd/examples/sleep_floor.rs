//! What sleeping costs here: one thread that does nothing but `std::thread::sleep(d)` in a
//! loop, the call an idle worker in `dataplane.idle = "adaptive"` makes at its longest
//! back-off. For each `d`: the real period, wakes per second, and the share of a core the
//! thread used (on-CPU time from `/proc/thread-self/schedstat`, so time the thread waited
//! for a CPU is not counted). An adaptive worker that wakes every `period` to look at its
//! ports cannot cost less than this line, whatever it does when awake.
//!
//!     cargo run --release -p espd --example sleep_floor [SECONDS]
//!
//! Prints one `sleep-floor:` line per duration (10, 50, 100, 200, 500 µs).

use std::time::{Duration, Instant};

fn on_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    for us in [10u64, 50, espd::gw::idle::SLEEP_MAX.as_micros() as u64, 200, 500] {
        let d = Duration::from_micros(us);
        let (Some(c0), t0) = (on_cpu_ns(), Instant::now()) else {
            eprintln!("sleep_floor: /proc/thread-self/schedstat is not readable");
            std::process::exit(1);
        };
        let mut wakes = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            std::thread::sleep(d);
            wakes += 1;
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = on_cpu_ns().unwrap_or(c0).saturating_sub(c0) as f64 / 1e9;
        println!(
            "sleep-floor: sleep_us={us} period_us={:.1} wakes_per_s={:.0} cpu={:.1}% per_wake_us={:.2}",
            wall * 1e6 / wakes.max(1) as f64,
            wakes as f64 / wall,
            cpu / wall * 100.0,
            cpu * 1e6 / wakes.max(1) as f64
        );
    }
}
