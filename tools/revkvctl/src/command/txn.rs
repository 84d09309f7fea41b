//! `txn [options]`: compares, success ops and failure ops read from stdin, each
//! list ended by an empty line (etcdctl's grammar).

use std::io::BufRead;

use revkv_client::{Compare, CompareOp, Kv, Op, Txn};

use super::{del, get, out, put, Ctx};
use crate::argify::{argify, unquote_prefix};
use crate::exit::{CtlError, CtlResult, INVALID_INPUT};
use crate::flags::{self, Kind, Spec};
use crate::gofmt::{self, quote};
use revkv_client::wire::txn_pb;

/// `txn`'s flags.
pub const SPECS: &[Spec] = &[Spec::new(
    "interactive",
    Kind::Bool,
    "false",
    "Input transaction in interactive mode",
)
.short('i')];

fn invalid(msg: String) -> CtlError {
    CtlError::new(INVALID_INPUT, msg)
}

/// One compare line, e.g. `mod("key1") > "0"` (etcdctl's `parseCompare`).
pub fn parse_compare(line: &str) -> CtlResult<Compare> {
    let Some((target, rest)) = line.split_once('(') else {
        return Err(invalid(format!("malformed comparison: {line}")));
    };
    // fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)
    let mut key = String::new();
    let mut op = String::new();
    let mut val = String::new();
    let mut n = 0;
    let mut s = rest.trim_start();
    if let Some((k, r)) = unquote_prefix(s) {
        key = k;
        n += 1;
        s = r;
        // A space in a Go scan format needs at least one space in the input.
        if let Some(r) = s
            .strip_prefix(')')
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            let r = r.trim_start();
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            if end > 0 {
                op = r[..end].to_owned();
                n += 1;
                if let Some((v, _)) = unquote_prefix(r[end..].trim_start()) {
                    val = v;
                    n += 1;
                }
            }
        }
    }
    if n != 3 {
        return Err(invalid(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            quote(key.as_bytes()),
            quote(val.as_bytes())
        )));
    }
    let cmp_op = match op.as_str() {
        "=" | "==" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        ">" => CompareOp::Greater,
        "<" => CompareOp::Less,
        // clientv3.Compare panics here; revkvctl reports the line instead.
        _ => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown op {op})"
            )))
        }
    };
    let bad = || invalid(format!("invalid txn compare request: {line}"));
    let int = |base| gofmt::parse_int(&val, base).map_err(|_| bad());
    Ok(match target {
        "ver" | "version" => Compare::version(key, cmp_op, int(10)?),
        "c" | "create" => Compare::create_revision(key, cmp_op, int(10)?),
        "m" | "mod" => Compare::mod_revision(key, cmp_op, int(10)?),
        "val" | "value" => Compare::value(key, cmp_op, val.clone()),
        // etcdctl 3.4 panics on lease compares; later etcdctl reads a hex ID.
        "lease" => Compare::lease(key, cmp_op, int(16)?),
        _ => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown target {target})"
            )))
        }
    })
}

/// One request line, `put|get|del <args>` (etcdctl's `parseRequestUnion`).
pub fn parse_op(line: &str) -> CtlResult<Op> {
    let args = argify(line).map_err(invalid)?;
    if args.len() < 2 {
        return Err(invalid(format!("invalid txn compare request: {line}")));
    }
    let bad_request = || invalid(format!("invalid txn request: {line}"));
    let (specs, which): (&[Spec], &str) = match args[0].as_str() {
        "put" => (put::SPECS, "put"),
        "get" => (get::SPECS, "get"),
        "del" => (del::SPECS, "del"),
        _ => return Err(bad_request()),
    };
    let mut all: Vec<Spec> = specs.to_vec();
    all.push(super::HELP.short('h'));
    let parsed = flags::parse(&all, &args[1..]).map_err(|_| bad_request())?;
    match which {
        // The rest of stdin is already buffered away, so a missing value stays missing.
        "put" => put::build(&parsed.args, &parsed, &mut std::io::empty()),
        "get" => get::build(&parsed.args, &parsed),
        _ => del::build(&parsed.args, &parsed),
    }
}

/// Reads one list ended by an empty line; EOF before it is an error ("EOF").
fn read_section<T>(r: &mut dyn BufRead, parse: fn(&str) -> CtlResult<T>) -> CtlResult<Vec<T>> {
    let mut items = Vec::new();
    loop {
        let mut raw = Vec::new();
        match r.read_until(b'\n', &mut raw) {
            Ok(_) if raw.last() == Some(&b'\n') => {}
            Ok(_) => return Err(invalid("EOF".to_owned())),
            Err(e) => return Err(invalid(e.to_string())),
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim();
        if line.is_empty() {
            return Ok(items);
        }
        items.push(parse(line)?);
    }
}

/// The transaction on `input`; `prompt` is called before each section
/// (interactive mode prints it).
pub fn build(input: &mut dyn BufRead, prompt: &mut dyn FnMut(&str)) -> CtlResult<Txn> {
    prompt("compares:");
    let compares = read_section(input, parse_compare)?;
    prompt("success requests (get, put, del):");
    let success = read_section(input, parse_op)?;
    prompt("failure requests (get, put, del):");
    let failure = read_section(input, parse_op)?;
    Ok(Txn::new().when(compares).and_then(success).or_else(failure))
}

/// Runs `txn`.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    if !ctx.args().is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    let (conn, printer, _) = ctx.client().await?;
    let interactive = ctx.bool("interactive");
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let txn = build(&mut lock, &mut |p| {
        if interactive {
            out(format!("{p}\n").as_bytes());
        }
    })?;
    let resp = conn
        .kv()
        .txn(txn)
        .await
        .map_err(|e| CtlError::error(crate::conn::CallError::from(e).message()))?;
    out(&printer.txn(&txn_pb(&resp))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use revkv_client::{DeleteOptions, GetOptions, PutOptions};

    #[test]
    fn compares_parse_as_etcdctl() {
        let cases: Vec<(&str, Compare)> = vec![
            (
                r#"mod("key1") > "0""#,
                Compare::mod_revision("key1", CompareOp::Greater, 0),
            ),
            (
                r#"m("k") = "3""#,
                Compare::mod_revision("k", CompareOp::Equal, 3),
            ),
            (
                r#"ver("k") != "1""#,
                Compare::version("k", CompareOp::NotEqual, 1),
            ),
            (
                r#"create("k") < "10""#,
                Compare::create_revision("k", CompareOp::Less, 10),
            ),
            (
                r#"value("k") = "a b\"c""#,
                Compare::value("k", CompareOp::Equal, "a b\"c"),
            ),
            (
                r#"lease("k") = "1f""#,
                Compare::lease("k", CompareOp::Equal, 0x1f),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_compare(line).expect(line), want, "{line}");
        }
        let errs: &[(&str, &str)] = &[
            // No space after `)`: the scan stops after the key.
            (
                r#"val("k")="x""#,
                r#"malformed comparison: val("k")="x"; got val("k")  """#,
            ),
            ("bogus", "malformed comparison: bogus"),
            (
                r#"version("foo") = "x""#,
                r#"invalid txn compare request: version("foo") = "x""#,
            ),
            (
                r#"size("foo") = "1""#,
                r#"malformed comparison: size("foo") = "1" (unknown target size)"#,
            ),
            (
                r#"mod("foo")"#,
                r#"malformed comparison: mod("foo"); got mod("foo")  """#,
            ),
        ];
        for (line, msg) in errs {
            assert_eq!(parse_compare(line), Err(CtlError::new(3, *msg)), "{line}");
        }
    }

    #[test]
    fn stdin_maps_to_a_txn() {
        let input = b"mod(\"foo\") > \"0\"\n\nput k1 v1\nget foo --prefix\n\ndel k1\nput 'a b' \"c\\td\"\n\n";
        // `'a b'` keeps bytes 1..len(args)-1 = 1..2: etcdctl 3.4's argify bug, reproduced.
        let txn = build(&mut &input[..], &mut |_| {}).expect("parses");
        assert_eq!(
            txn,
            Txn::new()
                .when([Compare::mod_revision("foo", CompareOp::Greater, 0)])
                .and_then([
                    Op::put("k1", "v1", PutOptions::new()),
                    Op::get("foo", GetOptions::new().with_prefix()),
                ])
                .or_else([
                    Op::delete("k1", DeleteOptions::new()),
                    Op::put("a", "c\td", PutOptions::new()),
                ])
        );
        for (input, msg) in [
            (&b"\n\n"[..], "EOF"),
            (b"\n\nput a b\n", "EOF"),
            (b"\n\nget\n\n", "invalid txn compare request: get"),
            (
                b"\n\nget a --bogus\n\n",
                "invalid txn request: get a --bogus",
            ),
            (b"\n\nfrob a b\n\n", "invalid txn request: frob a b"),
        ] {
            assert_eq!(
                build(&mut &input[..], &mut |_| {}),
                Err(CtlError::new(3, msg))
            );
        }
        let mut prompts = Vec::new();
        build(&mut &b"\n\n\n"[..], &mut |p| prompts.push(p.to_owned())).expect("empty txn");
        assert_eq!(prompts.len(), 3);
    }
}
