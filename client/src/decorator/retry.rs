//! [`Retry`]: resends a failed op when that is safe, with etcd's rule (`retry.go`):
//! reads are repeatable and are retried on `Unavailable`; writes are retried only
//! when they provably never left the client ([`Error::never_sent`]).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::kv::Kv;
use crate::op::{Op, OpResponse};

/// How often and how patiently [`Retry`] tries.
///
/// ```
/// use std::time::Duration;
/// use revkv_client::RetryPolicy;
///
/// let p = RetryPolicy::new(5, Duration::from_millis(50)).with_max_backoff(Duration::from_secs(1));
/// assert_eq!(p.backoff(0), Duration::from_millis(50));
/// assert_eq!(p.backoff(1), Duration::from_millis(100));
/// assert_eq!(p.backoff(10), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 = no retry).
    pub attempts: u32,
    /// Pause before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest pause between tries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 100 ms doubling up to 2 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// `attempts` tries, the first retry after `initial_backoff`.
    ///
    /// ```
    /// let p = revkv_client::RetryPolicy::new(3, std::time::Duration::from_millis(10));
    /// assert_eq!(p.attempts, 3);
    /// ```
    pub fn new(attempts: u32, initial_backoff: Duration) -> Self {
        RetryPolicy {
            attempts,
            initial_backoff,
            ..Self::default()
        }
    }

    /// Caps the pause between tries.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = revkv_client::RetryPolicy::default().with_max_backoff(Duration::from_millis(500));
    /// assert_eq!(p.max_backoff, Duration::from_millis(500));
    /// ```
    pub fn with_max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// The pause before retry number `retry` (0-based).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = revkv_client::RetryPolicy::new(3, Duration::from_millis(10));
    /// assert_eq!(p.backoff(2), Duration::from_millis(40));
    /// ```
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether `op`, having failed with `err`, may be sent again.
///
/// ```
/// use revkv_client::{should_retry, Error, GetOptions, Op, PutOptions};
///
/// let unavailable = Error::from(tonic::Status::unavailable("etcdserver: no leader"));
/// assert!(should_retry(&Op::get("k", GetOptions::new()), &unavailable));
/// assert!(!should_retry(&Op::put("k", "v", PutOptions::new()), &unavailable));
/// ```
pub fn should_retry(op: &Op, err: &Error) -> bool {
    err.never_sent() || (err.code() == tonic::Code::Unavailable && op.is_read_only())
}

/// A [`Kv`] that retries what [`should_retry`] allows, per a [`RetryPolicy`].
///
/// ```no_run
/// use revkv_client::{Client, Kv, Retry, RetryPolicy};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379", "127.0.0.1:22379"], Default::default()).await?;
/// let kv = Retry::new(client.kv(), RetryPolicy::default());
/// let got = kv.get("k").await?; // retried while the cluster elects a leader
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Retry<K> {
    inner: K,
    policy: RetryPolicy,
}

impl<K: Kv> Retry<K> {
    /// Wraps `inner`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// let kv = revkv_client::Retry::new(client.kv(), revkv_client::RetryPolicy::default());
    /// # }
    /// ```
    pub fn new(inner: K, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }
}

impl<K: Kv> Kv for Retry<K> {
    async fn execute(&self, op: Op) -> Result<OpResponse> {
        let mut retry = 0;
        loop {
            match self.inner.execute(op.clone()).await {
                Err(err) if retry + 1 < self.policy.attempts && should_retry(&op, &err) => {
                    tracing::debug!(error = %err, retry, "retrying");
                    tokio::time::sleep(self.policy.backoff(retry)).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;
    use crate::options::{GetOptions, PutOptions};

    fn unavailable() -> Error {
        Error::from(tonic::Status::unavailable("etcdserver: no leader"))
    }
    fn refused() -> Error {
        Error::Unreachable {
            endpoint: "http://127.0.0.1:1".into(),
            reason: "tcp connect error".into(),
        }
    }
    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy::new(attempts, Duration::from_millis(1))
    }

    #[tokio::test]
    async fn reads_are_retried_on_unavailable() {
        let fake = FakeKv::default();
        fake.script(Err(unavailable()));
        fake.script(Err(unavailable()));
        let kv = Retry::new(&fake, fast(3));
        kv.get("k").await.expect("third try answers");
        assert_eq!(fake.ops().len(), 3);
    }

    #[tokio::test]
    async fn writes_are_not_retried_once_they_may_have_been_sent() {
        let fake = FakeKv::default();
        fake.script(Err(unavailable()));
        let kv = Retry::new(&fake, fast(3));
        let err = kv.put("k", "v").await.expect_err("not retried");
        assert_eq!(err, unavailable());
        assert_eq!(fake.ops().len(), 1);
    }

    #[tokio::test]
    async fn writes_that_never_left_are_retried() {
        let fake = FakeKv::default();
        fake.script(Err(refused()));
        let kv = Retry::new(&fake, fast(3));
        kv.put_with("k", "v", PutOptions::new())
            .await
            .expect("retried");
        assert_eq!(fake.ops().len(), 2);
        assert_eq!(fake.get("k").await.expect("get").kvs[0].value, b"v");
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_other_errors_pass_through() {
        let fake = FakeKv::default();
        for _ in 0..5 {
            fake.script(Err(unavailable()));
        }
        let kv = Retry::new(&fake, fast(2));
        kv.get_with("k", GetOptions::new())
            .await
            .expect_err("gives up");
        assert_eq!(fake.ops().len(), 2);

        let fake = FakeKv::default();
        let compacted = Error::from(tonic::Status::out_of_range(
            "etcdserver: mvcc: required revision has been compacted",
        ));
        fake.script(Err(compacted.clone()));
        let kv = Retry::new(&fake, fast(5));
        assert_eq!(kv.get("k").await.expect_err("passes"), compacted);
        assert_eq!(fake.ops().len(), 1);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::new(10, Duration::from_millis(100))
            .with_max_backoff(Duration::from_millis(350));
        let got: Vec<u128> = (0..4).map(|i| p.backoff(i).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(350));
    }
}
