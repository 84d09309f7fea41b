//! `move-leader <transferee-member-id>`.

use revkv_proto::etcdserverpb as pb;

use super::{out, Ctx};
use crate::conn::Conn;
use crate::exit::{CtlError, CtlResult};
use crate::gofmt;
use crate::unary;

/// The target member of `move-leader args`.
pub fn build(args: &[String]) -> CtlResult<u64> {
    let [id] = args else {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    };
    gofmt::parse_uint(id, 16).map_err(CtlError::bad_args)
}

/// Runs `move-leader`: finds the leader among `--endpoints`, asks it to hand over.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let target = build(ctx.args())?;
    let (_, printer, g) = ctx.client().await?;
    for ep in &g.endpoints {
        let conn = Conn::open(std::slice::from_ref(ep), &g)?;
        let st = unary!(conn, conn.maintenance(), status, pb::StatusRequest {})
            .map_err(|e| CtlError::error(e.message()))?;
        let member = st.header.map(|h| h.member_id).unwrap_or(0);
        if member != st.leader {
            continue;
        }
        let resp = unary!(
            conn,
            conn.maintenance(),
            move_leader,
            pb::MoveLeaderRequest { target_id: target }
        )
        .map_err(|e| CtlError::error(e.message()))?;
        out(&printer.move_leader(st.leader, target, &resp)?);
        return Ok(());
    }
    Err(CtlError::bad_args(format!(
        "no leader endpoint given at [{}]",
        g.endpoints.join(" ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_hex() {
        assert_eq!(
            build(&["2e1259d415f2a040".to_owned()]),
            Ok(0x2e1259d415f2a040)
        );
        assert_eq!(
            build(&[]),
            Err(CtlError::bad_args("move-leader command needs 1 argument"))
        );
        assert_eq!(
            build(&["zz".to_owned()]),
            Err(CtlError::bad_args(
                "strconv.ParseUint: parsing \"zz\": invalid syntax"
            ))
        );
    }
}
