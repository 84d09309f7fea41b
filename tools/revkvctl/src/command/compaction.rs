//! `compaction [options] <revision>`.

use revkv_client::{Kv, Op};

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::flags::{Kind, Spec};
use crate::gofmt;

/// `compaction`'s flags.
pub const SPECS: &[Spec] = &[Spec::new(
    "physical",
    Kind::Bool,
    "false",
    "'true' to wait for compaction to physically remove all old revisions",
)];

/// The request of `compaction args`.
pub fn build(args: &[String], physical: bool) -> CtlResult<Op> {
    let [rev] = args else {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    };
    // etcdctl exits 1 (not "bad args") on an unparsable revision.
    let revision = gofmt::parse_int(rev, 10).map_err(CtlError::error)?;
    Ok(Op::Compact { revision, physical })
}

/// Runs `compaction`.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let op = build(ctx.args(), ctx.bool("physical"))?;
    let Op::Compact { revision, .. } = op else {
        return Ok(());
    };
    let (conn, _, _) = ctx.client().await?;
    conn.kv()
        .execute(op)
        .await
        .map_err(|e| CtlError::error(crate::conn::CallError::from(e).message()))?;
    // Every output format prints this line.
    out(format!("compacted revision {revision}\n").as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_map_to_requests() {
        let a = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            build(&a(&["5"]), true),
            Ok(Op::Compact {
                revision: 5,
                physical: true
            })
        );
        assert_eq!(
            build(&a(&[]), false),
            Err(CtlError::bad_args("compaction command needs 1 argument"))
        );
        assert_eq!(
            build(&a(&["x"]), false),
            Err(CtlError::error(
                "strconv.ParseInt: parsing \"x\": invalid syntax"
            ))
        );
    }
}
