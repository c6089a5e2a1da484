//! `docs/configuration.md` is generated from the flag definitions and must match them.
//! Regenerate with `FERRUM_UPDATE_DOCS=1 cargo test -p ferrum-config --test config_reference`.

use std::path::PathBuf;

use clap::CommandFactory;
use ferrum_config::{configuration_reference, ServeArgs};

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")
}

#[test]
fn configuration_md_is_up_to_date() {
    let generated = configuration_reference();
    let path = doc_path();
    if std::env::var_os("FERRUM_UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write docs/configuration.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()) + 1);
        panic!(
            "docs/configuration.md is out of date with the flags of `ferrum serve` (first \
             difference at line {first_difference}). Regenerate it with\n  \
             FERRUM_UPDATE_DOCS=1 cargo test -p ferrum-config --test config_reference\n\
             and commit the result."
        );
    }
}

#[test]
fn every_visible_flag_is_documented_with_its_environment_variable() {
    let doc = configuration_reference();
    for arg in ServeArgs::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || long == "help" {
            continue;
        }
        let env = format!("`FERRUM_{}`", long.to_uppercase().replace('-', "_"));
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `--{long}")))
            .unwrap_or_else(|| panic!("--{long} missing from the reference"));
        assert!(row.contains(&env), "--{long}: {env} missing in {row}");
    }
}

#[test]
fn rows_carry_defaults_aliases_and_value_sets() {
    let doc = configuration_reference();
    let row = |flag: &str| {
        doc.lines()
            .find(|l| l.starts_with(&format!("| `{flag}")))
            .unwrap_or_else(|| panic!("{flag} missing"))
            .to_string()
    };
    assert!(row("--port").contains("| `8000` |"), "{}", row("--port"));
    assert!(
        row("--model ").contains("`MODEL_NAME`"),
        "{}",
        row("--model ")
    );
    assert!(row("--api-key").contains("`VLLM_API_KEY`"));
    assert!(row("--max-model-len").contains("`MAX_MODEL_LEN`"));
    assert!(row("--enable-prefix-caching").contains("`--no-enable-prefix-caching`"));
    assert!(row("--device").contains("cpu or cuda. Values: `auto`, `cpu`, `cuda`."));
    assert!(row("--log-level").contains("`--uvicorn-log-level`"));
    // Switches say whether they are on when not given.
    assert!(row("--enable-prefix-caching").contains("| on |"));
    assert!(row("--enable-auto-tool-choice").contains("| off |"));
    assert!(row("--disable-metrics-auth").contains("| off |"));
    // Hidden `--no-` twins get no row of their own.
    assert!(!doc.contains("| `--no-enable-prefix-caching"));
}
