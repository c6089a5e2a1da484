//! The CUDA kernel sources compile with NVRTC for every architecture we claim (sm_80 and up).
//! Needs only libnvrtc, not a GPU; skipped (with a note) where the library is absent.

use ferrum_backend::cuda::{self, CudaDType};

/// The tiled prefill and split decode instances of every supported head size (the f32 module
/// has no tiled prefill at 256: its tiles would not fit the shared memory).
fn attention_kernels(dtype: CudaDType) -> impl Iterator<Item = String> {
    [16, 32, 64, 96, 128, 256].into_iter().flat_map(move |d| {
        let prefill = (dtype != CudaDType::F32 || d <= 128).then(|| format!("attn_prefill_{d}"));
        prefill.into_iter().chain([format!("attn_decode_{d}")])
    })
}

/// The small-batch linear kernels, one per row count.
fn gemv_kernels() -> impl Iterator<Item = String> {
    (1..=8).flat_map(|m| [format!("gemv_{m}"), format!("gemv_silu_{m}")])
}

#[test]
fn kernels_compile_for_ampere_ada_and_hopper_in_every_dtype() {
    if !cuda::nvrtc_present() {
        eprintln!("skipped: libnvrtc not found");
        return;
    }
    let cases = [80, 86, 89, 90]
        .into_iter()
        .map(|a| (a, CudaDType::BF16))
        .chain([
            (80, CudaDType::F16),
            (90, CudaDType::F16),
            (80, CudaDType::F32),
            (90, CudaDType::F32),
        ]);
    for (arch, dtype) in cases {
        let ptx = cuda::compile_kernels(arch, dtype).unwrap_or_else(|e| panic!("sm_{arch}: {e}"));
        for name in [
            "embedding",
            "gather_rows",
            "rms_norm",
            "add_rms_norm",
            "head_rms_norm",
            "rotary",
            "write_kv",
            "add_bias",
            "silu_mul",
            "paged_attention_16",
            "paged_attention_32",
            "paged_attention_64",
            "paged_attention_96",
            "paged_attention_128",
            "paged_attention_256",
            "qk_rope_kv_64",
            "qk_rope_kv_128",
            "qk_rope_kv_256",
        ]
        .into_iter()
        .map(String::from)
        .chain(attention_kernels(dtype))
        .chain(gemv_kernels())
        {
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "sm_{arch} {dtype}: kernel {name} missing from the PTX"
            );
        }
        assert!(
            ptx.contains(&format!(".target sm_{arch}")),
            "sm_{arch}: target line"
        );
        // Programmatic dependent launch exists from sm_90 on; older targets compile without it.
        assert_eq!(
            ptx.contains("griddepcontrol.wait"),
            arch >= 90,
            "sm_{arch}: griddepcontrol"
        );
        if dtype == CudaDType::F32 {
            assert!(
                !ptx.contains(".entry attn_prefill_256("),
                "f32 has no tiled prefill at 256"
            );
            assert!(
                !ptx.contains("mma.sync"),
                "f32 attention must not round through tensor cores"
            );
        }
    }
}

#[test]
fn cache_key_depends_on_the_architecture() {
    if !cuda::nvrtc_present() {
        eprintln!("skipped: libnvrtc not found");
        return;
    }
    let (a, b) = (
        cuda::kernel_cache_key(80, CudaDType::BF16),
        cuda::kernel_cache_key(90, CudaDType::BF16),
    );
    assert_ne!(a, b);
    assert!(a.ends_with("-sm_80") && b.ends_with("-sm_90"), "{a} {b}");
    assert_eq!(
        a,
        cuda::kernel_cache_key(80, CudaDType::BF16),
        "the key is deterministic"
    );
    assert_ne!(
        a,
        cuda::kernel_cache_key(80, CudaDType::F32),
        "one module per dtype"
    );
}

#[test]
fn auto_detection_does_not_panic_without_a_driver() {
    // On a machine with no driver this must be a clean error, never a panic or abort.
    match cuda::probe(0) {
        Ok(info) => assert!(info.arch >= 80, "{info:?}"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
