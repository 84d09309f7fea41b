//! Splitting a line into arguments as etcdctl's `argify` does (txn requests and
//! interactive watch), and reading a Go-quoted string (`fmt.Sscanf("%q")`).

/// etcdctl's `argify`: tokens matching `"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?`,
/// double-quoted ones unquoted the Go way.
///
/// Single-quoted tokens reproduce etcdctl 3.4's slicing bug: it keeps bytes
/// `1..len(args)-1` of the token, where `len(args)` is the number of tokens on
/// the line (`put 'abcdef' 'x y' --prev-kv` puts key `ab` = `x `).
pub fn argify(line: &str) -> Result<Vec<String>, String> {
    let mut tokens: Vec<(bool, String)> = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            let mut j = i + 1;
            let mut closed = None;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 2,
                    b'"' => {
                        closed = Some(j);
                        break;
                    }
                    _ => j += 1,
                }
            }
            if let Some(end) = closed {
                tokens.push((false, line[i..=end].to_owned()));
                i = end + 1;
                continue;
            }
        } else if c == b'\'' {
            if let Some(off) = line[i + 1..].find('\'') {
                let end = i + 1 + off;
                tokens.push((true, line[i..=end].to_owned()));
                i = end + 1;
                continue;
            }
        } else if !c.is_ascii_whitespace() {
            let end = line[i..]
                .find(char::is_whitespace)
                .map(|o| i + o)
                .unwrap_or(b.len());
            tokens.push((false, line[i..end].to_owned()));
            i = end;
            continue;
        }
        // No alternative matches here (whitespace or an unclosed quote): move on.
        i += line[i..].chars().next().map(char::len_utf8).unwrap_or(1);
    }
    let n = tokens.len();
    tokens
        .into_iter()
        .map(|(single, t)| {
            if single {
                let end = n.saturating_sub(1).clamp(1, t.len());
                Ok(t.get(1..end).unwrap_or_default().to_owned())
            } else if t.starts_with('"') {
                match unquote_prefix(&t) {
                    Some((s, "")) => Ok(s),
                    _ => Err("unexpected EOF".to_owned()),
                }
            } else {
                Ok(t)
            }
        })
        .collect()
}

/// Reads one Go-quoted string (`"…"` with escapes, or `` `…` ``) at the start of
/// `s`, returning it and the rest.
pub fn unquote_prefix(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '`')) => {
            let end = s[1..].find('`')? + 1;
            Some((s[1..end].to_owned(), &s[end + 1..]))
        }
        Some((_, '"')) => {
            let mut out: Vec<u8> = Vec::new();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => return Some((String::from_utf8_lossy(&out).into_owned(), &s[i + 1..])),
                    '\n' => return None,
                    '\\' => {
                        let (_, e) = chars.next()?;
                        match e {
                            'a' => out.push(7),
                            'b' => out.push(8),
                            'f' => out.push(12),
                            'n' => out.push(b'\n'),
                            'r' => out.push(b'\r'),
                            't' => out.push(b'\t'),
                            'v' => out.push(11),
                            '\\' => out.push(b'\\'),
                            '"' => out.push(b'"'),
                            '\'' => out.push(b'\''),
                            'x' | 'u' | 'U' => {
                                let n = match e {
                                    'x' => 2,
                                    'u' => 4,
                                    _ => 8,
                                };
                                let hex: String =
                                    (0..n).filter_map(|_| chars.next().map(|c| c.1)).collect();
                                let v = u32::from_str_radix(&hex, 16).ok()?;
                                if e == 'x' {
                                    out.push(v as u8);
                                } else {
                                    let ch = char::from_u32(v)?;
                                    out.extend_from_slice(ch.to_string().as_bytes());
                                }
                            }
                            '0'..='7' => {
                                let mut oct = e.to_string();
                                for _ in 0..2 {
                                    oct.push(chars.next()?.1);
                                }
                                out.push(u8::from_str_radix(&oct, 8).ok()?);
                            }
                            _ => return None,
                        }
                    }
                    c => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_as_etcdctl() {
        let cases: &[(&str, &[&str])] = &[
            ("put k1 v1", &["put", "k1", "v1"]),
            ("put \"q\\\"x\" \"a\\tb\"", &["put", "q\"x", "a\tb"]),
            (
                "put 'abcdef' 'x y' --prev-kv",
                &["put", "ab", "x ", "--prev-kv"],
            ),
            ("put \"x y", &["put", "x", "y"]),
            ("  get   foo  --prefix ", &["get", "foo", "--prefix"]),
            ("watch k -- echo hi", &["watch", "k", "--", "echo", "hi"]),
        ];
        for (line, want) in cases {
            assert_eq!(argify(line).expect("argify"), *want, "{line}");
        }
    }

    #[test]
    fn go_quotes() {
        assert_eq!(
            unquote_prefix("\"a\\x41\\n\") rest"),
            Some(("aA\n".to_owned(), ") rest"))
        );
        assert_eq!(
            unquote_prefix("`raw\\n`x"),
            Some(("raw\\n".to_owned(), "x"))
        );
        assert_eq!(unquote_prefix("\"open"), None);
        assert_eq!(unquote_prefix("bare"), None);
    }
}
