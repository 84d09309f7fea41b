//! [`Namespace`]: a [`Kv`] confined to the keys under a prefix, as etcd's
//! `namespace` package: the prefix is added to every key, range and compare on the
//! way in (nested txns included) and stripped from every key on the way out.

use std::future::Future;

use crate::error::Result;
use crate::kv::Kv;
use crate::op::{Compare, Op, OpResponse, Txn, TxnResponse};
use crate::options::{prefix_end, KeyRange};
use crate::response::KeyValue;

/// A [`Kv`] that sees only the keys under `prefix`, without the prefix.
///
/// ```no_run
/// use revkv_client::{Client, Kv, Namespace};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// let app = Namespace::new(client.kv(), "app/");
/// app.put("config", "v1").await?; // writes "app/config"
/// let got = app.get("config").await?;
/// assert_eq!(got.kvs[0].key, b"config");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Namespace<K> {
    inner: K,
    prefix: Vec<u8>,
}

impl<K: Kv> Namespace<K> {
    /// Wraps `inner` in namespace `prefix`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// let ns = revkv_client::Namespace::new(client.kv(), "tenant-1/");
    /// # }
    /// ```
    pub fn new(inner: K, prefix: impl Into<Vec<u8>>) -> Self {
        Namespace {
            inner,
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// let ns = revkv_client::Namespace::new(client.kv(), "a/");
    /// assert_eq!(ns.prefix(), b"a/");
    /// # }
    /// ```
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn op_in(&self, op: Op) -> Op {
        match op {
            Op::Get { key, mut options } => {
                let (key, range) = prefix_range(&self.prefix, &key, &options.range);
                options.range = range;
                Op::Get { key, options }
            }
            Op::Put {
                key,
                value,
                options,
            } => Op::Put {
                key: prefixed(&self.prefix, &key),
                value,
                options,
            },
            Op::Delete { key, mut options } => {
                let (key, range) = prefix_range(&self.prefix, &key, &options.range);
                options.range = range;
                Op::Delete { key, options }
            }
            Op::Txn(t) => Op::Txn(Txn {
                compare: t.compare.into_iter().map(|c| self.compare_in(c)).collect(),
                success: t.success.into_iter().map(|o| self.op_in(o)).collect(),
                failure: t.failure.into_iter().map(|o| self.op_in(o)).collect(),
            }),
            compact @ Op::Compact { .. } => compact,
        }
    }

    fn compare_in(&self, mut c: Compare) -> Compare {
        let (key, range) = prefix_range(&self.prefix, &c.key, &c.range);
        c.key = key;
        c.range = range;
        c
    }

    fn response_out(&self, r: OpResponse) -> OpResponse {
        let strip = |kv: &mut KeyValue| strip_prefix(&self.prefix, &mut kv.key);
        match r {
            OpResponse::Get(mut g) => {
                g.kvs.iter_mut().for_each(strip);
                OpResponse::Get(g)
            }
            OpResponse::Put(mut p) => {
                p.prev_kv.iter_mut().for_each(strip);
                OpResponse::Put(p)
            }
            OpResponse::Delete(mut d) => {
                d.prev_kvs.iter_mut().for_each(strip);
                OpResponse::Delete(d)
            }
            OpResponse::Txn(t) => OpResponse::Txn(TxnResponse {
                responses: t
                    .responses
                    .into_iter()
                    .map(|r| self.response_out(r))
                    .collect(),
                ..t
            }),
            compact @ OpResponse::Compact(_) => compact,
        }
    }
}

impl<K: Kv> Kv for Namespace<K> {
    fn execute(&self, op: Op) -> impl Future<Output = Result<OpResponse>> + Send {
        let op = self.op_in(op);
        async move { Ok(self.response_out(self.inner.execute(op).await?)) }
    }
}

fn prefixed(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + key.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(key);
    k
}

/// `key` and `range` inside namespace `prefix`. Prefix and from-key ranges stay
/// inside the namespace: "every key" becomes "every key under the prefix", as etcd's
/// `prefixInterval` does.
pub(crate) fn prefix_range(prefix: &[u8], key: &[u8], range: &KeyRange) -> (Vec<u8>, KeyRange) {
    let key_in = prefixed(prefix, key);
    let to_end_of_namespace = || {
        let end = prefix_end(prefix);
        if end == [0] {
            // An all-0xff (or empty) prefix: the namespace runs to the end of the keyspace.
            KeyRange::FromKey
        } else {
            KeyRange::End(end)
        }
    };
    let range = match range {
        KeyRange::Single => KeyRange::Single,
        // prefix_end(prefix + key) is prefix_end(key) inside the namespace, and for an
        // empty key the end of the namespace.
        KeyRange::Prefix => {
            if key.is_empty() {
                to_end_of_namespace()
            } else {
                KeyRange::Prefix
            }
        }
        KeyRange::FromKey => to_end_of_namespace(),
        KeyRange::End(end) if end.as_slice() == [0] => to_end_of_namespace(),
        KeyRange::End(end) if end.is_empty() => KeyRange::Single,
        KeyRange::End(end) => KeyRange::End(prefixed(prefix, end)),
    };
    (key_in, range)
}

/// Removes `prefix` from the front of `key` (keys from the server always have it).
pub(crate) fn strip_prefix(prefix: &[u8], key: &mut Vec<u8>) {
    if !prefix.is_empty() && key.starts_with(prefix) {
        key.drain(..prefix.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;
    use crate::op::CompareOp;
    use crate::options::{DeleteOptions, GetOptions, PutOptions};

    #[test]
    fn ranges_stay_inside_the_namespace() {
        let p = b"app/";
        type Case<'a> = (&'a [u8], KeyRange, &'a [u8], &'a [u8]);
        let cases: Vec<Case<'_>> = vec![
            (b"a", KeyRange::Single, b"app/a", b""),
            (b"a", KeyRange::Prefix, b"app/a", b"app/b"),
            (b"", KeyRange::Prefix, b"app/", b"app0"),
            (b"a", KeyRange::FromKey, b"app/a", b"app0"),
            (b"a", KeyRange::End(b"c".to_vec()), b"app/a", b"app/c"),
            (b"a", KeyRange::End(vec![0]), b"app/a", b"app0"),
            (b"\xff", KeyRange::Prefix, b"app/\xff", b"app0"),
        ];
        for (key, range, want_key, want_end) in cases {
            let (k, r) = prefix_range(p, key, &range);
            assert_eq!(k, want_key, "{key:?} {range:?}");
            assert_eq!(r.range_end(&k), want_end, "{key:?} {range:?}");
        }
        // A prefix of 0xff bytes runs to the end of the keyspace.
        let (k, r) = prefix_range(b"\xff", b"", &KeyRange::FromKey);
        assert_eq!((k, r.range_end(b"\xff")), (b"\xff".to_vec(), vec![0]));
    }

    #[tokio::test]
    async fn keys_are_prefixed_in_and_stripped_out() {
        let fake = FakeKv::default();
        fake.put("other", "x").await.expect("put");
        let ns = Namespace::new(&fake, "app/");
        ns.put("a", "1").await.expect("put");
        let put = ns
            .put_with("a", "2", PutOptions::new().with_prev_kv())
            .await
            .expect("put");
        assert_eq!(put.prev_kv.expect("prev").key, b"a");
        assert_eq!(fake.get("app/a").await.expect("get").kvs[0].value, b"2");

        let all = ns
            .get_with("", GetOptions::new().with_prefix())
            .await
            .expect("get");
        assert_eq!(
            all.kvs.len(),
            1,
            "the key outside the namespace is not seen"
        );
        assert_eq!(all.kvs[0].key, b"a");
        let from = ns
            .get_with("", GetOptions::new().with_from_key())
            .await
            .expect("get");
        assert_eq!(from.count, 1);

        let del = ns
            .delete_with("a", DeleteOptions::new().with_prev_kv())
            .await
            .expect("delete");
        assert_eq!(del.prev_kvs[0].key, b"a");
        assert_eq!(fake.get("other").await.expect("get").count, 1);
    }

    #[tokio::test]
    async fn nested_txns_are_prefixed_and_stripped() {
        let fake = FakeKv::default();
        let ns = Namespace::new(&fake, "ns/");
        ns.put("k", "v").await.expect("put");
        let inner = Txn::new()
            .when([Compare::value("k", CompareOp::Equal, "v")])
            .and_then([Op::get("k", GetOptions::new())]);
        let txn = Txn::new()
            .when([Compare::version("k", CompareOp::Greater, 0)])
            .and_then([Op::Txn(inner)]);
        let r = ns.txn(txn).await.expect("txn");
        assert!(r.succeeded);
        let OpResponse::Txn(inner) = &r.responses[0] else {
            panic!("nested txn response");
        };
        assert!(inner.succeeded);
        assert_eq!(inner.kvs().next().expect("kv").key, b"k");
        let sent = fake.ops();
        let Op::Txn(t) = sent.last().expect("txn sent") else {
            panic!("txn")
        };
        assert_eq!(t.compare[0].key, b"ns/k");
    }
}
