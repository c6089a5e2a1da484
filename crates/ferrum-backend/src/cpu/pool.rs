//! Data-parallel loops for the CPU ops: a spinning worker pool that the calling thread joins,
//! or rayon's current pool.
//!
//! Why not rayon for the backend: one decode step is ~400 small ops (30 layers × ~13), each a
//! few µs to a few hundred µs at batch 1. Through `ThreadPool::install` every op hands the work
//! to the pool and puts the engine thread to sleep on a futex until it is done, so each op pays
//! two cross-thread wake-ups and the engine thread, though it holds a core, computes nothing.
//! [`SpinPool`] instead runs the op on the calling thread plus `threads − 1` helpers that spin
//! between ops (they park after [`SPIN`] without work), as llama.cpp's thread pool does.
//!
//! Invariants:
//! - [`Parallel::run`] calls `f(i)` exactly once for every `i < tasks` and returns only after
//!   all calls have returned (so `f` may borrow the caller's stack); a panic in any task is
//!   re-raised on the caller after all tasks have finished.
//! - Which thread runs which task is unspecified, so task results must not depend on it:
//!   every op splits work by output elements, each computed the same way whatever the split.
//! - A call that finds the pool busy (from a task of the pool itself, or from another thread)
//!   runs its tasks inline on the calling thread instead of waiting.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::{BackendError, Result};

/// A way to run `f(0..tasks)` on several threads.
///
/// # Safety
/// Implementations must call `f(i)` exactly once for each `i < tasks` and return only after
/// every call returned: callers hand task `i` an exclusive part of a buffer (see
/// [`par_chunks_mut`]).
pub unsafe trait Parallel: Sync {
    /// Threads that may run tasks at once.
    fn threads(&self) -> usize;
    fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync));
}

/// Rayon's current pool (for the public entry points that promise it).
pub struct Rayon;

// SAFETY: `for_each` over a range visits each index once and returns after all of them.
unsafe impl Parallel for Rayon {
    fn threads(&self) -> usize {
        rayon::current_num_threads()
    }

    fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        match tasks {
            0 => {}
            1 => f(0),
            _ => (0..tasks).into_par_iter().for_each(f),
        }
    }
}

/// The calling thread alone.
pub struct Serial;

// SAFETY: a plain loop.
unsafe impl Parallel for Serial {
    fn threads(&self) -> usize {
        1
    }

    fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..tasks).for_each(f)
    }
}

/// `f(i, chunk_i)` for the `chunk`-sized pieces of `data` (the last one may be shorter).
pub fn par_chunks_mut<T: Send>(
    par: &dyn Parallel,
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let (len, chunk) = (data.len(), chunk.max(1));
    let base = SendPtr(data.as_mut_ptr());
    par.run(len.div_ceil(chunk), &|i| {
        let start = i * chunk;
        let n = chunk.min(len - start);
        // SAFETY: `Parallel::run` hands each `i` to exactly one call, and the ranges
        // `start..start + n` of distinct `i` are disjoint and inside `data`, which is borrowed
        // mutably for the whole call.
        let part = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), n) };
        f(i, part)
    });
}

/// A raw pointer that tasks share, each using a disjoint part of what it points to.
pub(crate) struct SendPtr<T>(pub *mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: users only dereference disjoint parts from different tasks (see each use).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// A method, so that closures capture the whole `Sync` wrapper rather than its field.
    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// How long a helper spins without work before it parks: long enough to cover the gaps between
/// the ops of a step (µs), short enough that an idle engine, or a machine with more runnable
/// threads than cores, loses little CPU to it. `FERRUM_CPU_SPIN_US` overrides it.
const SPIN: Duration = Duration::from_micros(50);
/// Most tasks of one call (`state` keeps task counts in 16 bits).
const MAX_TASKS: usize = 0xFFFF;

/// A fixed set of helper threads; the thread that calls [`Parallel::run`] works too.
pub struct SpinPool {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// Held for the duration of a call; a call that cannot take it runs inline.
    dispatch: Mutex<()>,
}

/// A borrowed task function with its lifetime erased: valid while its call is in flight.
type RawJob = *const (dyn Fn(usize) + Sync + 'static);

struct Shared {
    /// `epoch << 32 | next << 16 | tasks`: the current call, its next unclaimed task and its
    /// task count. Claiming is a compare-exchange on the whole word, so a helper holding a
    /// stale value can never claim a task of a later call.
    state: AtomicU64,
    /// The current call's function; written only while no task is in flight.
    job: UnsafeCell<Option<RawJob>>,
    /// Tasks of the current call that have returned (or panicked).
    completed: AtomicUsize,
    panicked: AtomicBool,
    sleeping: AtomicUsize,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    spin: Duration,
}

// SAFETY: `job` is written by the dispatching thread only while no task of the previous call
// is in flight (all completed, observed with Acquire), and read by a helper only after it
// claimed a task of the current call (Acquire on `state`, which the writer published with
// Release after writing `job`).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

fn unpack(s: u64) -> (usize, usize) {
    (((s >> 16) & 0xFFFF) as usize, (s & 0xFFFF) as usize)
}

impl Shared {
    /// Claims and runs tasks of the call in `state` until none is left; true if it ran any.
    fn work(&self) -> bool {
        let mut ran = false;
        loop {
            let s = self.state.load(Ordering::Acquire);
            let (next, tasks) = unpack(s);
            if next >= tasks {
                return ran;
            }
            if self
                .state
                .compare_exchange_weak(s, s + (1 << 16), Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // SAFETY: task `next` of this call is claimed and not completed, so the call is in
            // flight and `job` holds its function (see `Shared`'s Sync comment).
            let job = unsafe { (*self.job.get()).map(|j| &*j) };
            if let Some(f) = job {
                if catch_unwind(AssertUnwindSafe(|| f(next))).is_err() {
                    self.panicked.store(true, Ordering::Relaxed);
                }
            }
            self.completed.fetch_add(1, Ordering::Release);
            ran = true;
        }
    }

    fn has_work(&self) -> bool {
        let (next, tasks) = unpack(self.state.load(Ordering::SeqCst));
        next < tasks || self.stop.load(Ordering::SeqCst)
    }

    fn helper_loop(&self) {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            if self.work() {
                idle_since = Instant::now();
                spins = 0;
                continue;
            }
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(32) && idle_since.elapsed() >= self.spin {
                self.park();
                idle_since = Instant::now();
            }
        }
    }

    fn park(&self) {
        let Ok(mut guard) = self.lock.lock() else {
            return;
        };
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        while !self.has_work() {
            guard = match self.wake.wait(guard) {
                Ok(g) => g,
                Err(_) => break,
            };
        }
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SpinPool {
    /// `threads` workers in all: the caller of each [`Parallel::run`] plus `threads − 1` helpers.
    pub fn new(threads: usize) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            completed: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleeping: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            spin: std::env::var("FERRUM_CPU_SPIN_US")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(SPIN, Duration::from_micros),
        });
        let mut pool = SpinPool {
            shared,
            helpers: Vec::new(),
            dispatch: Mutex::new(()),
        };
        for i in 1..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("ferrum-cpu-{i}"))
                .spawn(move || shared.helper_loop())
                .map_err(|e| BackendError::OutOfMemory(format!("CPU worker thread: {e}")))?;
            pool.helpers.push(handle);
        }
        Ok(pool)
    }

    fn run_inline(f: &(dyn Fn(usize) + Sync), tasks: usize) {
        (0..tasks).for_each(f)
    }
}

// SAFETY: every index below `tasks` is claimed exactly once through `state` (a helper or the
// caller runs it), and the caller returns only when `completed` reaches `tasks`.
unsafe impl Parallel for SpinPool {
    fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if tasks <= 1 || self.helpers.is_empty() {
            return Self::run_inline(f, tasks);
        }
        let _guard = match self.dispatch.try_lock() {
            Ok(g) => g,
            // A task panicked while the lock was held; the pool's state is consistent again
            // (that call waited for all its tasks), so go on.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Self::run_inline(f, tasks),
        };
        // Larger calls are split: each part is one call of the pool.
        if tasks > MAX_TASKS {
            for start in (0..tasks).step_by(MAX_TASKS) {
                let n = MAX_TASKS.min(tasks - start);
                self.dispatch_call(n, &|i| f(start + i));
            }
        } else {
            self.dispatch_call(tasks, f);
        }
    }
}

impl SpinPool {
    /// One call with `dispatch` held and `2 ≤ tasks ≤ MAX_TASKS`.
    fn dispatch_call(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        let sh = &*self.shared;
        // SAFETY: the lifetime is erased only for the duration of this call: we return after
        // every task completed, and no helper reads `job` without holding a claimed, not yet
        // completed task (see `Shared`).
        let raw: RawJob = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), RawJob>(f) };
        // SAFETY: no task is in flight (the previous call waited for all of them and the
        // dispatch lock is held), so no helper reads `job` now.
        unsafe { *sh.job.get() = Some(raw) };
        sh.completed.store(0, Ordering::Relaxed);
        let epoch = (sh.state.load(Ordering::Relaxed) >> 32).wrapping_add(1) & 0xFFFF_FFFF;
        sh.state.store(epoch << 32 | tasks as u64, Ordering::SeqCst);
        if sh.sleeping.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after a parking helper's check of `state`.
            drop(sh.lock.lock());
            sh.wake.notify_all();
        }
        sh.work();
        let mut spins = 0u32;
        while sh.completed.load(Ordering::Acquire) < tasks {
            spins += 1;
            if spins < 1 << 8 {
                std::hint::spin_loop();
            } else {
                // A helper was descheduled mid-task (a shared machine): let it run.
                std::thread::yield_now();
            }
        }
        // SAFETY: as above, every task has completed.
        unsafe { *sh.job.get() = None };
        if sh.panicked.swap(false, Ordering::Relaxed) {
            resume_unwind(Box::new("a CPU backend task panicked"));
        }
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        drop(self.shared.lock.lock());
        self.shared.wake.notify_all();
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once() {
        let pool = SpinPool::new(3).unwrap();
        for tasks in [0usize, 1, 2, 7, 1000] {
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            pool.run(tasks, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "{tasks}"
            );
        }
    }

    #[test]
    fn nested_calls_run_inline() {
        let pool = SpinPool::new(2).unwrap();
        let total = AtomicUsize::new(0);
        pool.run(4, &|_| {
            pool.run(3, &|_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn chunks_cover_the_slice() {
        let pool = SpinPool::new(2).unwrap();
        let mut v = vec![0usize; 1001];
        par_chunks_mut(&pool, &mut v, 10, |i, c| {
            for (j, x) in c.iter_mut().enumerate() {
                *x = i * 10 + j;
            }
        });
        assert!(v.iter().enumerate().all(|(i, &x)| i == x));
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_survives() {
        let pool = SpinPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|i| {
                if i == 5 {
                    panic!("task 5");
                }
            })
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }
}
