//! `ferrum pull MODEL`: download a hub model into the local store (nothing when it is there)
//! and print its path.

use anyhow::Result;
use clap::Args;
use ferrum_hub::{Progress, RepoRef};

use crate::resolve::SourceArgs;

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Hub id: org/name, or org/name:file.gguf (or :QUANT, e.g. :Q4_K_M) for one GGUF file.
    model: String,
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(args: PullArgs) -> Result<std::process::ExitCode> {
    let repo = RepoRef::parse(&args.model)?;
    let cfg = args.source.hub_config();
    eprintln!(
        "pulling {} from {} into {}",
        repo.display(),
        cfg.endpoint(),
        match cfg.source {
            ferrum_hub::Source::HuggingFace => cfg.hf_cache.display(),
            ferrum_hub::Source::ModelScope => cfg.modelscope_cache.display(),
        }
    );
    let path = ferrum_hub::pull(
        &repo,
        args.source.revision.as_deref(),
        &cfg,
        Progress::auto(Progress::Lines),
    )?;
    println!("{}", path.display());
    Ok(std::process::ExitCode::SUCCESS)
}
