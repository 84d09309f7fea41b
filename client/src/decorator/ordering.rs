//! [`Ordering`]: rejects a response older than one already seen, as etcd's
//! `ordering` package does, so a client that fails over to a lagging member never
//! reads the past after having seen the future.

use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};

use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::op::{Op, OpResponse};

/// A [`Kv`] whose responses never go back in revision: a response whose header
/// revision is below the highest one seen before the op was sent fails with
/// [`Error::StaleRevision`].
///
/// ```no_run
/// use revkv_client::{Client, GetOptions, Kv, Ordering};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379", "127.0.0.1:22379"], Default::default()).await?;
/// let kv = Ordering::new(client.kv());
/// kv.put("k", "v").await?;
/// // A serializable read from a member that has not caught up yet fails rather than
/// // returning the past.
/// let got = kv.get_with("k", GetOptions::new().with_serializable()).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Ordering<K> {
    inner: K,
    seen: AtomicI64,
}

impl<K: Kv> Ordering<K> {
    /// Wraps `inner`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// let kv = revkv_client::Ordering::new(client.kv());
    /// # }
    /// ```
    pub fn new(inner: K) -> Self {
        Ordering {
            inner,
            seen: AtomicI64::new(0),
        }
    }

    /// The highest revision seen so far.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// assert_eq!(revkv_client::Ordering::new(client.kv()).seen(), 0);
    /// # }
    /// ```
    pub fn seen(&self) -> i64 {
        self.seen.load(AtomicOrdering::Acquire)
    }
}

impl<K: Kv> Kv for Ordering<K> {
    async fn execute(&self, op: Op) -> Result<OpResponse> {
        // Compare with what was seen before sending: a response to an op that
        // raced with a newer one is not stale for having lost the race.
        let before = self.seen();
        let resp = self.inner.execute(op).await?;
        let got = resp.header().revision;
        if got < before {
            return Err(Error::StaleRevision { seen: before, got });
        }
        self.seen.fetch_max(got, AtomicOrdering::AcqRel);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;
    use crate::response::{GetResponse, ResponseHeader};

    fn stale(rev: i64) -> OpResponse {
        OpResponse::Get(GetResponse {
            header: ResponseHeader {
                revision: rev,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn an_older_response_is_rejected() {
        let fake = FakeKv::default();
        let kv = Ordering::new(&fake);
        kv.put("a", "1").await.expect("put");
        kv.put("a", "2").await.expect("put");
        assert_eq!(kv.seen(), 2);
        fake.script(Ok(stale(1)));
        let err = kv.get("a").await.expect_err("stale");
        assert_eq!(err, Error::StaleRevision { seen: 2, got: 1 });
        // Same or newer revisions pass.
        fake.script(Ok(stale(2)));
        kv.get("a").await.expect("same revision");
        kv.get("a").await.expect("current");
    }

    #[tokio::test]
    async fn errors_pass_through_and_do_not_move_the_revision() {
        let fake = FakeKv::default();
        let kv = Ordering::new(&fake);
        fake.script(Err(Error::from(tonic::Status::unavailable("down"))));
        assert!(kv.get("a").await.is_err());
        assert_eq!(kv.seen(), 0);
    }
}
