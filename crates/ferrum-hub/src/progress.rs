//! Download progress: a redrawn bar when stderr is a terminal, periodic lines otherwise (logs
//! of a server in a container), nothing when turned off.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A bar on stderr, redrawn in place.
    Bar,
    /// A `tracing` info line every few seconds.
    Log,
    /// A plain stderr line every few seconds (for commands whose log level hides info).
    Lines,
    Quiet,
}

impl Progress {
    /// A bar on a terminal, else `otherwise`.
    pub fn auto(otherwise: Progress) -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            otherwise
        }
    }

    pub(crate) fn file(self, name: &str, total: Option<u64>, done: u64) -> FileProgress {
        let now = Instant::now();
        let p = FileProgress {
            mode: self,
            name: name.to_string(),
            total,
            done,
            start_done: done,
            started: now,
            last: now,
        };
        if done > 0 {
            p.line(&format!("resuming at {}", human(done)));
        }
        p
    }

    pub(crate) fn note(self, msg: &str) {
        match self {
            Self::Bar | Self::Lines => eprintln!("{msg}"),
            Self::Log => tracing::info!("{msg}"),
            Self::Quiet => {}
        }
    }
}

pub(crate) struct FileProgress {
    mode: Progress,
    name: String,
    total: Option<u64>,
    done: u64,
    start_done: u64,
    started: Instant,
    last: Instant,
}

impl FileProgress {
    pub(crate) fn reset(&mut self, done: u64) {
        self.done = done;
        self.start_done = done;
        self.started = Instant::now();
    }

    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        let every = match self.mode {
            Progress::Bar => Duration::from_millis(100),
            Progress::Log | Progress::Lines => Duration::from_secs(5),
            Progress::Quiet => return,
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.draw(false);
        }
    }

    pub(crate) fn finish(&mut self) {
        if self.mode != Progress::Quiet {
            self.draw(true);
        }
    }

    fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        (self.done - self.start_done) as f64 / secs
    }

    fn draw(&self, done: bool) {
        let rate = self.rate();
        let amount = match self.total {
            Some(t) => format!("{} / {}", human(self.done), human(t)),
            None => human(self.done),
        };
        let pct = self
            .total
            .filter(|&t| t > 0)
            .map(|t| (self.done as f64 / t as f64 * 100.0).min(100.0));
        match self.mode {
            Progress::Bar => {
                const W: usize = 24;
                let filled = pct.map_or(0, |p| (p / 100.0 * W as f64) as usize);
                let eta = match (self.total, rate > 0.0) {
                    (Some(t), true) if !done => {
                        format!(" ETA {:.0}s", t.saturating_sub(self.done) as f64 / rate)
                    }
                    _ => String::new(),
                };
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2K{:<40.40} [{}{}] {:>3.0}% {amount} {}/s{eta}",
                    self.name,
                    "#".repeat(filled),
                    " ".repeat(W - filled),
                    pct.unwrap_or(0.0),
                    human(rate as u64),
                );
                if done {
                    let _ = writeln!(err);
                }
                let _ = err.flush();
            }
            Progress::Log | Progress::Lines => {
                let pct = pct.map_or(String::new(), |p| format!(" ({p:.0}%)"));
                let verb = if done { "downloaded" } else { "downloading" };
                self.line(&format!("{verb} {amount}{pct} at {}/s", human(rate as u64)));
            }
            Progress::Quiet => {}
        }
    }

    fn line(&self, what: &str) {
        match self.mode {
            Progress::Log => tracing::info!(file = %self.name, "{what}"),
            Progress::Lines | Progress::Bar => eprintln!("{}: {what}", self.name),
            Progress::Quiet => {}
        }
    }
}

/// Bytes in binary units, one decimal.
pub fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
