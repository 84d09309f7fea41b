//! A writer for JSON exactly as Go's `encoding/json` marshals etcd's structs:
//! fields in declaration order, `omitempty` dropping zero values, 64-bit integers
//! as plain numbers, `[]byte` as padded base64, and Go's string escaping (HTML
//! characters as `\u003c`…, invalid UTF-8 as U+FFFD).

use std::fmt::Write as _;

/// One JSON object being written.
pub struct Obj {
    buf: String,
    empty: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    /// `{`.
    pub fn new() -> Self {
        Obj {
            buf: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        self.buf.push_str(&string(k));
        self.buf.push(':');
    }

    /// A field holding already-encoded JSON.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(json);
        self
    }

    /// An integer field without `omitempty`.
    pub fn int(&mut self, k: &str, v: impl Into<i128>) -> &mut Self {
        let v: i128 = v.into();
        self.raw(k, &v.to_string())
    }

    /// An integer field with `omitempty`.
    pub fn int_omit(&mut self, k: &str, v: impl Into<i128>) -> &mut Self {
        let v: i128 = v.into();
        if v != 0 {
            self.int(k, v);
        }
        self
    }

    /// A bool field without `omitempty`.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.raw(k, if v { "true" } else { "false" })
    }

    /// A bool field with `omitempty`.
    pub fn bool_omit(&mut self, k: &str, v: bool) -> &mut Self {
        if v {
            self.bool(k, v);
        }
        self
    }

    /// A string field without `omitempty`.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let s = string(v);
        self.raw(k, &s)
    }

    /// A string field with `omitempty`.
    pub fn str_omit(&mut self, k: &str, v: &str) -> &mut Self {
        if !v.is_empty() {
            self.str(k, v);
        }
        self
    }

    /// A `[]byte` field with `omitempty` (base64).
    pub fn bytes_omit(&mut self, k: &str, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            let s = format!("\"{}\"", base64(v));
            self.raw(k, &s);
        }
        self
    }

    /// A slice field with `omitempty`: dropped when empty.
    pub fn list_omit(&mut self, k: &str, items: &[String]) -> &mut Self {
        if !items.is_empty() {
            self.raw(k, &list(items));
        }
        self
    }

    /// `}`.
    pub fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.buf);
        out.push('}');
        out
    }
}

/// `[a,b,…]` of already-encoded items.
pub fn list(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// Go's encoding of a string, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64, as Go marshals `[]byte`.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_as_go() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("<&>"), r#""\u003c\u0026\u003e""#);
        assert_eq!(string("x\u{1}y\n"), r#""x\u0001y\n""#);
    }

    #[test]
    fn omitempty_drops_zero_values() {
        let json = Obj::new()
            .int_omit("a", 0)
            .int_omit("b", 2u64)
            .bool_omit("c", false)
            .bytes_omit("d", b"foo")
            .str("e", "")
            .finish();
        assert_eq!(json, r#"{"b":2,"d":"Zm9v","e":""}"#);
        assert_eq!(base64(b"fo"), "Zm8=");
    }
}
