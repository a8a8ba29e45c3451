//! An ordered pool of worker threads for compression: jobs go in one after the other, their
//! results come out in the same order, whichever worker finished first. At most two jobs per
//! worker are in flight (queued, running, or done and waiting for an earlier one), so memory
//! stays bounded whatever the input's size; a caller that submits more first receives the
//! results that are ready.
//!
//! A panic in a job is that job's error: the caller is told instead of waiting for the result
//! forever.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// What a job gives back: its result, or why it failed.
type Outcome<R> = std::result::Result<R, String>;

/// Worker threads running one function over jobs, delivering results in submission order.
pub(crate) struct OrderedPool<J: Send + 'static, R: Send + 'static> {
    jobs: Option<mpsc::SyncSender<(u64, J)>>,
    results: mpsc::Receiver<(u64, Outcome<R>)>,
    threads: Vec<JoinHandle<()>>,
    /// Jobs submitted so far (the next job's number).
    sent: u64,
    /// Results delivered so far (the number of the next result to deliver).
    delivered: u64,
    /// Results that arrived before an earlier one.
    waiting: BTreeMap<u64, R>,
    limit: u64,
}

impl<J: Send + 'static, R: Send + 'static> OrderedPool<J, R> {
    /// A pool of `workers` threads (at least one) running `work`.
    pub(crate) fn new(
        workers: usize,
        work: impl Fn(J) -> Outcome<R> + Send + Sync + 'static,
    ) -> OrderedPool<J, R> {
        let workers = workers.max(1);
        let limit = 2 * workers;
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, J)>(limit);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, results) = mpsc::channel();
        let work = Arc::new(work);
        let threads = (0..workers)
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let done = done_tx.clone();
                let work = Arc::clone(&work);
                std::thread::spawn(move || {
                    loop {
                        // The lock is held only to take the next job, never while working.
                        let next = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((index, job)) = next else {
                            return;
                        };
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(job)))
                                .unwrap_or_else(|_| {
                                    Err("a compression worker panicked".to_string())
                                });
                        if done.send((index, outcome)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        OrderedPool {
            jobs: Some(job_tx),
            results,
            threads,
            sent: 0,
            delivered: 0,
            waiting: BTreeMap::new(),
            limit: limit as u64,
        }
    }

    /// Submits `job`. While the pool is full, results are first delivered to `deliver`, in
    /// order.
    pub(crate) fn submit(
        &mut self,
        job: J,
        deliver: &mut impl FnMut(R) -> Result<()>,
    ) -> Result<()> {
        while self.sent - self.delivered >= self.limit {
            self.deliver_next(deliver)?;
        }
        let jobs = self.jobs.as_ref().ok_or_else(worker_gone)?;
        jobs.send((self.sent, job)).map_err(|_| worker_gone())?;
        self.sent += 1;
        Ok(())
    }

    /// Waits for every submitted job and delivers the remaining results, in order.
    pub(crate) fn drain(&mut self, deliver: &mut impl FnMut(R) -> Result<()>) -> Result<()> {
        while self.delivered < self.sent {
            self.deliver_next(deliver)?;
        }
        Ok(())
    }

    /// Delivers the next result in order, waiting for it (and keeping later ones that arrive
    /// first).
    fn deliver_next(&mut self, deliver: &mut impl FnMut(R) -> Result<()>) -> Result<()> {
        loop {
            if let Some(result) = self.waiting.remove(&self.delivered) {
                self.delivered += 1;
                return deliver(result);
            }
            let (index, outcome) = self.results.recv().map_err(|_| worker_gone())?;
            self.waiting
                .insert(index, outcome.map_err(Error::Compress)?);
        }
    }
}

impl<J: Send + 'static, R: Send + 'static> Drop for OrderedPool<J, R> {
    fn drop(&mut self) {
        // Closing the job queue ends the workers once they finish what they hold.
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn worker_gone() -> Error {
    Error::Compress("a compression worker thread stopped".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_submission_order_whatever_finishes_first() {
        for workers in [1, 2, 4] {
            // Later jobs finish first: each sleeps less than the one before.
            let mut pool = OrderedPool::new(workers, |n: u64| {
                std::thread::sleep(std::time::Duration::from_millis(20 - n));
                Ok(n * 10)
            });
            let mut got = Vec::new();
            let mut deliver = |r: u64| {
                got.push(r);
                Ok(())
            };
            for n in 0..20 {
                pool.submit(n, &mut deliver).expect("submit");
            }
            pool.drain(&mut deliver).expect("drain");
            let want: Vec<u64> = (0..20).map(|n| n * 10).collect();
            assert_eq!(got, want, "{workers} workers");
        }
    }

    #[test]
    fn a_failed_or_panicking_job_is_an_error() {
        for bad in [3u64, 4] {
            let mut pool = OrderedPool::new(2, move |n: u64| {
                if n == 3 && bad == 3 {
                    return Err("job 3 failed".to_string());
                }
                if n == 4 && bad == 4 {
                    panic!("job 4 panics");
                }
                Ok(n)
            });
            let mut deliver = |_: u64| Ok(());
            let mut outcome = Ok(());
            for n in 0..8 {
                outcome = pool.submit(n, &mut deliver);
                if outcome.is_err() {
                    break;
                }
            }
            if outcome.is_ok() {
                outcome = pool.drain(&mut deliver);
            }
            let message = outcome.expect_err("an error").to_string();
            let want = if bad == 3 {
                "job 3 failed"
            } else {
                "a compression worker panicked"
            };
            assert!(message.contains(want), "{message}");
        }
    }
}
