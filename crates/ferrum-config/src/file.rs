//! `--config FILE`: a YAML or JSON mapping from long flag names to values.
//!
//! Invariants:
//! - The file is one flat mapping; keys may use dashes or underscores and are returned with
//!   dashes. A key given twice (`max-model-len` and `max_model_len`) is an error.
//! - Values are returned as parsed; turning them into flags is the caller's business, because
//!   only the caller knows which flags are switches and which take lists.
//! - YAML is chosen by the `.yaml`/`.yml` extension, JSON by `.json`; any other extension is
//!   tried as JSON, then YAML (the two overlap: every JSON document is YAML).

use std::path::Path;

use serde_json::Value;

use crate::error::ConfigError;

/// The largest config file read (a real one is a few hundred bytes).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One `key: value` entry, key normalized to dashes.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub key: String,
    pub value: Value,
}

/// Reads and parses the file.
pub fn read_config_file(path: &Path) -> Result<Vec<FileEntry>, ConfigError> {
    let read_err = |source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(file_error(
            path,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let value = match ext.as_deref() {
        Some("yaml" | "yml") => parse_yaml(&text).map_err(|m| file_error(path, m))?,
        Some("json") => parse_json(&text).map_err(|m| file_error(path, m))?,
        _ => parse_json(&text)
            .or_else(|_| parse_yaml(&text))
            .map_err(|m| file_error(path, m))?,
    };
    entries(value).map_err(|m| file_error(path, m))
}

fn parse_yaml(text: &str) -> Result<Value, String> {
    serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))
}

fn entries(value: Value) -> Result<Vec<FileEntry>, String> {
    let map = match value {
        Value::Object(map) => map,
        // An empty YAML document is null: no settings.
        Value::Null => return Ok(Vec::new()),
        other => {
            return Err(format!(
                "must be a mapping of flag names to values, found {}",
                kind(&other)
            ))
        }
    };
    let mut out: Vec<FileEntry> = Vec::with_capacity(map.len());
    for (raw, value) in map {
        let key = raw.trim_start_matches('-').replace('_', "-");
        if out.iter().any(|e| e.key == key) {
            return Err(format!(
                "{key} is given twice (dash and underscore spellings)"
            ));
        }
        out.push(FileEntry { key, value });
    }
    Ok(out)
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn file_error(path: &Path, message: String) -> ConfigError {
    ConfigError::File {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(text.as_bytes()).expect("write");
        (dir, path)
    }

    #[test]
    fn yaml_and_json_give_the_same_entries() {
        let (_d1, y) = write(
            "a.yaml",
            "max_model_len: 32k\nport: 9000\nenable-prefix-caching: false\n",
        );
        let (_d2, j) = write(
            "a.json",
            r#"{"max-model-len": "32k", "port": 9000, "enable_prefix_caching": false}"#,
        );
        let mut a = read_config_file(&y).expect("yaml");
        let mut b = read_config_file(&j).expect("json");
        a.sort_by(|x, y| x.key.cmp(&y.key));
        b.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(a, b);
        assert_eq!(a[0].key, "enable-prefix-caching");
    }

    #[test]
    fn rejects_non_mappings_and_duplicates() {
        let (_d, p) = write("a.yaml", "- a\n- b\n");
        assert!(read_config_file(&p).is_err());
        let (_d, p) = write("b.json", r#"{"max-model-len": 1, "max_model_len": 2}"#);
        let e = read_config_file(&p).expect_err("duplicate");
        assert!(e.to_string().contains("given twice"), "{e}");
        let (_d, p) = write("c.yaml", "port: [1\n");
        assert!(read_config_file(&p).is_err());
    }

    #[test]
    fn empty_yaml_is_no_settings() {
        let (_d, p) = write("e.yml", "");
        assert_eq!(read_config_file(&p).expect("empty"), Vec::new());
    }
}
