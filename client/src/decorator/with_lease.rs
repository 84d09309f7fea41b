//! [`WithLease`]: attaches a lease to every put, made with [`crate::Kv::with_lease`].

use std::future::Future;

use crate::error::Result;
use crate::kv::Kv;
use crate::op::{Op, OpResponse, Txn};

/// A [`Kv`] whose puts (inside txns too) carry lease `id` unless they name one.
///
/// ```no_run
/// use revkv_client::{Client, Kv};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// let lease = client.lease().grant(10).await?;
/// let kv = client.kv().with_lease(lease.id);
/// kv.put("session/me", "here").await?; // goes when the lease does
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WithLease<K> {
    inner: K,
    lease: i64,
}

impl<K: Kv> WithLease<K> {
    /// Wraps `inner` with lease `lease`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// let kv = revkv_client::WithLease::new(client.kv(), 0x1234);
    /// assert_eq!(kv.lease(), 0x1234);
    /// # }
    /// ```
    pub fn new(inner: K, lease: i64) -> Self {
        WithLease { inner, lease }
    }

    /// The lease attached.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// use revkv_client::Kv;
    /// assert_eq!(client.kv().with_lease(7).lease(), 7);
    /// # }
    /// ```
    pub fn lease(&self) -> i64 {
        self.lease
    }

    fn attach(&self, op: Op) -> Op {
        match op {
            Op::Put {
                key,
                value,
                mut options,
            } => {
                if options.lease == 0 && !options.ignore_lease {
                    options.lease = self.lease;
                }
                Op::Put {
                    key,
                    value,
                    options,
                }
            }
            Op::Txn(t) => Op::Txn(Txn {
                compare: t.compare,
                success: t.success.into_iter().map(|o| self.attach(o)).collect(),
                failure: t.failure.into_iter().map(|o| self.attach(o)).collect(),
            }),
            other => other,
        }
    }
}

impl<K: Kv> Kv for WithLease<K> {
    fn execute(&self, op: Op) -> impl Future<Output = Result<OpResponse>> + Send {
        self.inner.execute(self.attach(op))
    }
}

#[cfg(test)]
mod tests {
    use crate::fake::FakeKv;
    use crate::kv::Kv;
    use crate::op::{Op, Txn};
    use crate::options::PutOptions;

    #[tokio::test]
    async fn puts_get_the_lease_unless_they_name_one() {
        let fake = FakeKv::default();
        let kv = (&fake).with_lease(42);
        kv.put("a", "1").await.expect("put");
        kv.put_with("b", "1", PutOptions::new().with_lease(7))
            .await
            .expect("put");
        kv.txn(Txn::new().and_then([Op::put("c", "1", PutOptions::new())]))
            .await
            .expect("txn");
        let lease = |k: &str| {
            let fake = &fake;
            let k = k.to_owned();
            async move { fake.get(k).await.expect("get").kvs[0].lease }
        };
        assert_eq!(lease("a").await, 42);
        assert_eq!(lease("b").await, 7);
        assert_eq!(lease("c").await, 42);
    }
}
