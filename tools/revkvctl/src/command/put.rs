//! `put [options] <key> <value>` (value from stdin when omitted).

use std::io::Read;

use revkv_client::{Kv, Op, PutOptions};

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::flags::{Kind, Parsed, Spec};
use crate::gofmt;
use revkv_client::wire::put_pb;

/// `put`'s flags.
pub const SPECS: &[Spec] = &[
    Spec::new(
        "ignore-lease",
        Kind::Bool,
        "false",
        "updates the key using its current lease",
    ),
    Spec::new(
        "ignore-value",
        Kind::Bool,
        "false",
        "updates the key using its current value",
    ),
    Spec::new(
        "lease",
        Kind::Str,
        "0",
        "lease ID (in hexadecimal) to attach to the key",
    ),
    Spec::new(
        "prev-kv",
        Kind::Bool,
        "false",
        "return the previous key-value pair before modification",
    ),
];

const NEEDS_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";

/// A lease ID as etcdctl takes it: hexadecimal.
pub fn parse_lease_id(s: &str) -> CtlResult<i64> {
    gofmt::parse_int(s, 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))
}

/// etcdctl's `getPutOp`; `stdin` supplies the value when only the key is given.
pub fn build(args: &[String], f: &Parsed, stdin: &mut dyn Read) -> CtlResult<Op> {
    let Some(key) = args.first() else {
        return Err(CtlError::bad_args(NEEDS_ARGS));
    };
    let ignore_value = f.bool(SPECS, "ignore-value");
    if ignore_value && args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let mut value = Vec::new();
    if !ignore_value {
        match args.get(1) {
            Some(v) => value = v.as_bytes().to_vec(),
            None => {
                // etcdctl's argOrStdin: an empty or unreadable stdin is no value.
                if stdin.read_to_end(&mut value).is_err() || value.is_empty() {
                    return Err(CtlError::bad_args(NEEDS_ARGS));
                }
            }
        }
    }
    let lease = parse_lease_id(&f.str(SPECS, "lease"))?;
    let mut o = PutOptions::new();
    if lease != 0 {
        o = o.with_lease(lease);
    }
    if f.bool(SPECS, "prev-kv") {
        o = o.with_prev_kv();
    }
    if ignore_value {
        o = o.with_ignore_value();
    }
    if f.bool(SPECS, "ignore-lease") {
        o = o.with_ignore_lease();
    }
    Ok(Op::put(key.as_bytes(), value, o))
}

/// Runs `put`.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let op = build(ctx.args(), &ctx.parsed, &mut std::io::stdin())?;
    let (conn, printer, _) = ctx.client().await?;
    let resp = conn
        .kv()
        .execute(op)
        .await
        .and_then(|r| r.into_put())
        .map_err(|e| CtlError::error(crate::conn::CallError::from(e).message()))?;
    out(&printer.put(&put_pb(&resp))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::parse;

    fn run(argv: &[&str], stdin: &[u8]) -> CtlResult<Op> {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        let p = parse(SPECS, &argv).expect("flags parse");
        build(&p.args, &p, &mut &stdin[..])
    }

    #[test]
    fn args_map_to_requests() {
        let cases: Vec<(&[&str], &[u8], Op)> = vec![
            (&["k", "v"], b"", Op::put("k", "v", PutOptions::new())),
            (
                &["k"],
                b"from stdin\n",
                Op::put("k", "from stdin\n", PutOptions::new()),
            ),
            (
                &["k", "v", "--lease=1234"],
                b"",
                Op::put("k", "v", PutOptions::new().with_lease(0x1234)),
            ),
            (
                &["k", "v", "--prev-kv"],
                b"",
                Op::put("k", "v", PutOptions::new().with_prev_kv()),
            ),
            (
                &["k", "--ignore-value"],
                b"",
                Op::put("k", "", PutOptions::new().with_ignore_value()),
            ),
            (
                &["k", "v", "--ignore-lease"],
                b"",
                Op::put("k", "v", PutOptions::new().with_ignore_lease()),
            ),
        ];
        for (argv, stdin, want) in cases {
            assert_eq!(run(argv, stdin).expect("builds"), want, "{argv:?}");
        }
    }

    #[test]
    fn bad_args_fail_as_etcdctl() {
        let cases: &[(&[&str], &str)] = &[
            (&[], NEEDS_ARGS),
            (&["k"], NEEDS_ARGS),
            (&["k", "v", "--ignore-value"], "put command needs only 1 argument when 'ignore-value' is set"),
            (&["k", "v", "--lease=zz"], "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"),
        ];
        for (argv, msg) in cases {
            assert_eq!(run(argv, b""), Err(CtlError::bad_args(*msg)), "{argv:?}");
        }
    }
}
