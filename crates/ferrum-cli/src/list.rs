//! `ferrum list`: the models in the local store (Hugging Face cache and ModelScope cache),
//! whoever downloaded them.

use anyhow::Result;
use clap::Args;
use ferrum_hub::{human, HubConfig};

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ListArgs) -> Result<std::process::ExitCode> {
    let cfg = HubConfig::from_env();
    let models = ferrum_hub::list(&cfg);
    if args.json {
        for m in &models {
            println!(
                "{}",
                serde_json::json!({
                    "id": m.id, "source": m.source.name(), "revision": m.revision,
                    "refs": m.refs, "size": m.size, "path": m.path,
                })
            );
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if models.is_empty() {
        eprintln!(
            "no models in {} or {} (download one with `ferrum pull org/name`)",
            cfg.hf_cache.display(),
            cfg.modelscope_cache.display()
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let id_w = models.iter().map(|m| m.id.len()).max().unwrap_or(2).max(2);
    println!(
        "{:<id_w$}  {:<11}  {:<18}  {:>10}  PATH",
        "ID", "SOURCE", "REVISION", "SIZE"
    );
    for m in &models {
        let rev = if m.revision.len() == 40 {
            m.revision[..12].to_string()
        } else {
            m.revision.clone()
        };
        let rev = if m.refs.is_empty() {
            rev
        } else {
            format!("{rev} ({})", m.refs.join(","))
        };
        println!(
            "{:<id_w$}  {:<11}  {:<18}  {:>10}  {}",
            m.id,
            m.source.name(),
            rev,
            human(m.size),
            m.path.display()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
