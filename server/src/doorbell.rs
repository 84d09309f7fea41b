//! Hand-off to a thread that drains its channels with `try_recv` and parks itself when
//! they are empty, instead of blocking inside the channel.
//!
//! Why not crossbeam's `recv`/`select!`: a thread blocked there is registered with the
//! channel, and a sender wakes it while still holding the channel's waker lock. The
//! woken thread's first act is to take that lock to unregister itself, so whenever the
//! sender's wake-up syscall is slow (an inter-processor interrupt on a VM: 20-40 µs
//! here) the woken thread blocks again on the lock and needs a second wake-up. `perf
//! trace` showed exactly that on every raft -> applier hand-off of a one-client put.
//! A parked thread is woken by `Thread::unpark`, which holds no lock, and a sender
//! that finds the receiver running pays one atomic swap.
//!
//! Protocol: the receiving thread calls [`Doorbell::attach`] before its first
//! `try_recv`, then loops `try_recv` on its channels and calls [`Doorbell::wait`] when
//! all are empty. [`Sender::send`] rings after queueing, and so does dropping a
//! [`Sender`], so a receiver waiting for the last sender to go sees the disconnect.
//! `unpark` before `park` leaves a token that makes the `park` return at once, so a
//! message queued between the receiver's last `try_recv` and its `wait` is not missed.

use std::sync::{Arc, OnceLock};
use std::thread::Thread;

pub use crossbeam_channel::{Receiver, SendError, TryRecvError, TrySendError};

/// Wakes the one thread that [`attach`](Doorbell::attach)ed itself. Cheap to clone.
#[derive(Clone, Default)]
pub struct Doorbell(Arc<OnceLock<Thread>>);

impl Doorbell {
    /// Makes the calling thread the one this doorbell wakes. Only the first call counts.
    pub fn attach(&self) {
        let _ = self.0.set(std::thread::current());
    }

    /// Wakes the attached thread, or leaves it a token if it is running; nothing if no
    /// thread attached yet (it will `try_recv` before it first waits).
    pub fn ring(&self) {
        if let Some(t) = self.0.get() {
            t.unpark();
        }
    }

    /// Parks the calling (attached) thread until a ring; may return spuriously.
    pub fn wait(&self) {
        std::thread::park();
    }

    /// As [`wait`](Doorbell::wait), but for at most `timeout`.
    pub fn wait_timeout(&self, timeout: std::time::Duration) {
        std::thread::park_timeout(timeout);
    }
}

/// An unbounded channel whose sends ring `bell`.
pub fn unbounded<T>(bell: &Doorbell) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (
        Sender {
            tx,
            bell: bell.clone(),
        },
        rx,
    )
}

/// A bounded channel whose sends ring `bell`, with cloneable senders.
///
/// Unlike [`Sender`], a [`SharedSender`] does not ring when dropped (the last of many
/// clones is not known), so a receiver waiting for senders to go must also wake on its
/// own now and then ([`Doorbell::wait_timeout`]) to see the disconnect.
pub fn bounded<T>(bell: &Doorbell, capacity: usize) -> (SharedSender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (
        SharedSender {
            tx,
            bell: bell.clone(),
        },
        rx,
    )
}

/// The sending half of [`bounded`].
pub struct SharedSender<T> {
    tx: crossbeam_channel::Sender<T>,
    bell: Doorbell,
}

impl<T> Clone for SharedSender<T> {
    fn clone(&self) -> Self {
        SharedSender {
            tx: self.tx.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> SharedSender<T> {
    /// Queues `value` if there is room, and wakes the receiver.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(value)?;
        self.bell.ring();
        Ok(())
    }

    /// Queues `value`, blocking while the channel is full, and wakes the receiver.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.tx.send(value)?;
        self.bell.ring();
        Ok(())
    }

    /// Wakes the receiver without queueing anything (it has state to look at).
    pub fn ring(&self) {
        self.bell.ring();
    }
}

/// The sending half of [`unbounded`]; deliberately not `Clone` (see the drop ring).
pub struct Sender<T> {
    tx: crossbeam_channel::Sender<T>,
    bell: Doorbell,
}

impl<T> Sender<T> {
    /// Queues `value` and wakes the receiver; fails only if the receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.tx.send(value)?;
        self.bell.ring();
        Ok(())
    }

    /// Whether nothing is queued (the receiver has taken everything sent so far).
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // The field would drop (and disconnect the channel) only after this body: a
        // ring here could be consumed by a `try_recv` that still sees an empty,
        // connected channel, and the receiver would then park for good. Disconnect
        // first by swapping in a sender of a throwaway channel, then ring.
        let (dummy, _) = crossbeam_channel::unbounded();
        drop(std::mem::replace(&mut self.tx, dummy));
        self.bell.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Drains `rx` the way a doorbell receiver does, until it disconnects.
    fn drain(bell: Doorbell, rx: Receiver<u32>) -> Vec<u32> {
        bell.attach();
        let mut got = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(v) => got.push(v),
                Err(TryRecvError::Empty) => bell.wait(),
                Err(TryRecvError::Disconnected) => return got,
            }
        }
    }

    #[test]
    fn every_value_arrives_and_disconnect_wakes_the_receiver() {
        let bell = Doorbell::default();
        let (tx, rx) = unbounded(&bell);
        let b = bell.clone();
        let consumer = std::thread::spawn(move || drain(b, rx));
        for i in 0..10_000 {
            tx.send(i).expect("receiver alive");
            if i % 1000 == 0 {
                // Let the consumer park now and then, so wake-ups are exercised.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(tx);
        let got = consumer.join().expect("consumer ran");
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_receiver_that_attaches_late_still_sees_earlier_sends() {
        let bell = Doorbell::default();
        let (tx, rx) = unbounded(&bell);
        tx.send(7).expect("receiver alive");
        drop(tx);
        let got = std::thread::spawn(move || drain(bell, rx))
            .join()
            .expect("consumer ran");
        assert_eq!(got, vec![7]);
    }

    #[test]
    fn send_fails_once_the_receiver_is_gone() {
        let bell = Doorbell::default();
        let (tx, rx) = unbounded::<u32>(&bell);
        drop(rx);
        assert_eq!(tx.send(1).map_err(|e| e.0), Err(1));
    }

    #[test]
    fn shared_senders_wake_a_receiver_waiting_with_a_timeout() {
        let bell = Doorbell::default();
        let (tx, rx) = bounded::<u32>(&bell, 4);
        let b = bell.clone();
        let consumer = std::thread::spawn(move || {
            b.attach();
            let mut got = Vec::new();
            loop {
                match rx.try_recv() {
                    Ok(v) => got.push(v),
                    // A long timeout: a missed ring would show as a slow test, and
                    // the disconnect is only seen on a wake-up.
                    Err(TryRecvError::Empty) => b.wait_timeout(Duration::from_millis(50)),
                    Err(TryRecvError::Disconnected) => return got,
                }
            }
        });
        let clones: Vec<_> = (0..4).map(|_| tx.clone()).collect();
        for i in 0..2_000u32 {
            let s = &clones[i as usize % clones.len()];
            let mut v = i;
            // Bounded: retry while the consumer catches up.
            while let Err(e) = s.try_send(v) {
                match e {
                    TrySendError::Full(back) => {
                        v = back;
                        std::thread::yield_now();
                    }
                    TrySendError::Disconnected(_) => panic!("receiver gone"),
                }
            }
        }
        drop(clones);
        drop(tx);
        let got = consumer.join().expect("consumer ran");
        assert_eq!(got, (0..2_000).collect::<Vec<_>>());
    }
}
