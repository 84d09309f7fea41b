//! Decorators: small types that wrap another [`crate::Kv`] and implement only
//! `execute`, so they compose in any order:
//!
//! ```no_run
//! use revkv_client::{Client, Kv, Namespace, Ordering, Retry, RetryPolicy, Timeout, Traced};
//! use std::time::Duration;
//!
//! # async fn f() -> revkv_client::Result<()> {
//! let client = Client::connect(["127.0.0.1:2379"], Default::default()).await?;
//! let kv = Traced::new(Namespace::new(
//!     Ordering::new(Timeout::new(Retry::new(client.kv(), RetryPolicy::default()), Duration::from_secs(5))),
//!     "app/",
//! ));
//! kv.put("k", "v").await?;
//! # Ok(()) }
//! ```

pub(crate) mod namespace;
mod ordering;
mod retry;
mod timeout;
mod traced;
mod with_lease;

pub use namespace::Namespace;
pub use ordering::Ordering;
pub use retry::{should_retry, Retry, RetryPolicy};
pub use timeout::Timeout;
pub use traced::{op_kind, Traced};
pub use with_lease::WithLease;
