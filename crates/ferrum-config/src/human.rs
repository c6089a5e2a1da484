//! Numbers as people write them on command lines: `32k`, `1.5M`, `4G`.
//!
//! Invariant (as vLLM reads them): a lowercase suffix is decimal (`k` = 1000), an uppercase one
//! binary (`K` = 1024); a fraction is allowed only with a decimal suffix and must give a whole
//! number. Results never overflow silently.

/// A context length: the model's own, or a number of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextLen {
    Auto,
    Tokens(usize),
}

/// `--max-model-len`: a count, or `auto` / `-1` for the model's own length.
pub fn parse_max_model_len(s: &str) -> Result<ContextLen, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") || t == "-1" {
        return Ok(ContextLen::Auto);
    }
    let n = parse_human_count(t)?;
    if n == 0 {
        return Err("must be at least 1 token (or auto)".into());
    }
    usize::try_from(n)
        .map(ContextLen::Tokens)
        .map_err(|_| format!("{s} is too large"))
}

/// `--keep-alive`: seconds, or a number with `s`, `m` or `h` (`300`, `90s`, `5m`, `1h`).
pub fn parse_keep_alive(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a duration (examples: 300, 90s, 5m, 1h)");
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        Some(_) => (t, 's'),
        None => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(bad)?;
    if secs == 0 {
        return Err("must be at least 1 second (leave it unset to keep models loaded)".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// A non-negative count with an optional k/m/g/t (decimal) or K/M/G/T (binary) suffix.
pub fn parse_human_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a count (examples: 4096, 32k, 32K, 1.5M)");
    let (digits, suffix) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c)),
        Some(_) => (t, None),
        None => return Err(bad()),
    };
    let multiplier: u64 = match suffix {
        None => 1,
        Some('k') => 1_000,
        Some('m') => 1_000_000,
        Some('g') => 1_000_000_000,
        Some('t') => 1_000_000_000_000,
        Some('K') => 1 << 10,
        Some('M') => 1 << 20,
        Some('G') => 1 << 30,
        Some('T') => 1 << 40,
        Some(_) => return Err(bad()),
    };
    if let Some((int, frac)) = digits.split_once('.') {
        // Fractions only make sense with decimal multipliers (25.6k = 25600).
        let decimal = matches!(suffix, Some('k' | 'm' | 'g' | 't'));
        if !decimal || frac.is_empty() || !all_digits(int) || !all_digits(frac) {
            return Err(bad());
        }
        let scale = 10u64.checked_pow(frac.len() as u32).ok_or_else(bad)?;
        let whole: u64 = format!("{int}{frac}").parse().map_err(|_| bad())?;
        let value = whole.checked_mul(multiplier).ok_or_else(bad)?;
        if value % scale != 0 {
            return Err(format!("{s:?} is not a whole number"));
        }
        return Ok(value / scale);
    }
    if !all_digits(digits) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(multiplier).ok_or_else(bad)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_follow_vllm() {
        assert_eq!(parse_human_count("4096"), Ok(4096));
        assert_eq!(parse_human_count("32k"), Ok(32_000));
        assert_eq!(parse_human_count("32K"), Ok(32_768));
        assert_eq!(parse_human_count("1M"), Ok(1 << 20));
        assert_eq!(parse_human_count("1m"), Ok(1_000_000));
        assert_eq!(parse_human_count("25.6k"), Ok(25_600));
        assert_eq!(parse_human_count("4G"), Ok(4 << 30));
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "k",
            "1.5K",
            "1.0001k",
            "-3",
            "12x",
            "1e3",
            "99999999999999999999",
            "18446744073709551615T",
        ] {
            assert!(parse_human_count(s).is_err(), "{s}");
        }
    }

    #[test]
    fn max_model_len_auto() {
        assert_eq!(parse_max_model_len("auto"), Ok(ContextLen::Auto));
        assert_eq!(parse_max_model_len("-1"), Ok(ContextLen::Auto));
        assert_eq!(parse_max_model_len("32k"), Ok(ContextLen::Tokens(32_000)));
        assert!(parse_max_model_len("0").is_err());
    }
}
