//! The expiry loop and revoker on tokio's paused clock: time only moves when every task
//! waits, so "revoked at exactly deadline" is checkable to the millisecond.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rocksdb::WriteBatch;
use tempfile::TempDir;

use super::*;
use crate::lease::{LessorConfig, Renewal};
use crate::storage::{Storage, StorageConfig};

const ME: u64 = 7;

/// Stands in for the server: "applies" a revoke by removing the lease, and records when.
struct Recorder {
    lessor: Arc<Lessor>,
    leader: AtomicBool,
    revoked: Mutex<Vec<(i64, Instant)>>,
    /// Ids whose first revoke is lost (as on a leader change).
    lose_once: Mutex<HashSet<i64>>,
}

impl Revoke for Recorder {
    fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    async fn revoke(&self, id: i64) -> Result<(), crate::Error> {
        if self.lose_once.lock().remove(&id) {
            return Err(crate::raft::Error::Timeout.into());
        }
        let mut wb = WriteBatch::default();
        self.lessor.revoke(&mut wb, id)?;
        self.revoked.lock().push((id, Instant::now()));
        Ok(())
    }
}

struct Harness {
    _dir: TempDir,
    lessor: Arc<Lessor>,
    rec: Arc<Recorder>,
    leader: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    start: Instant,
}

impl Harness {
    fn new(cfg: LessorConfig, leader: u64) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), &StorageConfig::default()).expect("storage");
        let lessor = Arc::new(Lessor::open(storage, cfg).expect("lessor"));
        let rec = Arc::new(Recorder {
            lessor: lessor.clone(),
            leader: AtomicBool::new(leader == ME),
            revoked: Mutex::new(Vec::new()),
            lose_once: Mutex::new(HashSet::new()),
        });
        let (leader_tx, leader_rx) = watch::channel(leader);
        let (stop, stop_rx) = watch::channel(false);
        let task = spawn_with(lessor.clone(), rec.clone(), ME, leader_rx, stop_rx);
        Harness {
            _dir: dir,
            lessor,
            rec,
            leader: leader_tx,
            stop,
            task,
            start: Instant::now(),
        }
    }

    fn grant(&self, id: i64, ttl: i64) {
        let mut wb = WriteBatch::default();
        self.lessor.grant(&mut wb, id, ttl).expect("grant");
    }

    fn set_leader(&self, leader: u64) {
        self.rec.leader.store(leader == ME, Ordering::SeqCst);
        self.leader.send_replace(leader);
    }

    /// (id, milliseconds since the harness started) of every revoke so far.
    fn revoked(&self) -> Vec<(i64, u128)> {
        self.rec
            .revoked
            .lock()
            .iter()
            .map(|(id, t)| (*id, t.duration_since(self.start).as_millis()))
            .collect()
    }

    async fn shutdown(self) {
        self.stop.send_replace(true);
        self.task.await.expect("expiry task");
    }
}

fn no_extend() -> LessorConfig {
    LessorConfig {
        promote_extend: Duration::ZERO,
        ..Default::default()
    }
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_revoked_at_its_deadline() {
    let h = Harness::new(no_extend(), ME);
    h.grant(1, 5);
    h.grant(2, 3);
    sleep_ms(2_999).await;
    assert_eq!(h.revoked(), vec![]);
    sleep_ms(2_100).await;
    assert_eq!(h.revoked(), vec![(2, 3_000), (1, 5_000)]);
    assert!(h.lessor.is_empty());
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn keep_alives_hold_a_lease_and_it_expires_a_ttl_after_the_last() {
    let h = Harness::new(no_extend(), ME);
    h.grant(1, 3);
    for _ in 0..10 {
        sleep_ms(1_000).await;
        assert_eq!(h.lessor.renew(1), Renewal::Renewed(3));
    }
    assert_eq!(h.revoked(), vec![]);
    sleep_ms(3_500).await;
    assert_eq!(h.revoked(), vec![(1, 13_000)]);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_shorter_new_lease_wakes_the_sleeping_loop() {
    let h = Harness::new(no_extend(), ME);
    h.grant(1, 100);
    sleep_ms(10).await;
    h.grant(2, 2);
    sleep_ms(3_000).await;
    assert_eq!(h.revoked(), vec![(2, 2_010)]);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn only_the_leader_expires_and_a_new_leader_restarts_every_ttl() {
    let cfg = LessorConfig {
        promote_extend: Duration::from_secs(1),
        ..Default::default()
    };
    let h = Harness::new(cfg, 0);
    h.grant(1, 2);
    h.grant(2, 4);
    sleep_ms(10_000).await;
    assert_eq!(h.revoked(), vec![], "no leader, no expiry");
    // Elected at 10 s: deadlines become 10 s + TTL + 1 s.
    h.set_leader(ME);
    sleep_ms(2_999).await;
    assert_eq!(h.revoked(), vec![]);
    // Past the deadline, so the test's wake-up cannot run before the loop's own.
    sleep_ms(10).await;
    assert_eq!(h.revoked(), vec![(1, 13_000)]);
    // Another member wins an election before lease 2 expires: nothing more here...
    h.set_leader(9);
    sleep_ms(10_000).await;
    assert_eq!(h.revoked(), vec![(1, 13_000)]);
    // ...until this member leads again, with lease 2's TTL restarted at 23.009 s.
    h.set_leader(ME);
    sleep_ms(6_000).await;
    assert_eq!(h.revoked(), vec![(1, 13_000), (2, 28_009)]);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_revoke_is_retried() {
    let h = Harness::new(no_extend(), ME);
    h.rec.lose_once.lock().insert(1);
    h.grant(1, 2);
    sleep_ms(4_000).await;
    assert_eq!(h.revoked(), vec![]);
    assert_eq!(
        h.lessor.renew(1),
        Renewal::Gone,
        "expired, so not renewable"
    );
    sleep_ms(2_000).await;
    // Handed out at 2 s, lost, handed out again at 2 s + expired_retry (3 s).
    assert_eq!(h.revoked(), vec![(1, 5_000)]);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_mass_expiry_is_rate_limited_and_revokes_each_lease_once() {
    let cfg = LessorConfig {
        revoke_rate: 1000,
        promote_extend: Duration::ZERO,
        ..Default::default()
    };
    let h = Harness::new(cfg, ME);
    let n = 3_000i64;
    for id in 1..=n {
        h.grant(id, 2);
    }
    sleep_ms(2_000 + 1_000).await;
    let after_1s = h.revoked().len();
    // One second at 1,000/s plus the bucket's 100-token burst.
    assert!(
        (1_000..=1_101).contains(&after_1s),
        "{after_1s} revokes in the first second"
    );
    sleep_ms(2_500).await;
    let revoked = h.revoked();
    assert_eq!(revoked.len(), n as usize);
    let distinct: HashSet<i64> = revoked.iter().map(|(id, _)| *id).collect();
    assert_eq!(distinct.len(), n as usize, "no lease revoked twice");
    let last = revoked.iter().map(|(_, t)| *t).max().unwrap_or(0);
    assert!(
        (4_800..=5_000).contains(&last),
        "3,000 revokes at 1,000/s end near 2 s + 2.9 s, got {last} ms"
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_rate_limiter_holds_its_rate() {
    let mut l = RateLimiter::new(100);
    let t0 = Instant::now();
    for _ in 0..510 {
        l.acquire().await;
    }
    // 10 tokens of burst, then 500 at 100/s.
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(4_990) && took <= Duration::from_millis(5_010),
        "{took:?}"
    );
}
