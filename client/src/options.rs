//! Option builders for KV requests, in the spirit of etcd's `clientv3.OpOption`s.
//!
//! ```
//! use revkv_client::{GetOptions, PutOptions, SortOrder, SortTarget};
//!
//! let get = GetOptions::new().with_prefix().with_revision(7).with_sort(SortTarget::Key, SortOrder::Descend);
//! assert_eq!(get.revision, 7);
//! let put = PutOptions::new().with_lease(0x1234).with_prev_kv();
//! assert!(put.prev_kv);
//! ```

/// Which keys a get or delete covers, relative to its key.
///
/// Kept symbolic (rather than as a computed `range_end`) until the request is sent,
/// so the `Namespace` decorator can prefix a prefix or a from-key range correctly.
///
/// ```
/// let r = revkv_client::KeyRange::End(b"c".to_vec());
/// assert_eq!(r.range_end(b"a"), b"c");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyRange {
    /// Just the key.
    #[default]
    Single,
    /// Every key starting with the key (`--prefix`); an empty key means all keys.
    Prefix,
    /// Every key `>=` the key (`--from-key`).
    FromKey,
    /// `[key, end)`.
    End(Vec<u8>),
}

impl KeyRange {
    /// The `range_end` field etcd expects for `key` under this range.
    pub fn range_end(&self, key: &[u8]) -> Vec<u8> {
        match self {
            KeyRange::Single => Vec::new(),
            KeyRange::Prefix if key.is_empty() => vec![0],
            KeyRange::Prefix => prefix_end(key),
            KeyRange::FromKey => vec![0],
            KeyRange::End(end) => end.clone(),
        }
    }
}

/// The smallest key greater than every key starting with a prefix (shared with the
/// server, which needs it for its lock and election recipes).
pub use revkv_proto::prefix_end;

/// Order of the keys a get returns (etcd's `RangeRequest.SortOrder`).
///
/// ```
/// let o = revkv_client::GetOptions::new().with_sort(revkv_client::SortTarget::Key, revkv_client::SortOrder::Descend);
/// assert_eq!(o.sort_order, revkv_client::SortOrder::Descend);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Server order (by key, ascending).
    #[default]
    None,
    /// Ascending by the sort target.
    Ascend,
    /// Descending by the sort target.
    Descend,
}

/// Field a get sorts by (etcd's `RangeRequest.SortTarget`).
///
/// ```
/// let o = revkv_client::GetOptions::new().with_sort(revkv_client::SortTarget::Version, revkv_client::SortOrder::Ascend);
/// assert_eq!(o.sort_target, revkv_client::SortTarget::Version);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// Options of a get (etcd's `RangeRequest`).
///
/// ```
/// let o = revkv_client::GetOptions::new().with_prefix().with_limit(10);
/// assert_eq!(o.limit, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetOptions {
    /// Keys covered.
    pub range: KeyRange,
    /// Read at this revision (0 = latest).
    pub revision: i64,
    /// Most keys to return (0 = no limit).
    pub limit: i64,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort target.
    pub sort_target: SortTarget,
    /// Serve from the local member without a quorum read.
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Filters on mod/create revision (0 = no filter).
    pub min_mod_revision: i64,
    /// See `min_mod_revision`.
    pub max_mod_revision: i64,
    /// See `min_mod_revision`.
    pub min_create_revision: i64,
    /// See `min_mod_revision`.
    pub max_create_revision: i64,
}

impl GetOptions {
    /// Defaults: one key, latest revision, linearizable.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new();
    /// assert_eq!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key with the key as prefix.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_prefix();
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_prefix(mut self) -> Self {
        self.range = KeyRange::Prefix;
        self
    }
    /// Every key `>=` the key.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_from_key();
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_from_key(mut self) -> Self {
        self.range = KeyRange::FromKey;
        self
    }
    /// `[key, end)`.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_range("b");
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range = KeyRange::End(end.into());
        self
    }
    /// Read at `revision`.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_revision(5);
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }
    /// At most `limit` keys.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_limit(10);
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }
    /// Sort by `target` in `order`.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_sort(revkv_client::SortTarget::Mod, revkv_client::SortOrder::Descend);
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort_target = target;
        self.sort_order = order;
        self
    }
    /// Serializable (local) read.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_serializable();
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_serializable(mut self) -> Self {
        self.serializable = true;
        self
    }
    /// Keys only.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_keys_only();
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }
    /// Count only.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_count_only();
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_count_only(mut self) -> Self {
        self.count_only = true;
        self
    }
    /// Only keys modified at or after `rev`.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_min_mod_revision(3);
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_min_mod_revision(mut self, rev: i64) -> Self {
        self.min_mod_revision = rev;
        self
    }
    /// Only keys modified at or before `rev`.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_max_mod_revision(3);
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_max_mod_revision(mut self, rev: i64) -> Self {
        self.max_mod_revision = rev;
        self
    }
    /// Only keys created at or after `rev`.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_min_create_revision(3);
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_min_create_revision(mut self, rev: i64) -> Self {
        self.min_create_revision = rev;
        self
    }
    /// Only keys created at or before `rev`.
    ///
    /// ```
    /// let o = revkv_client::GetOptions::new().with_max_create_revision(3);
    /// assert_ne!(o, revkv_client::GetOptions::default());
    /// ```
    pub fn with_max_create_revision(mut self, rev: i64) -> Self {
        self.max_create_revision = rev;
        self
    }
}

/// Options of a put (etcd's `PutRequest`).
///
/// ```
/// let o = revkv_client::PutOptions::new().with_prev_kv();
/// assert!(o.prev_kv);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PutOptions {
    /// Attach the key to this lease (0 = none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (update the lease only).
    pub ignore_value: bool,
    /// Keep the current lease.
    pub ignore_lease: bool,
}

impl PutOptions {
    /// Defaults: no lease, no previous key-value.
    ///
    /// ```
    /// let o = revkv_client::PutOptions::new();
    /// assert_eq!(o, revkv_client::PutOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Attach to lease `id`.
    ///
    /// ```
    /// let o = revkv_client::PutOptions::new().with_lease(0x1234);
    /// assert_ne!(o, revkv_client::PutOptions::default());
    /// ```
    pub fn with_lease(mut self, id: i64) -> Self {
        self.lease = id;
        self
    }
    /// Return the previous key-value.
    ///
    /// ```
    /// let o = revkv_client::PutOptions::new().with_prev_kv();
    /// assert_ne!(o, revkv_client::PutOptions::default());
    /// ```
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
    /// Keep the current value.
    ///
    /// ```
    /// let o = revkv_client::PutOptions::new().with_ignore_value();
    /// assert_ne!(o, revkv_client::PutOptions::default());
    /// ```
    pub fn with_ignore_value(mut self) -> Self {
        self.ignore_value = true;
        self
    }
    /// Keep the current lease.
    ///
    /// ```
    /// let o = revkv_client::PutOptions::new().with_ignore_lease();
    /// assert_ne!(o, revkv_client::PutOptions::default());
    /// ```
    pub fn with_ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }
}

/// Options of a delete (etcd's `DeleteRangeRequest`).
///
/// ```
/// let o = revkv_client::DeleteOptions::new().with_prefix().with_prev_kv();
/// assert!(o.prev_kv);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteOptions {
    /// Keys covered.
    pub range: KeyRange,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

impl DeleteOptions {
    /// Defaults: one key.
    ///
    /// ```
    /// let o = revkv_client::DeleteOptions::new();
    /// assert_eq!(o, revkv_client::DeleteOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key with the key as prefix.
    ///
    /// ```
    /// let o = revkv_client::DeleteOptions::new().with_prefix();
    /// assert_ne!(o, revkv_client::DeleteOptions::default());
    /// ```
    pub fn with_prefix(mut self) -> Self {
        self.range = KeyRange::Prefix;
        self
    }
    /// Every key `>=` the key.
    ///
    /// ```
    /// let o = revkv_client::DeleteOptions::new().with_from_key();
    /// assert_ne!(o, revkv_client::DeleteOptions::default());
    /// ```
    pub fn with_from_key(mut self) -> Self {
        self.range = KeyRange::FromKey;
        self
    }
    /// `[key, end)`.
    ///
    /// ```
    /// let o = revkv_client::DeleteOptions::new().with_range("b");
    /// assert_ne!(o, revkv_client::DeleteOptions::default());
    /// ```
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range = KeyRange::End(end.into());
        self
    }
    /// Return the deleted key-values.
    ///
    /// ```
    /// let o = revkv_client::DeleteOptions::new().with_prev_kv();
    /// assert_ne!(o, revkv_client::DeleteOptions::default());
    /// ```
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_per_kind() {
        let cases: &[(&[u8], KeyRange, &[u8])] = &[
            (b"a", KeyRange::Single, b""),
            (b"a", KeyRange::Prefix, b"b"),
            (b"a\xff", KeyRange::Prefix, b"b"),
            (b"\xff\xff", KeyRange::Prefix, b"\0"),
            (b"", KeyRange::Prefix, b"\0"),
            (b"a", KeyRange::FromKey, b"\0"),
            (b"a", KeyRange::End(b"c".to_vec()), b"c"),
        ];
        for (key, range, want) in cases {
            assert_eq!(range.range_end(key), want.to_vec(), "{key:?} {range:?}");
        }
    }
}
