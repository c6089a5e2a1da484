//! The `tojson` filter, byte for byte as transformers defines it:
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
//!
//! Invariants:
//! - No HTML escaping (Jinja2's own `tojson` escapes `<`, `>`, `&`, `'`; transformers replaces
//!   it because prompts are not HTML).
//! - Separators default to `", "` and `": "`, or `","` and `": "` when indenting, as in Python.
//! - Map keys keep their insertion order unless `sort_keys` is set; floats print as Python
//!   prints them (`1.0`, `1e-05`, `NaN`).

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::pyfmt::float_repr;

/// Options of `json.dumps` that templates use.
struct DumpOptions {
    ensure_ascii: bool,
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// `value | tojson(ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
pub(crate) fn tojson_filter(
    value: &Value,
    ensure_ascii: Option<Value>,
    indent: Option<Value>,
    separators: Option<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let pick = |positional: Option<Value>, name: &str| -> Result<Option<Value>, Error> {
        match (positional, kwargs.get::<Option<Value>>(name)?) {
            (Some(_), Some(_)) => Err(invalid(format!("tojson got `{name}` twice"))),
            (a, b) => Ok(a.or(b).filter(|v| !v.is_none() && !v.is_undefined())),
        }
    };
    let ensure_ascii = pick(ensure_ascii, "ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = match pick(indent, "indent")? {
        None => None,
        Some(v) if v.kind() == ValueKind::String => {
            Some(v.as_str().unwrap_or_default().to_string())
        }
        Some(v) => {
            let width = i64::try_from(v)
                .map_err(|_| invalid("tojson indent must be an int or a string"))?;
            Some(" ".repeat(usize::try_from(width).unwrap_or(0)))
        }
    };
    let (item_separator, key_separator) = match pick(separators, "separators")? {
        Some(pair) => {
            let parts: Vec<Value> = pair.try_iter()?.collect();
            match parts.as_slice() {
                [item, key] => match (item.as_str(), key.as_str()) {
                    (Some(item), Some(key)) => (item.to_string(), key.to_string()),
                    _ => return Err(invalid("tojson separators must be two strings")),
                },
                _ => return Err(invalid("tojson separators must be two strings")),
            }
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let options = DumpOptions {
        ensure_ascii,
        indent,
        item_separator,
        key_separator,
        sort_keys,
    };
    let mut out = String::new();
    dump(value, &options, 0, &mut out)?;
    Ok(out)
}

fn newline(options: &DumpOptions, level: usize, out: &mut String) {
    if let Some(indent) = &options.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

fn dump(value: &Value, options: &DumpOptions, level: usize, out: &mut String) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number(value)?),
        ValueKind::String => string(
            value.as_str().unwrap_or_default(),
            options.ensure_ascii,
            out,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&options.item_separator);
                }
                newline(options, level + 1, out);
                dump(item, options, level + 1, out)?;
            }
            newline(options, level, out);
            out.push(']');
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((key_string(&key)?, item));
            }
            if entries.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if options.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(&options.item_separator);
                }
                newline(options, level + 1, out);
                string(key, options.ensure_ascii, out);
                out.push_str(&options.key_separator);
                dump(item, options, level + 1, out)?;
            }
            newline(options, level, out);
            out.push('}');
        }
        kind => {
            return Err(invalid(format!(
                "Object of type {kind} is not JSON serializable"
            )));
        }
    }
    Ok(())
}

fn number(value: &Value) -> Result<String, Error> {
    if value.is_integer() {
        return Ok(value.to_string());
    }
    let f = f64::try_from(value.clone())?;
    Ok(if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        float_repr(f)
    })
}

/// Python turns non-string keys into strings (`True` → `"true"`, `1` → `"1"`).
fn key_string(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::None => Ok("null".to_string()),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::Number => number(key),
        kind => Err(invalid(format!(
            "keys must be str, int, float, bool or None, not {kind}"
        ))),
    }
}

fn string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use minijinja::Environment;

    use super::*;

    fn render(template: &str, value: serde_json::Value) -> String {
        let mut env = Environment::new();
        env.add_filter("tojson", tojson_filter);
        env.render_str(
            template,
            minijinja::context! { v => Value::from_serialize(&value) },
        )
        .expect("renders")
    }

    #[test]
    fn compact_form_uses_python_separators_and_no_html_escaping() {
        let value = serde_json::json!({"b": [1, 2.5, "<a href='x'>é</a>"], "a": null, "c": true});
        assert_eq!(
            render("{{ v | tojson }}", value),
            r#"{"b": [1, 2.5, "<a href='x'>é</a>"], "a": null, "c": true}"#
        );
    }

    #[test]
    fn indent_and_sort_keys() {
        let value = serde_json::json!({"b": {"x": []}, "a": [1.0, {}]});
        assert_eq!(
            render("{{ v | tojson(indent=2, sort_keys=true) }}", value),
            "{\n  \"a\": [\n    1.0,\n    {}\n  ],\n  \"b\": {\n    \"x\": []\n  }\n}"
        );
    }

    #[test]
    fn ensure_ascii_and_control_characters() {
        let value = serde_json::json!("é😀\u{1}\t");
        assert_eq!(
            render("{{ v | tojson(ensure_ascii=true) }}", value.clone()),
            r#""\u00e9\ud83d\ude00\u0001\t""#
        );
        assert_eq!(render("{{ v | tojson }}", value), "\"é😀\\u0001\\t\"");
    }

    #[test]
    fn custom_separators() {
        let value = serde_json::json!({"a": [1, 2]});
        assert_eq!(
            render("{{ v | tojson(separators=(',', ':')) }}", value),
            r#"{"a":[1,2]}"#
        );
    }
}
