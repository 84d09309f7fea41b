//! Whether a user's key permissions cover a requested key range (etcd's
//! `auth/range_perm_cache.go`).
//!
//! A permission or a request names keys the way etcd's requests do:
//! - an empty `range_end` means the single key `key`;
//! - a `range_end` of `"\0"` means every key from `key` on;
//! - otherwise the half-open interval `[key, range_end)`.
//!
//! A request is permitted when the union of the intervals a user may read (READ and
//! READWRITE permissions of all their roles) or write (WRITE and READWRITE) contains
//! every key it names. Intervals that touch merge, so `[a, c)` and `[c, e)` together
//! permit a range `[b, d)` that neither permits alone.

use revkv_proto::authpb::{permission::Type, Permission};

/// What a request does with the keys it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn granted_by(self, t: i32) -> bool {
        let t = Type::try_from(t).unwrap_or(Type::Read);
        matches!(
            (self, t),
            (_, Type::Readwrite) | (Access::Read, Type::Read) | (Access::Write, Type::Write)
        )
    }
}

/// A half-open key interval; `end == None` is unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        let end = match range_end {
            [] => {
                // The smallest key after `key`.
                let mut next = key.to_vec();
                next.push(0);
                Some(next)
            }
            [0] => None,
            end => Some(end.to_vec()),
        };
        Interval {
            start: key.to_vec(),
            end,
        }
    }

    fn is_empty(&self) -> bool {
        self.end.as_ref().is_some_and(|e| *e <= self.start)
    }
}

/// True when `perms` give `access` to every key of `key`..`range_end`.
pub fn permits<'a>(
    perms: impl IntoIterator<Item = &'a Permission>,
    access: Access,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let want = Interval::of(key, range_end);
    if want.is_empty() {
        // etcd permits a request naming no keys only if its start key is permitted;
        // checking the start alone keeps an inverted range from passing for free.
        return permits(perms, access, key, &[]);
    }
    let mut granted: Vec<Interval> = perms
        .into_iter()
        .filter(|p| access.granted_by(p.perm_type))
        .map(|p| Interval::of(&p.key, &p.range_end))
        .filter(|i| !i.is_empty())
        .collect();
    granted.sort_by(|a, b| a.start.cmp(&b.start));
    // Walk the merged union from the left: `covered` is how far keys from
    // `want.start` on are permitted without a gap.
    let mut covered: Option<Option<Vec<u8>>> = None;
    for i in granted {
        match &mut covered {
            None => {
                if i.start <= want.start && ends_after(&i.end, &want.start) {
                    covered = Some(i.end);
                }
            }
            Some(reach) => {
                // A gap before this interval ends the union that holds want.start.
                let Some(r) = reach else { break };
                if i.start > *r {
                    break;
                }
                if later(&i.end, reach) {
                    *reach = i.end;
                }
            }
        }
    }
    match (covered, &want.end) {
        (None, _) => false,
        (Some(None), _) => true,
        (Some(Some(_)), None) => false,
        (Some(Some(reach)), Some(end)) => reach >= *end,
    }
}

/// True when an interval ending at `end` contains keys after `key` (i.e. `key` itself).
fn ends_after(end: &Option<Vec<u8>>, key: &[u8]) -> bool {
    end.as_deref().is_none_or(|e| e > key)
}

/// True when `a` reaches further than `b` (`None` is unbounded).
fn later(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> bool {
    match (a, b) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: Type, key: &str, end: &[u8]) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.as_bytes().to_vec(),
            range_end: end.to_vec(),
        }
    }

    #[test]
    fn single_keys_and_types() {
        let p = [perm(Type::Read, "foo", b""), perm(Type::Write, "bar", b"")];
        assert!(permits(&p, Access::Read, b"foo", b""));
        assert!(!permits(&p, Access::Write, b"foo", b""));
        assert!(permits(&p, Access::Write, b"bar", b""));
        assert!(!permits(&p, Access::Read, b"bar", b""));
        assert!(!permits(&p, Access::Read, b"foo0", b""));
        // A range of one key is the key.
        assert!(permits(&p, Access::Read, b"foo", b"foo\0"));
        assert!(!permits(&p, Access::Read, b"foo", b"fop"));
    }

    #[test]
    fn prefixes_and_from_key() {
        let p = [
            perm(Type::Readwrite, "dir/", b"dir0"),
            perm(Type::Read, "z", b"\0"),
        ];
        assert!(permits(&p, Access::Write, b"dir/a", b""));
        assert!(permits(&p, Access::Read, b"dir/", b"dir0"));
        assert!(permits(&p, Access::Read, b"dir/a", b"dir/b"));
        assert!(!permits(&p, Access::Read, b"dir", b"dir0"));
        assert!(!permits(&p, Access::Read, b"dir/", b"\0"));
        assert!(permits(&p, Access::Read, b"zz", b"\0"));
        assert!(!permits(&p, Access::Write, b"zz", b""));
        assert!(!permits(&p, Access::Read, b"", b"\0"));
    }

    #[test]
    fn touching_and_overlapping_intervals_merge() {
        let p = [
            perm(Type::Read, "a", b"c"),
            perm(Type::Readwrite, "c", b"e"),
            perm(Type::Read, "d", b"\0"),
        ];
        assert!(permits(&p, Access::Read, b"b", b"d"));
        assert!(permits(&p, Access::Read, b"a", b"\0"));
        assert!(!permits(&p, Access::Write, b"b", b"d"));
        let gap = [perm(Type::Read, "a", b"c"), perm(Type::Read, "d", b"f")];
        assert!(!permits(&gap, Access::Read, b"b", b"e"));
        assert!(permits(&gap, Access::Read, b"d", b"e"));
    }

    #[test]
    fn everything_and_nothing() {
        let all = [perm(Type::Readwrite, "", b"\0")];
        assert!(permits(&all, Access::Write, b"", b"\0"));
        assert!(permits(&all, Access::Read, b"any", b""));
        assert!(!permits(&[], Access::Read, b"any", b""));
    }
}
