//! `ferrum bench serve`: load an OpenAI-compatible server the way `vllm bench serve` does and
//! report TTFT, TPOT, ITL, E2EL and throughput with vLLM's definitions and key names.
//!
//! Flow (vLLM's): one initial test request, which also waits for the server to come up; optional
//! warm-up requests; arrival offsets computed up front; each request released at its offset and
//! gated by `--max-concurrency`; the duration runs from just before the first release to the end
//! of the last request.
//!
//! Invariants:
//! - Prompts go as token ids (exact lengths, no tokenizer needed). When the server refuses ids
//!   (HTTP 4xx on the initial test) and `--tokenizer` is given, they go as text re-encoded to the
//!   same length; the chat endpoint always gets text.
//! - Every request's outcome is kept, failures included; the run itself fails only when the
//!   initial test fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ferrum_executor::Rng;
use ferrum_tokenizer::{Tokenizer, TokenizerFiles};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::arrivals::arrival_offsets;
use super::client::{Client, Target, CONNECT_ERROR};
use super::dataset::{allowed_tokens, ids_to_text, sample_random, RandomSpec, SampleRequest};
use super::metrics::{calculate_metrics, RequestOutcome};
use super::report::{render, result_json, RunInfo, METRICS};
use super::request::{send, Api, Prompt, RequestSettings};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Server URL (http://host:port, optionally with a path prefix); overrides --host/--port.
    #[arg(long)]
    base_url: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[arg(long, default_value = "/v1/completions")]
    endpoint: String,
    /// `openai` (completions) or `openai-chat`; `vllm` is taken as `openai`. An endpoint ending in
    /// /chat/completions selects `openai-chat` as well.
    #[arg(long, default_value = "openai", value_parser = ["openai", "vllm", "openai-chat"])]
    backend: String,
    /// Model name sent in requests (default: the first model of the server's /v1/models).
    #[arg(long)]
    model: Option<String>,
    /// Tokenizer (model folder or GGUF file): real vocabulary for the random ids, text prompts
    /// where the server or endpoint needs them, and token counts when the server sends no usage.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Without --tokenizer, random ids are drawn from [0, this) (special tokens included).
    #[arg(long, default_value_t = 32000)]
    random_vocab_size: usize,
    #[arg(long, default_value = "random", value_parser = ["random"])]
    dataset_name: String,
    #[arg(long, default_value_t = 1024)]
    random_input_len: usize,
    #[arg(long, default_value_t = 128)]
    random_output_len: usize,
    #[arg(long, default_value_t = 0.0)]
    random_range_ratio: f64,
    #[arg(long, default_value_t = 0)]
    random_prefix_len: usize,
    #[arg(long, default_value_t = 1000)]
    num_prompts: usize,
    /// Requests per second, or `inf` to release them all at once.
    #[arg(long, default_value = "inf", value_parser = parse_positive_or_inf)]
    request_rate: f64,
    /// Gamma shape of the inter-arrival times: 1 is Poisson, lower is burstier.
    #[arg(long, default_value = "1.0", value_parser = parse_positive_or_inf)]
    burstiness: f64,
    /// Most requests in flight (client-side semaphore); default unbounded.
    #[arg(long)]
    max_concurrency: Option<usize>,
    #[arg(long)]
    ignore_eos: bool,
    /// Sampling temperature sent with each request (default: the server's).
    #[arg(long)]
    temperature: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    num_warmups: usize,
    /// Comma-separated subset of ttft,tpot,itl,e2el.
    #[arg(long, default_value = "ttft,tpot,itl")]
    percentile_metrics: String,
    /// Comma-separated percentiles, e.g. 25,50,99.
    #[arg(long, default_value = "99")]
    metric_percentiles: String,
    #[arg(long, default_value = "benchmark-serving")]
    request_id_prefix: String,
    /// Seconds to keep retrying the initial test while the server is not accepting connections.
    #[arg(long, default_value_t = 600)]
    ready_check_timeout_sec: u64,
    /// Write the results as JSON (vLLM's keys) here.
    #[arg(long)]
    result_file: Option<PathBuf>,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

fn parse_positive_or_inf(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a positive number or inf, got {s:?}"))?;
    if v.is_nan() || v <= 0.0 {
        return Err(format!("expected a positive number or inf, got {s:?}"));
    }
    Ok(v)
}

fn parse_list<T>(s: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| f(x).with_context(|| format!("{what}: {x:?} is not valid")))
        .collect()
}

/// Loads a tokenizer from a model folder (tokenizer.json / tokenizer.model) or a GGUF file.
fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    if path.is_dir() {
        let files = TokenizerFiles::discover(path)?;
        return Ok(files.load()?.tokenizer);
    }
    Ok(ferrum_model::ModelBundle::open(path)?.tokenizer)
}

/// The first model the server lists.
async fn first_model(client: &Arc<Client>) -> Result<String> {
    let mut resp = client.request("GET", "/v1/models", None, &[]).await?;
    let body = resp.text(1 << 20).await?;
    if resp.status != 200 {
        bail!("HTTP {}: GET /v1/models: {body}", resp.status);
    }
    let v: Value = serde_json::from_str(&body).context("GET /v1/models: not JSON")?;
    v.pointer("/data/0/id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .context("GET /v1/models lists no model: pass --model")
}

/// Prompts of the dataset in the form that goes on the wire.
struct Workload {
    requests: Vec<SampleRequest>,
    prompts: Vec<Prompt>,
}

fn build_workload(
    a: &ServeArgs,
    tokenizer: Option<&Tokenizer>,
    allowed: &[u32],
    as_text: bool,
) -> Result<Workload> {
    let spec = RandomSpec {
        input_len: a.random_input_len,
        output_len: a.random_output_len,
        range_ratio: a.random_range_ratio,
        prefix_len: a.random_prefix_len,
        seed: a.seed,
    };
    let Some(tok) = tokenizer.filter(|_| as_text) else {
        let requests = sample_random(&spec, allowed, 0, a.num_prompts)?;
        let prompts = requests
            .iter()
            .map(|r| Prompt::Ids(r.prompt_ids.clone()))
            .collect();
        return Ok(Workload { requests, prompts });
    };
    // The server adds BOS (and EOS) to a text prompt: leave room for them, as vLLM does.
    let specials = usize::from(tok.add_bos_token()) + usize::from(tok.add_eos_token());
    let mut requests = sample_random(&spec, allowed, specials, a.num_prompts)?;
    let mut rng = Rng::new(a.seed ^ 0x7e47);
    let mut prompts = Vec::with_capacity(requests.len());
    for r in &mut requests {
        let (text, len) = ids_to_text(tok, &r.prompt_ids, allowed, &mut rng)?;
        r.prompt_len = len + specials;
        prompts.push(Prompt::Text(text));
    }
    Ok(Workload { requests, prompts })
}

pub fn run(a: ServeArgs) -> Result<std::process::ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: ServeArgs) -> Result<std::process::ExitCode> {
    if a.num_prompts == 0 {
        bail!("--num-prompts must be at least 1");
    }
    if a.max_concurrency == Some(0) {
        bail!("--max-concurrency must be at least 1");
    }
    let selected: Vec<String> = parse_list(&a.percentile_metrics, "--percentile-metrics", |m| {
        METRICS
            .iter()
            .any(|(k, _, _)| *k == m)
            .then(|| m.to_string())
    })?;
    let percentiles: Vec<f64> = parse_list(&a.metric_percentiles, "--metric-percentiles", |p| {
        p.parse::<f64>().ok().filter(|p| (0.0..=100.0).contains(p))
    })?;
    let base_url = a
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", a.host, a.port));
    let target = Target::parse(&base_url)?;
    let headers = a
        .api_key
        .iter()
        .map(|k| ("authorization".to_string(), format!("Bearer {k}")))
        .collect();
    let client = Client::new(target, headers);
    let api = if a.backend == "openai-chat" || a.endpoint.ends_with("/chat/completions") {
        Api::Chat
    } else {
        Api::Completions
    };
    let tokenizer = a
        .tokenizer
        .as_deref()
        .map(|p| load_tokenizer(p).with_context(|| format!("--tokenizer {}", p.display())))
        .transpose()?;
    let allowed = match &tokenizer {
        Some(t) => allowed_tokens(t.vocab_size(), t.special_token_ids()),
        None => (0..a.random_vocab_size as u32).collect(),
    };
    if api == Api::Chat && tokenizer.is_none() {
        bail!("{} takes text prompts: pass --tokenizer", a.endpoint);
    }
    let model = match &a.model {
        Some(m) => m.clone(),
        None => wait_ready(Duration::from_secs(a.ready_check_timeout_sec), || {
            first_model(&client)
        })
        .await
        .context("finding the model name (or pass --model)")?,
    };
    let settings = RequestSettings {
        api,
        endpoint: a.endpoint.clone(),
        model: model.clone(),
        ignore_eos: a.ignore_eos,
        temperature: a.temperature,
    };
    let mut as_text = api == Api::Chat;
    let mut work = build_workload(&a, tokenizer.as_ref(), &allowed, as_text)?;

    println!("Starting initial single prompt test run...");
    let test_id = format!("{}test", a.request_id_prefix);
    let test = |w: &Workload| {
        let (p, r) = (w.prompts[0].clone(), w.requests[0].clone());
        let (client, settings, test_id) = (&client, &settings, &test_id);
        async move {
            send(
                client,
                settings,
                &p,
                r.prompt_len,
                r.expected_output_len,
                test_id,
            )
            .await
        }
    };
    let deadline = Duration::from_secs(a.ready_check_timeout_sec);
    let mut first = wait_ready(deadline, || async {
        let o = test(&work).await;
        if not_ready(&o.error) {
            bail!("{}", o.error)
        }
        Ok(o)
    })
    .await?;
    if !first.success && !as_text && first.error.starts_with("HTTP 4") {
        if tokenizer.is_some() {
            println!(
                "The server refused token-id prompts ({}); sending text.",
                first.error
            );
            as_text = true;
            work = build_workload(&a, tokenizer.as_ref(), &allowed, true)?;
            first = test(&work).await;
        } else {
            bail!(
                "Initial test run failed: {} (if the server takes no token-id prompts, or the \
                 model's vocabulary is smaller than --random-vocab-size, pass --tokenizer)",
                first.error
            );
        }
    }
    if !first.success {
        bail!(
            "Initial test run failed - Please make sure benchmark arguments are correctly \
             specified. Error: {}",
            first.error
        );
    }
    println!("Initial test run completed. Starting main benchmark run...");
    if a.num_warmups > 0 {
        println!("Warming up with {} requests...", a.num_warmups);
        let warm: Vec<_> = (0..a.num_warmups)
            .map(|_| {
                let (client, settings, p, r) = (
                    Arc::clone(&client),
                    settings.clone(),
                    work.prompts[0].clone(),
                    work.requests[0].clone(),
                );
                let id = format!("{}warmup", a.request_id_prefix);
                tokio::spawn(async move {
                    send(
                        &client,
                        &settings,
                        &p,
                        r.prompt_len,
                        r.expected_output_len,
                        &id,
                    )
                    .await
                })
            })
            .collect();
        for w in warm {
            w.await?;
        }
    }

    let offsets = arrival_offsets(
        a.num_prompts,
        a.request_rate,
        a.burstiness,
        &mut Rng::new(a.seed ^ 0xa5a5_5a5a),
    );
    let burst_desc = if a.burstiness == 1.0 {
        " (Poisson process)"
    } else {
        ""
    };
    println!("Traffic request rate: {}", fmt_inf(a.request_rate));
    println!("Burstiness factor: {}{burst_desc}", fmt_inf(a.burstiness));
    println!(
        "Maximum request concurrency: {}",
        a.max_concurrency
            .map_or("None".to_string(), |c| c.to_string())
    );
    let gate = a.max_concurrency.map(|c| Arc::new(Semaphore::new(c)));
    let settings = Arc::new(settings);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(a.num_prompts);
    for (i, (r, p)) in work.requests.iter().zip(&work.prompts).enumerate() {
        tokio::time::sleep_until((start + Duration::from_secs_f64(offsets[i])).into()).await;
        let (client, settings, gate) = (Arc::clone(&client), Arc::clone(&settings), gate.clone());
        let (p, prompt_len, out_len) = (p.clone(), r.prompt_len, r.expected_output_len);
        let id = format!("{}{i}", a.request_id_prefix);
        tasks.push(tokio::spawn(async move {
            let _permit = match &gate {
                Some(g) => Some(g.acquire().await),
                None => None,
            };
            send(&client, &settings, &p, prompt_len, out_len, &id).await
        }));
    }
    let mut outcomes: Vec<RequestOutcome> = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await?);
    }
    let duration = start.elapsed().as_secs_f64();
    for o in outcomes
        .iter_mut()
        .filter(|o| o.success && o.output_tokens == 0)
    {
        // No usage from the server: count the text's tokens, else one per token event.
        o.output_tokens = match &tokenizer {
            Some(t) => t.encode(&o.generated_text, false)?.len(),
            None => o.token_chunks,
        };
    }
    let metrics = calculate_metrics(&outcomes, duration, &percentiles);
    let tokenizer_id = a
        .tokenizer
        .as_ref()
        .map_or(model.clone(), |p| p.display().to_string());
    let info = RunInfo {
        backend: if api == Api::Chat {
            "openai-chat"
        } else {
            "openai"
        },
        model_id: &model,
        tokenizer_id: &tokenizer_id,
        num_prompts: a.num_prompts,
        request_rate: a.request_rate,
        burstiness: a.burstiness,
        max_concurrency: a.max_concurrency,
        duration,
    };
    print!("{}", render(&info, &metrics, &selected, &outcomes));
    if as_text {
        println!("Prompts were sent as text.");
    }
    if let Some(path) = &a.result_file {
        let json = result_json(&info, &metrics, &selected, &outcomes);
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `4.0`, `inf`: Python's float printing, as in vLLM's lines.
fn fmt_inf(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        "inf".into()
    }
}

/// Whether an error says the server is not up yet: connection refused, or 503 while it loads.
fn not_ready(error: &str) -> bool {
    error.starts_with(CONNECT_ERROR) || error.starts_with("HTTP 503")
}

/// Retries `f` every half second while the server is not ready ([`not_ready`]), until `limit` has
/// passed; any other error returns at once.
async fn wait_ready<T, F, Fut>(limit: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if !not_ready(&e.to_string()) => return Err(e),
            Err(e) if start.elapsed() >= limit => {
                return Err(e.context(format!("the server was not ready within {limit:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
