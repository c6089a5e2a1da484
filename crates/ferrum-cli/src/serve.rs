//! `ferrum serve [MODEL] [FLAGS]`: the OpenAI-compatible server, a drop-in for `vllm serve`.
//!
//! Start-up order: parse and check the settings (command line > environment > --config file);
//! open the listening socket (so `/health` answers 503 "loading" at once); load the model and
//! start the engine on the blocking pool; then serve until SIGTERM, drain, and stop the engine.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use ferrum_config::{ConfigError, ContextLen, GenerationConfig, LogFormat, ServeArgs};
use ferrum_engine::{start_engine, EngineConfig, SchedulingPolicy};
use ferrum_model::{GenerationDefaults, ModelBundle};
use ferrum_server::{AppState, ModelContext, ServerOptions};
use ferrum_tokenizer::ChatTemplate;
use ferrum_types::SamplingParams;

/// Everything after `serve` is parsed by ferrum-config, which layers the environment and the
/// --config file under the command line.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct ServeCommand {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

pub fn run(cmd: ServeCommand) -> ExitCode {
    let argv = std::iter::once(OsString::from("ferrum serve")).chain(cmd.args);
    let args = match ServeArgs::load(argv) {
        Ok(a) => a,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = args.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    init_logging(&args);
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(args: &ServeArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.tracing_level()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match args.logging.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The names the API answers to: --served-model-name, else the model as given (what `vllm
/// serve` reports) and its file or folder name.
fn default_names(model: &str) -> Vec<String> {
    let mut names = vec![model.to_string()];
    let stem = Path::new(model.trim_end_matches('/'))
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(".gguf").to_string());
    if let Some(stem) = stem.filter(|s| !s.is_empty() && s != model) {
        names.push(stem);
    }
    names
}

fn serve(args: ServeArgs) -> Result<()> {
    let model_path = args.model_path().ok_or(ConfigError::NoModel)?.to_string();
    let mut options = ServerOptions::from_args(&args, &model_path)?;
    if args.model.served_model_name.is_empty() {
        options.served_model_names = default_names(&model_path);
    }
    for flag in args.compat.ignored() {
        tracing::info!("{flag} has no effect here (accepted for vLLM compatibility)");
    }
    let host = if args.server.host == "localhost" {
        "127.0.0.1"
    } else {
        args.server.host.as_str()
    };
    let addr: SocketAddr = format!("{host}:{}", args.server.port)
        .parse()
        .or_else(|_| format!("[{host}]:{}", args.server.port).parse())
        .map_err(|_| anyhow!("--host {host}: not an address to listen on"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ferrum-http")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (change --host or --port)"))?;
        let state = AppState::new(options);
        let router = ferrum_server::build_router(state.clone());
        tracing::info!(model = %model_path, names = ?state.options.served_model_names, "ferrum {} serving", env!("CARGO_PKG_VERSION"));
        tracing::info!("listening on http://{addr} (the model is loading; /health says 503 until it is ready)");

        let loader_state = state.clone();
        let loader = tokio::task::spawn_blocking(move || load(&args, &model_path));
        let server = tokio::spawn(ferrum_server::serve(listener, router, state.clone(), ferrum_server::termination_signal()));
        match loader.await {
            Ok(Ok(model)) => {
                loader_state.set_ready(model);
                tracing::info!("ready: accepting requests on http://{addr}");
            }
            Ok(Err(e)) => {
                loader_state.set_failed(format!("start-up failed: {e:#}"));
                server.abort();
                return Err(e);
            }
            Err(e) => {
                server.abort();
                return Err(anyhow!("model loading panicked: {e}"));
            }
        }
        let result = server.await.map_err(|e| anyhow!("server task failed: {e}"))?;
        if let Some(model) = state.model.get() {
            model.engine.shutdown();
        }
        tracing::info!("stopped");
        result.context("serving")
    })
}

/// Loads the model, starts the engine and gathers what the routes need.
fn load(args: &ServeArgs, model_path: &str) -> Result<ModelContext> {
    let resolved = crate::resolve::resolve_model(model_path, &Default::default())?;
    let path = resolved.as_path();
    let bundle = ModelBundle::open(path).with_context(|| format!("loading {model_path}"))?;
    let template = match args.chat_template_source()? {
        Some(source) => Some(compile_template(&source, &bundle)?),
        None => match bundle.compile_chat_template() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("no usable chat template ({e}); /v1/chat/completions will answer 400 until one is given with --chat-template");
                None
            }
        },
    };
    let generation = match args.generation_config()? {
        GenerationConfig::Auto => bundle.generation.clone(),
        GenerationConfig::Vllm => GenerationDefaults::default(),
        GenerationConfig::Folder(dir) => {
            GenerationDefaults::read(&dir.join("generation_config.json"))?
        }
    };
    let default_sampling = generation.apply(SamplingParams::default());
    let default_max_tokens = generation.max_new_tokens;
    tracing::info!(
        architecture = ?bundle.config.architecture,
        layers = bundle.config.num_layers,
        vocab = bundle.config.vocab_size,
        context = bundle.config.max_position_embeddings,
        dtype = %bundle.config.dtype,
        "model: {model_path}"
    );
    let tokenizer = Arc::new(bundle.tokenizer);
    let config = EngineConfig {
        max_num_seqs: args.scheduler.max_num_seqs,
        max_num_batched_tokens: args.scheduler.max_num_batched_tokens,
        max_model_len: match args.model.max_model_len {
            None | Some(ContextLen::Auto) => 0,
            Some(ContextLen::Tokens(n)) => n,
        },
        block_size: args.cache.block_size,
        enable_prefix_caching: args.cache.prefix_caching(),
        enable_chunked_prefill: args.scheduler.chunked_prefill(),
        scheduling_policy: match args.scheduler.scheduling_policy {
            ferrum_config::SchedulingPolicy::Fcfs => SchedulingPolicy::Fcfs,
            ferrum_config::SchedulingPolicy::Priority => SchedulingPolicy::Priority,
        },
        kv_cache_memory_bytes: args.cache.kv_cache_memory_bytes,
        threads: args.parallel.threads,
        seed: Some(args.model.seed),
    };
    // The engine takes its own bundle (it owns the weights); this one's tokenizer stays here.
    let engine_bundle = ModelBundle::open(path).with_context(|| format!("loading {model_path}"))?;
    let (engine, info) = start_engine(engine_bundle, config).map_err(|e| anyhow!("{e}"))?;
    tracing::info!(
        device = %info.device,
        "memory plan: KV cache {} blocks x {} tokens ({:.1} MiB), {:.1} requests of {} tokens at once",
        info.num_blocks,
        info.block_size,
        info.kv_cache_bytes as f64 / (1 << 20) as f64,
        info.max_concurrency,
        info.max_model_len
    );
    Ok(ModelContext {
        engine: Arc::new(engine),
        tokenizer,
        template: template.map(Arc::new),
        max_model_len: info.max_model_len,
        vocab_size: info.vocab_size,
        default_sampling,
        default_max_tokens,
    })
}

fn compile_template(source: &str, bundle: &ModelBundle) -> Result<ChatTemplate> {
    let tok = |id: Option<u32>| id.and_then(|i| bundle.tokenizer.id_to_token(i));
    ChatTemplate::new(
        source,
        tok(bundle.tokenizer.bos_token_id()),
        tok(bundle.tokenizer.eos_token_id()),
    )
    .map_err(|e| anyhow!("--chat-template: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_default_to_the_model_and_its_file_name() {
        assert_eq!(
            super::default_names("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            [
                "models/SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct.Q4_1"
            ]
        );
        assert_eq!(super::default_names("qwen3"), ["qwen3"]);
    }
}
