//! Helpers shared by the engine's integration tests.

use std::path::Path;

use ferrum_engine::{start_engine, EngineConfig, EngineHandle};
use ferrum_model::ModelBundle;
use ferrum_types::{EngineRequest, FinishReason, SamplingParams};

pub fn engine(model: &Path, cfg: EngineConfig) -> EngineHandle {
    let bundle = ModelBundle::open(model).expect("open model");
    start_engine(&bundle, cfg).expect("start engine").0
}

/// Runs every job concurrently (request ids `r0`, `r1`, …); each one's generated tokens and
/// finish reason. An error output fails the test.
pub fn run_jobs(
    h: &EngineHandle,
    jobs: &[(Vec<u32>, SamplingParams)],
) -> Vec<(Vec<u32>, Option<FinishReason>)> {
    let mut streams: Vec<_> = jobs
        .iter()
        .enumerate()
        .map(|(i, (p, sp))| {
            h.add_request(EngineRequest::new(format!("r{i}"), p.clone(), sp.clone()))
                .expect("add")
        })
        .collect();
    streams
        .iter_mut()
        .map(|s| {
            let mut ids = Vec::new();
            let mut finish = None;
            while let Some(o) = s.blocking_next() {
                assert_ne!(o.finish_reason, Some(FinishReason::Error), "{:?}", o.error);
                ids.extend(o.new_token_ids);
                finish = o.finish_reason.or(finish);
            }
            (ids, finish)
        })
        .collect()
}
