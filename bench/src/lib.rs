//! phasegate's benchmark scenarios, shared by `benches/engine.rs`:
//! the raw sled floor, the engine's chain, fan-out and many-instances
//! shapes, recovery over a large store, and the same shapes on a peer
//! engine. docs/benchmarks.md explains the figures. Never pass/fail tests:
//! machines are noisy, so everything is reported as figures and ratios
//! measured in the same run.

pub mod cluster;
pub mod peer;
pub mod recovery;
pub mod shapes;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Raw sled: `records` appends of a 200-byte record (about an event's size),
/// flushed every `per_flush` records. The cost below which no engine on sled
/// can go with the same durability.
pub fn floor(records: usize, per_flush: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path().join("floor")).expect("sled");
    let record = vec![7u8; 200];
    let started = Instant::now();
    for i in 0..records {
        db.insert((i as u64).to_be_bytes(), record.as_slice()).expect("insert");
        if (i + 1) % per_flush == 0 {
            db.flush().expect("flush");
        }
    }
    db.flush().expect("flush");
    started.elapsed()
}

/// Min, median and max of `samples`, as JSON.
pub fn stats(samples: &mut [f64]) -> Value {
    samples.sort_by(f64::total_cmp);
    match samples {
        [] => json!(null),
        _ => json!({"min": samples[0], "median": samples[samples.len() / 2], "max": samples[samples.len() - 1]}),
    }
}

/// The median of a [`stats`] value (NaN when there were no samples).
pub fn median(stats: &Value) -> f64 {
    stats["median"].as_f64().unwrap_or(f64::NAN)
}

/// This process's resident memory in bytes (Linux; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()))
        })
        .map_or(0, |kib| kib * 1024)
}

/// Wall-clock time as nanoseconds since the epoch: comparable across
/// processes, unlike `Instant`.
pub fn unix_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
