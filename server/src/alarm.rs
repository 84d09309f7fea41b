//! Cluster alarms (etcd's `alarm` package): which member raised which alarm.
//!
//! An alarm is a (type, member id) pair. Alarms change only through the raft log
//! (`AlarmRequest` entries), so every member holds the same set; each applied change
//! is written to the `meta` column family in the same batch as the entry's applied
//! index, and the set is loaded from there at start and after a snapshot install.
//!
//! What an alarm does:
//! - `NOSPACE` is raised by a member whose database outgrew `--quota-backend-bytes`
//!   when a write arrives. While any member holds it, the applier refuses every Put,
//!   every Txn with a put in either branch, and every LeaseGrant with etcd's "database
//!   space exceeded" — even after compaction and defragmentation have made room — until
//!   an operator disarms it (`etcdctl alarm disarm`). Deletes, reads and compactions
//!   go on, so the space can be reclaimed.
//! - `CORRUPT`: while any member holds it, the applier refuses every Put, DeleteRange,
//!   Txn, Compaction, LeaseGrant and LeaseRevoke with etcd's "corrupt cluster" (reads
//!   served outside the log go on, as in etcd 3.4). revkv runs no corruption check that
//!   would raise it; it comes only from an `Alarm` ACTIVATE request.

use std::collections::BTreeSet;

use parking_lot::RwLock;
use revkv_proto::etcdserverpb::alarm_request::AlarmAction;
use revkv_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType};
use rocksdb::WriteBatch;

use crate::storage::{self, Storage, CF_META};

/// Meta-CF key prefix of an alarm record: `alarm/` ++ type (be i32) ++ member (be u64).
const KEY_PREFIX: &[u8] = b"alarm/";

fn record_key(alarm: i32, member: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(KEY_PREFIX.len() + 12);
    k.extend_from_slice(KEY_PREFIX);
    k.extend_from_slice(&alarm.to_be_bytes());
    k.extend_from_slice(&member.to_be_bytes());
    k
}

fn decode_record_key(raw: &[u8]) -> Option<(i32, u64)> {
    let rest = raw.strip_prefix(KEY_PREFIX)?;
    let alarm = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let member = u64::from_be_bytes(rest.get(4..)?.try_into().ok()?);
    Some((alarm, member))
}

/// The active alarms, ordered by type and then member id.
#[derive(Debug, Default)]
pub struct Alarms {
    active: RwLock<BTreeSet<(i32, u64)>>,
}

impl Alarms {
    /// The alarms recorded in `storage`.
    pub fn load(storage: &Storage) -> Result<Alarms, storage::Error> {
        let alarms = Alarms::default();
        alarms.reload(storage)?;
        Ok(alarms)
    }

    /// Replaces the set with the one recorded in `storage` (after a snapshot install).
    pub fn reload(&self, storage: &Storage) -> Result<(), storage::Error> {
        let db = storage.db();
        let mut set = BTreeSet::new();
        let iter = db.prefix_iterator_cf(storage.cf(CF_META), KEY_PREFIX);
        for item in iter {
            let (k, _) = item?;
            if !k.starts_with(KEY_PREFIX) {
                break;
            }
            match decode_record_key(&k) {
                Some(a) => {
                    set.insert(a);
                }
                None => tracing::warn!(key = ?k, "ignored a malformed alarm record"),
            }
        }
        *self.active.write() = set;
        Ok(())
    }

    /// Whether any member holds an alarm of type `t`.
    pub fn any(&self, t: AlarmType) -> bool {
        let t = t as i32;
        self.active
            .read()
            .range((t, 0)..=(t, u64::MAX))
            .next()
            .is_some()
    }

    /// Whether `member` holds an alarm of type `t`.
    pub fn has(&self, t: AlarmType, member: u64) -> bool {
        self.active.read().contains(&(t as i32, member))
    }

    /// The alarms of type `t`, or every alarm for `NONE` (etcd's `AlarmStore.Get`).
    pub fn list(&self, t: i32) -> Vec<AlarmMember> {
        self.active
            .read()
            .iter()
            .filter(|(a, _)| t == AlarmType::None as i32 || *a == t)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Applies a committed `AlarmRequest`, adding the record change to `wb` (the
    /// entry's apply batch). As etcd: activating answers the (new or existing) alarm,
    /// deactivating answers the removed one or nothing, and an unknown action is
    /// ignored with an empty answer.
    pub fn apply(
        &self,
        storage: &Storage,
        wb: &mut WriteBatch,
        req: &AlarmRequest,
    ) -> AlarmResponse {
        let mut resp = AlarmResponse::default();
        let member = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        let key = (req.alarm, req.member_id);
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => resp.alarms = self.list(req.alarm),
            Ok(AlarmAction::Activate) => {
                let newly = self.active.write().insert(key);
                if newly {
                    wb.put_cf(storage.cf(CF_META), record_key(key.0, key.1), []);
                    if self.list(req.alarm).len() == 1 {
                        tracing::warn!(
                            alarm = type_name(req.alarm),
                            member = format!("{:x}", req.member_id),
                            "alarm raised"
                        );
                    }
                }
                resp.alarms.push(member);
            }
            Ok(AlarmAction::Deactivate) => {
                if self.active.write().remove(&key) {
                    wb.delete_cf(storage.cf(CF_META), record_key(key.0, key.1));
                    if self.list(req.alarm).is_empty() {
                        tracing::info!(
                            alarm = type_name(req.alarm),
                            member = format!("{:x}", req.member_id),
                            "alarm disarmed"
                        );
                    }
                    resp.alarms.push(member);
                }
            }
            Err(_) => {}
        }
        resp
    }

    /// etcd's `Status.errors` entries: each alarm in protobuf text form, as etcd's
    /// `AlarmMember.String()` prints it (note the trailing space).
    pub fn status_errors(&self) -> Vec<String> {
        self.list(AlarmType::None as i32)
            .iter()
            .map(|a| format!("memberID:{} alarm:{} ", a.member_id, type_name(a.alarm)))
            .collect()
    }
}

/// The enum name etcd prints for an alarm type (its number if unknown).
fn type_name(t: i32) -> String {
    AlarmType::try_from(t)
        .map(|t| t.as_str_name().to_owned())
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;

    /// Applies one request and writes its batch; answers the alarms of the response
    /// as (member, type) pairs.
    fn apply_one(
        storage: &Storage,
        alarms: &Alarms,
        action: AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Vec<(u64, i32)> {
        let req = AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        };
        let mut wb = WriteBatch::default();
        let resp = alarms.apply(storage, &mut wb, &req);
        storage.write(wb, false).expect("write");
        resp.alarms.iter().map(|a| (a.member_id, a.alarm)).collect()
    }

    #[test]
    fn activate_list_deactivate_and_reload() {
        use AlarmAction::{Activate, Deactivate, Get};
        use AlarmType::{Corrupt, Nospace};
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            Storage::open(&dir.path().join("data"), &StorageConfig::default()).expect("open");
        let alarms = Alarms::load(&storage).expect("load");
        let act = |action, member, alarm| apply_one(&storage, &alarms, action, member, alarm);
        assert!(!alarms.any(Nospace));

        assert_eq!(act(Activate, 7, Nospace), vec![(7, 1)]);
        // Activating again answers the existing alarm and changes nothing.
        assert_eq!(act(Activate, 7, Nospace), vec![(7, 1)]);
        act(Activate, 3, Corrupt);
        assert!(alarms.any(Nospace) && alarms.has(Nospace, 7));
        assert!(!alarms.has(Nospace, 3));

        assert_eq!(act(Get, 0, AlarmType::None), vec![(7, 1), (3, 2)]);
        assert_eq!(act(Get, 0, Corrupt), vec![(3, 2)]);
        assert_eq!(
            alarms.status_errors(),
            vec!["memberID:7 alarm:NOSPACE ", "memberID:3 alarm:CORRUPT "]
        );

        // The set survives a reopen.
        let reloaded = Alarms::load(&storage).expect("reload");
        assert_eq!(reloaded.list(0), alarms.list(0));

        assert_eq!(act(Deactivate, 7, Nospace), vec![(7, 1)]);
        assert_eq!(act(Deactivate, 7, Nospace), vec![]);
        assert!(!alarms.any(Nospace));
        assert_eq!(Alarms::load(&storage).expect("reload").list(0).len(), 1);
    }

    #[test]
    fn record_keys_round_trip_and_garbage_is_refused() {
        assert_eq!(
            decode_record_key(&record_key(1, u64::MAX)),
            Some((1, u64::MAX))
        );
        assert_eq!(decode_record_key(b"alarm/\x00\x00"), None);
        assert_eq!(decode_record_key(b"members"), None);
    }
}
