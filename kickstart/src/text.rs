//! Python string semantics the kickstart language inherits from pykickstart: `str.splitlines`,
//! `str.isspace`/`strip`/`split`, `repr()` of strings and lists, `int()`, `os.path.normpath`.

/// Python `str.splitlines(True)`: lines keep their terminator; boundaries are `\n`, `\r\n`, `\r`,
/// `\x0b`, `\x0c`, `\x1c`, `\x1d`, `\x1e`, `\x85`, U+2028 and U+2029.
pub fn splitlines(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 32 + 1);
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let end = match c {
            b'\r' => {
                if b.get(i + 1) == Some(&b'\n') {
                    i + 2
                } else {
                    i + 1
                }
            }
            b'\n' | 0x0b | 0x0c | 0x1c | 0x1d | 0x1e => i + 1,
            0xc2 if b.get(i + 1) == Some(&0x85) => i + 2,
            0xe2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xa8 | 0xa9)) => {
                i + 3
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(&s[start..end]);
        start = end;
        i = end;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Python's universal newlines (`open()` in text mode): `\r\n` and a lone `\r` become `\n`.
/// Lines and their numbers stay those of [`splitlines`], which ends a line at either.
pub fn universal_newlines(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\r') {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Python `str.isspace()` for one character.
pub fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python `str.isspace() or == ""`.
pub fn is_blank(s: &str) -> bool {
    s.chars().all(py_space)
}

/// Python `str.lstrip()`.
pub fn lstrip(s: &str) -> &str {
    s.trim_start_matches(py_space)
}

/// Python `str.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Python `str.split()` (no separator): words separated by runs of whitespace.
pub fn split_ws(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_space).filter(|w| !w.is_empty())
}

/// Blank or comment line, as `KickstartParser._isBlankOrComment`.
pub fn is_blank_or_comment(line: &str) -> bool {
    is_blank(line) || lstrip(line).starts_with('#')
}

/// Python `repr()` of a `str`.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if !is_printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Approximation of Python's `str.isprintable` for characters outside ASCII.
fn is_printable(c: char) -> bool {
    let n = c as u32;
    !((0x80..0xa0).contains(&n)
        || n == 0xad
        || (c != ' ' && c.is_whitespace())
        || (0xd800..0xe000).contains(&n)
        || (0xe000..0xf900).contains(&n)
        || (0x2060..0x2070).contains(&n)
        || (0x200b..0x2010).contains(&n)
        || n == 0xfeff
        || (0xfff0..0xfffc).contains(&n)
        || n >= 0xf0000)
}

/// Python `repr()` of a list of strings: `['a', 'b']`.
pub fn py_list_repr<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| py_repr(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

/// Python `int(s)` for a decimal string: surrounding whitespace, a sign and `_` between digits are
/// allowed. Values beyond i64 are reported as `Err(true)` (valid but too big), invalid as `Err(false)`.
pub fn py_int(s: &str) -> Result<i64, bool> {
    let t = strip(s);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(false);
    }
    let mut v: i128 = 0;
    let mut big = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(10).ok_or(false)? as i128;
        if !big {
            v = v * 10 + d;
            if v > i64::MAX as i128 + 1 {
                big = true;
            }
        }
    }
    if big {
        return Err(true);
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| true)
}

/// `os.path.normpath` for POSIX paths.
pub fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let initial = if p.starts_with("//") && !p.starts_with("///") {
        2
    } else if p.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial == 0 && parts.is_empty()) || parts.last() == Some(&"..") {
            parts.push(comp);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let mut out = "/".repeat(initial);
    out.push_str(&parts.join("/"));
    if out.is_empty() { ".".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_python_boundaries() {
        assert_eq!(
            splitlines("a\nb\r\nc\rd\x0be\x0cf\x1cg\u{85}h\u{2028}i"),
            vec![
                "a\n",
                "b\r\n",
                "c\r",
                "d\x0b",
                "e\x0c",
                "f\x1c",
                "g\u{85}",
                "h\u{2028}",
                "i"
            ]
        );
        assert_eq!(splitlines(""), Vec::<&str>::new());
        assert_eq!(splitlines("x\n"), vec!["x\n"]);
    }

    #[test]
    fn universal_newlines_keep_the_lines() {
        let s = "a\r\nb\rc\r\r\nd\ne\r";
        let u = universal_newlines(s);
        assert_eq!(u, "a\nb\nc\n\nd\ne\n");
        assert_eq!(splitlines(&u).len(), splitlines(s).len());
        assert!(matches!(
            universal_newlines("x\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("a'b"), "\"a'b\"");
        assert_eq!(py_repr("a'b\""), "'a\\'b\"'");
        assert_eq!(py_repr("\n"), "'\\n'");
        assert_eq!(py_list_repr(&["--frob", "x"]), "['--frob', 'x']");
    }

    #[test]
    fn int_like_python() {
        assert_eq!(py_int(" 12 "), Ok(12));
        assert_eq!(py_int("-1_000"), Ok(-1000));
        assert_eq!(py_int("abc"), Err(false));
        assert_eq!(py_int("1__0"), Err(false));
        assert_eq!(py_int("99999999999999999999999"), Err(true));
    }

    #[test]
    fn normpath_like_python() {
        assert_eq!(normpath("/a//b/../c/"), "/a/c");
        assert_eq!(normpath("/.."), "/");
        assert_eq!(normpath("//x"), "//x");
        assert_eq!(normpath("///x"), "/x");
        assert_eq!(normpath("a/../.."), "..");
    }
}
