//! Request arrival times of `vllm bench serve`: with `--request-rate inf` every request is released
//! at once; otherwise inter-arrival gaps are Gamma(shape = burstiness, scale = 1/(rate·burstiness))
//! (burstiness 1 is a Poisson process), accumulated, and then rescaled so that the last arrival is
//! exactly `N / rate` seconds after the start, which is what vLLM does to cut run-to-run variance.
//!
//! Invariants: offsets are non-decreasing, start after 0 for finite rates (the first request waits
//! one gap too, as in vLLM), and the same seed gives the same offsets.

use ferrum_executor::Rng;

/// Seconds after the start at which each of `n` requests is sent.
pub fn arrival_offsets(n: usize, rate: f64, burstiness: f64, rng: &mut Rng) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    if !rate.is_finite() {
        return vec![0.0; n];
    }
    let mut t = 0.0;
    let mut offsets: Vec<f64> = (0..n)
        .map(|_| {
            t += if burstiness.is_finite() {
                gamma(rng, burstiness, 1.0 / (rate * burstiness))
            } else {
                1.0 / rate
            };
            t
        })
        .collect();
    let last = offsets[n - 1];
    if last > 0.0 {
        let scale = n as f64 / rate / last;
        offsets.iter_mut().for_each(|o| *o *= scale);
    }
    offsets
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64(); // (0, 1]: ln stays finite
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, scale) sample: Marsaglia and Tsang's method, with the `U^(1/shape)` boost for
/// shapes below 1.
pub fn gamma(rng: &mut Rng, shape: f64, scale: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.next_f64();
        return gamma(rng, shape + 1.0, scale) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.next_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
        (m, v)
    }

    #[test]
    fn gamma_has_the_right_mean_and_variance() {
        let mut rng = Rng::new(1);
        for (shape, scale) in [(1.0, 0.25), (0.5, 2.0), (4.0, 0.1)] {
            let xs: Vec<f64> = (0..200_000)
                .map(|_| gamma(&mut rng, shape, scale))
                .collect();
            let (m, v) = mean_var(&xs);
            let (em, ev) = (shape * scale, shape * scale * scale);
            assert!(
                (m - em).abs() < 0.01 * em,
                "shape {shape}: mean {m} vs {em}"
            );
            assert!((v - ev).abs() < 0.03 * ev, "shape {shape}: var {v} vs {ev}");
        }
    }

    #[test]
    fn poisson_arrivals_have_the_requested_mean_rate() {
        let rate = 8.0;
        let offsets = arrival_offsets(10_000, rate, 1.0, &mut Rng::new(0));
        // Rescaled: the last arrival is exactly N / rate, so the mean rate is exact.
        assert!((offsets[offsets.len() - 1] - 10_000.0 / rate).abs() < 1e-9);
        assert!(offsets.windows(2).all(|w| w[1] >= w[0]) && offsets[0] > 0.0);
        // Gaps keep the exponential shape: mean 1/rate, coefficient of variation 1.
        let gaps: Vec<f64> = std::iter::once(offsets[0])
            .chain(offsets.windows(2).map(|w| w[1] - w[0]))
            .collect();
        let (m, v) = mean_var(&gaps);
        assert!((m - 1.0 / rate).abs() < 1e-9);
        assert!((v.sqrt() / m - 1.0).abs() < 0.05, "cv {}", v.sqrt() / m);
    }

    #[test]
    fn burstiness_changes_the_spread_not_the_rate() {
        let gaps_cv = |b: f64| {
            let o = arrival_offsets(20_000, 4.0, b, &mut Rng::new(9));
            assert!((o[o.len() - 1] - 5000.0).abs() < 1e-6);
            let gaps: Vec<f64> = o.windows(2).map(|w| w[1] - w[0]).collect();
            let (m, v) = mean_var(&gaps);
            v.sqrt() / m
        };
        // CV of Gamma(shape b) is 1/sqrt(b).
        assert!((gaps_cv(0.25) - 2.0).abs() < 0.15);
        assert!((gaps_cv(4.0) - 0.5).abs() < 0.05);
        // Infinite burstiness: evenly spaced.
        let even = arrival_offsets(4, 2.0, f64::INFINITY, &mut Rng::new(0));
        assert_eq!(even, vec![0.5, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn infinite_rate_releases_everything_at_once_and_seed_reproduces() {
        assert_eq!(
            arrival_offsets(3, f64::INFINITY, 1.0, &mut Rng::new(0)),
            vec![0.0; 3]
        );
        let a = arrival_offsets(50, 3.0, 1.0, &mut Rng::new(4));
        let b = arrival_offsets(50, 3.0, 1.0, &mut Rng::new(4));
        assert_eq!(a, b);
    }
}
