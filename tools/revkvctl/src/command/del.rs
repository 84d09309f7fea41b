//! `del [options] <key> [range_end]`.

use revkv_client::{DeleteOptions, Kv, Op};

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::flags::{Kind, Parsed, Spec};
use revkv_client::wire::delete_pb;

/// `del`'s flags.
pub const SPECS: &[Spec] = &[
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "delete keys that are greater than or equal to the given key using byte compare",
    ),
    Spec::new(
        "prefix",
        Kind::Bool,
        "false",
        "delete keys with matching prefix",
    ),
    Spec::new(
        "prev-kv",
        Kind::Bool,
        "false",
        "return deleted key-value pairs",
    ),
];

/// etcdctl's `getDelOp`.
pub fn build(args: &[String], f: &Parsed) -> CtlResult<Op> {
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (prefix, from_key) = (f.bool(SPECS, "prefix"), f.bool(SPECS, "from-key"));
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut o = DeleteOptions::new();
    let mut key = args[0].as_bytes().to_vec();
    if let Some(end) = args.get(1) {
        if prefix {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        o = o.with_range(end.as_bytes());
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            o = o.with_from_key();
        } else {
            o = o.with_prefix();
        }
    }
    if f.bool(SPECS, "prev-kv") {
        o = o.with_prev_kv();
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        o = o.with_from_key();
    }
    Ok(Op::delete(key, o))
}

/// Runs `del`.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let op = build(ctx.args(), &ctx.parsed)?;
    let (conn, printer, _) = ctx.client().await?;
    let resp = conn
        .kv()
        .execute(op)
        .await
        .and_then(|r| r.into_delete())
        .map_err(|e| CtlError::error(crate::conn::CallError::from(e).message()))?;
    out(&printer.del(&delete_pb(&resp))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::parse;

    fn run(argv: &[&str]) -> CtlResult<Op> {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        let p = parse(SPECS, &argv).expect("flags parse");
        build(&p.args, &p)
    }

    #[test]
    fn args_map_to_requests() {
        let cases: Vec<(&[&str], Op)> = vec![
            (&["k"], Op::delete("k", DeleteOptions::new())),
            (
                &["a", "c"],
                Op::delete("a", DeleteOptions::new().with_range("c")),
            ),
            (
                &["a", "--prefix"],
                Op::delete("a", DeleteOptions::new().with_prefix()),
            ),
            (
                &["", "--prefix"],
                Op::delete("\0", DeleteOptions::new().with_from_key()),
            ),
            (
                &["a", "--from-key", "--prev-kv"],
                Op::delete("a", DeleteOptions::new().with_from_key().with_prev_kv()),
            ),
        ];
        for (argv, want) in cases {
            assert_eq!(run(argv).expect("builds"), want, "{argv:?}");
        }
        assert_eq!(
            run(&[]),
            Err(CtlError::bad_args(
                "del command needs one argument as key and an optional argument as range_end"
            ))
        );
        assert_eq!(
            run(&["a", "b", "--prefix"]),
            Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
            ))
        );
    }
}
