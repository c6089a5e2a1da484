//! Download progress: a redrawn bar when stderr is a terminal, periodic lines otherwise (logs
//! of a server in a container), nothing when turned off. Files fetched in parallel share one
//! bar (a `Group`), since several bars cannot share one terminal line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

    /// A shared bar for files fetched together, in bar mode.
    pub(crate) fn group(self, label: &str) -> Option<Arc<Group>> {
        (self == Self::Bar).then(|| {
            Arc::new(Group {
                label: label.to_string(),
                total: AtomicU64::new(0),
                done: AtomicU64::new(0),
                started: Instant::now(),
                last: Mutex::new(Instant::now()),
            })
        })
    }

    pub(crate) fn file(
        self,
        name: &str,
        total: Option<u64>,
        done: u64,
        group: Option<&Arc<Group>>,
    ) -> FileProgress {
        let now = Instant::now();
        if let Some(g) = group {
            g.total.fetch_add(total.unwrap_or(0), Ordering::Relaxed);
            g.done.fetch_add(done, Ordering::Relaxed);
        }
        let p = FileProgress {
            group: group.cloned(),
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

/// Bytes of several concurrent files, drawn as one bar.
pub(crate) struct Group {
    label: String,
    total: AtomicU64,
    done: AtomicU64,
    started: Instant,
    last: Mutex<Instant>,
}

impl Group {
    fn draw(&self, done: bool) {
        let (t, d) = (
            self.total.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
        );
        let rate = d as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        draw_bar(&self.label, Some(t), d, rate, done);
    }

    /// Draws the final state and ends the line.
    pub(crate) fn finish(&self) {
        self.draw(true);
    }
}

pub(crate) struct FileProgress {
    group: Option<Arc<Group>>,
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
        if let Some(g) = &self.group {
            g.done.fetch_sub(self.done - done, Ordering::Relaxed);
        }
        self.done = done;
        self.start_done = done;
        self.started = Instant::now();
    }

    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        if let Some(g) = &self.group {
            g.done.fetch_add(n, Ordering::Relaxed);
            if let Ok(mut last) = g.last.try_lock() {
                if last.elapsed() >= Duration::from_millis(100) {
                    *last = Instant::now();
                    g.draw(false);
                }
            }
            return;
        }
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
        if self.mode != Progress::Quiet && self.group.is_none() {
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
            Progress::Bar => draw_bar(&self.name, self.total, self.done, rate, done),
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

fn draw_bar(name: &str, total: Option<u64>, done_bytes: u64, rate: f64, done: bool) {
    const W: usize = 24;
    let pct = total
        .filter(|&t| t > 0)
        .map(|t| (done_bytes as f64 / t as f64 * 100.0).min(100.0));
    let amount = match total {
        Some(t) => format!("{} / {}", human(done_bytes), human(t)),
        None => human(done_bytes),
    };
    let filled = pct.map_or(0, |p| (p / 100.0 * W as f64) as usize);
    let eta = match (total, rate > 0.0) {
        (Some(t), true) if !done => {
            format!(" ETA {:.0}s", t.saturating_sub(done_bytes) as f64 / rate)
        }
        _ => String::new(),
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2K{name:<40.40} [{}{}] {:>3.0}% {amount} {}/s{eta}",
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
