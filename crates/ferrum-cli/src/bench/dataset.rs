//! The random dataset of `vllm bench serve|latency|throughput` (vLLM's new `RandomDataset`):
//! per request an input length and an output length drawn integer-uniformly from
//! `[floor(L·(1−r)), ceil(L·(1+r))]`, a shared random prefix of `--random-prefix-len` tokens, and a
//! body that is a run of consecutive allowed token ids starting at a random offset, so prompts share
//! no prefix beyond the one asked for.
//!
//! Invariants:
//! - The same seed, lengths and vocabulary give the same requests on every machine (the generator
//!   is our xoshiro256**, not numpy's PCG64, so the ids differ from vLLM's for the same seed).
//! - Every input length is within the ratio's bounds and every output length is at least 1.
//! - `num_special_tokens` (the BOS a server adds when it tokenizes a text prompt) is taken off the
//!   body length as vLLM does; token-id prompts pass 0, because servers add nothing to them.

use anyhow::{bail, Result};
use ferrum_executor::Rng;
use ferrum_tokenizer::Tokenizer;

/// Lengths and seed of the random dataset (vLLM's `--random-*` flags).
#[derive(Debug, Clone, Copy)]
pub struct RandomSpec {
    pub input_len: usize,
    pub output_len: usize,
    pub range_ratio: f64,
    pub prefix_len: usize,
    pub seed: u64,
}

/// One request of the dataset: its prompt ids and the output length it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRequest {
    pub prompt_ids: Vec<u32>,
    /// Tokens of the prompt as sent (without a BOS the server may add).
    pub prompt_len: usize,
    pub expected_output_len: usize,
}

/// `[floor(len·(1−r)), ceil(len·(1+r))]`, vLLM's bounds for a length `len` and range ratio `r`.
pub fn length_bounds(len: usize, ratio: f64) -> (usize, usize) {
    let lo = (len as f64 * (1.0 - ratio)).floor().max(0.0) as usize;
    let hi = (len as f64 * (1.0 + ratio)).ceil() as usize;
    (lo, hi)
}

/// Uniform integer in `[lo, hi]`.
pub fn uniform_int(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    let span = (hi - lo) as u64 + 1;
    lo + (rng.next_u64() % span) as usize
}

/// The token ids a random prompt may use: the vocabulary without special tokens.
pub fn allowed_tokens(vocab_size: usize, special: &[u32]) -> Vec<u32> {
    (0..vocab_size as u32)
        .filter(|t| !special.contains(t))
        .collect()
}

/// Samples `n` requests as vLLM's `RandomDataset.sample` does.
pub fn sample_random(
    spec: &RandomSpec,
    allowed: &[u32],
    num_special_tokens: usize,
    n: usize,
) -> Result<Vec<SampleRequest>> {
    if !(0.0..1.0).contains(&spec.range_ratio) {
        bail!(
            "--random-range-ratio must be in [0, 1), got {}",
            spec.range_ratio
        );
    }
    if allowed.is_empty() {
        bail!("the vocabulary has no token that a random prompt may use");
    }
    let mut rng = Rng::new(spec.seed);
    let real_input_len = spec.input_len.saturating_sub(num_special_tokens);
    let (in_lo, in_hi) = length_bounds(real_input_len, spec.range_ratio);
    let (out_lo, out_hi) = length_bounds(spec.output_len, spec.range_ratio);
    let (out_lo, out_hi) = (out_lo.max(1), out_hi.max(1));
    let prefix: Vec<u32> = (0..spec.prefix_len)
        .map(|_| allowed[uniform_int(&mut rng, 0, allowed.len() - 1)])
        .collect();
    let input_lens: Vec<usize> = (0..n)
        .map(|_| uniform_int(&mut rng, in_lo, in_hi))
        .collect();
    let output_lens: Vec<usize> = (0..n)
        .map(|_| uniform_int(&mut rng, out_lo, out_hi))
        .collect();
    let offsets: Vec<usize> = (0..n)
        .map(|_| uniform_int(&mut rng, 0, allowed.len() - 1))
        .collect();
    Ok((0..n)
        .map(|i| {
            let body = (0..input_lens[i]).map(|j| allowed[(offsets[i] + i + j) % allowed.len()]);
            let prompt_ids: Vec<u32> = prefix.iter().copied().chain(body).collect();
            SampleRequest {
                prompt_len: prompt_ids.len(),
                prompt_ids,
                expected_output_len: output_lens[i],
            }
        })
        .collect())
}

/// Turns a random id sequence into text that re-encodes (without special tokens) to exactly
/// `ids.len()` tokens where 10 rounds of decode → encode → pad/truncate reach it (vLLM's
/// `gen_prompt_decode_to_target_len`). Returns the text and its token count.
pub fn ids_to_text(
    tokenizer: &Tokenizer,
    ids: &[u32],
    allowed: &[u32],
    rng: &mut Rng,
) -> Result<(String, usize)> {
    let target = ids.len();
    let mut seq = ids.to_vec();
    let mut tries_left = 10;
    loop {
        let text = tokenizer.decode(&seq, false)?;
        seq = tokenizer.encode(&text, false)?;
        if tries_left == 0 || seq.len() == target {
            return Ok((text, seq.len()));
        }
        if seq.len() < target {
            let missing = target - seq.len();
            seq.extend((0..missing).map(|_| allowed[uniform_int(rng, 0, allowed.len() - 1)]));
        } else {
            seq.truncate(target);
        }
        tries_left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(input_len: usize, output_len: usize, ratio: f64, seed: u64) -> RandomSpec {
        RandomSpec {
            input_len,
            output_len,
            range_ratio: ratio,
            prefix_len: 0,
            seed,
        }
    }

    #[test]
    fn bounds_follow_vllm() {
        assert_eq!(length_bounds(1024, 0.0), (1024, 1024));
        assert_eq!(length_bounds(100, 0.25), (75, 125));
        // floor / ceil on fractional bounds: 10·0.85 = 8.5, 10·1.15 = 11.5.
        assert_eq!(length_bounds(10, 0.15), (8, 12));
    }

    #[test]
    fn lengths_stay_within_the_ratio_and_cover_it() {
        let allowed: Vec<u32> = (0..1000).collect();
        let reqs = sample_random(&spec(100, 40, 0.5, 3), &allowed, 1, 2000).unwrap();
        let (in_lo, in_hi) = length_bounds(99, 0.5);
        let (out_lo, out_hi) = length_bounds(40, 0.5);
        for r in &reqs {
            assert!((in_lo..=in_hi).contains(&r.prompt_len), "{}", r.prompt_len);
            assert_eq!(r.prompt_ids.len(), r.prompt_len);
            assert!((out_lo..=out_hi).contains(&r.expected_output_len));
        }
        // Uniform over the range: both ends occur and the mean is near the middle.
        let ins: Vec<usize> = reqs.iter().map(|r| r.prompt_len).collect();
        assert_eq!(ins.iter().min(), Some(&in_lo));
        assert_eq!(ins.iter().max(), Some(&in_hi));
        let mean = ins.iter().sum::<usize>() as f64 / ins.len() as f64;
        assert!((mean - (in_lo + in_hi) as f64 / 2.0).abs() < 1.5, "{mean}");
    }

    #[test]
    fn ratio_zero_gives_fixed_lengths_and_output_is_at_least_one() {
        let allowed: Vec<u32> = (0..50).collect();
        let reqs = sample_random(&spec(7, 0, 0.0, 0), &allowed, 0, 20).unwrap();
        assert!(reqs.iter().all(|r| r.prompt_len == 7));
        assert!(reqs.iter().all(|r| r.expected_output_len == 1));
    }

    #[test]
    fn same_seed_same_requests_other_seed_other_requests() {
        let allowed: Vec<u32> = (5..5000).collect();
        let a = sample_random(&spec(64, 16, 0.3, 11), &allowed, 0, 50).unwrap();
        let b = sample_random(&spec(64, 16, 0.3, 11), &allowed, 0, 50).unwrap();
        let c = sample_random(&spec(64, 16, 0.3, 12), &allowed, 0, 50).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bodies_are_consecutive_allowed_ids_after_a_shared_prefix() {
        let allowed: Vec<u32> = vec![3, 4, 7, 9, 10];
        let mut s = spec(6, 4, 0.0, 5);
        s.prefix_len = 3;
        let reqs = sample_random(&s, &allowed, 0, 10).unwrap();
        let prefix = &reqs[0].prompt_ids[..3];
        for r in &reqs {
            assert_eq!(r.prompt_len, 9);
            assert_eq!(&r.prompt_ids[..3], prefix);
            let body = &r.prompt_ids[3..];
            assert!(body.iter().all(|t| allowed.contains(t)));
            let pos = |t: u32| allowed.iter().position(|&a| a == t).unwrap();
            for w in body.windows(2) {
                assert_eq!(pos(w[1]), (pos(w[0]) + 1) % allowed.len());
            }
        }
    }

    #[test]
    fn special_tokens_are_not_allowed_and_bad_ratio_is_refused() {
        assert_eq!(allowed_tokens(6, &[0, 2, 5]), vec![1, 3, 4]);
        assert!(sample_random(&spec(8, 8, 1.0, 0), &[1, 2], 0, 1).is_err());
        assert!(sample_random(&spec(8, 8, 0.0, 0), &[], 0, 1).is_err());
    }
}
