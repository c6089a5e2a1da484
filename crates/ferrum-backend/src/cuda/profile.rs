//! Per-op timing for diagnosis (`FERRUM_CUDA_PROFILE=1`): every op waits for the device before
//! and after itself, so each entry is that op's device time plus its launch cost, with no
//! overlap. Steps run slower while it is on; the table is printed to stderr when the backend is dropped.
//!
//! Invariant: when the variable is unset the guard is a no-op (no synchronization, no lock).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cudarc::driver::CudaStream;

#[derive(Default)]
pub(super) struct Profile {
    ops: Mutex<HashMap<String, (u64, Duration)>>,
}

impl Profile {
    pub fn from_env() -> Option<Self> {
        std::env::var("FERRUM_CUDA_PROFILE")
            .ok()
            .filter(|v| !v.is_empty() && v != "0")
            .map(|_| Self::default())
    }

    /// The table, slowest op first.
    pub fn report(&self) -> String {
        let ops = match self.ops.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut rows: Vec<_> = ops.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1 .1));
        let total: Duration = rows.iter().map(|r| r.1 .1).sum();
        let mut s = format!(
            "CUDA op profile (synchronized per op), total {:.1} ms\n",
            total.as_secs_f64() * 1e3
        );
        for (name, (n, d)) in rows {
            s.push_str(&format!(
                "{:>10.2} ms {:>5.1}% {:>8} calls {:>9.1} us/call  {name}\n",
                d.as_secs_f64() * 1e3,
                100.0 * d.as_secs_f64() / total.as_secs_f64().max(1e-12),
                n,
                d.as_secs_f64() * 1e6 / *n as f64,
            ));
        }
        s
    }
}

/// Times one op while alive (see the module docs).
pub(super) struct OpTimer<'a> {
    profile: &'a Profile,
    stream: &'a Arc<CudaStream>,
    name: String,
    start: Instant,
}

impl<'a> OpTimer<'a> {
    pub fn start(profile: &'a Profile, stream: &'a Arc<CudaStream>, name: String) -> Self {
        // A failed wait shows up again at the op's own next call; the timer only measures.
        let _ = stream.synchronize();
        Self {
            profile,
            stream,
            name,
            start: Instant::now(),
        }
    }
}

impl Drop for OpTimer<'_> {
    fn drop(&mut self) {
        let _ = self.stream.synchronize();
        let d = self.start.elapsed();
        let mut ops = match self.profile.ops.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let e = ops.entry(std::mem::take(&mut self.name)).or_default();
        e.0 += 1;
        e.1 += d;
    }
}
