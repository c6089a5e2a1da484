//! How several models share the machine's memory, decided before any model loads.
//!
//! Each model gets a share of the GPU (`gpu-memory-utilization`, a fraction of the device) and
//! a KV-cache size on the CPU (`kv-cache-memory-bytes`). A model with its own share in its
//! `models:` entry keeps it; the others split what is left of the global flag equally.
//!
//! Invariants:
//! - Shares of models that may run on the GPU (device `auto` or `cuda`) add up to at most 1.0;
//!   KV caches of models that may run on the CPU (`auto` or `cpu`) add up to at most the CPU
//!   budget (`--kv-cache-memory-bytes`, else the engine's default). A split that does not fit
//!   is refused with the numbers and the setting to change.
//! - With one model and no per-model share, the share is the global flag's value, so a single
//!   model starts exactly as before.

use crate::args::{Device, ServeArgs};
use crate::error::ConfigError;
use crate::models::ModelSpec;

/// One model's part of the memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryShare {
    pub gpu_memory_utilization: f32,
    pub kv_cache_memory_bytes: u64,
}

impl ServeArgs {
    /// The memory split over `specs`; `default_cpu_budget` is the engine's KV-cache size when
    /// --kv-cache-memory-bytes is unset.
    pub fn memory_split(
        &self,
        specs: &[ModelSpec],
        default_cpu_budget: u64,
    ) -> Result<Vec<MemoryShare>, ConfigError> {
        let gpu_total = f64::from(self.cache.gpu_memory_utilization);
        let cpu_budget = self
            .cache
            .kv_cache_memory_bytes
            .unwrap_or(default_cpu_budget);
        let gpu = split(
            specs,
            |s| s.gpu_memory_utilization.map(f64::from),
            |s| s.device != Device::Cpu,
            Budget {
                total: gpu_total,
                cap: 1.0,
                unit: Unit::Fraction,
            },
        )?;
        let cpu = split(
            specs,
            |s| s.kv_cache_memory_bytes.map(|b| b as f64),
            |s| s.device != Device::Cuda,
            Budget {
                total: cpu_budget as f64,
                cap: cpu_budget as f64,
                unit: Unit::Bytes,
            },
        )?;
        Ok(gpu
            .into_iter()
            .zip(cpu)
            .map(|(g, c)| MemoryShare {
                gpu_memory_utilization: g as f32,
                kv_cache_memory_bytes: c as u64,
            })
            .collect())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Fraction,
    Bytes,
}

struct Budget {
    /// What the models without their own share divide.
    total: f64,
    /// What all shares together may not exceed.
    cap: f64,
    unit: Unit,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Fraction => format!("{v:.2}"),
            Unit::Bytes if v < f64::from(1u32 << 30) => {
                format!("{:.1} MiB", v / f64::from(1u32 << 20))
            }
            Unit::Bytes => format!("{:.2} GiB", v / f64::from(1u32 << 30)),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Unit::Fraction => "gpu-memory-utilization",
            Unit::Bytes => "kv-cache-memory-bytes",
        }
    }

    fn budget(self, cap: f64) -> String {
        match self {
            Unit::Fraction => "the whole device (1.0)".into(),
            Unit::Bytes => format!(
                "the CPU KV-cache budget of {} (--kv-cache-memory-bytes)",
                self.show(cap)
            ),
        }
    }
}

fn split(
    specs: &[ModelSpec],
    own: impl Fn(&ModelSpec) -> Option<f64>,
    counts: impl Fn(&ModelSpec) -> bool,
    b: Budget,
) -> Result<Vec<f64>, ConfigError> {
    let unit = b.unit;
    let explicit: f64 = specs.iter().filter(|s| counts(s)).filter_map(&own).sum();
    let open = specs
        .iter()
        .filter(|s| counts(s) && own(s).is_none())
        .count();
    let named = |pred: &dyn Fn(&ModelSpec) -> bool| {
        specs
            .iter()
            .filter(|s| counts(s) && pred(s))
            .map(|s| match own(s) {
                Some(v) => format!("{} {}", s.primary_name(), unit.show(v)),
                None => s.primary_name().to_string(),
            })
            .collect::<Vec<_>>()
            .join(" + ")
    };
    if explicit > b.cap + 1e-6 {
        return Err(ConfigError::MemorySplit(format!(
            "the models' {} add up to {} ({}), more than {}: lower {} in the --config file's \
             models: entries{}",
            unit.key(),
            unit.show(explicit),
            named(&|s| own(s).is_some()),
            unit.budget(b.cap),
            unit.key(),
            match unit {
                Unit::Bytes => " or raise --kv-cache-memory-bytes",
                Unit::Fraction => "",
            }
        )));
    }
    let rest = (b.total.min(b.cap) - explicit).max(0.0);
    let each = if open > 0 { rest / open as f64 } else { 0.0 };
    let too_small = match unit {
        Unit::Fraction => each < 0.01,
        Unit::Bytes => each < f64::from(1u32 << 20),
    };
    if open > 0 && too_small && explicit == 0.0 {
        return Err(ConfigError::MemorySplit(format!(
            "{} of {} split over {open} models ({}) gives each {}, too little: raise {}",
            unit.key(),
            unit.show(b.total),
            named(&|_| true),
            unit.show(each),
            match unit {
                Unit::Bytes => "--kv-cache-memory-bytes",
                Unit::Fraction => "--gpu-memory-utilization",
            }
        )));
    }
    if open > 0 && too_small {
        return Err(ConfigError::MemorySplit(format!(
            "the models with their own {} ({}) leave {} of {} for {}: give {} its own {} or \
             lower the others'",
            unit.key(),
            named(&|s| own(s).is_some()),
            unit.show(rest),
            unit.show(b.total),
            named(&|s| own(s).is_none()),
            if open == 1 { "it" } else { "each" },
            unit.key(),
        )));
    }
    Ok(specs
        .iter()
        .map(|s| own(s).unwrap_or(if counts(s) { each } else { 0.0 }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_from;

    fn args(extra: &[&str]) -> ServeArgs {
        let argv = ["ferrum serve", "--model", "a", "--model", "b"]
            .into_iter()
            .chain(extra.iter().copied());
        load_from(argv, &|_| None).expect("parse")
    }

    fn spec(name: &str, gpu: Option<f32>, kv: Option<u64>) -> ModelSpec {
        let mut s = args(&[]).model_specs().expect("specs").remove(0);
        s.model = name.into();
        s.served_model_name = vec![name.into()];
        s.gpu_memory_utilization = gpu;
        s.kv_cache_memory_bytes = kv;
        s
    }

    #[test]
    fn one_model_keeps_the_global_values() {
        let a = load_from(
            ["ferrum serve", "m", "--kv-cache-memory-bytes", "512M"],
            &|_| None,
        )
        .expect("parse");
        let specs = a.model_specs().expect("specs");
        let split = a.memory_split(&specs, 2 << 30).expect("split");
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].kv_cache_memory_bytes, 512 << 20);
        assert!((split[0].gpu_memory_utilization - 0.9).abs() < 1e-6);
    }

    #[test]
    fn open_shares_divide_what_explicit_ones_leave() {
        let a = args(&[
            "--kv-cache-memory-bytes",
            "3G",
            "--gpu-memory-utilization",
            "0.8",
        ]);
        let specs = [
            spec("x", Some(0.5), Some(1 << 30)),
            spec("y", None, None),
            spec("z", None, None),
        ];
        let s = a.memory_split(&specs, 2 << 30).expect("split");
        assert_eq!(s[0].kv_cache_memory_bytes, 1 << 30);
        assert_eq!(s[1].kv_cache_memory_bytes, 1 << 30);
        assert_eq!(s[2].kv_cache_memory_bytes, 1 << 30);
        assert!((s[0].gpu_memory_utilization - 0.5).abs() < 1e-6);
        assert!((s[1].gpu_memory_utilization - 0.15).abs() < 1e-6);
    }

    #[test]
    fn over_budget_splits_are_refused_with_numbers() {
        let a = args(&[]);
        let e = a
            .memory_split(
                &[spec("x", Some(0.7), None), spec("y", Some(0.5), None)],
                2 << 30,
            )
            .expect_err("gpu over 1.0");
        let m = e.to_string();
        assert!(m.contains("add up to 1.20 (x 0.70 + y 0.50)"), "{m}");
        assert!(m.contains("gpu-memory-utilization"), "{m}");

        let e = a
            .memory_split(
                &[
                    spec("x", None, Some(2 << 30)),
                    spec("y", None, Some(1 << 30)),
                ],
                2 << 30,
            )
            .expect_err("cpu over budget");
        let m = e.to_string();
        assert!(m.contains("3.00 GiB (x 2.00 GiB + y 1.00 GiB)"), "{m}");
        assert!(m.contains("2.00 GiB (--kv-cache-memory-bytes)"), "{m}");

        let e = a
            .memory_split(
                &[spec("x", None, Some(2 << 30)), spec("y", None, None)],
                2 << 30,
            )
            .expect_err("nothing left");
        let m = e.to_string();
        assert!(m.contains("leave 0.0 MiB of 2.00 GiB for y"), "{m}");

        let tiny = args(&["--kv-cache-memory-bytes", "1M"]);
        let e = tiny
            .memory_split(&[spec("x", None, None), spec("y", None, None)], 2 << 30)
            .expect_err("too small");
        let m = e.to_string();
        assert!(
            m.contains("kv-cache-memory-bytes of 1.0 MiB split over 2 models (x + y) gives each 0.5 MiB, too little: raise --kv-cache-memory-bytes"),
            "{m}"
        );
    }

    #[test]
    fn devices_count_only_where_they_run() {
        let a = args(&[]);
        let mut cpu = spec("x", Some(0.9), None);
        cpu.device = Device::Cpu;
        let gpu = spec("y", Some(0.9), None);
        // x never touches the GPU, so 0.9 + 0.9 is no conflict.
        a.memory_split(&[cpu, gpu], 2 << 30).expect("split");
    }
}
