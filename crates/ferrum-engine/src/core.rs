//! `EngineCore`: the scheduler and the executor, stepped together.
//!
//! A step is schedule → execute → update. With async scheduling a step whose tokens stay on
//! the device is left in flight: the next `step()` schedules and submits step N+1 first, then
//! collects step N and resolves it (ferrum-scheduler's provisional.rs), so the host's planning,
//! metadata upload and launch overlap the device's work. Invariant: at most one step is in
//! flight, and it is resolved before the one after it is folded in. When some request needs
//! the values of its earlier tokens (penalties, logprobs), the step in flight is resolved
//! before anything is scheduled.

use ferrum_backend::Backend;
use ferrum_executor::{Executor, ExecutorError, PendingStep, Submitted};
use ferrum_scheduler::{EngineCoreOutput, Request, Scheduler, SchedulerError};

pub struct EngineCore<B: Backend> {
    pub(crate) scheduler: Scheduler,
    pub(crate) executor: Executor<B>,
    async_scheduling: bool,
    in_flight: Option<PendingStep>,
}

impl<B: Backend> EngineCore<B> {
    pub fn new(scheduler: Scheduler, executor: Executor<B>) -> Self {
        Self {
            scheduler,
            executor,
            async_scheduling: false,
            in_flight: None,
        }
    }

    /// Steps overlap where the executor can defer sampling (see the module header).
    pub fn with_async_scheduling(mut self, on: bool) -> Self {
        self.async_scheduling = on && self.executor.can_defer();
        self
    }

    pub fn add_request(&mut self, request: Request) -> Result<(), SchedulerError> {
        self.scheduler.add_request(request)
    }

    pub fn abort(&mut self, request_id: &str) {
        self.scheduler.abort_requests([request_id]);
    }

    /// Requests not finished, or a step whose outputs are still to come.
    pub fn has_unfinished_requests(&self) -> bool {
        self.scheduler.has_unfinished_requests() || self.in_flight.is_some()
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// One step: schedule, execute, update (see the module header for async scheduling).
    pub fn step(&mut self) -> Result<Vec<EngineCoreOutput>, ExecutorError> {
        if !self.async_scheduling {
            let scheduled = self.scheduler.schedule();
            let ran = self.executor.execute(&scheduled)?;
            return Ok(self.scheduler.update_from_output(&scheduled, &ran));
        }
        let mut outputs = Vec::new();
        if self.in_flight.is_some() && !self.scheduler.can_schedule_ahead() {
            outputs = self.resolve_in_flight()?;
        }
        let scheduled = self.scheduler.schedule();
        let submitted = self.executor.submit(&scheduled, true)?;
        if self.in_flight.is_some() {
            outputs.extend(self.resolve_in_flight()?);
        }
        match submitted {
            Submitted::Done(ran) => {
                outputs.extend(self.scheduler.update_from_output(&scheduled, &ran));
            }
            Submitted::Pending(pending) => {
                self.scheduler
                    .update_provisional(&scheduled, pending.sampled_req_ids());
                self.in_flight = Some(pending);
            }
        }
        Ok(outputs)
    }

    fn resolve_in_flight(&mut self) -> Result<Vec<EngineCoreOutput>, ExecutorError> {
        let Some(pending) = self.in_flight.take() else {
            return Ok(Vec::new());
        };
        let ran = self.executor.collect(pending)?;
        Ok(self.scheduler.resolve_provisional(&ran))
    }
}
