//! The sandboxed minijinja environment that stands in for transformers' Jinja2 one.
//!
//! Invariants:
//! - Same parsing as transformers: `trim_blocks`, `lstrip_blocks`, no kept trailing newline, loop
//!   controls, and `{% generation %}` blocks rendered as plain content.
//! - Same globals and filters: `raise_exception`, `strftime_now`, Python-compatible `tojson`,
//!   Python string/dict methods, and Python's spelling of printed values.
//! - Sandboxed: no loader, so a template cannot include files; an instruction budget (fuel) and
//!   the recursion limit stop runaway templates; the output limit is enforced by the renderer.

use std::fmt;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, State};

use super::pyfmt::py_str;
use super::pyjson::tojson_filter;
use super::strftime::CivilTime;

/// The name the single template is registered under.
pub(crate) const TEMPLATE_NAME: &str = "chat_template";

/// Marks an error as coming from the template's own `raise_exception(...)` call.
#[derive(Debug)]
pub(crate) struct RaisedByTemplate(pub String);

impl fmt::Display for RaisedByTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedByTemplate {}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(RaisedByTemplate(message)))
}

fn strftime_now(format: String) -> String {
    CivilTime::now().format(&format)
}

/// Python's `str()` for everything the template prints.
fn python_formatter(
    out: &mut minijinja::Output,
    _state: &State,
    value: &Value,
) -> Result<(), Error> {
    out.write_str(&py_str(value))
        .map_err(|e| Error::new(ErrorKind::WriteFailure, "cannot write output").with_source(e))
}

/// `value | string` the Python way (`True`, `None`).
fn string_filter(value: &Value) -> Value {
    if value.kind() == minijinja::value::ValueKind::String {
        value.clone()
    } else {
        Value::from(py_str(value))
    }
}

/// `value | trim(chars)`: Jinja2 trims Python's `str()` of any value.
fn trim_filter(value: &Value, chars: Option<String>) -> String {
    let text = py_str(value);
    match chars {
        Some(chars) => text.trim_matches(|c| chars.contains(c)).to_string(),
        None => text.trim().to_string(),
    }
}

/// Builds the environment with `source` registered as [`TEMPLATE_NAME`].
pub(crate) fn build_environment(source: &str, fuel: u64) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_debug(false);
    env.set_fuel(Some(fuel));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python_formatter);
    env.add_filter("tojson", tojson_filter);
    env.add_filter("string", string_filter);
    env.add_filter("trim", trim_filter);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(source))?;
    Ok(env)
}

/// `{% generation %}` … `{% endgeneration %}` (transformers' assistant-mask extension) become
/// `{% if true %}` … `{% endif %}`, keeping the whitespace-control markers so the output is the
/// same as Jinja2's.
pub(crate) fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        let (before, tag) = rest.split_at(open + 2);
        out.push_str(before);
        let marker_len = usize::from(tag.starts_with(['-', '+']));
        let (marker, body) = tag.split_at(marker_len);
        out.push_str(marker);
        let spaces = body.len() - body.trim_start().len();
        let (space, word_start) = body.split_at(spaces);
        out.push_str(space);
        let keyword_end = word_start
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(word_start.len());
        let (word, after) = word_start.split_at(keyword_end);
        match word {
            "generation" => out.push_str("if true"),
            "endgeneration" => out.push_str("endif"),
            other => out.push_str(other),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_keep_whitespace_control() {
        assert_eq!(
            rewrite_generation_tags("a{%- generation %}b{% endgeneration -%}c{% if x %}"),
            "a{%- if true %}b{% endif -%}c{% if x %}"
        );
        assert_eq!(rewrite_generation_tags("{%generation%}"), "{%if true%}");
        assert_eq!(
            rewrite_generation_tags("{% generations %}"),
            "{% generations %}"
        );
        assert_eq!(
            rewrite_generation_tags("no tags {{ x }}"),
            "no tags {{ x }}"
        );
    }
}
