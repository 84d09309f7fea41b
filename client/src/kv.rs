//! The [`Kv`] trait: one funnel, [`Kv::execute`], with every KV call provided on it.
//!
//! A decorator is a small type that wraps another `Kv` and implements `execute` only,
//! rewriting the [`Op`] on the way in or the [`OpResponse`] on the way out; every
//! convenience method (`get`, `put_with`, `txn`, …) then goes through it for free.

use std::future::Future;
use std::sync::Arc;

use crate::decorator::WithLease;
use crate::error::Result;
use crate::op::{Op, OpResponse, Txn, TxnResponse};
use crate::options::{DeleteOptions, GetOptions, PutOptions};
use crate::response::{CompactResponse, DeleteResponse, GetResponse, PutResponse};

/// A key-value store speaking etcd's KV semantics.
///
/// ```
/// use revkv_client::{Kv, Op, OpResponse, Result};
///
/// /// A decorator: counts ops, passes them on.
/// struct Counted<K> { inner: K, n: std::sync::atomic::AtomicU64 }
///
/// impl<K: Kv> Kv for Counted<K> {
///     async fn execute(&self, op: Op) -> Result<OpResponse> {
///         self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.inner.execute(op).await
///     }
/// }
/// ```
pub trait Kv: Send + Sync {
    /// Runs one request. The only method an implementation must provide.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::{GetOptions, Kv, Op};
    /// let r = client.kv().execute(Op::get("k", GetOptions::new())).await?.into_get()?;
    /// # Ok(()) }
    /// ```
    fn execute(&self, op: Op) -> impl Future<Output = Result<OpResponse>> + Send;

    /// Gets one key.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::Kv;
    /// let r = client.kv().get("k").await?;
    /// # Ok(()) }
    /// ```
    fn get(&self, key: impl Into<Vec<u8>>) -> impl Future<Output = Result<GetResponse>> + Send {
        self.get_with(key, GetOptions::new())
    }

    /// Gets a key or a range, with options.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::{GetOptions, Kv};
    /// let r = client.kv().get_with("app/", GetOptions::new().with_prefix()).await?;
    /// # Ok(()) }
    /// ```
    fn get_with(
        &self,
        key: impl Into<Vec<u8>>,
        options: GetOptions,
    ) -> impl Future<Output = Result<GetResponse>> + Send {
        let op = Op::get(key, options);
        async move { self.execute(op).await?.into_get() }
    }

    /// Puts `key` = `value`.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::Kv;
    /// client.kv().put("k", "v").await?;
    /// # Ok(()) }
    /// ```
    fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Result<PutResponse>> + Send {
        self.put_with(key, value, PutOptions::new())
    }

    /// Puts `key` = `value`, with options.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::{Kv, PutOptions};
    /// client.kv().put_with("k", "v", PutOptions::new().with_prev_kv()).await?;
    /// # Ok(()) }
    /// ```
    fn put_with(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: PutOptions,
    ) -> impl Future<Output = Result<PutResponse>> + Send {
        let op = Op::put(key, value, options);
        async move { self.execute(op).await?.into_put() }
    }

    /// Deletes one key.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::Kv;
    /// client.kv().delete("k").await?;
    /// # Ok(()) }
    /// ```
    fn delete(
        &self,
        key: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Result<DeleteResponse>> + Send {
        self.delete_with(key, DeleteOptions::new())
    }

    /// Deletes a key or a range, with options.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::{DeleteOptions, Kv};
    /// client.kv().delete_with("app/", DeleteOptions::new().with_prefix()).await?;
    /// # Ok(()) }
    /// ```
    fn delete_with(
        &self,
        key: impl Into<Vec<u8>>,
        options: DeleteOptions,
    ) -> impl Future<Output = Result<DeleteResponse>> + Send {
        let op = Op::delete(key, options);
        async move { self.execute(op).await?.into_delete() }
    }

    /// Runs a transaction.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::{Compare, CompareOp, Kv, Op, PutOptions, Txn};
    /// let r = client.kv().txn(Txn::new()
    ///     .when([Compare::version("lock", CompareOp::Equal, 0)])
    ///     .and_then([Op::put("lock", "me", PutOptions::new())])).await?;
    /// # Ok(()) }
    /// ```
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<TxnResponse>> + Send {
        async move { self.execute(Op::Txn(txn)).await?.into_txn() }
    }

    /// Compacts the history below `revision`.
    ///
    /// ```
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// use revkv_client::Kv;
    /// client.kv().compact(100, true).await?;
    /// # Ok(()) }
    /// ```
    fn compact(
        &self,
        revision: i64,
        physical: bool,
    ) -> impl Future<Output = Result<CompactResponse>> + Send {
        async move {
            self.execute(Op::Compact { revision, physical })
                .await?
                .into_compact()
        }
    }

    /// This `Kv` with lease `id` attached to every put that names no lease (etcd's
    /// `clientv3.WithLease` for a whole handle); see [`WithLease`].
    ///
    /// ```no_run
    /// use revkv_client::Kv;
    /// # async fn f(client: revkv_client::Client) -> revkv_client::Result<()> {
    /// let lease = client.lease().grant(10).await?;
    /// client.kv().with_lease(lease.id).put("k", "v").await?;
    /// # Ok(()) }
    /// ```
    fn with_lease(self, id: i64) -> WithLease<Self>
    where
        Self: Sized,
    {
        WithLease::new(self, id)
    }
}

impl<K: Kv> Kv for &K {
    fn execute(&self, op: Op) -> impl Future<Output = Result<OpResponse>> + Send {
        (**self).execute(op)
    }
}

impl<K: Kv> Kv for Arc<K> {
    fn execute(&self, op: Op) -> impl Future<Output = Result<OpResponse>> + Send {
        (**self).execute(op)
    }
}
