//! Stop strings, matched on the detokenized text above the engine.
//!
//! Invariants:
//! - Text that could be the beginning of a stop string is held back until it either completes
//!   the stop string or cannot any more, so a client never sees part of a stop string.
//! - On a match the output ends at the match (or after it with `include_stop_str_in_output`);
//!   nothing after it is ever emitted.
//! - Cost per step is linear in (held-back text + new text) × number of stop strings, and the
//!   held-back text is shorter than the longest stop string.

/// The result of feeding text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopStep {
    /// Text safe to emit now.
    pub text: String,
    /// The stop string that matched, if one did (the request is then finished).
    pub matched: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    include_stop: bool,
    held: String,
    done: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>, include_stop: bool) -> Self {
        Self {
            stops,
            include_stop,
            held: String::new(),
            done: false,
        }
    }

    /// Feeds newly decoded text.
    pub fn push(&mut self, new_text: &str) -> StopStep {
        if self.done {
            return StopStep {
                text: String::new(),
                matched: None,
            };
        }
        if self.stops.is_empty() {
            return StopStep {
                text: new_text.to_string(),
                matched: None,
            };
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.push_str(new_text);
        // The earliest match wins; at equal positions the longest stop string.
        let hit = self
            .stops
            .iter()
            .filter_map(|s| buf.find(s.as_str()).map(|pos| (pos, s)))
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.len().cmp(&a.1.len())));
        if let Some((pos, stop)) = hit {
            self.done = true;
            let end = if self.include_stop {
                pos + stop.len()
            } else {
                pos
            };
            return StopStep {
                text: buf[..end].to_string(),
                matched: Some(stop.clone()),
            };
        }
        let keep = self.partial_suffix_len(&buf);
        let split = buf.len() - keep;
        self.held = buf[split..].to_string();
        buf.truncate(split);
        StopStep {
            text: buf,
            matched: None,
        }
    }

    /// The sequence ended: whatever was held back is text after all.
    pub fn finish(&mut self) -> String {
        self.done = true;
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of `buf` that is a proper prefix of some stop string (cut
    /// at a character boundary).
    fn partial_suffix_len(&self, buf: &str) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = (stop.len() - 1).min(buf.len());
            for len in (best + 1..=max).rev() {
                let start = buf.len() - len;
                if buf.is_char_boundary(start)
                    && stop.as_bytes().starts_with(&buf.as_bytes()[start..])
                {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], include: bool, pieces: &[&str]) -> (String, Option<String>) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect(), include);
        let mut out = String::new();
        for p in pieces {
            let step = m.push(p);
            out.push_str(&step.text);
            if step.matched.is_some() {
                return (out, step.matched);
            }
        }
        out.push_str(&m.finish());
        (out, None)
    }

    #[test]
    fn stop_split_across_pieces_is_never_shown() {
        let mut m = StopMatcher::new(vec!["END".into()], false);
        assert_eq!(m.push("hello E").text, "hello ");
        assert_eq!(m.push("N").text, "");
        let s = m.push("D more");
        assert_eq!(s.text, "");
        assert_eq!(s.matched.as_deref(), Some("END"));
    }

    #[test]
    fn false_starts_are_released() {
        assert_eq!(
            run(&["END"], false, &["a E", "x", "b"]),
            ("a Exb".into(), None)
        );
        assert_eq!(run(&["END"], false, &["a EN"]), ("a EN".into(), None));
    }

    #[test]
    fn include_stop_and_earliest_match() {
        assert_eq!(
            run(&["b", "abc"], true, &["xxabc"]),
            ("xxabc".into(), Some("abc".into()))
        );
        assert_eq!(
            run(&["b", "abc"], true, &["xxbc"]),
            ("xxb".into(), Some("b".into()))
        );
        assert_eq!(
            run(&["\n\n"], false, &["one\n", "\ntwo"]),
            ("one".into(), Some("\n\n".into()))
        );
    }

    #[test]
    fn multibyte_text_is_cut_at_boundaries() {
        assert_eq!(run(&["界x"], false, &["世界", "!"]), ("世界!".into(), None));
        assert_eq!(
            run(&["界x"], false, &["世界", "x"]),
            ("世".into(), Some("界x".into()))
        );
    }
}
