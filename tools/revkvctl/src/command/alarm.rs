//! `alarm list|disarm`.

use revkv_proto::etcdserverpb::{self as pb, alarm_request::AlarmAction};

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::unary;

/// An `Alarm` request for `action` on `member`'s `alarm` (0 / NONE: every one).
pub fn request(action: AlarmAction, member_id: u64, alarm: i32) -> pb::AlarmRequest {
    pb::AlarmRequest {
        action: action as i32,
        member_id,
        alarm,
    }
}

/// Runs `alarm <sub>`. `disarm` does what etcd's client does for "every alarm": it
/// lists the alarms, deactivates each one by its member and type, and prints the
/// ones deactivated (an answer without a header, as etcd's client assembles it).
pub async fn execute(sub: &str, ctx: &mut Ctx) -> CtlResult {
    let (conn, printer, _) = ctx.client().await?;
    let list = request(AlarmAction::Get, 0, pb::AlarmType::None as i32);
    let listed =
        unary!(conn, conn.maintenance(), alarm, list).map_err(|e| CtlError::error(e.message()))?;
    if sub != "disarm" {
        out(&printer.alarm(&listed)?);
        return Ok(());
    }
    let mut disarmed = pb::AlarmResponse::default();
    for a in listed.alarms {
        let req = request(AlarmAction::Deactivate, a.member_id, a.alarm);
        let resp = unary!(conn, conn.maintenance(), alarm, req)
            .map_err(|e| CtlError::error(e.message()))?;
        disarmed.alarms.extend(resp.alarms);
    }
    out(&printer.alarm(&disarmed)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_member_and_type() {
        let r = request(AlarmAction::Deactivate, 7, pb::AlarmType::Nospace as i32);
        assert_eq!(r.action, AlarmAction::Deactivate as i32);
        assert_eq!((r.member_id, r.alarm), (7, 1));
    }
}
