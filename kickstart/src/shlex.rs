//! Python `shlex.split(s, comments=…)` in POSIX mode, as pykickstart tokenises command lines.

/// Tokenising failures; texts are Python's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShlexError {
    /// An opening quote without its closing quote.
    NoClosingQuotation,
    /// A backslash at the very end of the input.
    NoEscapedCharacter,
}

impl std::fmt::Display for ShlexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShlexError::NoClosingQuotation => "No closing quotation",
            ShlexError::NoEscapedCharacter => "No escaped character",
        })
    }
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

#[derive(Clone, Copy, PartialEq)]
enum St {
    Space,
    Word,
    Quote(char),
    Escape(Esc),
}

#[derive(Clone, Copy, PartialEq)]
enum Esc {
    Word,
    Double,
}

/// Split like `shlex.split(s, comments)`: quotes, backslash escapes, `#` comments (also inside an
/// unquoted word) when `comments` is set; no line continuation (`\` + newline yields `"\n"`).
pub fn split(s: &str, comments: bool) -> Result<Vec<String>, ShlexError> {
    let mut out = Vec::new();
    let mut token = String::new();
    let mut quoted = false;
    let mut st = St::Space;
    let mut chars = s.chars();
    loop {
        let Some(c) = chars.next() else {
            match st {
                St::Quote(_) => return Err(ShlexError::NoClosingQuotation),
                St::Escape(_) => return Err(ShlexError::NoEscapedCharacter),
                _ => {}
            }
            if !token.is_empty() || quoted {
                out.push(token);
            }
            return Ok(out);
        };
        match st {
            St::Space | St::Word => {
                if is_ws(c) {
                    if !token.is_empty() || quoted {
                        out.push(std::mem::take(&mut token));
                        quoted = false;
                    }
                    st = St::Space;
                } else if comments && c == '#' {
                    // readline(): skip to just after the next '\n'
                    for d in chars.by_ref() {
                        if d == '\n' {
                            break;
                        }
                    }
                    if !token.is_empty() || quoted {
                        out.push(std::mem::take(&mut token));
                        quoted = false;
                    }
                    st = St::Space;
                } else if c == '\\' {
                    st = St::Escape(Esc::Word);
                } else if c == '\'' || c == '"' {
                    st = St::Quote(c);
                } else {
                    token.push(c);
                    st = St::Word;
                }
            }
            St::Quote(q) => {
                quoted = true;
                if c == q {
                    st = St::Word;
                } else if c == '\\' && q == '"' {
                    st = St::Escape(Esc::Double);
                } else {
                    token.push(c);
                }
            }
            St::Escape(e) => {
                if e == Esc::Double && c != '\\' && c != '"' {
                    token.push('\\');
                }
                token.push(c);
                st = match e {
                    Esc::Word => St::Word,
                    Esc::Double => St::Quote('"'),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> Vec<String> {
        split(s, true).unwrap()
    }

    #[test]
    fn quoting_and_comments() {
        assert_eq!(
            sp("part / --fstype=\"ext4\" --size 5\n"),
            ["part", "/", "--fstype=ext4", "--size", "5"]
        );
        assert_eq!(sp("rootpw abc#def\n"), ["rootpw", "abc"]);
        assert_eq!(sp("rootpw \"abc#def\"\n"), ["rootpw", "abc#def"]);
        assert_eq!(sp("\"a\"b 'c d'"), ["ab", "c d"]);
        assert_eq!(sp("x \"\""), ["x", ""]);
        assert_eq!(sp("a \\\n"), ["a", "\n"]);
        assert_eq!(sp("\"a\\\"b\\c\""), ["a\"b\\c"]);
        assert_eq!(sp("'a\\b'"), ["a\\b"]);
        assert_eq!(split("a#b", false).unwrap(), ["a#b"]);
    }

    #[test]
    fn errors() {
        assert_eq!(split("a \"b", true), Err(ShlexError::NoClosingQuotation));
        assert_eq!(split("a \\", true), Err(ShlexError::NoEscapedCharacter));
    }
}
