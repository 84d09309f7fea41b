//! When each peer last proved it is alive.
//!
//! One table, updated the same way whichever side opened the connection: the dialing
//! side records a peer when it answers (the handshake reply and later acks), the
//! accepting side when a valid message arrives from it. An open socket proves
//! nothing; only traffic from the peer does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct PeerActivity {
    /// Traffic older than this no longer counts.
    window: Duration,
    /// Per peer: (last traffic, start of the current run of activity).
    last_seen: Mutex<HashMap<u64, (Instant, Instant)>>,
}

impl PeerActivity {
    pub fn new(window: Duration) -> PeerActivity {
        PeerActivity {
            window,
            last_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records traffic from `peer` now.
    pub fn saw(&self, peer: u64) {
        let now = Instant::now();
        let was_active = {
            let mut seen = self.last_seen.lock();
            let previous = seen.get(&peer).copied();
            let was_active = previous.is_some_and(|(t, _)| now.duration_since(t) <= self.window);
            let since = match previous {
                Some((_, since)) if was_active => since,
                _ => now,
            };
            seen.insert(peer, (now, since));
            was_active
        };
        if !was_active {
            tracing::info!(peer = format!("{peer:x}"), "peer became active");
        }
    }

    /// When the peer's current run of activity began (etcd's `ActiveSince`), if it is
    /// active: reconfiguration checks want peers that have been up for a while.
    pub fn active_since(&self, peer: u64) -> Option<Instant> {
        let seen = self.last_seen.lock();
        let (last, since) = seen.get(&peer).copied()?;
        (last.elapsed() <= self.window).then_some(since)
    }

    /// Whether `peer` sent anything within the activity window.
    pub fn is_active(&self, peer: u64) -> bool {
        self.last_seen(peer)
            .is_some_and(|t| t.elapsed() <= self.window)
    }

    pub fn last_seen(&self, peer: u64) -> Option<Instant> {
        self.last_seen.lock().get(&peer).map(|(t, _)| *t)
    }

    /// Peers with traffic within the window, sorted.
    pub fn active_peers(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .last_seen
            .lock()
            .iter()
            .filter(|(_, (t, _))| t.elapsed() <= self.window)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Forgets a peer that left the cluster.
    pub fn remove(&self, peer: u64) {
        self.last_seen.lock().remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recent_traffic_counts() {
        let a = PeerActivity::new(Duration::from_millis(50));
        assert!(!a.is_active(7));
        a.saw(7);
        assert!(a.is_active(7));
        assert_eq!(a.active_peers(), vec![7]);
        let since = a.active_since(7).expect("active");
        std::thread::sleep(Duration::from_millis(20));
        a.saw(7);
        assert_eq!(a.active_since(7), Some(since), "still the same run");
        std::thread::sleep(Duration::from_millis(80));
        assert!(!a.is_active(7));
        assert_eq!(a.active_since(7), None);
        a.saw(7);
        assert!(a.active_since(7).is_some_and(|s| s > since), "a new run");
        assert!(a.last_seen(7).is_some());
        a.remove(7);
        assert!(a.last_seen(7).is_none());
    }
}
