//! A warm decode step on a GPU allocates nothing on the host (skipped, with a note, where no
//! CUDA device is usable; `scripts/gpu/kit.sh` runs it on one): the runner's step layout, the
//! backend's metadata upload, the input patches from the previous sampling, the graph replay,
//! the sampling parameters and the read-back of the tokens all reuse buffers kept from earlier
//! steps. The steps are those of async scheduling: step N+1 is queued before step N's tokens
//! are read, and its inputs come from the device.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferrum_backend::cuda::CudaBackend;
use ferrum_backend::{KvCacheSpec, LogitAdjust, RowSampling};
use ferrum_executor::{ModelRunner, SeqInput};
use ferrum_model::{DecoderModel, ModelBundle};

/// Counts the allocations (and growths) of the thread that has counting on.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, COUNT.with(Cell::get))
}

const BLOCK_SIZE: usize = 16;
const SEQS: usize = 5;
const STEPS: usize = 12;
/// Steps that may still allocate: the first records its graph, the next ones grow buffers.
const WARM_UP: usize = 3;

#[test]
fn the_counter_sees_an_allocation() {
    let (v, n) = allocations(|| std::hint::black_box(vec![1u8; 3]));
    assert_eq!(v.len(), 3);
    assert_eq!(n, 1);
}

#[test]
fn a_warm_decode_step_allocates_nothing_on_the_host() {
    let backend = match CudaBackend::new(0) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ferrum_testkit::preset("tiny_qwen3").expect("preset");
    ferrum_testkit::write_test_model(dir.path(), &spec).expect("write model");
    let bundle = ModelBundle::open(dir.path()).expect("open model");
    let cfg = bundle.config.clone();
    let vocab = cfg.vocab_size as u32;
    let model = DecoderModel::load(&backend, cfg.clone(), bundle.weights.as_ref()).expect("load");
    let max_len = 128;
    let blocks_per_seq = max_len / BLOCK_SIZE;
    let kv = KvCacheSpec {
        num_layers: cfg.num_layers,
        num_kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        block_size: BLOCK_SIZE,
        num_blocks: SEQS * blocks_per_seq + 1,
    };
    let mut runner = ModelRunner::new(backend, model, kv, 256, 8).expect("runner");
    assert!(runner.enable_graphs(max_len), "CUDA records decode graphs");

    // Prompts of different lengths over their own blocks (block 0 is the null block).
    let prompts: Vec<Vec<u32>> = (0..SEQS)
        .map(|i| {
            (0..5 + 7 * i as u32)
                .map(|j| 3 + (j * 31 + i as u32) % (vocab - 3))
                .collect()
        })
        .collect();
    let tables: Vec<Vec<u32>> = (0..SEQS)
        .map(|i| {
            let first = 1 + (i * blocks_per_seq) as u32;
            (first..first + blocks_per_seq as u32).collect()
        })
        .collect();
    // Greedy, random with every filter, and penalized rows.
    let modes: Vec<RowSampling> = (0..SEQS)
        .map(|i| match i % 2 {
            0 => RowSampling::Greedy,
            _ => RowSampling::Random {
                temperature: 0.8,
                top_k: 20,
                top_p: 0.9,
                min_p: 0.01,
                uniform: 0.37,
            },
        })
        .collect();
    let adjust: Vec<LogitAdjust> = (0..SEQS as u32)
        .map(|row| LogitAdjust {
            row,
            token: 3 + row,
            pre_add: -0.5,
            rep: 1.2,
            post_add: 0.25,
        })
        .collect();

    let prefill: Vec<SeqInput<'_>> = (0..SEQS)
        .map(|i| SeqInput {
            tokens: &prompts[i],
            num_computed_tokens: 0,
            block_table: &tables[i],
            want_logits: true,
        })
        .collect();
    runner.forward(&prefill).expect("prefill");
    let mut ticket = runner.sample_deferred(&modes, &adjust).expect("sample");

    // Each decode input is a placeholder that the device fills from the previous sampling.
    let placeholder = [0u32];
    let mut decode: Vec<SeqInput<'_>> = (0..SEQS)
        .map(|i| SeqInput {
            tokens: &placeholder,
            num_computed_tokens: prompts[i].len(),
            block_table: &tables[i],
            want_logits: true,
        })
        .collect();
    let patches: Vec<[u32; 2]> = (0..SEQS as u32).map(|i| [i, i]).collect();
    let mut tokens: Vec<u32> = Vec::new();
    let mut counts = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let (res, n) = allocations(|| -> Result<u64, ferrum_executor::ExecutorError> {
            runner.forward_patched(&decode, &patches)?;
            let next = runner.sample_deferred(&modes, &adjust)?;
            runner.wait_sampled(ticket, &mut tokens)?;
            Ok(next)
        });
        ticket = res.expect("decode step");
        counts.push(n);
        assert_eq!(tokens.len(), SEQS);
        assert!(tokens.iter().all(|&t| t < vocab), "tokens {tokens:?}");
        for s in &mut decode {
            s.num_computed_tokens += 1;
        }
    }
    runner
        .wait_sampled(ticket, &mut tokens)
        .expect("last tokens");
    eprintln!("host allocations per decode step: {counts:?}");
    // Recording the first step's graph allocates: the counter sees the step's thread.
    assert!(
        counts[0] > 0,
        "no allocation seen while recording: {counts:?}"
    );
    assert!(
        counts[WARM_UP..].iter().all(|&n| n == 0),
        "host allocations per decode step: {counts:?}"
    );
}
