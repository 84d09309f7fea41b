//! Request-id keyed rendezvous between a proposer and the applier (etcd's `pkg/wait`).
//!
//! A handler registers its request id *before* proposing, then awaits the receiver;
//! whoever finishes the request (the applier, or the raft task when it drops the
//! proposal) triggers the id exactly once. Triggering an unknown id is a no-op: on a
//! follower, or after the handler gave up, nobody is waiting.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

pub struct Wait<T> {
    waiters: Mutex<HashMap<u64, oneshot::Sender<T>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait {
            waiters: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Wait<T> {
    pub fn register(&self, id: u64) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(id, tx);
        rx
    }

    /// Delivers `value` to the waiter of `id`, if there is one.
    pub fn trigger(&self, id: u64, value: T) {
        let tx = self.waiters.lock().remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(value);
        }
    }

    /// Delivers each value to the waiter of its id, taking the table's lock once for
    /// the whole batch (the applier finishes requests a batch at a time).
    pub fn trigger_all(&self, values: Vec<(u64, T)>) {
        let senders: Vec<_> = {
            let mut waiters = self.waiters.lock();
            values
                .into_iter()
                .filter_map(|(id, value)| Some((waiters.remove(&id)?, value)))
                .collect()
        };
        for (tx, value) in senders {
            let _ = tx.send(value);
        }
    }

    /// Forgets a waiter whose handler stopped waiting (timeout, client gone).
    pub fn cancel(&self, id: u64) {
        self.waiters.lock().remove(&id);
    }

    pub fn is_registered(&self, id: u64) -> bool {
        self.waiters.lock().contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_reaches_the_registered_waiter_once() {
        let w = Wait::default();
        let rx = w.register(7);
        w.trigger(7, "done");
        w.trigger(7, "again");
        w.trigger(8, "nobody");
        assert_eq!(rx.await.expect("value"), "done");
        assert!(!w.is_registered(7));
        let rx = w.register(9);
        w.cancel(9);
        assert!(rx.await.is_err());
    }

    #[tokio::test]
    async fn trigger_all_reaches_each_registered_waiter() {
        let w = Wait::default();
        let a = w.register(1);
        let b = w.register(2);
        w.trigger_all(vec![(2, "two"), (3, "nobody"), (1, "one")]);
        assert_eq!(a.await.expect("value"), "one");
        assert_eq!(b.await.expect("value"), "two");
        assert!(!w.is_registered(1) && !w.is_registered(2) && !w.is_registered(3));
    }
}
