//! `ferrum rm MODEL`: delete a hub model from the local store.

use anyhow::Result;
use clap::Args;
use ferrum_hub::{human, RepoRef};

use crate::resolve::SourceArgs;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Hub id (org/name) as shown by `ferrum list`.
    model: String,
    // --revision removes only that revision and the files no other one uses.
    #[command(flatten)]
    source: SourceArgs,
}

pub fn run(args: RmArgs) -> Result<std::process::ExitCode> {
    let repo = RepoRef::parse(&args.model)?;
    let cfg = args.source.hub_config();
    let removed = ferrum_hub::remove(&repo, args.source.revision.as_deref(), &cfg)?;
    for p in &removed.paths {
        eprintln!("removed {}", p.display());
    }
    println!("{}: freed {}", repo.repo_id, human(removed.freed));
    Ok(std::process::ExitCode::SUCCESS)
}
