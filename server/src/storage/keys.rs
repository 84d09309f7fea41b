//! Byte encodings of the keys revkv stores in RocksDB.
//!
//! Two orderings matter and both are produced purely by byte comparison, so RocksDB's
//! default comparator serves them without a custom (and slower) comparator:
//!
//! * the `rev` column family is ordered by revision: [`Revision::to_bytes`] writes
//!   `main` then `sub` as big-endian u64, so byte order equals numeric order;
//! * the `key` column family is ordered by user key, then **newest revision first**:
//!   [`version_key`] writes the memcomparable encoding of the user key followed by the
//!   bitwise complement of the revision. "The version of `k` visible at revision R" is
//!   then a single seek to `version_key(k, R)`.
//!
//! The memcomparable encoding escapes `0x00` as `0x00 0xFF` and terminates every key
//! with `0x00 0x01`. It preserves the order of user keys and is prefix-free, so a
//! revision suffix can never make a short key sort after a longer one that extends it
//! (raw concatenation would put `"a" ++ rev` after `"a\0" ++ rev`).

use std::fmt;

/// A point in the store's history, as etcd defines it.
///
/// `main` is bumped once per modifying request (a put, a delete that deleted something,
/// a txn with at least one change); `sub` numbers the changes made inside that request,
/// starting at 0. Revisions order first by `main`, then by `sub`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Length of an encoded [`Revision`].
pub const REVISION_LEN: usize = 16;

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// Big-endian `main ++ sub`: byte order equals revision order (revisions are never
    /// negative, so the sign bit is always clear).
    pub fn to_bytes(self) -> [u8; REVISION_LEN] {
        let mut out = [0u8; REVISION_LEN];
        out[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        out[8..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        out
    }

    /// Decodes [`Revision::to_bytes`]; `None` when the slice has the wrong length.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != REVISION_LEN {
            return None;
        }
        let main = u64::from_be_bytes(b[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(b[8..].try_into().ok()?) as i64;
        Some(Revision { main, sub })
    }

    /// The bitwise complement of [`Revision::to_bytes`]: sorts newest first.
    pub fn to_inverted_bytes(self) -> [u8; REVISION_LEN] {
        let mut out = self.to_bytes();
        for b in &mut out {
            *b = !*b;
        }
        out
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.main, self.sub)
    }
}

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// Appends the memcomparable encoding of `key` (escaped bytes plus terminator).
pub fn encode_user_key_into(key: &[u8], out: &mut Vec<u8>) {
    out.reserve(key.len() + 2);
    for &b in key {
        if b == ESCAPE {
            out.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[ESCAPE, TERMINATOR]);
}

/// The memcomparable encoding of `key`: the prefix shared by all its versions.
pub fn encode_user_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + REVISION_LEN);
    encode_user_key_into(key, &mut out);
    out
}

/// The `key` CF's prefix extractor: a version key without its revision, i.e. the
/// encoded user key shared by all versions of one key.
pub fn user_key_prefix(version_key: &[u8]) -> &[u8] {
    &version_key[..version_key.len().saturating_sub(REVISION_LEN)]
}

/// Whether [`user_key_prefix`] applies: a version key is at least the terminator plus
/// a revision long.
pub fn has_user_key_prefix(raw: &[u8]) -> bool {
    raw.len() >= REVISION_LEN + 2
}

/// Read options for an iterator over the `key` CF that may cross from one user key
/// to the next (the CF has a prefix extractor, and RocksDB would otherwise stay in
/// prefix mode, where crossing a prefix is undefined).
pub fn total_order(mut opts: rocksdb::ReadOptions) -> rocksdb::ReadOptions {
    opts.set_total_order_seek(true);
    opts
}

/// Seek target of the newest version of `key` (versions sort newest first).
pub fn newest_version(key: &[u8]) -> Vec<u8> {
    version_key(key, Revision::new(i64::MAX, i64::MAX))
}

/// `key` CF key of the version of `key` written at `rev`.
pub fn version_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut out = encode_user_key(key);
    out.extend_from_slice(&rev.to_inverted_bytes());
    out
}

/// A seek target that sorts after every version of `key` and before the next user key.
///
/// Revision (0, 0) is never written, so its inverted form (all `0xFF`) is strictly
/// greater than every real version suffix.
pub fn after_all_versions(key: &[u8]) -> Vec<u8> {
    version_key(key, Revision::new(0, 0))
}

/// Prefix of the `lease` CF keys that attach user keys to lease `id`.
pub const LEASE_ATTACHMENT_TAG: u8 = b'k';

/// `lease` CF key recording that `key` is attached to lease `id`:
/// `'k' ++ id(be u64) ++ key`. All keys of one lease are one prefix scan.
pub fn lease_attachment_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = lease_attachment_prefix(id);
    out.extend_from_slice(key);
    out
}

pub fn lease_attachment_prefix(id: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(LEASE_ATTACHMENT_TAG);
    out.extend_from_slice(&(id as u64).to_be_bytes());
    out
}

/// Prefix of the `lease` CF keys that hold the lease records themselves. Distinct from
/// [`LEASE_ATTACHMENT_TAG`], so restoring the leases is one scan that never meets an
/// attachment.
pub const LEASE_RECORD_TAG: u8 = b'l';

/// `lease` CF key of lease `id`'s record: `'l' ++ id(be u64)`.
pub fn lease_record_key(id: i64) -> [u8; 9] {
    let mut out = [LEASE_RECORD_TAG; 9];
    out[1..].copy_from_slice(&(id as u64).to_be_bytes());
    out
}

/// The lease id of a [`lease_record_key`]; `None` if `raw` is not one.
pub fn decode_lease_record_key(raw: &[u8]) -> Option<i64> {
    match raw {
        [LEASE_RECORD_TAG, id @ ..] => Some(u64::from_be_bytes(id.try_into().ok()?) as i64),
        _ => None,
    }
}

/// Splits a `key` CF key back into the user key and the revision.
/// `None` means the bytes were not produced by [`version_key`] (corruption).
pub fn decode_version_key(raw: &[u8]) -> Option<(Vec<u8>, Revision)> {
    if raw.len() < REVISION_LEN + 2 {
        return None;
    }
    let (enc, rev) = raw.split_at(raw.len() - REVISION_LEN);
    let user = decode_user_key(enc)?;
    let mut inv = [0u8; REVISION_LEN];
    for (d, s) in inv.iter_mut().zip(rev) {
        *d = !*s;
    }
    Some((user, Revision::from_bytes(&inv)?))
}

/// Decodes an encoded user key that must be exactly one key plus its terminator.
fn decode_user_key(enc: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(enc.len());
    let mut i = 0;
    while i < enc.len() {
        let b = enc[i];
        if b != ESCAPE {
            out.push(b);
            i += 1;
            continue;
        }
        match enc.get(i + 1) {
            Some(&ESCAPED_ZERO) => {
                out.push(0);
                i += 2;
            }
            Some(&TERMINATOR) if i + 2 == enc.len() => return Some(out),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lease_record_keys_round_trip_and_never_look_like_attachments() {
        for id in [1i64, 0x694d_7a3d_1f9e_6c05, i64::MAX, -1] {
            let k = lease_record_key(id);
            assert_eq!(decode_lease_record_key(&k), Some(id));
            assert!(!k.starts_with(&lease_attachment_prefix(id)));
        }
        assert_eq!(decode_lease_record_key(&lease_attachment_key(7, b"")), None);
        assert_eq!(decode_lease_record_key(b"l\x00"), None);
    }

    #[test]
    fn revision_round_trip() {
        let r = Revision::new(42, 7);
        assert_eq!(Revision::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(Revision::from_bytes(&[1, 2, 3]), None);
        assert_eq!(r.to_string(), "42_7");
    }

    #[test]
    fn prefix_keys_sort_before_extensions_whatever_the_revision() {
        let short = version_key(b"a", Revision::new(1, 0));
        let long = version_key(b"a\0", Revision::new(u32::MAX as i64, 0));
        assert!(short < long);
        assert!(after_all_versions(b"a") < long);
    }

    #[test]
    fn versions_of_one_key_sort_newest_first() {
        let old = version_key(b"k", Revision::new(2, 0));
        let new = version_key(b"k", Revision::new(3, 0));
        let newest_sub = version_key(b"k", Revision::new(3, 1));
        assert!(newest_sub < new && new < old);
        assert!(old < after_all_versions(b"k"));
    }

    #[test]
    fn corrupt_keys_are_rejected() {
        assert_eq!(decode_version_key(b"short"), None);
        let mut bad = b"ab".to_vec();
        bad.extend_from_slice(&[0u8; REVISION_LEN]);
        assert_eq!(decode_version_key(&bad), None);
    }

    proptest! {
        #[test]
        fn version_key_round_trips(key in proptest::collection::vec(any::<u8>(), 0..40),
                                   main in 0i64..i64::MAX, sub in 0i64..1000) {
            let rev = Revision::new(main, sub);
            let enc = version_key(&key, rev);
            prop_assert_eq!(decode_version_key(&enc), Some((key, rev)));
        }

        #[test]
        fn encoding_preserves_key_then_newest_first_order(
            a in proptest::collection::vec(any::<u8>(), 0..12),
            b in proptest::collection::vec(any::<u8>(), 0..12),
            ra in 1i64..1_000_000, rb in 1i64..1_000_000, sa in 0i64..4, sb in 0i64..4,
        ) {
            let ea = version_key(&a, Revision::new(ra, sa));
            let eb = version_key(&b, Revision::new(rb, sb));
            let expected = a.cmp(&b).then_with(|| (rb, sb).cmp(&(ra, sa)));
            prop_assert_eq!(ea.cmp(&eb), expected);
        }

        #[test]
        fn user_key_encoding_is_order_preserving_and_prefix_free(
            a in proptest::collection::vec(any::<u8>(), 0..12),
            b in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            let ea = encode_user_key(&a);
            let eb = encode_user_key(&b);
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
            if a != b {
                prop_assert!(!eb.starts_with(&ea));
            }
        }

        #[test]
        fn revision_bytes_preserve_order(a in 0i64..i64::MAX, b in 0i64..i64::MAX,
                                         sa in 0i64..100, sb in 0i64..100) {
            let (x, y) = (Revision::new(a, sa), Revision::new(b, sb));
            prop_assert_eq!(x.to_bytes().cmp(&y.to_bytes()), x.cmp(&y));
        }
    }
}
