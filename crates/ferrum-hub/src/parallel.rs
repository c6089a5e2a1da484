//! Runs a fallible job per item on a few scoped threads; the first error stops the hand-out of
//! further items and is returned once the running ones end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::Result;

pub(crate) fn for_each<T: Sync>(
    items: &[T],
    workers: usize,
    job: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if let Err(e) = job(item) {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HubError;

    #[test]
    fn every_item_runs_once_and_the_first_error_is_returned() {
        let seen = Mutex::new(Vec::new());
        let items: Vec<u32> = (0..50).collect();
        for_each(&items, 8, |&i| {
            seen.lock().expect("lock").push(i);
            Ok(())
        })
        .expect("all ok");
        let mut seen = seen.into_inner().expect("lock");
        seen.sort();
        assert_eq!(seen, items);
        let e = for_each(&items, 3, |&i| {
            if i == 7 {
                Err(HubError::NotCached(format!("item {i}")))
            } else {
                Ok(())
            }
        })
        .expect_err("one fails");
        assert!(e.to_string().contains("item 7"));
    }
}
