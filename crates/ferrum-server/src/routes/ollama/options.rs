//! Ollama's `options` map, turned into the shared sampling fields that the OpenAI routes
//! validate, so that both front ends share one set of ranges and messages.
//!
//! Invariants:
//! - Every option that changes sampling maps onto our parameter of the same meaning
//!   (`num_predict` → `max_tokens`, `repeat_penalty` → `repetition_penalty`, …); a negative
//!   `num_predict` means "until the context is full" and a negative `seed` "random", as in
//!   Ollama.
//! - `num_ctx` cannot grow the context: above the server's `--max-model-len` it is a 400 that
//!   names the flag; at or below it the request runs in the server's context.
//! - Ollama's load-time and runner options (num_gpu, num_thread …) have no meaning here and are
//!   ignored with a debug line; options Ollama does not know either are ignored with a warning,
//!   as Ollama logs "invalid option provided".
//! - A value of the wrong type is a 400 naming `options.<key>`.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::protocol::fields::{SamplingFields, Stop};

/// Ollama options that exist there but change nothing here (load-time, runner or sampler
/// settings without an equivalent).
const IGNORED: &[&str] = &[
    "num_keep",
    "typical_p",
    "repeat_last_n",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "use_mmap",
    "use_mlock",
    "num_thread",
    "numa",
    "low_vram",
    "f16_kv",
    "vocab_only",
    "logits_all",
    "embedding_only",
    "penalize_newline",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
    "draft_num_predict",
];

/// The sampling fields an `options` map asks for, and its `num_ctx`.
#[derive(Debug, Default)]
pub struct Options {
    pub sampling: SamplingFields,
    pub num_ctx: Option<i64>,
}

fn param(key: &str) -> String {
    format!("options.{key}")
}

fn number(key: &str, v: &Value) -> Result<f64, ApiError> {
    v.as_f64()
        .ok_or_else(|| ApiError::invalid(param(key), format!("`{key}` must be a number, got {v}")))
}

fn integer(key: &str, v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid(param(key), format!("`{key}` must be an integer, got {v}")))
}

fn stop(v: &Value) -> Result<Stop, ApiError> {
    let bad = || {
        ApiError::invalid(
            param("stop"),
            "`stop` must be a string or a list of strings",
        )
    };
    match v {
        Value::String(s) => Ok(Stop::One(s.clone())),
        Value::Array(items) => items
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(Stop::Many),
        _ => Err(bad()),
    }
}

/// Reads `options` (absent or null: no options).
pub fn read(options: Option<&Value>) -> Result<Options, ApiError> {
    let map = match options {
        None | Some(Value::Null) => return Ok(Options::default()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::invalid("options", "`options` must be an object")),
    };
    read_map(map)
}

fn read_map(map: &Map<String, Value>) -> Result<Options, ApiError> {
    let mut o = Options::default();
    let s = &mut o.sampling;
    for (key, v) in map {
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "temperature" => s.temperature = Some(number(key, v)?),
            "top_p" => s.top_p = Some(number(key, v)?),
            "min_p" => s.min_p = Some(number(key, v)?),
            "top_k" => s.top_k = Some(integer(key, v)?.max(-1)),
            "repeat_penalty" => s.repetition_penalty = Some(number(key, v)?),
            "presence_penalty" => s.presence_penalty = Some(number(key, v)?),
            "frequency_penalty" => s.frequency_penalty = Some(number(key, v)?),
            "seed" => s.seed = Some(integer(key, v)?).filter(|&seed| seed >= 0),
            "num_predict" => s.max_tokens = Some(integer(key, v)?).filter(|&n| n >= 0),
            "stop" => s.stop = Some(stop(v)?),
            "num_ctx" => {
                let n = integer(key, v)?;
                if n < 1 {
                    return Err(ApiError::invalid(
                        param(key),
                        format!("`num_ctx` must be at least 1, got {n}"),
                    ));
                }
                o.num_ctx = Some(n);
            }
            k if IGNORED.contains(&k) => {
                tracing::debug!(
                    option = k,
                    "Ollama option has no effect in this server; ignored"
                );
            }
            k => tracing::warn!(option = k, "invalid option provided; ignored"),
        }
    }
    Ok(o)
}

/// Refuses a `num_ctx` larger than the server's context.
pub fn check_num_ctx(num_ctx: Option<i64>, max_model_len: usize) -> Result<(), ApiError> {
    match num_ctx {
        Some(n) if n as u64 > max_model_len as u64 => Err(ApiError::invalid(
            param("num_ctx"),
            format!(
                "`num_ctx` is {n} but this server runs the model with a context of {max_model_len} tokens; send num_ctx <= {max_model_len} or start the server with a larger --max-model-len"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_map_onto_sampling_fields() {
        let o = read(Some(&json!({
            "temperature": 0.5, "top_p": 0.9, "top_k": 7, "min_p": 0.1, "seed": 42,
            "num_predict": 12, "stop": ["a", "b"], "repeat_penalty": 1.2,
            "presence_penalty": 0.3, "frequency_penalty": -0.4, "num_ctx": 512,
            "num_gpu": 99, "made_up": true,
        })))
        .expect("valid");
        let s = &o.sampling;
        assert_eq!(s.temperature, Some(0.5));
        assert_eq!(s.top_p, Some(0.9));
        assert_eq!(s.top_k, Some(7));
        assert_eq!(s.min_p, Some(0.1));
        assert_eq!(s.seed, Some(42));
        assert_eq!(s.max_tokens, Some(12));
        assert_eq!(s.repetition_penalty, Some(1.2));
        assert_eq!(s.presence_penalty, Some(0.3));
        assert_eq!(s.frequency_penalty, Some(-0.4));
        assert_eq!(
            s.stop.clone().map(Stop::into_vec),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(o.num_ctx, Some(512));
    }

    #[test]
    fn negative_values_mean_unbounded_or_random() {
        let o = read(Some(&json!({"num_predict": -1, "seed": -1, "top_k": -5}))).expect("valid");
        assert_eq!(o.sampling.max_tokens, None);
        assert_eq!(o.sampling.seed, None);
        assert_eq!(o.sampling.top_k, Some(-1));
    }

    #[test]
    fn wrong_types_name_the_option() {
        for bad in [
            json!({"temperature": "hot"}),
            json!({"num_predict": 1.5}),
            json!({"stop": [1]}),
        ] {
            let Err(ApiError::InvalidRequest { param, .. }) = read(Some(&bad)) else {
                panic!("{bad} accepted");
            };
            assert!(param.is_some_and(|p| p.starts_with("options.")), "{bad}");
        }
        assert!(read(Some(&json!([1]))).is_err());
    }

    #[test]
    fn num_ctx_cannot_exceed_the_server_context() {
        assert!(check_num_ctx(Some(2048), 2048).is_ok());
        assert!(check_num_ctx(None, 16).is_ok());
        let e = check_num_ctx(Some(4096), 2048).expect_err("too large");
        assert!(e.to_string().contains("--max-model-len"), "{e}");
    }
}
