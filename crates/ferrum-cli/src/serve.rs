//! `ferrum serve [MODEL]... [FLAGS]`: the OpenAI-compatible server, a drop-in for `vllm serve`,
//! serving one model or several (each with its own engine).
//!
//! Start-up order: parse and check the settings (command line > environment > --config file),
//! including the memory split between models; open the listening socket (so `/health` answers
//! 503 "loading" at once); load the models one after another on the blocking pool, each
//! serving as soon as its engine runs; then serve until SIGTERM, drain, and stop the engines.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ferrum_config::{
    ConfigError, ContextLen, GenerationConfig, LogFormat, MemoryShare, ModelSpec, ServeArgs,
};
use ferrum_engine::{start_engine, EngineConfig, SchedulingPolicy, DEFAULT_CPU_KV_CACHE_BYTES};
use ferrum_model::{GenerationDefaults, ModelBundle, ModelFiles};
use ferrum_server::{AppState, Engine, EngineLoader, KeepAliveEngine, ModelContext, ServerOptions};
use ferrum_tokenizer::ChatTemplate;
use ferrum_types::SamplingParams;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

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
    if let Err(e) = init_logging(&args) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr, and with --log-file also to that file (appended, no colours).
fn init_logging(args: &ServeArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.tracing_level()));
    let file = match &args.logging.log_file {
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| {
                    format!(
                        "--log-file {}: cannot open it for writing (does the folder exist, and \
                         may this user write there?)",
                        path.display()
                    )
                })?,
        ),
        None => None,
    };
    // Server logs go to stdout, where container runtimes and vLLM deployments expect them.
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let writer = match file {
        Some(f) => BoxMakeWriter::new(std::io::stdout.and(Arc::new(f))),
        None => BoxMakeWriter::new(std::io::stdout),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match args.logging.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

fn listen_addr(args: &ServeArgs) -> Result<SocketAddr> {
    let host = if args.server.host == "localhost" {
        "127.0.0.1"
    } else {
        args.server.host.as_str()
    };
    format!("{host}:{}", args.server.port)
        .parse()
        .or_else(|_| format!("[{host}]:{}", args.server.port).parse())
        .map_err(|_| anyhow!("--host {host}: not an address to listen on"))
}

fn serve(args: ServeArgs) -> Result<()> {
    let specs = args.model_specs()?;
    let shares = args.memory_split(&specs, DEFAULT_CPU_KV_CACHE_BYTES)?;
    let options = ServerOptions::from_args(&args, &specs)?;
    for flag in args.compat.ignored() {
        tracing::info!("{flag} has no effect here (accepted for vLLM compatibility)");
    }
    let addr = listen_addr(&args)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ferrum-http")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = ferrum_server::bind(addr).await?;
        let state = AppState::new(options);
        let router = ferrum_server::build_router(state.clone());
        tracing::info!(
            "ferrum {} serving {} model(s)",
            env!("CARGO_PKG_VERSION"),
            specs.len()
        );
        for (i, (spec, share)) in specs.iter().zip(&shares).enumerate() {
            tracing::info!(
                model = %spec.model,
                names = ?spec.served_model_name,
                device = ?spec.device,
                kv_cache_budget_mib = share.kv_cache_memory_bytes >> 20,
                gpu_memory_share = %format!("{:.2}", share.gpu_memory_utilization),
                "model {i}: {}", spec.primary_name()
            );
        }
        tracing::info!(
            "listening on http://{addr} (models are loading; /health says 503 until all are ready)"
        );

        let loader_state = state.clone();
        let loader = tokio::task::spawn_blocking(move || -> Result<()> {
            let several = specs.len() > 1;
            for (i, (spec, share)) in specs.iter().zip(&shares).enumerate() {
                let model = match load(&args, spec, share, several) {
                    Ok(m) => m,
                    Err(e) if several => {
                        return Err(e.context(format!("model {}", spec.primary_name())))
                    }
                    Err(e) => return Err(e),
                };
                loader_state.set_model_ready(i, model);
                tracing::info!("ready: {} answers on http://{addr}", spec.primary_name());
            }
            Ok(())
        });
        let server = tokio::spawn(ferrum_server::serve(
            listener,
            router,
            state.clone(),
            ferrum_server::termination_signal(),
        ));
        match loader.await {
            Ok(Ok(())) => tracing::info!("ready: accepting requests on http://{addr}"),
            Ok(Err(e)) => {
                state.set_failed(format!("start-up failed: {e:#}"));
                shutdown_engines(&state);
                server.abort();
                return Err(e);
            }
            Err(e) => {
                shutdown_engines(&state);
                server.abort();
                return Err(anyhow!("model loading panicked: {e}"));
            }
        }
        let result = server
            .await
            .map_err(|e| anyhow!("server task failed: {e}"))?;
        shutdown_engines(&state);
        tracing::info!("stopped");
        result.context("serving")
    })
}

fn shutdown_engines(state: &AppState) {
    for m in &state.models {
        if let Some(c) = m.context.get() {
            c.engine.shutdown();
        }
    }
}

/// The pre-deployment check of `ferrum validate`, in one line: the files a model folder lacks.
fn check_model_files(model: &str, path: &Path) -> Result<()> {
    let files = ModelFiles::discover(path).with_context(|| {
        format!("{model}: cannot be served (run `ferrum validate {model}` for a full report)")
    })?;
    let missing: Vec<String> = files
        .entries()
        .iter()
        .filter(|e| e.required && !e.present)
        .map(|e| format!("{} ({})", e.name, e.note))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{model}: the model folder is missing {}; copy the complete model (every file of its \
             Hugging Face repository) there, and check with `ferrum validate {model}`",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Loads one model, starts its engine and gathers what the routes need.
fn load(
    args: &ServeArgs,
    spec: &ModelSpec,
    share: &MemoryShare,
    several: bool,
) -> Result<ModelContext> {
    // Where MODEL becomes a local path.
    let model_path = spec.model.clone();
    let source = crate::resolve::SourceArgs::from_serve(&args.model)?;
    let resolved = crate::resolve::resolve_model(&model_path, &source)?;
    let path = resolved.as_path();
    check_model_files(&model_path, path)?;
    let bundle = ModelBundle::open(path).with_context(|| format!("loading {model_path}"))?;
    let template = match spec.chat_template_source()? {
        Some(source) => Some(compile_template(&source, &bundle)?),
        None => match bundle.compile_chat_template() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("{}: no usable chat template ({e}); /v1/chat/completions will answer 400 until one is given with --chat-template", spec.primary_name());
                None
            }
        },
    };
    let generation = match spec.generation_config()? {
        GenerationConfig::Auto => bundle.generation.clone(),
        GenerationConfig::Vllm => GenerationDefaults::default(),
        GenerationConfig::Folder(dir) => {
            GenerationDefaults::read(&dir.join("generation_config.json"))?
        }
    };
    let default_sampling = generation.apply(SamplingParams::default());
    let default_max_tokens = generation.max_new_tokens;
    let weights_bytes = bundle.weights.total_bytes();
    tracing::info!(
        architecture = ?bundle.config.architecture,
        layers = bundle.config.num_layers,
        vocab = bundle.config.vocab_size,
        context = bundle.config.max_position_embeddings,
        dtype = %bundle.config.dtype,
        format = bundle.weights.format(),
        "model: {model_path}"
    );
    let config = engine_config(args, spec, share, several);
    let (engine, info) = start_engine(&bundle, config.clone()).map_err(|e| {
        let message = e.to_string();
        if message.starts_with("--device cuda") {
            anyhow!("{message}; {}", ferrum_config::cuda_help())
        } else {
            anyhow!("{message}")
        }
    })?;
    let engine: Arc<dyn Engine> = Arc::new(engine);
    let engine = match spec.keep_alive {
        None => engine,
        Some(keep_alive) => {
            tracing::info!(
                "{}: keep-alive {} s: its engine stops after that long without requests and starts again with the next one",
                spec.primary_name(),
                keep_alive.as_secs()
            );
            let path = path.to_path_buf();
            let loader: EngineLoader = Box::new(move || {
                let bundle = ModelBundle::open(&path).map_err(|e| format!("{e:#}"))?;
                start_engine(&bundle, config.clone())
                    .map(|(handle, _)| Arc::new(handle) as Arc<dyn Engine>)
                    .map_err(|e| e.to_string())
            });
            Arc::new(KeepAliveEngine::start(
                spec.primary_name(),
                engine,
                keep_alive,
                loader,
            ))
        }
    };
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    tracing::info!(
        device = %info.device,
        "memory plan of {}: weights {:.1} MiB, KV cache {} blocks x {} tokens ({:.1} MiB), {:.1} requests of {} tokens at once (max-num-seqs {})",
        spec.primary_name(),
        mib(weights_bytes),
        info.num_blocks,
        info.block_size,
        mib(info.kv_cache_bytes),
        info.max_concurrency,
        info.max_model_len,
        spec.max_num_seqs
    );
    Ok(ModelContext {
        engine,
        tokenizer: Arc::new(bundle.tokenizer),
        template: template.map(Arc::new),
        max_model_len: info.max_model_len,
        vocab_size: info.vocab_size,
        default_sampling,
        default_max_tokens,
    })
}

/// One model's engine settings: its own, the global ones, and its memory share.
fn engine_config(
    args: &ServeArgs,
    spec: &ModelSpec,
    share: &MemoryShare,
    several: bool,
) -> EngineConfig {
    EngineConfig {
        max_num_seqs: spec.max_num_seqs,
        max_num_batched_tokens: spec.max_num_batched_tokens,
        max_model_len: match spec.max_model_len {
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
        // One model without its own size keeps the engine's own sizing (its CPU default, or
        // the GPU share). Several get their CPU split explicitly, which also sizes their KV
        // cache on a GPU (the GPU planner counts every engine's memory as used).
        kv_cache_memory_bytes: match (several, spec.kv_cache_memory_bytes) {
            (_, Some(own)) => Some(own),
            (false, None) => args.cache.kv_cache_memory_bytes,
            (true, None) => Some(share.kv_cache_memory_bytes),
        },
        threads: args.parallel.threads,
        seed: Some(args.model.seed),
        device: crate::placement::engine_device(spec.device),
        gpu_memory_utilization: share.gpu_memory_utilization,
        enforce_eager: args.parallel.enforce_eager,
        async_scheduling: args.scheduler.async_scheduling(),
        dtype: args.model.dtype.clone(),
    }
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
            ferrum_config::default_names("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            [
                "models/SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct.Q4_1"
            ]
        );
        assert_eq!(ferrum_config::default_names("qwen3"), ["qwen3"]);
    }

    #[test]
    fn a_folder_without_weights_lists_what_is_missing() {
        let dir = tempfile::tempdir().expect("tmp");
        ferrum_testkit::write_test_model(dir.path(), &ferrum_testkit::tiny_qwen3()).expect("model");
        let p = dir.path().to_string_lossy().into_owned();
        super::check_model_files(&p, dir.path()).expect("complete model");
        std::fs::remove_file(dir.path().join("tokenizer.json")).expect("rm");
        let e = super::check_model_files(&p, dir.path()).expect_err("incomplete");
        let m = format!("{e:#}");
        assert!(m.contains("missing tokenizer.json"), "{m}");
        assert!(m.contains("ferrum validate"), "{m}");
    }
}
