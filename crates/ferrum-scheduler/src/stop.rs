//! When a request stops, checked after each appended token (vLLM's order: length first, then
//! nothing before `min_tokens`, then EOS unless `ignore_eos`, then `stop_token_ids`).
//! Stop strings are matched above the engine, on text.

use ferrum_types::TokenId;

use crate::{Request, RequestStatus};

/// The finished status and the stop token (for `stop_token_ids`), or `None` to keep going.
pub(crate) fn check_stop(
    req: &Request,
    max_model_len: usize,
) -> Option<(RequestStatus, Option<TokenId>)> {
    let params = &req.sampling_params;
    if req.at_length_limit(max_model_len) {
        return Some((RequestStatus::FinishedLength, None));
    }
    if req.num_output_tokens() < params.min_tokens {
        return None;
    }
    let last = *req.output_token_ids().last()?;
    if !params.ignore_eos && req.eos_token_ids.contains(&last) {
        return Some((RequestStatus::FinishedStopped, None));
    }
    if params.stop_token_ids.contains(&last) {
        return Some((RequestStatus::FinishedStopped, Some(last)));
    }
    None
}

#[cfg(test)]
mod tests {
    use ferrum_types::SamplingParams;

    use super::*;

    fn req(params: SamplingParams, outputs: &[TokenId]) -> Request {
        let mut r = Request::new("r", vec![1, 2, 3], params).with_eos_token_ids(vec![2, 9]);
        for &t in outputs {
            r.append_output_token(t);
        }
        r
    }

    #[test]
    fn stop_rules_in_order() {
        let p = SamplingParams {
            max_tokens: 4,
            min_tokens: 2,
            stop_token_ids: vec![7],
            ..SamplingParams::default()
        };
        let stopped = Some((RequestStatus::FinishedStopped, None));
        assert_eq!(check_stop(&req(p.clone(), &[5]), 100), None);
        assert_eq!(
            check_stop(&req(p.clone(), &[9]), 100),
            None,
            "EOS before min_tokens"
        );
        assert_eq!(check_stop(&req(p.clone(), &[5, 9]), 100), stopped);
        assert_eq!(
            check_stop(&req(p.clone(), &[5, 2]), 100),
            stopped,
            "second EOS id"
        );
        assert_eq!(
            check_stop(&req(p.clone(), &[5, 7]), 100),
            Some((RequestStatus::FinishedStopped, Some(7)))
        );
        let length = Some((RequestStatus::FinishedLength, None));
        assert_eq!(check_stop(&req(p.clone(), &[5, 5, 5, 9]), 100), length);
        assert_eq!(
            check_stop(&req(p.clone(), &[5, 5]), 5),
            length,
            "max_model_len"
        );
        let ignore = SamplingParams {
            ignore_eos: true,
            ..p
        };
        assert_eq!(check_stop(&req(ignore, &[5, 9]), 100), None);
    }
}
