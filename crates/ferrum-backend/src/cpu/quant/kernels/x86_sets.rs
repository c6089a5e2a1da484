//! The x86 kernel tables and which of them this CPU can run.

use super::{kquant_avx2, legacy_avx2 as l, packed_x86 as p, KernelSet};

pub static AVX2: KernelSet = KernelSet {
    name: "avx2",
    q4_0: l::q4_0_avx2,
    q4_1: l::q4_1_avx2,
    q8_0: l::q8_0_avx2,
    q4k: kquant_avx2::q4k,
    q5k: kquant_avx2::q5k,
    q6k: kquant_avx2::q6k,
    packed_q4_0: p::q4_0_avx2,
    packed_q4_1: p::q4_1_avx2,
    packed_q8_0: p::q8_0_avx2,
};

pub static AVX2_AVXVNNI: KernelSet = KernelSet {
    name: "avx2-avxvnni",
    q4_0: l::q4_0_avxvnni,
    q4_1: l::q4_1_avxvnni,
    q8_0: l::q8_0_avxvnni,
    q4k: kquant_avx2::q4k,
    q5k: kquant_avx2::q5k,
    q6k: kquant_avx2::q6k,
    packed_q4_0: p::q4_0_avxvnni,
    packed_q4_1: p::q4_1_avxvnni,
    packed_q8_0: p::q8_0_avxvnni,
};

pub static AVX2_VNNI512: KernelSet = KernelSet {
    name: "avx2-vnni512",
    q4_0: l::q4_0_vnni512,
    q4_1: l::q4_1_vnni512,
    q8_0: l::q8_0_vnni512,
    q4k: kquant_avx2::q4k,
    q5k: kquant_avx2::q5k,
    q6k: kquant_avx2::q6k,
    packed_q4_0: p::q4_0_vnni256,
    packed_q4_1: p::q4_1_vnni256,
    packed_q8_0: p::q8_0_vnni256,
};

/// 512-bit interleaved kernels; GGUF-row kernels as `avx2-vnni512`.
pub static AVX512: KernelSet = KernelSet {
    name: "avx512-vnni",
    packed_q4_0: p::q4_0_avx512,
    packed_q4_1: p::q4_1_avx512,
    packed_q8_0: p::q8_0_avx512,
    ..AVX2_VNNI512
};

/// The tables this CPU supports, slowest first.
pub fn detect() -> Vec<&'static KernelSet> {
    let mut sets = Vec::new();
    let avx2 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    if !avx2 {
        return sets;
    }
    sets.push(&AVX2);
    if is_x86_feature_detected!("avxvnni") {
        sets.push(&AVX2_AVXVNNI);
    }
    let vnni512 = is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl");
    if vnni512 {
        sets.push(&AVX2_VNNI512);
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
            sets.push(&AVX512);
        }
    }
    sets
}
