//! The async side: `EngineHandle` sends commands to the engine thread; `RequestStream` receives
//! one request's outputs and aborts the request when dropped.

use std::sync::mpsc;

use ferrum_types::{EngineOutput, EngineRequest, EngineStats};
use tokio::sync::{mpsc as tmpsc, watch};

use crate::EngineError;

pub(crate) enum Command {
    Add(Box<EngineRequest>, tmpsc::UnboundedSender<EngineOutput>),
    Abort(String),
    Shutdown,
}

/// Cheap to clone; every clone talks to the same engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) stats: watch::Receiver<EngineStats>,
    /// `Some(reason)` once the engine thread has stopped.
    pub(crate) dead: watch::Receiver<Option<String>>,
}

impl EngineHandle {
    /// Queues a request; its outputs arrive on the returned stream.
    pub fn add_request(&self, req: EngineRequest) -> Result<RequestStream, EngineError> {
        self.health()?;
        let (tx, rx) = tmpsc::unbounded_channel();
        let id = req.request_id.clone();
        self.commands
            .send(Command::Add(Box::new(req), tx))
            .map_err(|_| EngineError::ShuttingDown)?;
        Ok(RequestStream {
            request_id: id,
            outputs: rx,
            commands: self.commands.clone(),
            finished: false,
        })
    }

    pub fn abort(&self, request_id: &str) {
        // A closed channel means the engine is gone and the request with it.
        let _ = self.commands.send(Command::Abort(request_id.to_string()));
    }

    pub fn stats(&self) -> EngineStats {
        self.stats.borrow().clone()
    }

    pub fn health(&self) -> Result<(), EngineError> {
        match self.dead.borrow().as_ref() {
            Some(reason) => Err(EngineError::Dead(reason.clone())),
            None => Ok(()),
        }
    }

    /// Asks the engine thread to stop; requests in flight end with `abort`.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// [`shutdown`](Self::shutdown), then blocks until the engine thread has released the
    /// model and the device, or `timeout` has passed. For command-line tools about to exit.
    pub fn shutdown_and_wait(&self, timeout: std::time::Duration) -> bool {
        self.shutdown();
        let t = std::time::Instant::now();
        while self.dead.borrow().is_none() {
            if t.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }
}

/// One request's outputs, in order; the last one carries a finish reason.
pub struct RequestStream {
    request_id: String,
    outputs: tmpsc::UnboundedReceiver<EngineOutput>,
    commands: mpsc::Sender<Command>,
    finished: bool,
}

impl RequestStream {
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The next output; `None` after the final one.
    pub async fn next(&mut self) -> Option<EngineOutput> {
        if self.finished {
            return None;
        }
        let out = self.outputs.recv().await;
        match &out {
            Some(o) if o.finish_reason.is_some() => self.finished = true,
            None => self.finished = true,
            _ => {}
        }
        out
    }

    /// Blocking variant for callers outside an async runtime.
    pub fn blocking_next(&mut self) -> Option<EngineOutput> {
        if self.finished {
            return None;
        }
        let out = self.outputs.blocking_recv();
        match &out {
            Some(o) if o.finish_reason.is_some() => self.finished = true,
            None => self.finished = true,
            _ => {}
        }
        out
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self
                .commands
                .send(Command::Abort(std::mem::take(&mut self.request_id)));
        }
    }
}
