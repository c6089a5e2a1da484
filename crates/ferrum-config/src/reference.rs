//! The configuration reference (`docs/configuration.md`), generated from the clap definition of
//! `ferrum serve` and from the loader's own behaviour.
//!
//! Invariants:
//! - Every long flag of [`ServeArgs`] appears once, under its help heading, with the
//!   environment variable(s) that set it, its default and its help text; nothing is listed
//!   that the parser does not accept.
//! - Environment aliases (`MODEL_NAME`, …) are not copied from a list here: each name that
//!   [`ENV_HELP`] mentions is tried against the real loader ([`load_from`]) and attached to the
//!   flag it turns out to set, so the page cannot drift from what the server reads.
//! - The output depends only on the definitions (no time, no paths), so a test can compare it
//!   byte for byte with the committed file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::args::ServeArgs;
use crate::layers::{load_from, ENV_HELP};

/// Heading for the arguments that clap lists without one (MODEL, `--config`).
const TOP_HEADING: &str = "General";

/// Values tried when probing which flag an environment alias sets: the first that a flag
/// accepts and that changes the parsed settings is used.
const PROBE_VALUES: &[&str] = &["7", "0.5", "probe-value", "true"];

/// The Markdown text of `docs/configuration.md`.
pub fn configuration_reference() -> String {
    let cmd = ServeArgs::command();
    let aliases = env_aliases(&cmd);
    let mut sections: Vec<(String, Vec<&Arg>)> = Vec::new();
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || matches!(arg.get_long(), Some("help" | "version")) {
            continue;
        }
        let heading = arg.get_help_heading().unwrap_or(TOP_HEADING).to_string();
        match sections.iter_mut().find(|(h, _)| *h == heading) {
            Some((_, args)) => args.push(arg),
            None => sections.push((heading, vec![arg])),
        }
    }

    let mut out = String::new();
    out.push_str(
        "# Configuration reference: `ferrum serve`\n\n\
         <!-- Generated from the flag definitions (crates/ferrum-config/src/args.rs) by\n     \
         crates/ferrum-config/src/reference.rs. Do not edit: run\n     \
         FERRUM_UPDATE_DOCS=1 cargo test -p ferrum-config --test config_reference -->\n\n",
    );
    out.push_str(
        "Every setting can be given three ways. **Precedence: command line > environment > \
         `--config` file > default.**\n\n\
         - **Flag**: `--max-model-len 4096`; underscores work too (`--max_model_len`). A switch \
         `--x` also has a `--no-x` form; the last one given wins.\n\
         - **Environment**: the variable in the table (`FERRUM_<FLAG>`); lists are \
         comma-separated, switches take `true`/`false`. Empty variables count as unset.\n\
         - **Config file** (`--config FILE`, YAML or JSON): the flag name without dashes as \
         the key (`max-model-len: 4096` or `\"max_model_len\": 4096`), lists as arrays, \
         switches as booleans. Unknown keys are an error.\n\n",
    );
    let _ = writeln!(out, "> {}\n", one_line(ENV_HELP));
    for (heading, args) in &sections {
        let _ = writeln!(out, "## {heading}\n");
        out.push_str("| Flag | Environment | Default | Description |\n|---|---|---|---|\n");
        for arg in args {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                flag_cell(&cmd, arg),
                env_cell(arg, &aliases),
                default_cell(&cmd, arg),
                help_cell(arg)
            );
        }
        out.push('\n');
    }
    out
}

/// `--name <VALUE>` (and `--no-name` for switches that have it), or `MODEL` for a positional.
fn flag_cell(cmd: &Command, arg: &Arg) -> String {
    let Some(long) = arg.get_long() else {
        let name = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|s| s.to_string())
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
        return format!("`{name}` (positional)");
    };
    let mut cell = format!("`--{long}");
    if takes_value(arg) {
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|s| s.to_string())
            .unwrap_or_else(|| long.to_uppercase().replace('-', "_"));
        let many = arg.get_num_args().is_some_and(|r| r.max_values() > 1);
        let _ = write!(cell, " <{value}>{}", if many { "…" } else { "" });
    }
    cell.push('`');
    let negation = format!("no-{long}");
    if cmd
        .get_arguments()
        .any(|a| a.get_long() == Some(negation.as_str()))
    {
        let _ = write!(cell, " / `--{negation}`");
    }
    for alias in arg.get_visible_aliases().unwrap_or_default() {
        let _ = write!(cell, " / `--{alias}`");
    }
    cell
}

fn takes_value(arg: &Arg) -> bool {
    !matches!(
        arg.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count | ArgAction::Help
    )
}

fn env_cell(arg: &Arg, aliases: &BTreeMap<String, Vec<String>>) -> String {
    let key = setting_key(arg);
    let mut names = vec![format!("`{}`", env_name(&key))];
    for alias in aliases.get(&key).into_iter().flatten() {
        names.push(format!("`{alias}`"));
    }
    names.join(", ")
}

/// The value a setting has when nobody gives it. A switch with a `--no-` twin is resolved after
/// parsing (clap sees both as off), so its help text is where its default is stated.
fn default_cell(cmd: &Command, arg: &Arg) -> String {
    let negatable = arg.get_long().is_some_and(|long| {
        let negation = format!("no-{long}");
        cmd.get_arguments()
            .any(|a| a.get_long() == Some(negation.as_str()))
    });
    if negatable && help_text(arg).contains("on by default") {
        return "on".to_string();
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    match (defaults.is_empty(), takes_value(arg)) {
        (false, _) => format!("`{}`", defaults.join(" ")),
        (true, false) => "off".to_string(),
        (true, true) => "—".to_string(),
    }
}

fn help_text(arg: &Arg) -> String {
    arg.get_long_help()
        .or_else(|| arg.get_help())
        .map(|h| one_line(&h.to_string()))
        .unwrap_or_default()
}

fn help_cell(arg: &Arg) -> String {
    let mut cell = escape(&help_text(arg));
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    // Flags with a closed set of values list it; bool switches have [true, false], not useful.
    if !values.is_empty() && takes_value(arg) {
        if !cell.is_empty() && !cell.ends_with(['.', ')']) {
            cell.push('.');
        }
        let _ = write!(cell, " Values: {}.", values.join(", "));
    }
    cell
}

/// The setting a flag belongs to, as the loader names it (positional MODEL is `model`).
fn setting_key(arg: &Arg) -> String {
    arg.get_long().unwrap_or("model").to_string()
}

fn env_name(key: &str) -> String {
    format!("FERRUM_{}", key.to_ascii_uppercase().replace('-', "_"))
}

/// For each setting, the other environment names the loader reads for it: every upper-case
/// name in [`ENV_HELP`] that sets exactly what `FERRUM_<FLAG>` sets.
fn env_aliases(cmd: &Command) -> BTreeMap<String, Vec<String>> {
    let parse = |var: &str, value: &str| -> Option<String> {
        let env = |name: &str| (name == var).then(|| value.to_string());
        load_from(["ferrum serve"], &env)
            .ok()
            .map(|args| format!("{args:?}"))
    };
    let baseline = parse("", "");
    let keys: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_long().is_some_and(|l| l != "help"))
        .map(setting_key)
        .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for candidate in upper_case_names(ENV_HELP) {
        let found = keys.iter().find(|key| {
            let primary = env_name(key);
            PROBE_VALUES.iter().any(|value| {
                let via_primary = parse(&primary, value);
                via_primary.is_some()
                    && via_primary != baseline
                    && via_primary == parse(&candidate, value)
            })
        });
        if let Some(key) = found {
            out.entry(key.clone()).or_default().push(candidate);
        }
    }
    out
}

/// Words like `MODEL_NAME` in a help text, except the `FERRUM_` pattern itself.
fn upper_case_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.len() > 2 && w.contains('_') && !w.starts_with("FERRUM_"))
        .map(str::to_string)
        .collect();
    names.dedup();
    names
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A table cell may not contain a bare `|`.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_upper_case_names() {
        assert_eq!(
            upper_case_names("also MODEL_NAME, FERRUM_<FLAG> and VLLM_API_KEY (--x)"),
            vec!["MODEL_NAME", "VLLM_API_KEY"]
        );
    }

    #[test]
    fn aliases_are_found_by_behaviour() {
        let aliases = env_aliases(&ServeArgs::command());
        assert_eq!(aliases.get("model"), Some(&vec!["MODEL_NAME".to_string()]));
        assert_eq!(
            aliases.get("api-key"),
            Some(&vec!["VLLM_API_KEY".to_string()])
        );
        assert!(!aliases.contains_key("port"), "{aliases:?}");
    }
}
