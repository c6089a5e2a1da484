//! Prefix-cache counters, cumulative since start-up (exported as Prometheus counters).

/// Counted in tokens when a request is admitted (vLLM's `prefix_cache_queries` / `_hits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixCacheStats {
    /// Tokens looked up: the request's whole token count at each admission.
    pub queries: u64,
    /// Of those, tokens found in the cache.
    pub hits: u64,
}

impl PrefixCacheStats {
    /// Hits over queries, 0 when nothing was queried.
    pub fn hit_rate(&self) -> f64 {
        if self.queries == 0 {
            0.0
        } else {
            self.hits as f64 / self.queries as f64
        }
    }
}
