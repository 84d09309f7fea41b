//! [`Traced`]: one `tracing` span per op, and an event with its outcome and latency.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::error::Result;
use crate::kv::Kv;
use crate::op::{Op, OpResponse};

/// The kind of an op, as the `op` field of [`Traced`]'s spans.
///
/// ```
/// use revkv_client::{op_kind, GetOptions, Op};
/// assert_eq!(op_kind(&Op::get("k", GetOptions::new())), "range");
/// ```
pub fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Get { .. } => "range",
        Op::Put { .. } => "put",
        Op::Delete { .. } => "delete_range",
        Op::Txn(_) => "txn",
        Op::Compact { .. } => "compact",
    }
}

/// A [`Kv`] that traces every op: a `kv` span with the op kind, and at its end a
/// debug event with `latency_us` and the outcome (a warning with the error on failure).
///
/// ```no_run
/// use revkv_client::{Client, Kv, Traced};
///
/// # async fn f() -> revkv_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
/// let kv = Traced::new(client.kv());
/// kv.put("k", "v").await?; // DEBUG kv{op="put"}: done latency_us=...
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Traced<K> {
    inner: K,
}

impl<K: Kv> Traced<K> {
    /// Wraps `inner`.
    ///
    /// ```no_run
    /// # async fn f(client: revkv_client::Client) {
    /// let kv = revkv_client::Traced::new(client.kv());
    /// # }
    /// ```
    pub fn new(inner: K) -> Self {
        Traced { inner }
    }
}

impl<K: Kv> Kv for Traced<K> {
    fn execute(&self, op: Op) -> impl Future<Output = Result<OpResponse>> + Send {
        let kind = op_kind(&op);
        let span = tracing::debug_span!("kv", op = kind);
        async move {
            let start = Instant::now();
            let result = self.inner.execute(op).await;
            let latency_us = start.elapsed().as_micros() as u64;
            match &result {
                Ok(r) => tracing::debug!(latency_us, revision = r.header().revision, "done"),
                Err(e) => tracing::warn!(latency_us, code = ?e.code(), error = %e, "failed"),
            }
            result
        }
        .instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeKv;

    #[tokio::test]
    async fn passes_results_through() {
        let fake = FakeKv::default();
        let kv = Traced::new(&fake);
        kv.put("a", "1").await.expect("put");
        assert_eq!(kv.get("a").await.expect("get").kvs[0].value, b"1");
        fake.script(Err(crate::Error::from(tonic::Status::not_found("x"))));
        assert_eq!(
            kv.get("a").await.expect_err("scripted").code(),
            tonic::Code::NotFound
        );
    }
}
