//! Server-sent events → `data` payloads, fed with body bytes as they arrive.
//!
//! Invariants: events end at a blank line (`\n\n`, `\r\n\r\n` or `\r\r`); comment lines (`:`,
//! keep-alives) and fields other than `data` are dropped; several `data` lines of one event are
//! joined with `\n`; a partial event stays buffered until its end arrives.

#[derive(Debug, Default)]
pub struct SseSplitter {
    buf: Vec<u8>,
}

impl SseSplitter {
    /// Adds `bytes` and returns the `data` of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            let end_len = blank_line_at(&self.buf[i..]);
            if end_len == 0 {
                i += 1;
                continue;
            }
            if let Some(data) = event_data(&self.buf[start..i]) {
                out.push(data);
            }
            i += end_len;
            start = i;
        }
        self.buf.drain(..start);
        out
    }
}

/// Length of the event terminator at the start of `b` (0 when there is none).
fn blank_line_at(b: &[u8]) -> usize {
    for t in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"] {
        if b.starts_with(t) {
            return t.len();
        }
    }
    0
}

fn event_data(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let mut data: Option<String> = None;
    for line in text.split(['\n', '\r']) {
        let Some(rest) = line.strip_prefix("data:") else {
            continue;
        };
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        match &mut data {
            Some(d) => {
                d.push('\n');
                d.push_str(rest);
            }
            None => data = Some(rest.to_string()),
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_arbitrary_byte_boundaries() {
        let stream = b": keep-alive\n\ndata: {\"a\":1}\n\nevent: x\ndata: two\ndata: lines\n\r\n\r\ndata:[DONE]\n\n";
        for cut in 0..stream.len() {
            let mut s = SseSplitter::default();
            let mut got = s.push(&stream[..cut]);
            got.extend(s.push(&stream[cut..]));
            assert_eq!(
                got,
                vec!["{\"a\":1}", "two\nlines", "[DONE]"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn keeps_an_unfinished_event() {
        let mut s = SseSplitter::default();
        assert!(s.push(b"data: partial").is_empty());
        assert_eq!(s.push(b"\n\n"), vec!["partial"]);
    }
}
