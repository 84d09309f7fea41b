//! The bits of Go's standard library whose exact output etcdctl shows users:
//! `strconv.Quote` (`%q`), `strconv.ParseInt` errors, `time.Duration` parsing and
//! printing, go-humanize's `Bytes`, and etcdctl's `\x`-prefixed hex.

use std::fmt::Write as _;
use std::time::Duration;

/// Go's `%q` of a byte string (`strconv.Quote`): printable UTF-8 kept, the rest escaped.
pub fn quote(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    quote_into(&mut out, b, '"');
    out.push('"');
    out
}

/// Go's `%q` of a rune: `'x'`.
pub fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    let mut buf = [0u8; 4];
    quote_into(&mut out, c.encode_utf8(&mut buf).as_bytes(), '\'');
    out.push('\'');
    out
}

fn quote_into(out: &mut String, b: &[u8], delim: char) {
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                quote_str(out, s, delim);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // Checked by from_utf8 just above.
                quote_str(out, std::str::from_utf8(good).unwrap_or_default(), delim);
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for byte in &bad[..n] {
                    let _ = write!(out, "\\x{byte:02x}");
                }
                rest = &bad[n..];
            }
        }
    }
}

fn quote_str(out: &mut String, s: &str, delim: char) {
    for c in s.chars() {
        match c {
            c if c == delim || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
}

/// An approximation of Go's `strconv.IsPrint` (letters, marks, numbers,
/// punctuation, symbols and the ASCII space): controls, other spaces, format
/// characters and private-use code points are not printable.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let u = c as u32;
    !(c.is_control()
        || c.is_whitespace()
        || u == 0xad
        || (0x200b..=0x200f).contains(&u)
        || (0x202a..=0x202e).contains(&u)
        || (0x2060..=0x206f).contains(&u)
        || u == 0xfeff
        || (0xe000..=0xf8ff).contains(&u)
        || (0xfff9..=0xfffb).contains(&u)
        || u >= 0xf0000)
}

/// etcdctl's `--hex`: every byte as `\xNN`.
pub fn hex_prefixed(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 4);
    for byte in b {
        let _ = write!(out, "\\x{byte:02x}");
    }
    out
}

/// Go's `strconv.ParseInt(s, base, 64)`; `base` 0 honours `0x`/`0o`/`0b`/`0` prefixes.
/// The error is Go's `strconv.ParseInt: parsing "s": …`.
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    let syntax = || {
        format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            quote(s.as_bytes())
        )
    };
    let range = || {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            quote(s.as_bytes())
        )
    };
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mag = parse_magnitude(digits, base).map_err(|e| match e {
        NumErr::Syntax => syntax(),
        NumErr::Range => range(),
    })?;
    if neg {
        if mag > (i64::MAX as u64) + 1 {
            return Err(range());
        }
        Ok((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).map_err(|_| range())
    }
}

/// Go's `strconv.ParseUint(s, base, 64)`.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    parse_magnitude(s, base).map_err(|e| {
        let why = match e {
            NumErr::Syntax => "invalid syntax",
            NumErr::Range => "value out of range",
        };
        format!("strconv.ParseUint: parsing {}: {why}", quote(s.as_bytes()))
    })
}

enum NumErr {
    Syntax,
    Range,
}

fn parse_magnitude(s: &str, base: u32) -> Result<u64, NumErr> {
    let (base, digits, underscores) = if base == 0 {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("0x") {
            (16, &s[2..], true)
        } else if lower.starts_with("0b") {
            (2, &s[2..], true)
        } else if lower.starts_with("0o") {
            (8, &s[2..], true)
        } else if s.len() > 1 && s.starts_with('0') {
            (8, &s[1..], true)
        } else {
            (10, s, true)
        }
    } else {
        (base, s, false)
    };
    let digits: String = if underscores {
        digits.chars().filter(|c| *c != '_').collect()
    } else {
        digits.to_owned()
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(NumErr::Syntax);
    }
    u64::from_str_radix(&digits, base).map_err(|_| NumErr::Range)
}

/// Go's `time.ParseDuration`, error included.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("time: invalid duration {}", quote(s.as_bytes()));
    let mut rest = s;
    let neg = rest.starts_with('-');
    rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    quote(s.as_bytes())
                ))
            }
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(u.as_bytes()),
                    quote(s.as_bytes())
                ))
            }
        };
        total += num * nanos_per;
        rest = &rest[unit_len..];
    }
    if neg {
        // Timeouts cannot be negative; Go would accept it and time out at once.
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Go's `time.Duration.String()`.
pub fn duration_string(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    out.push_str(&frac(s * 1_000_000_000 + sub, 1_000_000_000));
    out.push('s');
    out
}

/// `v / unit` with the fraction's trailing zeros dropped, as Go prints durations.
fn frac(v: u128, unit: u128) -> String {
    let whole = v / unit;
    let rem = v % unit;
    if rem == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
pub fn humanize_bytes(n: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(SIZES.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", SIZES[e])
    } else {
        format!("{val:.0} {}", SIZES[e])
    }
}

/// An OS error as Go prints it (`no such file or directory`), for messages that
/// etcdctl prints from Go's `os` package (`stat <path>: <errno>`).
pub fn errno_string(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => &s[..i],
        None => &s[..],
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        let cases: &[(&[u8], &str)] = &[
            (b"foo", r#""foo""#),
            (b"a\"b\\c", r#""a\"b\\c""#),
            (b"l1\nl2\t\x00\x7f", r#""l1\nl2\t\x00\x7f""#),
            ("ключ".as_bytes(), "\"ключ\""),
            (b"\xff\xfe", r#""\xff\xfe""#),
            ("\u{a0}".as_bytes(), r#""\u00a0""#),
        ];
        for (raw, want) in cases {
            assert_eq!(quote(raw), *want);
        }
        assert_eq!(quote_rune('x'), "'x'");
    }

    #[test]
    fn ints_and_their_errors() {
        assert_eq!(parse_int("12", 0), Ok(12));
        assert_eq!(parse_int("0x1f", 0), Ok(31));
        assert_eq!(parse_int("-3", 10), Ok(-3));
        assert_eq!(parse_int("2040a20a89c74c0a", 16), Ok(0x2040a20a89c74c0a));
        assert_eq!(
            parse_int("zz", 16),
            Err("strconv.ParseInt: parsing \"zz\": invalid syntax".into())
        );
        assert_eq!(
            parse_int("ffffffffffffffff", 16),
            Err("strconv.ParseInt: parsing \"ffffffffffffffff\": value out of range".into())
        );
        assert_eq!(parse_uint("ffffffffffffffff", 16), Ok(u64::MAX));
    }

    #[test]
    fn durations_parse_and_print_as_go() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("x"),
            Err("time: invalid duration \"x\"".into())
        );
        for (d, want) in [
            (Duration::from_nanos(1_865_189), "1.865189ms"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_micros(12), "12µs"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(3725), "1h2m5s"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(duration_string(d), want);
        }
    }

    #[test]
    fn humanized_sizes() {
        for (n, want) in [
            (5, "5 B"),
            (20480, "20 kB"),
            (12288, "12 kB"),
            (1500, "1.5 kB"),
            (2_500_000, "2.5 MB"),
        ] {
            assert_eq!(humanize_bytes(n), want);
        }
        assert_eq!(hex_prefixed(b"fo"), "\\x66\\x6f");
    }

    #[test]
    fn errno_strings_read_as_go_prints_them() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(errno_string(&e), "no such file or directory");
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(errno_string(&e), "permission denied");
    }
}
