//! `make-mirror [options] <destination>`, as etcdctl's: copies the keys under
//! `--prefix` as of the source's current revision to the destination cluster, then
//! follows the source's changes from the next revision on, one destination txn per
//! source revision, until stopped. Every 30 seconds it prints how many keys and
//! events it has copied so far.
//!
//! Keys are renamed by replacing the source prefix with the destination prefix
//! (`--dest-prefix`, the source prefix by default, nothing with `--no-dest-prefix`).
//! Leases are not mirrored, as in etcdctl.

use std::time::Duration;

use revkv_client::prefix_end;
use revkv_proto::etcdserverpb::{self as pb, request_op, watch_request};
use revkv_proto::mvccpb;
use tokio_stream::StreamExt;

use super::{out, Ctx};
use crate::conn::{CallError, Conn};
use crate::exit::{CtlError, CtlResult};
use crate::flags::{Kind, Spec};
use crate::global::{Global, TlsFlags};
use crate::unary;

/// `make-mirror`'s flags.
pub const SPECS: &[Spec] = &[
    Spec::new("prefix", Kind::Str, "", "Key-value prefix to mirror"),
    Spec::new(
        "dest-prefix",
        Kind::Str,
        "",
        "destination prefix to mirror a prefix to a different prefix in the destination cluster",
    ),
    Spec::new(
        "no-dest-prefix",
        Kind::Bool,
        "false",
        "mirror key-values to the root of the destination cluster",
    ),
    Spec::new(
        "dest-cert",
        Kind::Str,
        "",
        "Identify secure client using this TLS certificate file for the destination cluster",
    ),
    Spec::new(
        "dest-key",
        Kind::Str,
        "",
        "Identify secure client using this TLS key file",
    ),
    Spec::new(
        "dest-cacert",
        Kind::Str,
        "",
        "Verify certificates of TLS enabled secure servers using this CA bundle",
    ),
    Spec::new(
        "dest-insecure-transport",
        Kind::Bool,
        "true",
        "Disable transport security for client connections",
    ),
];

/// Keys per page of the initial copy (clientv3's mirror `batchLimit`).
const PAGE: i64 = 1000;

/// How often the running total is printed.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// How long to wait before watching again after the source's stream broke.
const REWATCH_BACKOFF: Duration = Duration::from_millis(100);

/// How source keys are renamed at the destination (Go's `strings.Replace(key,
/// prefix, dest, 1)`: the first occurrence, which for a key under the prefix is its
/// start; an empty prefix puts `dest` in front).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// `--prefix`.
    pub prefix: Vec<u8>,
    /// What replaces it.
    pub dest: Vec<u8>,
}

impl Rename {
    /// etcdctl's rules for `--dest-prefix` and `--no-dest-prefix`.
    pub fn new(prefix: &str, dest_prefix: &str, no_dest_prefix: bool) -> CtlResult<Rename> {
        if no_dest_prefix && !dest_prefix.is_empty() {
            return Err(CtlError::bad_args(
                "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
            ));
        }
        let dest = if !no_dest_prefix && dest_prefix.is_empty() {
            prefix
        } else {
            dest_prefix
        };
        Ok(Rename {
            prefix: prefix.as_bytes().to_vec(),
            dest: dest.as_bytes().to_vec(),
        })
    }

    /// The destination key of source key `key`.
    pub fn apply(&self, key: &[u8]) -> Vec<u8> {
        let at = if self.prefix.is_empty() {
            Some(0)
        } else {
            key.windows(self.prefix.len())
                .position(|w| w == self.prefix.as_slice())
        };
        match at {
            Some(i) => [&key[..i], &self.dest, &key[i + self.prefix.len()..]].concat(),
            None => key.to_vec(),
        }
    }
}

/// The source range to copy and watch: the keys under `prefix`, or every key for an
/// empty one (clientv3's `WithPrefix` and its mirror's `WithFromKey` from `\0`).
pub fn source_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.to_vec(), prefix_end(prefix))
    }
}

/// Splits a watch response's events into one op list per revision: a txn cannot
/// name a key twice, and each source revision stays one destination revision.
pub fn txns(events: &[mvccpb::Event], rename: &Rename) -> Vec<Vec<pb::RequestOp>> {
    let mut out: Vec<Vec<pb::RequestOp>> = Vec::new();
    let mut last_rev = 0;
    for ev in events {
        let kv = ev.kv.clone().unwrap_or_default();
        if out.is_empty() || kv.mod_revision > last_rev {
            out.push(Vec::new());
        }
        last_rev = kv.mod_revision;
        let key = rename.apply(&kv.key);
        let op = if ev.r#type == mvccpb::event::EventType::Delete as i32 {
            request_op::Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key,
                ..Default::default()
            })
        } else {
            request_op::Request::RequestPut(pb::PutRequest {
                key,
                value: kv.value,
                ..Default::default()
            })
        };
        if let Some(ops) = out.last_mut() {
            ops.push(pb::RequestOp { request: Some(op) });
        }
    }
    out
}

/// The destination's settings: its one endpoint and the `--dest-*` TLS flags, the
/// timeouts of the global flags, no credentials (etcdctl passes none).
fn dest_global(ctx: &Ctx, g: &Global, endpoint: &str) -> Global {
    Global {
        endpoints: vec![endpoint.to_owned()],
        user: String::new(),
        password: String::new(),
        tls: TlsFlags {
            cacert: ctx.str("dest-cacert"),
            cert: ctx.str("dest-cert"),
            key: ctx.str("dest-key"),
            insecure_skip_verify: false,
            insecure_transport: ctx.bool("dest-insecure-transport"),
        },
        ..g.clone()
    }
}

/// `make-mirror`.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let [dest_endpoint] = ctx.args() else {
        return Err(CtlError::bad_args(
            "make-mirror takes one destination argument",
        ));
    };
    let dest_endpoint = dest_endpoint.clone();
    // The global flags once: applying `ETCDCTL_*` twice would take the variables for
    // flags given twice.
    let (g, _) = ctx.global()?;
    let dest = Conn::connect(&dest_global(ctx, &g, &dest_endpoint)).await?;
    let source = Conn::connect(&g).await?;
    let prefix = ctx.str("prefix");
    mirror(ctx, &source, &dest, &prefix).await
}

async fn mirror(ctx: &Ctx, source: &Conn, dest: &Conn, prefix: &str) -> CtlResult {
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let report = {
        let total = total.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REPORT_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                out(format!("{}\n", total.load(std::sync::atomic::Ordering::Relaxed)).as_bytes());
            }
        })
    };
    let result = copy_and_follow(ctx, source, dest, prefix, &total).await;
    report.abort();
    result
}

async fn copy_and_follow(
    ctx: &Ctx,
    source: &Conn,
    dest: &Conn,
    prefix: &str,
    total: &std::sync::atomic::AtomicU64,
) -> CtlResult {
    let count = |n: usize| total.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    let fail = |e: CallError| CtlError::error(e.message());
    // The revision to copy at, read first as clientv3's syncer does (a get of "foo");
    // the flag check comes after it, in etcdctl's order.
    let probe = pb::RangeRequest {
        key: b"foo".to_vec(),
        ..Default::default()
    };
    let at = unary!(source, source.kv_client(), range, probe);
    let rename = Rename::new(prefix, &ctx.str("dest-prefix"), ctx.bool("no-dest-prefix"))?;
    let rev = at.map_err(fail)?.header.map(|h| h.revision).unwrap_or(0);

    let (mut key, range_end) = source_range(prefix.as_bytes());
    loop {
        let page = pb::RangeRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            limit: PAGE,
            revision: rev,
            ..Default::default()
        };
        let r = unary!(source, source.kv_client(), range, page).map_err(fail)?;
        for kv in &r.kvs {
            let put = pb::PutRequest {
                key: rename.apply(&kv.key),
                value: kv.value.clone(),
                ..Default::default()
            };
            unary!(dest, dest.kv_client(), put, put).map_err(fail)?;
            count(1);
        }
        match r.kvs.last() {
            Some(last) if r.more => key = [last.key.as_slice(), &[0]].concat(),
            _ => break,
        }
    }

    let mut next = rev + 1;
    loop {
        // clientv3's `WithPrefix`, which for an empty prefix watches every key.
        let (key, range_end) = source_range(prefix.as_bytes());
        let watch = pb::WatchCreateRequest {
            key,
            range_end,
            start_revision: next,
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let _ = tx
            .send(pb::WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(watch)),
            })
            .await;
        let opened = source
            .watch()
            .watch(source.request(tokio_stream::wrappers::ReceiverStream::new(rx)))
            .await;
        let mut stream = match opened {
            Ok(s) => s.into_inner(),
            Err(s) => {
                // clientv3 keeps retrying a watch whose endpoint went away.
                tracing::debug!(error = %s, "could not watch the source; retrying");
                tokio::time::sleep(REWATCH_BACKOFF).await;
                continue;
            }
        };
        while let Some(item) = stream.next().await {
            let resp = match item {
                Ok(r) => r,
                Err(s) => {
                    tracing::debug!(error = %s, "the source's watch broke; watching again");
                    break;
                }
            };
            if resp.compact_revision != 0 {
                return Err(CtlError::error(
                    "etcdserver: mvcc: required revision has been compacted",
                ));
            }
            for ops in txns(&resp.events, &rename) {
                let n = ops.len();
                let txn = pb::TxnRequest {
                    success: ops,
                    ..Default::default()
                };
                unary!(dest, dest.kv_client(), txn, txn).map_err(fail)?;
                count(n);
            }
            if let Some(ev) = resp.events.last() {
                next = ev.kv.as_ref().map_or(next, |kv| kv.mod_revision + 1);
            }
        }
        drop(tx);
        tokio::time::sleep(REWATCH_BACKOFF).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, rev: i64) -> mvccpb::Event {
        mvccpb::Event {
            r#type: mvccpb::event::EventType::Put as i32,
            kv: Some(mvccpb::KeyValue {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                mod_revision: rev,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    fn del(key: &str, rev: i64) -> mvccpb::Event {
        mvccpb::Event {
            r#type: mvccpb::event::EventType::Delete as i32,
            kv: Some(mvccpb::KeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: rev,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    fn keys(ops: &[pb::RequestOp]) -> Vec<String> {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => {
                    format!("put {}", String::from_utf8_lossy(&p.key))
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    format!("del {}", String::from_utf8_lossy(&d.key))
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn destination_prefix_follows_etcdctls_rules() {
        let r = Rename::new("a/", "", false).expect("default");
        assert_eq!(r.apply(b"a/x"), b"a/x", "the source prefix by default");
        let r = Rename::new("a/", "m/", false).expect("dest prefix");
        assert_eq!(r.apply(b"a/x"), b"m/x");
        let r = Rename::new("a/", "", true).expect("no dest prefix");
        assert_eq!(r.apply(b"a/x"), b"x", "mirrored to the root");
        let r = Rename::new("", "m/", false).expect("empty prefix");
        assert_eq!(r.apply(b"k"), b"m/k", "an empty prefix puts dest in front");
        let e = Rename::new("a/", "m/", true).expect_err("both");
        assert_eq!(e.code, crate::exit::BAD_ARGS);
        assert_eq!(
            e.message.as_deref(),
            Some(
                "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one"
            )
        );
    }

    #[test]
    fn the_whole_keyspace_is_copied_for_an_empty_prefix() {
        assert_eq!(source_range(b""), (vec![0], vec![0]));
        assert_eq!(source_range(b"a/"), (b"a/".to_vec(), b"a0".to_vec()));
    }

    #[test]
    fn one_destination_txn_per_source_revision() {
        let r = Rename::new("a/", "m/", false).expect("rename");
        let events = [
            put("a/1", "x", 5),
            put("a/2", "y", 6),
            del("a/3", 6),
            put("a/1", "z", 7),
        ];
        let got: Vec<Vec<String>> = txns(&events, &r).iter().map(|t| keys(t)).collect();
        assert_eq!(
            got,
            vec![
                vec!["put m/1".to_owned()],
                vec!["put m/2".to_owned(), "del m/3".to_owned()],
                vec!["put m/1".to_owned()],
            ]
        );
        assert!(txns(&[], &r).is_empty());
    }
}
