//! The start-up profiling pass and the KV-cache swap that follows it leave a runner that
//! generates exactly as a freshly built one.

mod common;

use ferrum_backend::KvCacheSpec;
use ferrum_executor::ModelRunner;
use ferrum_model::ModelBundle;

#[test]
fn a_profiled_runner_with_a_new_cache_generates_as_a_fresh_one() {
    let bundle = ModelBundle::open(&common::default_model()).expect("open default model");
    let eos = bundle.eos_token_ids();
    let prompt: Vec<u32> = bundle
        .tokenizer
        .encode("The quick brown fox", true)
        .unwrap();

    let mut fresh = common::runner(&bundle, 256, 2);
    let want: Vec<u32> = common::greedy(&mut fresh, &prompt, 12, &eos)
        .iter()
        .map(|s| s.token)
        .collect();

    // Built over a cache too small to serve from, profiled over 40 tokens in sequences of at
    // most 24 (two sequences), then given a cache of the real size.
    let mut r = common::runner(&bundle, 48, 2);
    let need = ModelRunner::<ferrum_backend::cpu::CpuBackend>::profile_blocks(40, 24, 16);
    assert_eq!(need, 2 + 1);
    assert!(need <= r.kv_spec().num_blocks);
    r.profile_run(40, 24).expect("profile pass");
    let spec = KvCacheSpec {
        num_blocks: 256 / common::BLOCK_SIZE + 1,
        ..*r.kv_spec()
    };
    r.replace_kv_cache(spec).expect("new cache");
    assert_eq!(r.kv_spec().num_blocks, spec.num_blocks);
    let got: Vec<u32> = common::greedy(&mut r, &prompt, 12, &eos)
        .iter()
        .map(|s| s.token)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_profile_pass_larger_than_the_cache_is_refused() {
    let bundle = ModelBundle::open(&common::default_model()).expect("open default model");
    let mut r = common::runner(&bundle, 32, 2);
    // 32 tokens need 2 blocks; the cache has 3, so ask for sequences of 1 token each: 32 blocks.
    let err = r.profile_run(32, 1).expect_err("too many blocks");
    assert!(err.to_string().contains("KV blocks"), "{err}");
}
