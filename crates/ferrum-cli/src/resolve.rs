//! Where a MODEL argument becomes a local path: a folder or `.gguf` file as given, or a hub id
//! (`org/name`, `org/name:file.gguf`) downloaded into the shared cache, or found there.
//!
//! The source and cache come from the environment (`HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`,
//! `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `FERRUM_USE_MODELSCOPE`, `MODELSCOPE_CACHE`); the flags
//! here override the source and pick a revision.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use ferrum_hub::{HubConfig, Progress, Source};

#[derive(Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// Branch, tag or commit of a hub model (default: main; master on ModelScope).
    #[arg(long)]
    pub revision: Option<String>,
    /// Where hub ids are downloaded from: huggingface (HF_ENDPOINT picks a mirror) or
    /// modelscope. Default: modelscope when FERRUM_USE_MODELSCOPE=true, else huggingface.
    #[arg(long, value_parser = parse_source)]
    pub model_source: Option<Source>,
    /// Hugging Face models are downloaded to and looked up in this folder (the cache layout;
    /// default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
}

fn parse_source(s: &str) -> Result<Source, String> {
    Source::parse(s).ok_or_else(|| format!("{s:?}: expected huggingface or modelscope"))
}

impl SourceArgs {
    /// The environment's settings with these flags applied.
    pub fn hub_config(&self) -> HubConfig {
        let mut cfg = HubConfig::from_env();
        if let Some(s) = self.model_source {
            cfg.source = s;
        }
        if let Some(dir) = &self.download_dir {
            cfg.hf_cache = dir.clone();
        }
        cfg
    }

    /// `ferrum serve`'s settings (validated by its parser already).
    pub fn from_serve(m: &ferrum_config::ModelArgs) -> Result<Self> {
        let model_source = match m.model_source.as_deref() {
            Some(s) => Some(parse_source(s).map_err(anyhow::Error::msg)?),
            None => None,
        };
        Ok(Self {
            revision: m.revision.clone(),
            model_source,
            download_dir: m.download_dir.clone(),
        })
    }
}

/// The local path of `model`, downloading it first when it names a hub repository. Progress
/// is a bar on a terminal, log lines otherwise.
pub fn resolve_model(model: &str, source: &SourceArgs) -> Result<PathBuf> {
    let cfg = source.hub_config();
    let path = ferrum_hub::resolve(
        model,
        source.revision.as_deref(),
        &cfg,
        Progress::auto(Progress::Log),
    )?;
    if path != Path::new(model) {
        tracing::info!(model, path = %path.display(), source = cfg.source.name(), "model files ready");
    }
    Ok(path)
}
