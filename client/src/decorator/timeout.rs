//! [`Timeout`]: a deadline on every op.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::op::{Op, OpResponse};

/// A [`Kv`] whose ops fail with [`Error::Timeout`] when not done within a deadline
/// (the op is abandoned; a write may still be applied, as with etcd's contexts).
///
/// ```no_run
/// use std::time::Duration;
/// use revkv_client::{Client, Kv, Timeout};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// let kv = Timeout::new(client.kv(), Duration::from_secs(2));
/// kv.put("k", "v").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Timeout<K> {
    inner: K,
    limit: Duration,
}

impl<K: Kv> Timeout<K> {
    /// Wraps `inner` with deadline `limit` per op.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// let kv = revkv_client::Timeout::new(client.kv(), std::time::Duration::from_secs(1));
    /// # }
    /// ```
    pub fn new(inner: K, limit: Duration) -> Self {
        Timeout { inner, limit }
    }
}

impl<K: Kv> Kv for Timeout<K> {
    async fn execute(&self, op: Op) -> Result<OpResponse> {
        tokio::time::timeout(self.limit, self.inner.execute(op))
            .await
            .map_err(|_| Error::Timeout(self.limit))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;

    #[tokio::test(start_paused = true)]
    async fn a_slow_op_times_out() {
        let fake = FakeKv::default();
        fake.set_delay(Duration::from_secs(10));
        let kv = Timeout::new(&fake, Duration::from_secs(1));
        let err = kv.get("k").await.expect_err("deadline");
        assert_eq!(err, Error::Timeout(Duration::from_secs(1)));
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(err.to_string(), "context deadline exceeded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_op_passes() {
        let fake = FakeKv::default();
        fake.set_delay(Duration::from_millis(10));
        let kv = Timeout::new(&fake, Duration::from_secs(1));
        kv.put("k", "v").await.expect("in time");
    }
}
