//! `EngineCore`: the scheduler and the executor, stepped together.

use ferrum_backend::Backend;
use ferrum_executor::{Executor, ExecutorError};
use ferrum_scheduler::{EngineCoreOutput, Request, Scheduler, SchedulerError};

pub struct EngineCore<B: Backend> {
    pub(crate) scheduler: Scheduler,
    pub(crate) executor: Executor<B>,
}

impl<B: Backend> EngineCore<B> {
    pub fn new(scheduler: Scheduler, executor: Executor<B>) -> Self {
        Self {
            scheduler,
            executor,
        }
    }

    pub fn add_request(&mut self, request: Request) -> Result<(), SchedulerError> {
        self.scheduler.add_request(request)
    }

    pub fn abort(&mut self, request_id: &str) {
        self.scheduler.abort_requests([request_id]);
    }

    pub fn has_unfinished_requests(&self) -> bool {
        self.scheduler.has_unfinished_requests()
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// One step: schedule, execute, update.
    pub fn step(&mut self) -> Result<Vec<EngineCoreOutput>, ExecutorError> {
        let scheduled = self.scheduler.schedule();
        let ran = self.executor.execute(&scheduled)?;
        Ok(self.scheduler.update_from_output(&scheduled, &ran))
    }
}
