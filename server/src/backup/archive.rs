//! The snapshot file format: a RocksDB checkpoint's files in one stream, followed by
//! the SHA-256 of everything before it (as etcd appends the SHA-256 of its bbolt file).
//!
//! ```text
//! magic    "revkv-snapshot\0" then the format version, 1      (16 bytes)
//! file*    name length: u16 LE (1..=255) | name (UTF-8, a plain file name)
//!          | content length: u64 LE | content                 (names ascending)
//! end      u16 LE 0
//! padding  zero bytes up to a multiple of 512
//! trailer  SHA-256 of every byte above                         (32 bytes)
//! ```
//!
//! The padding is for etcdctl: `snapshot save` refuses a download whose length is not
//! 32 more than a multiple of 512 (a bbolt file is whole pages) as lacking its digest.
//! The length of the part before the trailer is known from the file list alone, so
//! the server can report `remaining_bytes` from the first chunk on.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{io_err, Error, Result};

pub const MAGIC: &[u8; 16] = b"revkv-snapshot\0\x01";
/// Length of the SHA-256 trailer.
pub const TRAILER: usize = 32;
const MAX_NAME: usize = 255;
/// The body is padded to a multiple of this.
const ALIGN: u64 = 512;

fn padding(unpadded: u64) -> u64 {
    (ALIGN - unpadded % ALIGN) % ALIGN
}

/// Bytes before the trailer for a checkpoint holding `files` (name, length).
pub fn body_len(files: &[(String, u64)]) -> u64 {
    let records: u64 = files
        .iter()
        .map(|(name, len)| 2 + name.len() as u64 + 8 + len)
        .sum();
    let unpadded = MAGIC.len() as u64 + records + 2;
    unpadded + padding(unpadded)
}

/// Writes a checkpoint dir as the archive body and trailer, in chunks of at most
/// `chunk` bytes handed to `emit` (which returns false to stop early: the reader is
/// gone). The trailer is always emitted as a chunk of its own.
pub fn write(
    dir: &Path,
    files: &[(String, u64)],
    chunk: usize,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<bool> {
    let mut w = Chunker {
        buf: Vec::with_capacity(chunk),
        chunk,
        sha: Sha256::new(),
        emit,
        open: true,
        written: 0,
    };
    w.put(MAGIC);
    let mut buf = vec![0u8; chunk.clamp(4096, 1 << 20)];
    for (name, len) in files {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(Error::Format(format!(
                "file name {name:?} cannot be archived"
            )));
        }
        w.put(&(name.len() as u16).to_le_bytes());
        w.put(name.as_bytes());
        w.put(&len.to_le_bytes());
        let path = dir.join(name);
        let mut f = File::open(&path).map_err(io_err(&path))?;
        let mut left = *len;
        while left > 0 && w.open {
            let want = buf.len().min(left as usize);
            let n = f.read(&mut buf[..want]).map_err(io_err(&path))?;
            if n == 0 {
                // A checkpoint's files never change; a short one is damage.
                return Err(Error::Format(format!(
                    "{} shrank while archiving",
                    path.display()
                )));
            }
            w.put(&buf[..n]);
            left -= n as u64;
        }
    }
    w.put(&0u16.to_le_bytes());
    w.put(&vec![0u8; padding(w.written) as usize]);
    w.flush();
    if w.open {
        let sha = std::mem::take(&mut w.sha).finalize().to_vec();
        w.open = (w.emit)(sha);
    }
    Ok(w.open)
}

struct Chunker<'a> {
    buf: Vec<u8>,
    chunk: usize,
    sha: Sha256,
    emit: &'a mut dyn FnMut(Vec<u8>) -> bool,
    open: bool,
    /// Bytes put so far.
    written: u64,
}

impl Chunker<'_> {
    fn put(&mut self, mut data: &[u8]) {
        self.sha.update(data);
        self.written += data.len() as u64;
        while !data.is_empty() && self.open {
            let n = (self.chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == self.chunk {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() && self.open {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
            self.open = (self.emit)(full);
        }
    }
}

/// What [`unpack`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    /// Content bytes of the files (the database's size).
    pub bytes: u64,
}

/// Reads an archive from `src` into the existing, empty dir `dest`. The trailer is
/// compared with the body's SHA-256 unless `skip_hash_check`; either way the stream
/// must end right after it.
pub fn unpack(src: &mut dyn Read, dest: &Path, skip_hash_check: bool) -> Result<Unpacked> {
    let mut r = Hashing {
        inner: src,
        sha: Sha256::new(),
        read: 0,
    };
    let mut magic = [0u8; 16];
    r.exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(Error::NotASnapshot);
    }
    let mut out = Unpacked { files: 0, bytes: 0 };
    let mut last = String::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let mut n2 = [0u8; 2];
        r.exact(&mut n2)?;
        let name_len = u16::from_le_bytes(n2) as usize;
        if name_len == 0 {
            let mut pad = vec![0u8; padding(r.read) as usize];
            r.exact(&mut pad)?;
            if pad.iter().any(|&b| b != 0) {
                return Err(Error::Format("non-zero padding".into()));
            }
            break;
        }
        let mut name = vec![0u8; name_len];
        r.exact(&mut name)?;
        let name = String::from_utf8(name)
            .map_err(|_| Error::Format("a file name is not UTF-8".into()))?;
        if name_len > MAX_NAME
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('\0')
            || name <= last
        {
            return Err(Error::Format(format!(
                "bad or out-of-order file name {name:?}"
            )));
        }
        let mut l8 = [0u8; 8];
        r.exact(&mut l8)?;
        let mut left = u64::from_le_bytes(l8);
        let path = dest.join(&name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        out.bytes += left;
        while left > 0 {
            let want = buf.len().min(left as usize);
            r.exact(&mut buf[..want])?;
            f.write_all(&buf[..want]).map_err(io_err(&path))?;
            left -= want as u64;
        }
        f.sync_all().map_err(io_err(&path))?;
        out.files += 1;
        last = name;
    }
    let body_sha = std::mem::take(&mut r.sha).finalize();
    let mut trailer = [0u8; TRAILER];
    r.inner
        .read_exact(&mut trailer)
        .map_err(|_| Error::Format("the SHA-256 trailer is missing".into()))?;
    if !skip_hash_check && trailer[..] != body_sha[..] {
        return Err(Error::HashMismatch);
    }
    let mut extra = [0u8; 1];
    if r.inner
        .read(&mut extra)
        .map_err(|e| Error::Format(e.to_string()))?
        != 0
    {
        return Err(Error::Format("bytes follow the SHA-256 trailer".into()));
    }
    Ok(out)
}

struct Hashing<'a> {
    inner: &'a mut dyn Read,
    sha: Sha256,
    /// Bytes read so far.
    read: u64,
}

impl Hashing<'_> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::Format("the snapshot is truncated".into()),
            _ => Error::Format(e.to_string()),
        })?;
        self.sha.update(&buf[..]);
        self.read += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> Vec<(String, u64)> {
        std::fs::write(dir.join("000010.sst"), vec![7u8; 100_000]).expect("write");
        std::fs::write(dir.join("CURRENT"), b"MANIFEST-000005\n").expect("write");
        std::fs::write(dir.join("empty"), b"").expect("write");
        crate::storage::checkpoint::list_files(dir).expect("list")
    }

    fn archive(dir: &Path, files: &[(String, u64)], chunk: usize) -> (Vec<u8>, Vec<usize>) {
        let mut all = Vec::new();
        let mut sizes = Vec::new();
        let done = write(dir, files, chunk, &mut |c| {
            sizes.push(c.len());
            all.extend_from_slice(&c);
            true
        })
        .expect("write");
        assert!(done);
        (all, sizes)
    }

    #[test]
    fn round_trips_and_reports_its_length_up_front() {
        let src = tempfile::tempdir().expect("tmp");
        let files = sample(src.path());
        let (bytes, sizes) = archive(src.path(), &files, 32 * 1024);
        assert_eq!(bytes.len() as u64, body_len(&files) + TRAILER as u64);
        // What etcdctl's `snapshot save` checks before it keeps a download.
        assert_eq!(bytes.len() % 512, TRAILER);
        assert_eq!(*sizes.last().expect("chunks"), TRAILER);
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s <= 32 * 1024));
        let dest = tempfile::tempdir().expect("tmp");
        let got = unpack(&mut &bytes[..], dest.path(), false).expect("unpack");
        assert_eq!(got.files, 3);
        assert_eq!(got.bytes, 100_000 + 16);
        for (name, _) in &files {
            assert_eq!(
                std::fs::read(src.path().join(name)).expect("src"),
                std::fs::read(dest.path().join(name)).expect("dest")
            );
        }
    }

    #[test]
    fn damage_is_refused() {
        let src = tempfile::tempdir().expect("tmp");
        let files = sample(src.path());
        let (bytes, _) = archive(src.path(), &files, 4096);
        let fresh = || tempfile::tempdir().expect("tmp");

        let mut flipped = bytes.clone();
        flipped[500] ^= 1;
        let d = fresh();
        assert!(matches!(
            unpack(&mut &flipped[..], d.path(), false),
            Err(Error::HashMismatch)
        ));
        // --skip-hash-check takes the content as it is.
        let d = fresh();
        assert!(unpack(&mut &flipped[..], d.path(), true).is_ok());

        let d = fresh();
        let cut = &bytes[..bytes.len() - 40];
        assert!(matches!(
            unpack(&mut &cut[..], d.path(), false),
            Err(Error::Format(_))
        ));

        let d = fresh();
        let bolt = vec![0u8; 4096];
        assert!(matches!(
            unpack(&mut &bolt[..], d.path(), false),
            Err(Error::NotASnapshot)
        ));

        let d = fresh();
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            unpack(&mut &longer[..], d.path(), false),
            Err(Error::Format(_))
        ));
    }

    #[test]
    fn a_reader_that_leaves_stops_the_writer() {
        let src = tempfile::tempdir().expect("tmp");
        let files = sample(src.path());
        let mut calls = 0;
        let done = write(src.path(), &files, 4096, &mut |_| {
            calls += 1;
            calls < 2
        })
        .expect("write");
        assert!(!done);
        assert_eq!(calls, 2);
    }
}
