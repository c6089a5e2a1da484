//! Token selection from one row of logits with every OpenAI/vLLM sampling parameter.
//!
//! Order (as vLLM applies them): logit bias → min_tokens EOS mask → repetition / frequency /
//! presence penalties → log-probabilities of the processed logits → temperature → top-k →
//! top-p → min-p → draw. Greedy (temperature 0) takes the arg-max after the penalties.

use std::collections::HashMap;

use ferrum_types::{SamplingParams, TokenId};

use crate::Rng;

/// Top log-probabilities of one position.
#[derive(Debug, Clone, PartialEq)]
pub struct Logprobs {
    /// Log-probability of the chosen token.
    pub chosen: f32,
    /// `(token, logprob)`, most likely first.
    pub top: Vec<(TokenId, f32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampledToken {
    pub token: TokenId,
    pub logprobs: Option<Logprobs>,
}

/// Context the penalties need about one sequence.
pub struct SequenceView<'a> {
    pub prompt: &'a [TokenId],
    pub output: &'a [TokenId],
    /// Tokens that end the sequence (masked while fewer than `min_tokens` were generated).
    pub eos_token_ids: &'a [TokenId],
}

fn apply_penalties(logits: &mut [f32], p: &SamplingParams, seq: &SequenceView<'_>) {
    if p.repetition_penalty != 1.0 {
        let mut seen = vec![false; logits.len()];
        for &t in seq.prompt.iter().chain(seq.output) {
            if let Some(s) = seen.get_mut(t as usize) {
                *s = true;
            }
        }
        for (l, s) in logits.iter_mut().zip(seen) {
            if s {
                *l = if *l > 0.0 {
                    *l / p.repetition_penalty
                } else {
                    *l * p.repetition_penalty
                };
            }
        }
    }
    if p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
        let mut counts: HashMap<TokenId, u32> = HashMap::new();
        for &t in seq.output {
            *counts.entry(t).or_insert(0) += 1;
        }
        for (t, c) in counts {
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= p.frequency_penalty * c as f32 + p.presence_penalty;
            }
        }
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let lse = max + sum.ln() as f32;
    logits.iter().map(|&l| l - lse).collect()
}

fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

fn top_n(logprobs: &[f32], n: usize) -> Vec<(TokenId, f32)> {
    let mut idx: Vec<usize> = (0..logprobs.len()).collect();
    let n = n.min(idx.len());
    if n == 0 {
        return Vec::new();
    }
    idx.select_nth_unstable_by(n - 1, |&a, &b| logprobs[b].total_cmp(&logprobs[a]));
    idx.truncate(n);
    idx.sort_by(|&a, &b| logprobs[b].total_cmp(&logprobs[a]).then(a.cmp(&b)));
    idx.into_iter()
        .map(|i| (i as TokenId, logprobs[i]))
        .collect()
}

/// Draws from the truncated, tempered distribution.
fn draw(logits: &[f32], p: &SamplingParams, rng: &mut Rng) -> usize {
    let t = p.temperature.max(1e-5);
    // Candidates sorted by logit, descending; ties keep the lower id first.
    let mut cand: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    if cand.is_empty() {
        return argmax(logits);
    }
    cand.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if p.top_k > 0 {
        cand.truncate(p.top_k as usize);
    }
    let max = logits[cand[0]];
    let mut probs: Vec<f64> = cand
        .iter()
        .map(|&i| f64::from((logits[i] - max) / t).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|x| *x /= total);
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, &q) in probs.iter().enumerate() {
            acc += q;
            if acc >= f64::from(p.top_p) {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        cand.truncate(keep);
    }
    if p.min_p > 0.0 {
        let floor = probs[0] * f64::from(p.min_p);
        let keep = probs.iter().take_while(|&&q| q >= floor).count().max(1);
        probs.truncate(keep);
        cand.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut u = rng.next_f64() * total;
    for (i, &q) in probs.iter().enumerate() {
        if u < q {
            return cand[i];
        }
        u -= q;
    }
    cand[cand.len() - 1]
}

/// Samples one token from `logits` (modified in place by bias and penalties).
pub fn sample(
    logits: &mut [f32],
    params: &SamplingParams,
    seq: &SequenceView<'_>,
    rng: &mut Rng,
) -> SampledToken {
    for (&t, &b) in &params.logit_bias {
        if let Some(l) = logits.get_mut(t as usize) {
            *l += b;
        }
    }
    if seq.output.len() < params.min_tokens {
        for &t in seq.eos_token_ids.iter().chain(&params.stop_token_ids) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    apply_penalties(logits, params, seq);
    let token = if params.is_greedy() {
        argmax(logits)
    } else {
        draw(logits, params, rng)
    };
    let logprobs = params.logprobs.map(|n| {
        let lp = log_softmax(logits);
        Logprobs {
            chosen: lp[token],
            top: top_n(&lp, n),
        }
    });
    SampledToken {
        token: token as TokenId,
        logprobs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(out: &'a [TokenId]) -> SequenceView<'a> {
        SequenceView {
            prompt: &[],
            output: out,
            eos_token_ids: &[0],
        }
    }

    #[test]
    fn greedy_takes_argmax_and_reports_logprobs() {
        let mut l = vec![0.0, 3.0, 1.0, 2.0];
        let p = SamplingParams {
            logprobs: Some(2),
            ..SamplingParams::greedy(4)
        };
        let s = sample(&mut l, &p, &view(&[]), &mut Rng::new(0));
        assert_eq!(s.token, 1);
        let lp = s.logprobs.unwrap();
        assert_eq!(lp.top.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3]);
        assert!((lp.chosen - lp.top[0].1).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_greedy_and_min_tokens_masks_eos() {
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            min_tokens: 2,
            ..Default::default()
        };
        let mut l = vec![5.0, 1.0, 0.0];
        assert_eq!(sample(&mut l, &p, &view(&[]), &mut Rng::new(1)).token, 1);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_follows_the_distribution() {
        let p = SamplingParams {
            temperature: 1.0,
            ..Default::default()
        };
        let logits = vec![0.0f32, (3.0f32).ln()];
        let mut rng = Rng::new(42);
        let mut ones = 0;
        for _ in 0..4000 {
            let mut l = logits.clone();
            ones += sample(&mut l, &p, &view(&[]), &mut rng).token;
        }
        let frac = ones as f64 / 4000.0;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
        let a: Vec<_> = (0..20)
            .scan(Rng::new(9), |r, _| {
                Some(sample(&mut logits.clone(), &p, &view(&[]), r).token)
            })
            .collect();
        let b: Vec<_> = (0..20)
            .scan(Rng::new(9), |r, _| {
                Some(sample(&mut logits.clone(), &p, &view(&[]), r).token)
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn penalties_and_bias() {
        let p = SamplingParams {
            repetition_penalty: 2.0,
            frequency_penalty: 1.0,
            logit_bias: [(0, -100.0)].into_iter().collect(),
            ..SamplingParams::greedy(4)
        };
        let mut l = vec![10.0, 4.0, 3.0];
        // token 1 appeared twice: 4/2 - 2 = 0 < 3
        let s = sample(&mut l, &p, &view(&[1, 1]), &mut Rng::new(0));
        assert_eq!(s.token, 2);
    }

    #[test]
    fn top_p_and_min_p_truncate() {
        let logits = vec![2.0f32, 1.9, -5.0, -5.0];
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        };
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            assert_eq!(
                sample(&mut logits.clone(), &p, &view(&[]), &mut rng).token,
                0
            );
        }
        let p = SamplingParams {
            temperature: 1.0,
            min_p: 0.5,
            ..Default::default()
        };
        for _ in 0..200 {
            assert!(sample(&mut logits.clone(), &p, &view(&[]), &mut rng).token < 2);
        }
    }
}
