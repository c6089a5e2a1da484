//! Micro-benchmark of `quant_matmul` on the default model's shapes (SmolLM2-135M), 2 threads.
//!
//! Not a timed test: run on purpose with
//! `cargo test -p ferrum-backend --test quant_bench -- --ignored --nocapture`
//! (`FERRUM_QUANT_KERNELS=scalar|avx2|avx2-avxvnni|avx2-vnni512` picks a kernel table).

use std::time::{Duration, Instant};

use ferrum_backend::cpu::quant::{
    kernel_variant, quant_matmul, quant_matmul_prepared, PreparedMatrix, QuantMatrix,
};
use ferrum_types::DType;

mod quant_common;
use quant_common::{random_acts, random_blocks, Rng};

/// Threads of the benchmark pool: 2 (the target machine), or `FERRUM_BENCH_THREADS`.
fn threads() -> usize {
    std::env::var("FERRUM_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2)
}

/// Fastest of `reps` runs after a warm-up: the machine is shared, and the minimum is the run
/// least disturbed by other processes.
fn time(reps: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..reps.min(20) {
        f();
    }
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[0]
}

struct Case {
    name: &'static str,
    dtype: DType,
    rows: usize,
    cols: usize,
    n: usize,
    reps: usize,
}

fn run(case: &Case) {
    let mut rng = Rng(1);
    let data = random_blocks(
        case.dtype,
        case.rows * case.cols / case.dtype.block_size(),
        &mut rng,
    );
    let w = QuantMatrix {
        dtype: case.dtype,
        rows: case.rows,
        cols: case.cols,
        data: &data,
    };
    let x = random_acts(case.n * case.cols, &mut rng);
    let mut out = vec![0.0f32; case.n * case.rows];
    let raw = time(case.reps, || {
        quant_matmul(&x, case.n, &w, &mut out).unwrap()
    });
    report(case, "rows", raw, data.len());
    if matches!(case.dtype, DType::Q4_0 | DType::Q4_1 | DType::Q8_0) {
        let p = PreparedMatrix::new(&w).unwrap();
        let t = time(case.reps, || {
            quant_matmul_prepared(&x, case.n, &p, &mut out).unwrap()
        });
        report(case, "prepared", t, data.len());
    }
}

fn report(case: &Case, layout: &str, t: Duration, bytes: usize) {
    let secs = t.as_secs_f64();
    let gbs = bytes as f64 / secs / 1e9;
    let gflops = 2.0 * (case.n * case.rows * case.cols) as f64 / secs / 1e9;
    println!(
        "{:<32} {:<8} {:>9.1} µs {:>7.1} GB/s of weights {:>7.1} GFLOP/s",
        case.name,
        layout,
        secs * 1e6,
        gbs,
        gflops
    );
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn quant_matmul_throughput() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .build()
        .unwrap();
    println!("kernels: {}, threads: {}", kernel_variant(), threads());
    let cases = [
        Case {
            name: "Q4_1 576x1536 matvec (down)",
            dtype: DType::Q4_1,
            rows: 576,
            cols: 1536,
            n: 1,
            reps: 2000,
        },
        Case {
            name: "Q4_1 1536x576 matvec (gate/up)",
            dtype: DType::Q4_1,
            rows: 1536,
            cols: 576,
            n: 1,
            reps: 2000,
        },
        Case {
            name: "Q4_1 192x576 matvec (k/v)",
            dtype: DType::Q4_1,
            rows: 192,
            cols: 576,
            n: 1,
            reps: 5000,
        },
        Case {
            name: "Q8_0 49152x576 matvec (lm head)",
            dtype: DType::Q8_0,
            rows: 49152,
            cols: 576,
            n: 1,
            reps: 100,
        },
        Case {
            name: "Q4_1 1536x576 prefill 128 rows",
            dtype: DType::Q4_1,
            rows: 1536,
            cols: 576,
            n: 128,
            reps: 50,
        },
        Case {
            name: "Q4_1 576x1536 prefill 128 rows",
            dtype: DType::Q4_1,
            rows: 576,
            cols: 1536,
            n: 128,
            reps: 50,
        },
        Case {
            name: "Q8_0 49152x576 prefill 16 rows",
            dtype: DType::Q8_0,
            rows: 49152,
            cols: 576,
            n: 16,
            reps: 10,
        },
        Case {
            name: "Q4_0 1536x576 prefill 128 rows",
            dtype: DType::Q4_0,
            rows: 1536,
            cols: 576,
            n: 128,
            reps: 50,
        },
        Case {
            name: "Q4_K 1536x768 prefill 128 rows",
            dtype: DType::Q4K,
            rows: 1536,
            cols: 768,
            n: 128,
            reps: 30,
        },
        Case {
            name: "Q6_K 1536x768 prefill 128 rows",
            dtype: DType::Q6K,
            rows: 1536,
            cols: 768,
            n: 128,
            reps: 30,
        },
        Case {
            name: "Q4_K 4096x4096 matvec",
            dtype: DType::Q4K,
            rows: 4096,
            cols: 4096,
            n: 1,
            reps: 100,
        },
    ];
    pool.install(|| {
        for case in &cases {
            run(case);
        }
    });
}

/// All linear layers of SmolLM2-135M (30 layers, Q4_1, random weights of the real shapes,
/// prepared) plus its Q8_0 LM head: the matmul share of one decode step and of a 128-token
/// prefill, as tokens/s if nothing else took time.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn smollm2_matmul_share() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .build()
        .unwrap();
    let mut rng = Rng(2);
    let shapes = [
        (576, 576),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let layers: Vec<Vec<PreparedMatrix>> = (0..30)
        .map(|_| {
            shapes
                .iter()
                .map(|&(rows, cols)| {
                    let data = random_blocks(DType::Q4_1, rows * cols / 32, &mut rng);
                    let w = QuantMatrix {
                        dtype: DType::Q4_1,
                        rows,
                        cols,
                        data: &data,
                    };
                    PreparedMatrix::new(&w).unwrap()
                })
                .collect()
        })
        .collect();
    let head_data = random_blocks(DType::Q8_0, 49152 * 576 / 32, &mut rng);
    let head = PreparedMatrix::new(&QuantMatrix {
        dtype: DType::Q8_0,
        rows: 49152,
        cols: 576,
        data: &head_data,
    })
    .unwrap();
    println!("kernels: {}, threads: {}", kernel_variant(), threads());
    pool.install(|| {
        for n in [1usize, 128] {
            let x = random_acts(n * 1536, &mut rng);
            let mut out = vec![0.0f32; n * 1536];
            let layers_t = time(if n == 1 { 50 } else { 5 }, || {
                for layer in &layers {
                    for w in layer {
                        let xs = &x[..n * w.cols()];
                        quant_matmul_prepared(xs, n, w, &mut out[..n * w.rows()]).unwrap();
                    }
                }
            });
            let mut logits = vec![0.0f32; 49152];
            let head_t = time(if n == 1 { 50 } else { 5 }, || {
                quant_matmul_prepared(&x[..576], 1, &head, &mut logits).unwrap();
            });
            let total = layers_t + head_t;
            println!(
                "{n:>3} tokens: layers {:>8.2} ms + lm head (1 row) {:>6.2} ms = {:>8.2} ms -> {:>8.1} tok/s",
                layers_t.as_secs_f64() * 1e3,
                head_t.as_secs_f64() * 1e3,
                total.as_secs_f64() * 1e3,
                n as f64 / total.as_secs_f64()
            );
        }
    });
}
