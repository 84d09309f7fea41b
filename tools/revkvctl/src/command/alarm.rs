//! `alarm list|disarm`.

use revkv_proto::etcdserverpb::{self as pb, alarm_request::AlarmAction};

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::unary;

/// The request of `alarm <sub>`.
pub fn build(sub: &str) -> pb::AlarmRequest {
    let action = if sub == "disarm" {
        AlarmAction::Deactivate
    } else {
        AlarmAction::Get
    };
    pb::AlarmRequest {
        action: action as i32,
        member_id: 0,
        alarm: pb::AlarmType::None as i32,
    }
}

/// Runs `alarm <sub>`.
pub async fn execute(sub: &str, ctx: &mut Ctx) -> CtlResult {
    let req = build(sub);
    let (conn, printer, _) = ctx.client().await?;
    let resp =
        unary!(conn, conn.maintenance(), alarm, req).map_err(|e| CtlError::error(e.message()))?;
    out(&printer.alarm(&resp)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_map_to_actions() {
        assert_eq!(build("list").action, AlarmAction::Get as i32);
        assert_eq!(build("disarm").action, AlarmAction::Deactivate as i32);
    }
}
