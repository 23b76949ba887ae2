//! Target-aware escaping: the only way a config value reaches a rendered file.
//!
//! * `ks` — one kickstart token after `--option=` (pykickstart splits lines first, then runs
//!   `shlex.split(line, comments=True)`): values outside a conservative safe set are single-quoted
//!   (`'` as `'"'"'`), so spaces, quotes, `#` and `%` stay inside the token;
//! * `ksarg` — like `ks`, for a positional argument: additionally never empty and never starting with
//!   `-` (argparse would read it as an option);
//! * `sh` — one POSIX shell word for `%post` lines (same quoting);
//! * `xml` — XML text/attribute escaping for TDL.
//!
//! Line breaks (every boundary of Python's `str.splitlines`) and other control characters can never be
//! represented safely in a line-based kickstart: they are errors naming the config key. All helpers
//! take one or more parameters and concatenate them (`{{ks kernel_append " net.ifnames=0"}}`).

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};

/// Why a value cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    #[error(
        "contains a line break or control character {0:?}, which no kickstart quoting can hold"
    )]
    ControlChar(char),
    #[error("is empty, which cannot be a positional argument")]
    Empty,
    #[error("starts with `-`, which would be read as an option")]
    LeadingDash,
    #[error("contains {0:?}, which XML 1.0 cannot represent")]
    XmlChar(char),
}

/// Python's `str.splitlines` boundaries plus every other C0/C1 control character except tab.
fn bad_char(s: &str) -> Option<char> {
    s.chars()
        .find(|&c| (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}'))
}

fn is_safe_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
}

fn single_quote(s: &str) -> String {
    if is_safe_word(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r#"'"'"'"#))
    }
}

/// Quotes `s` as one kickstart token (for `--option=` values).
pub fn ks_token(s: &str) -> Result<String, Unsafe> {
    if let Some(c) = bad_char(s) {
        return Err(Unsafe::ControlChar(c));
    }
    Ok(single_quote(s))
}

/// Quotes `s` as one positional kickstart argument.
pub fn ks_positional(s: &str) -> Result<String, Unsafe> {
    if s.is_empty() {
        return Err(Unsafe::Empty);
    }
    if s.starts_with('-') {
        return Err(Unsafe::LeadingDash);
    }
    ks_token(s)
}

/// Quotes `s` as one POSIX shell word.
pub fn sh_word(s: &str) -> Result<String, Unsafe> {
    if let Some(c) = bad_char(s) {
        return Err(Unsafe::ControlChar(c));
    }
    Ok(single_quote(s))
}

/// Escapes `s` for XML text or a quoted attribute.
pub fn xml_text(s: &str) -> Result<String, Unsafe> {
    if let Some(c) = s.chars().find(|&c| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
    }) {
        return Err(Unsafe::XmlChar(c));
    }
    Ok(crate::tdl::xml_escape(s))
}

/// Registers `ks`, `ksarg`, `sh` and `xml`.
pub fn register(hb: &mut Handlebars<'static>) {
    hb.register_helper("ks", Box::new(helper(ks_token)));
    hb.register_helper("ksarg", Box::new(helper(ks_positional)));
    hb.register_helper("sh", Box::new(helper(sh_word)));
    hb.register_helper("xml", Box::new(helper(xml_text)));
}

type HelperFn = dyn for<'reg, 'rc> Fn(
        &Helper<'rc>,
        &'reg Handlebars<'reg>,
        &'rc Context,
        &mut RenderContext<'reg, 'rc>,
        &mut dyn Output,
    ) -> HelperResult
    + Send
    + Sync;

fn helper(escape: fn(&str) -> Result<String, Unsafe>) -> Box<HelperFn> {
    Box::new(
        move |h: &Helper,
              _: &Handlebars,
              _: &Context,
              _: &mut RenderContext,
              out: &mut dyn Output| {
            let name = h.name().to_string();
            if h.params().is_empty() {
                return Err(RenderErrorReason::Other(format!("`{name}` needs a value")).into());
            }
            // The config key this value comes from: the first parameter that is a variable.
            let key = h
                .params()
                .iter()
                .find_map(|p| p.relative_path().cloned())
                .unwrap_or_else(|| "(literal)".to_string());
            let mut value = String::new();
            for p in h.params() {
                match p.value() {
                    serde_json::Value::String(s) => value.push_str(s),
                    serde_json::Value::Number(n) => value.push_str(&n.to_string()),
                    serde_json::Value::Bool(b) => value.push_str(if *b { "true" } else { "false" }),
                    serde_json::Value::Null => {
                        let k = p.relative_path().cloned().unwrap_or_else(|| key.clone());
                        return Err(RenderErrorReason::Other(format!(
                            "config key `{k}` is not set but the template needs it"
                        ))
                        .into());
                    }
                    other => {
                        return Err(RenderErrorReason::Other(format!(
                            "config key `{key}`: a list or table ({other}) cannot be rendered as one value"
                        ))
                        .into());
                    }
                }
            }
            let escaped = escape(&value).map_err(|e| {
                RenderErrorReason::Other(format!(
                    "config key `{key}`: value {value:?} {e} (helper `{name}`)"
                ))
            })?;
            out.write(&escaped)?;
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ks_token("fedora-atomic").unwrap(), "fedora-atomic");
        assert_eq!(ks_token("https://a/b?c=1").unwrap(), "'https://a/b?c=1'");
        assert_eq!(ks_token("a b").unwrap(), "'a b'");
        assert_eq!(ks_token("it's").unwrap(), r#"'it'"'"'s'"#);
        assert_eq!(ks_token("").unwrap(), "''");
        assert_eq!(ks_token("#x").unwrap(), "'#x'");
        assert!(matches!(ks_token("a\nb"), Err(Unsafe::ControlChar('\n'))));
        assert!(matches!(
            ks_token("a\u{2028}b"),
            Err(Unsafe::ControlChar(_))
        ));
        assert!(matches!(ks_token("a\u{b}b"), Err(Unsafe::ControlChar(_))));
        assert_eq!(ks_positional("--lock"), Err(Unsafe::LeadingDash));
        assert_eq!(ks_positional(""), Err(Unsafe::Empty));
        assert_eq!(xml_text("a<&'\"").unwrap(), "a&lt;&amp;&apos;&quot;");
        assert!(xml_text("a\u{1}").is_err());
    }
}
