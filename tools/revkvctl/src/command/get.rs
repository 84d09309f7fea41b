//! `get [options] <key> [range_end]`.

use revkv_client::{GetOptions, Kv, Op, SortOrder, SortTarget};

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult, BAD_ARGS, BAD_FEATURE};
use crate::flags::{Kind, Parsed, Spec};
use crate::printer::Format;
use revkv_client::wire::get_pb;

/// `get`'s flags (etcdctl 3.4's, then revkvctl's hidden additions).
pub const SPECS: &[Spec] = &[
    Spec::new(
        "consistency",
        Kind::Str,
        "l",
        "Linearizable(l) or Serializable(s)",
    ),
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "Get keys that are greater than or equal to the given key using byte compare",
    ),
    Spec::new("keys-only", Kind::Bool, "false", "Get only the keys"),
    Spec::new("limit", Kind::Int, "0", "Maximum number of results"),
    Spec::new(
        "order",
        Kind::Str,
        "",
        "Order of results; ASCEND or DESCEND (ASCEND by default)",
    ),
    Spec::new(
        "prefix",
        Kind::Bool,
        "false",
        "Get keys with matching prefix",
    ),
    Spec::new(
        "print-value-only",
        Kind::Bool,
        "false",
        "Only write values when using the \"simple\" output format",
    ),
    Spec::new("rev", Kind::Int, "0", "Specify the kv revision"),
    Spec::new(
        "sort-by",
        Kind::Str,
        "",
        "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION",
    ),
    Spec::new("count-only", Kind::Bool, "false", "Get only the count").hidden(),
    Spec::new("min-mod-rev", Kind::Int, "0", "Minimum modify revision").hidden(),
    Spec::new("max-mod-rev", Kind::Int, "0", "Maximum modify revision").hidden(),
    Spec::new("min-create-rev", Kind::Int, "0", "Minimum create revision").hidden(),
    Spec::new("max-create-rev", Kind::Int, "0", "Maximum create revision").hidden(),
];

/// etcdctl's `getGetOp`: the request for `args` and flags `f`.
pub fn build(args: &[String], f: &Parsed) -> CtlResult<Op> {
    let flag = |n: &str| f.bool(SPECS, n);
    let Some(key) = args.first() else {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    };
    let (prefix, from_key) = (flag("prefix"), flag("from-key"));
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if flag("count-only") && flag("keys-only") {
        return Err(CtlError::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let mut o = GetOptions::new();
    match f.str(SPECS, "consistency").as_str() {
        "s" => o = o.with_serializable(),
        "l" => {}
        other => {
            return Err(CtlError::new(
                BAD_FEATURE,
                format!("unknown consistency flag {:?}", other),
            ))
        }
    }
    let mut key = key.as_bytes().to_vec();
    if let Some(end) = args.get(1) {
        if prefix || from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        o = o.with_range(end.as_bytes());
    }
    o = o.with_limit(f.int(SPECS, "limit"));
    let rev = f.int(SPECS, "rev");
    if rev > 0 {
        o = o.with_revision(rev);
    }
    let order_flag = f.str(SPECS, "order");
    let order = match order_flag.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(CtlError::new(
                BAD_FEATURE,
                format!("bad sort order {order_flag}"),
            ))
        }
    };
    let target_flag = f.str(SPECS, "sort-by");
    let target = match target_flag.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                BAD_FEATURE,
                format!("bad sort target {target_flag}"),
            ))
        }
    };
    // clientv3's WithSort: the server already returns keys ascending.
    let order = if target == SortTarget::Key && order == SortOrder::Ascend {
        SortOrder::None
    } else {
        order
    };
    o = o.with_sort(target, order);
    if prefix {
        if key.is_empty() {
            key = vec![0];
            o = o.with_from_key();
        } else {
            o = o.with_prefix();
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        o = o.with_from_key();
    }
    if flag("keys-only") {
        o = o.with_keys_only();
    }
    if flag("count-only") {
        o = o.with_count_only();
    }
    o = o
        .with_min_mod_revision(f.int(SPECS, "min-mod-rev"))
        .with_max_mod_revision(f.int(SPECS, "max-mod-rev"))
        .with_min_create_revision(f.int(SPECS, "min-create-rev"))
        .with_max_create_revision(f.int(SPECS, "max-create-rev"));
    Ok(Op::get(key, o))
}

/// Runs `get`.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let op = build(ctx.args(), &ctx.parsed)?;
    let (conn, mut printer, _) = ctx.client().await?;
    if ctx.bool("count-only") && printer.format != Format::Fields {
        return Err(CtlError::new(
            BAD_ARGS,
            "--count-only is only for `--write-out=fields`",
        ));
    }
    let resp = conn
        .kv()
        .execute(op)
        .await
        .and_then(|r| r.into_get())
        .map_err(|e| CtlError::error(crate::conn::CallError::from(e).message()))?;
    if ctx.bool("print-value-only") {
        if printer.format != Format::Simple {
            return Err(CtlError::bad_args(
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        printer.value_only = true;
    }
    out(&printer.get(&get_pb(&resp))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::parse;
    use revkv_client::KeyRange;

    fn run(argv: &[&str]) -> CtlResult<Op> {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        let p = parse(SPECS, &argv).expect("flags parse");
        build(&p.args, &p)
    }

    fn get(key: &[u8], o: GetOptions) -> Op {
        Op::get(key, o)
    }

    #[test]
    fn args_map_to_requests() {
        let cases: Vec<(&[&str], Op)> = vec![
            (&["foo"], get(b"foo", GetOptions::new())),
            (&["a", "c"], get(b"a", GetOptions::new().with_range("c"))),
            (
                &["a", "--prefix"],
                get(b"a", GetOptions::new().with_prefix()),
            ),
            (
                &["", "--prefix"],
                get(b"\0", GetOptions::new().with_from_key()),
            ),
            (
                &["", "--from-key"],
                get(b"\0", GetOptions::new().with_from_key()),
            ),
            (
                &["k", "--rev=3", "--limit", "2"],
                get(b"k", GetOptions::new().with_revision(3).with_limit(2)),
            ),
            (&["k", "--rev=-1"], get(b"k", GetOptions::new())),
            (
                &["k", "--consistency=s"],
                get(b"k", GetOptions::new().with_serializable()),
            ),
            (
                &["k", "--order=descend", "--sort-by=modify"],
                get(
                    b"k",
                    GetOptions::new().with_sort(SortTarget::Mod, SortOrder::Descend),
                ),
            ),
            (&["k", "--order=ASCEND"], get(b"k", GetOptions::new())),
            (
                &["k", "--keys-only"],
                get(b"k", GetOptions::new().with_keys_only()),
            ),
            (
                &["k", "--count-only"],
                get(b"k", GetOptions::new().with_count_only()),
            ),
            (
                &["k", "--min-mod-rev=2", "--max-create-rev=9"],
                get(
                    b"k",
                    GetOptions::new()
                        .with_min_mod_revision(2)
                        .with_max_create_revision(9),
                ),
            ),
        ];
        for (argv, want) in cases {
            assert_eq!(run(argv).expect("builds"), want, "{argv:?}");
        }
        assert!(matches!(
            run(&["", "--prefix"]),
            Ok(Op::Get {
                options: GetOptions {
                    range: KeyRange::FromKey,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn bad_args_fail_as_etcdctl() {
        let cases: &[(&[&str], i32, &str)] = &[
            (&[], 128, "get command needs one argument as key and an optional argument as range_end"),
            (&["a", "--prefix", "--from-key"], 128, "`--prefix` and `--from-key` cannot be set at the same time, choose one"),
            (&["a", "b", "--prefix"], 128, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"),
            (&["a", "--order=x"], 4, "bad sort order x"),
            (&["a", "--sort-by=x"], 4, "bad sort target x"),
            (&["a", "--consistency=x"], 4, "unknown consistency flag \"x\""),
        ];
        for (argv, code, msg) in cases {
            assert_eq!(run(argv), Err(CtlError::new(*code, *msg)), "{argv:?}");
        }
    }
}
