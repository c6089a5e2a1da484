//! What a backend that samples on the device needs to know per logits row.
//!
//! The host decides everything that depends on a request's history (which tokens are
//! penalized, which EOS ids are masked, the uniform draw from the request's own generator) and
//! hands the device only flat per-row parameters and per-token adjustments; the device then
//! returns one token id per row instead of a whole row of logits.

/// How one row of logits becomes a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowSampling {
    /// The host samples this row (it needs the whole distribution, e.g. for log-probabilities).
    Host,
    /// Arg-max, lowest id on ties.
    Greedy,
    /// A draw from the tempered distribution truncated by top-k, then top-p, then min-p.
    Random {
        temperature: f32,
        /// 0 = off.
        top_k: u32,
        /// 1.0 = off.
        top_p: f32,
        /// 0.0 = off.
        min_p: f32,
        /// Uniform in [0, 1) from the request's generator.
        uniform: f32,
    },
}

/// An in-place change to one logit before sampling, in the host sampler's order:
/// `l += pre_add; l = if l > 0 { l / rep } else { l * rep }; l += post_add`.
///
/// `pre_add` carries the logit bias (or -inf for a masked token), `rep` the repetition
/// penalty (1.0 = none) and `post_add` minus the frequency and presence penalties.
/// At most one entry per (row, token).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogitAdjust {
    pub row: u32,
    pub token: u32,
    pub pre_add: f32,
    pub rep: f32,
    pub post_add: f32,
}

impl LogitAdjust {
    /// The same change applied on the host.
    pub fn apply(&self, l: f32) -> f32 {
        let l = l + self.pre_add;
        let l = if l > 0.0 { l / self.rep } else { l * self.rep };
        l + self.post_add
    }
}
