//! Token selection from one row of logits with every OpenAI/vLLM sampling parameter.
//!
//! Order (as vLLM applies them): logit bias → min_tokens EOS mask → repetition / frequency /
//! presence penalties → log-probabilities of the processed logits → temperature → top-k →
//! top-p → min-p → draw. Greedy (temperature 0) takes the arg-max after the penalties.

use std::collections::HashMap;

use ferrum_backend::{LogitAdjust, RowSampling};
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

/// Draws from the tempered distribution without truncation: inverse CDF in vocabulary order,
/// so no sort is needed.
fn draw_untruncated(logits: &[f32], t: f32, rng: &mut Rng) -> usize {
    let best = argmax(logits);
    let max = logits[best];
    if !max.is_finite() {
        return best;
    }
    let weight = |l: f32| {
        if l.is_finite() {
            f64::from((l - max) / t).exp()
        } else {
            0.0
        }
    };
    let total: f64 = logits.iter().map(|&l| weight(l)).sum();
    let mut u = rng.next_f64() * total;
    let mut last = best;
    for (i, &l) in logits.iter().enumerate() {
        let w = weight(l);
        if w > 0.0 {
            if u < w {
                return i;
            }
            u -= w;
            last = i;
        }
    }
    last
}

/// Draws from the truncated, tempered distribution.
fn draw(logits: &[f32], p: &SamplingParams, rng: &mut Rng) -> usize {
    let t = p.temperature.max(1e-5);
    if p.top_k <= 0 && p.top_p >= 1.0 && p.min_p <= 0.0 {
        return draw_untruncated(logits, t, rng);
    }
    // Candidates sorted by logit, descending; ties keep the lower id first.
    let mut cand: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    if cand.is_empty() {
        return argmax(logits);
    }
    let order = |&a: &usize, &b: &usize| logits[b].total_cmp(&logits[a]).then(a.cmp(&b));
    // Top-k needs only its k best sorted: select them first.
    if p.top_k > 0 && (p.top_k as usize) < cand.len() {
        let k = p.top_k as usize;
        cand.select_nth_unstable_by(k - 1, order);
        cand.truncate(k);
    }
    cand.sort_unstable_by(order);
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

/// Logit bias, the `min_tokens` EOS mask and the penalties of one request as per-token
/// adjustments for row `row` (the device-side form of what [`sample`] applies on the host).
pub fn logit_adjustments(
    row: u32,
    params: &SamplingParams,
    seq: &SequenceView<'_>,
    out: &mut Vec<LogitAdjust>,
) {
    let mut map: HashMap<TokenId, LogitAdjust> = HashMap::new();
    for (&t, &b) in &params.logit_bias {
        map.entry(t).or_insert_with(|| neutral(row, t)).pre_add += b;
    }
    if seq.output.len() < params.min_tokens {
        for &t in seq.eos_token_ids.iter().chain(&params.stop_token_ids) {
            map.entry(t).or_insert_with(|| neutral(row, t)).pre_add = f32::NEG_INFINITY;
        }
    }
    if params.repetition_penalty != 1.0 {
        for &t in seq.prompt.iter().chain(seq.output) {
            map.entry(t).or_insert_with(|| neutral(row, t)).rep = params.repetition_penalty;
        }
    }
    if params.frequency_penalty != 0.0 || params.presence_penalty != 0.0 {
        let mut counts: HashMap<TokenId, u32> = HashMap::new();
        for &t in seq.output {
            *counts.entry(t).or_insert(0) += 1;
        }
        for (t, c) in counts {
            map.entry(t).or_insert_with(|| neutral(row, t)).post_add -=
                params.frequency_penalty * c as f32 + params.presence_penalty;
        }
    }
    out.extend(map.into_values());
}

fn neutral(row: u32, token: TokenId) -> LogitAdjust {
    LogitAdjust {
        row,
        token,
        pre_add: 0.0,
        rep: 1.0,
        post_add: 0.0,
    }
}

/// How a device that samples would treat this request's row; `uniform` is drawn from the
/// request's generator only for random rows (as [`sample`] draws once per step).
pub fn row_sampling(params: &SamplingParams, rng: &mut Rng) -> RowSampling {
    if params.logprobs.is_some() {
        RowSampling::Host
    } else if params.is_greedy() {
        RowSampling::Greedy
    } else {
        RowSampling::Random {
            temperature: params.temperature,
            top_k: params.top_k.max(0) as u32,
            top_p: params.top_p,
            min_p: params.min_p,
            // Rounding to f32 must not reach 1.0.
            uniform: (rng.next_f64() as f32).min(0.999_999_94),
        }
    }
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
    fn adjustments_reproduce_bias_mask_and_penalties() {
        let p = SamplingParams {
            repetition_penalty: 1.5,
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            logit_bias: [(1, 2.0), (0, 1.0)].into_iter().collect(),
            min_tokens: 5,
            ..SamplingParams::greedy(4)
        };
        let seq = SequenceView {
            prompt: &[3, 4],
            output: &[4, 4, 5],
            eos_token_ids: &[0],
        };
        let base = vec![1.0f32, -2.0, 3.0, 2.0, -1.0, 0.5, 4.0];
        let mut host = base.clone();
        sample(&mut host, &p, &seq, &mut Rng::new(0));
        let mut adj = Vec::new();
        logit_adjustments(0, &p, &seq, &mut adj);
        let mut dev = base.clone();
        for a in &adj {
            assert_eq!(a.row, 0);
            dev[a.token as usize] = a.apply(dev[a.token as usize]);
        }
        assert_eq!(host, dev);
        assert_eq!(dev[0], f32::NEG_INFINITY);
    }

    #[test]
    fn row_sampling_draws_only_for_random_rows() {
        let mut rng = Rng::new(3);
        let greedy = SamplingParams::greedy(4);
        assert_eq!(row_sampling(&greedy, &mut rng), RowSampling::Greedy);
        let lp = SamplingParams {
            logprobs: Some(2),
            ..Default::default()
        };
        assert_eq!(row_sampling(&lp, &mut rng), RowSampling::Host);
        // Neither consumed the generator.
        let mut fresh = Rng::new(3);
        let RowSampling::Random { uniform, .. } =
            row_sampling(&SamplingParams::default(), &mut rng)
        else {
            panic!("random row expected")
        };
        assert_eq!(uniform, fresh.next_f64() as f32);
    }

    #[test]
    fn top_k_sampling_stays_in_the_top_k() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 1000) as f32 / 100.0)
            .collect();
        let p = SamplingParams {
            temperature: 5.0,
            top_k: 3,
            ..Default::default()
        };
        let mut top: Vec<usize> = (0..1000).collect();
        top.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let mut rng = Rng::new(11);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let t = sample(&mut logits.clone(), &p, &view(&[]), &mut rng).token as usize;
            assert!(top[..3].contains(&t), "{t}");
            seen.insert(t);
        }
        assert_eq!(seen.len(), 3);
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
