//! Benchmark keys, encoded exactly as etcd's `tools/benchmark` encodes them: a
//! `--key-size` buffer of zero bytes starting with the key number as a Go
//! `binary.PutVarint` (zig-zag varint). Using etcd's encoding means a run of this tool
//! and a run of etcd's tool write the same keys, so their figures compare.

use anyhow::{bail, Result};
use rand::Rng;

/// Which keys a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGen {
    /// Bytes per key.
    pub size: usize,
    /// Number of distinct keys (`--key-space-size`).
    pub space: u64,
    /// Key `i % space` for request `i` instead of a random one.
    pub sequential: bool,
}

impl KeyGen {
    /// Checks that every key number of the space fits in `size` bytes.
    pub fn new(size: usize, space: u64, sequential: bool) -> Result<Self> {
        if space == 0 {
            bail!("--key-space-size must be at least 1");
        }
        let need = varint_len(space - 1);
        if size < need {
            bail!(
                "--key-size {size} is too small for --key-space-size {space} (needs {need} bytes)"
            );
        }
        Ok(KeyGen {
            size,
            space,
            sequential,
        })
    }

    /// The key number request `i` uses.
    pub fn number(&self, i: u64, rng: &mut impl Rng) -> u64 {
        if self.sequential {
            i % self.space
        } else {
            rng.gen_range(0..self.space)
        }
    }

    /// The key bytes of key number `n`.
    pub fn key(&self, n: u64) -> Vec<u8> {
        let mut k = vec![0u8; self.size];
        put_varint(&mut k, n);
        k
    }
}

/// Go's `binary.PutVarint` of a non-negative number: zig-zag (`n << 1`), then the
/// unsigned base-128 varint. Writes as many bytes as fit.
fn put_varint(buf: &mut [u8], n: u64) {
    let mut ux = n << 1;
    for b in buf.iter_mut() {
        if ux < 0x80 {
            *b = ux as u8;
            return;
        }
        *b = (ux as u8) | 0x80;
        ux >>= 7;
    }
}

/// Bytes `put_varint` needs for `n`.
fn varint_len(n: u64) -> usize {
    let mut ux = n << 1;
    let mut len = 1;
    while ux >= 0x80 {
        ux >>= 7;
        len += 1;
    }
    len
}

/// `len` random bytes, as etcd's `mustRandBytes` (one value shared by a whole run).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill(v.as_mut_slice());
    v
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn keys_match_go_put_varint() {
        let g = KeyGen::new(8, 100_000, true).expect("keygen");
        // Go: binary.PutVarint(k, 0) / (k, 1) / (k, 64) / (k, 99999).
        assert_eq!(g.key(0), [0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(g.key(1), [2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(g.key(64), [0x80, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(g.key(99_999), [0xbe, 0x9a, 0x0c, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn distinct_numbers_give_distinct_keys() {
        let g = KeyGen::new(3, 100_000, true).expect("keygen");
        let keys: std::collections::HashSet<Vec<u8>> = (0..100_000).map(|n| g.key(n)).collect();
        assert_eq!(keys.len(), 100_000);
    }

    #[test]
    fn key_size_must_hold_the_key_space() {
        assert!(KeyGen::new(2, 100_000, false).is_err());
        assert!(KeyGen::new(3, 100_000, false).is_ok());
        assert!(KeyGen::new(1, 64, false).is_ok());
        assert!(KeyGen::new(1, 65, false).is_err());
        assert!(KeyGen::new(8, 0, false).is_err());
    }

    #[test]
    fn sequential_wraps_random_stays_in_space() {
        let mut rng = StdRng::seed_from_u64(7);
        let seq = KeyGen::new(8, 5, true).expect("keygen");
        let got: Vec<u64> = (0..7).map(|i| seq.number(i, &mut rng)).collect();
        assert_eq!(got, [0, 1, 2, 3, 4, 0, 1]);
        let rnd = KeyGen::new(8, 5, false).expect("keygen");
        assert!((0..1000).all(|i| rnd.number(i, &mut rng) < 5));
        assert_eq!(random_bytes(17).len(), 17);
    }
}
