//! Value encodings of the `key` and `rev` column families.

use prost::encoding::{decode_varint, encode_varint};
use revkv_proto::mvccpb::KeyValue;

use super::{Error, Result};
use crate::storage::keys::Revision;

const FLAG_TOMBSTONE: u8 = 1;

/// One version of a key, stored at `version_key(key, mod_revision)` in the `key` CF.
///
/// The value lives here (not in the `rev` CF) so that a point get or a range at any
/// revision is one seek per key with no second lookup; the `rev` CF only names the key,
/// which keeps history scans (watch catch-up, compaction) cheap.
///
/// Layout: `flags(u8) varint(create_revision) varint(version) varint(lease) value..`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRecord {
    /// A tombstone marks the deletion of the key at this revision; its other fields are 0.
    pub tombstone: bool,
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: Vec<u8>,
}

impl KeyRecord {
    pub fn tombstone() -> Self {
        KeyRecord {
            tombstone: true,
            ..Default::default()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 3 * 4 + self.value.len());
        out.push(if self.tombstone { FLAG_TOMBSTONE } else { 0 });
        encode_varint(self.create_revision as u64, &mut out);
        encode_varint(self.version as u64, &mut out);
        encode_varint(self.lease as u64, &mut out);
        out.extend_from_slice(&self.value);
        out
    }

    pub fn decode(raw: &[u8]) -> Result<Self> {
        let (mut record, value) = Self::decode_meta_and_value(raw)?;
        record.value = value.to_vec();
        Ok(record)
    }

    /// Everything but the value (left empty): for counting, keys-only reads and
    /// deletes, which must not pay for copying values.
    pub fn decode_meta(raw: &[u8]) -> Result<Self> {
        Ok(Self::decode_meta_and_value(raw)?.0)
    }

    fn decode_meta_and_value(mut raw: &[u8]) -> Result<(Self, &[u8])> {
        let corrupt = || Error::Corrupt("key record".into());
        let (&flags, rest) = raw.split_first().ok_or_else(corrupt)?;
        raw = rest;
        let create_revision = decode_varint(&mut raw).map_err(|_| corrupt())? as i64;
        let version = decode_varint(&mut raw).map_err(|_| corrupt())? as i64;
        let lease = decode_varint(&mut raw).map_err(|_| corrupt())? as i64;
        let record = KeyRecord {
            tombstone: flags & FLAG_TOMBSTONE != 0,
            create_revision,
            version,
            lease,
            value: Vec::new(),
        };
        Ok((record, raw))
    }

    /// Reads only the tombstone flag: counting needs nothing else.
    pub fn is_tombstone(raw: &[u8]) -> bool {
        raw.first().is_some_and(|f| f & FLAG_TOMBSTONE != 0)
    }

    /// The wire form of this version of `key`, written at `rev`.
    pub fn to_key_value(&self, key: &[u8], rev: Revision) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: rev.main,
            version: self.version,
            value: self.value.clone(),
            lease: self.lease,
        }
    }
}

/// The `rev` CF value: which key changed at a revision, and whether it was deleted.
///
/// Layout: `flags(u8) user_key..`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub tombstone: bool,
    pub key: Vec<u8>,
}

impl EventRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.key.len());
        out.push(if self.tombstone { FLAG_TOMBSTONE } else { 0 });
        out.extend_from_slice(&self.key);
        out
    }

    pub fn decode(raw: &[u8]) -> Result<Self> {
        let (&flags, key) = raw
            .split_first()
            .ok_or_else(|| Error::Corrupt("event record".into()))?;
        Ok(EventRecord {
            tombstone: flags & FLAG_TOMBSTONE != 0,
            key: key.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn key_record_round_trips(tomb in any::<bool>(), c in any::<i64>(), v in any::<i64>(),
                                  l in any::<i64>(),
                                  value in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = KeyRecord { tombstone: tomb, create_revision: c, version: v, lease: l, value };
            let enc = r.encode();
            prop_assert_eq!(KeyRecord::is_tombstone(&enc), tomb);
            prop_assert_eq!(KeyRecord::decode(&enc).expect("decode"), r);
        }

        #[test]
        fn event_record_round_trips(tomb in any::<bool>(),
                                    key in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = EventRecord { tombstone: tomb, key };
            prop_assert_eq!(EventRecord::decode(&r.encode()).expect("decode"), r);
        }
    }

    #[test]
    fn truncated_records_are_corrupt_not_panics() {
        assert!(KeyRecord::decode(&[]).is_err());
        assert!(KeyRecord::decode(&[0, 0x80]).is_err());
        assert!(EventRecord::decode(&[]).is_err());
    }
}
