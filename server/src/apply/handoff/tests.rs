//! The hand-off with a recording state machine: which thread applied each entry, and
//! in what order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

type Log = Arc<Mutex<Vec<(u64, bool)>>>;

/// Records each entry's index and whether the apply thread applied it; may hold an
/// apply until `gate` lets it go, or fail at one index.
struct Recorder {
    log: Log,
    applied: u64,
    gate: Option<(u64, crossbeam_channel::Receiver<()>)>,
    fail_at: Option<u64>,
}

impl StateMachine for Recorder {
    fn apply(&mut self, entries: &[Entry]) -> Result<(), crate::Error> {
        let from = self.applied;
        for e in entries.iter().filter(|e| e.index > from) {
            if self.fail_at == Some(e.index) {
                return Err(crate::Error::Unsupported("injected".into()));
            }
            if let Some((at, gate)) = &self.gate {
                if *at == e.index {
                    let _ = gate.recv_timeout(Duration::from_secs(10));
                }
            }
            let on_apply_thread = std::thread::current().name() == Some("apply");
            self.log.lock().push((e.index, on_apply_thread));
            self.applied = e.index;
        }
        Ok(())
    }
    fn install(&mut self, _: InstallJob) -> Result<(), crate::Error> {
        Ok(())
    }
}

fn entry(index: u64, kind: EntryType) -> Entry {
    let mut e = Entry {
        index,
        ..Default::default()
    };
    e.set_entry_type(kind);
    e
}

fn normal(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|i| entry(i, EntryType::EntryNormal)).collect()
}

struct Running {
    handoff: Handoff<Recorder>,
    log: Log,
    fatal: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Result<(), crate::Error>>>,
    loop_: Option<ApplyLoop<Recorder>>,
    recorder: Option<Recorder>,
}

fn setup(gate: Option<(u64, crossbeam_channel::Receiver<()>)>, fail_at: Option<u64>) -> Running {
    let bell = Doorbell::default();
    let (_installs_tx, installs) = doorbell::unbounded(&bell);
    let fatal = Arc::new(AtomicUsize::new(0));
    let counted = fatal.clone();
    let (handoff, loop_) = channel(
        &bell,
        installs,
        Box::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        }),
    );
    let log = Log::default();
    let recorder = Recorder {
        log: log.clone(),
        applied: 0,
        gate,
        fail_at,
    };
    Running {
        handoff,
        log,
        fatal,
        thread: None,
        loop_: Some(loop_),
        recorder: Some(recorder),
    }
}

impl Handoff<Recorder> {
    fn deliver_idle(&self, entries: Vec<Entry>) -> bool {
        self.deliver(entries, true)
    }
}

impl Running {
    fn start(&mut self) {
        let (l, r) = (
            self.loop_.take().expect("not started"),
            self.recorder.take().expect("not started"),
        );
        self.thread = Some(
            std::thread::Builder::new()
                .name("apply".into())
                .spawn(move || l.run(r))
                .expect("spawn"),
        );
    }

    /// The log once it has `n` entries (fails the test after 10 s).
    fn wait_for(&self, n: usize) -> Vec<(u64, bool)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log.lock().clone();
            if log.len() >= n {
                return log;
            }
            assert!(Instant::now() < deadline, "only {log:?} applied");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_small_batch_that_finds_the_applier_idle_is_applied_by_the_caller() {
    let mut r = setup(None, None);
    r.start();
    assert!(r.handoff.deliver_idle(normal(1..=1)));
    r.wait_for(1);
    // The apply thread has let go of the lock once the queue is empty; the next small
    // batch is applied before `deliver` returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next = 2;
    loop {
        assert!(r.handoff.deliver_idle(normal(next..=next)));
        let log = r.log.lock().clone();
        if log.last() == Some(&(next, false)) {
            break;
        }
        assert!(Instant::now() < deadline, "never applied inline: {log:?}");
        next += 1;
    }
    let ordered: Vec<u64> = r.wait_for(next as usize).iter().map(|e| e.0).collect();
    assert_eq!(ordered, (1..=next).collect::<Vec<_>>());
}

#[test]
fn a_busy_caller_queues_even_a_small_batch() {
    let mut r = setup(None, None);
    r.start();
    for i in 1..=20 {
        assert!(r.handoff.deliver(normal(i..=i), false));
    }
    let log = r.wait_for(20);
    assert_eq!(log, (1..=20).map(|i| (i, true)).collect::<Vec<_>>());
}

#[test]
fn large_batches_and_conf_changes_go_to_the_apply_thread() {
    let mut r = setup(None, None);
    r.start();
    let big = INLINE_MAX_ENTRIES as u64 + 1;
    assert!(r.handoff.deliver_idle(normal(1..=big)));
    assert!(r
        .handoff
        .deliver_idle(vec![entry(big + 1, EntryType::EntryConfChange)]));
    let log = r.wait_for(big as usize + 1);
    assert_eq!(log, (1..=big + 1).map(|i| (i, true)).collect::<Vec<_>>());
}

#[test]
fn batches_stay_in_commit_order_while_the_apply_thread_is_busy() {
    let (release, gate) = crossbeam_channel::bounded(1);
    let mut r = setup(Some((1, gate)), None);
    r.start();
    // Too large to apply inline, so the apply thread takes it and is held inside it.
    let big = INLINE_MAX_ENTRIES as u64 + 1;
    assert!(r.handoff.deliver_idle(normal(1..=big)));
    std::thread::sleep(Duration::from_millis(20));
    // Small, and the queue is empty, but the apply thread holds the applier.
    assert!(r.handoff.deliver_idle(normal(big + 1..=big + 1)));
    assert!(r.handoff.deliver_idle(normal(big + 2..=big + 3)));
    assert!(r.log.lock().is_empty(), "applied past a held batch");
    release.send(()).expect("release");
    let log = r.wait_for(big as usize + 3);
    assert_eq!(
        log.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=big + 3).collect::<Vec<_>>()
    );
    assert!(log.iter().all(|e| e.1), "{log:?}");
}

#[test]
fn everything_is_queued_until_the_apply_thread_starts() {
    let mut r = setup(None, None);
    assert!(r.handoff.deliver_idle(normal(1..=1)));
    assert!(r.handoff.deliver_idle(normal(2..=3)));
    assert!(r.log.lock().is_empty());
    r.start();
    assert_eq!(r.wait_for(3), vec![(1, true), (2, true), (3, true)]);
}

#[test]
fn after_a_failed_apply_nothing_more_is_applied() {
    let mut r = setup(None, Some(2));
    r.start();
    assert!(r.handoff.deliver_idle(normal(1..=1)));
    r.wait_for(1);
    // Index 2 fails wherever it is applied (inline: refused at once; queued: by the
    // apply thread); after that every delivery is refused.
    let mut refused = !r.handoff.deliver_idle(normal(2..=2));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !refused {
        assert!(Instant::now() < deadline, "a failed apply was not reported");
        std::thread::sleep(Duration::from_millis(1));
        refused = !r.handoff.deliver_idle(normal(3..=3));
    }
    // The raft task's end going away is what stops an idle apply thread.
    drop(r.handoff);
    let thread = r.thread.take().expect("started");
    let outcome = thread.join().expect("apply thread");
    let on_caller = r.fatal.load(Ordering::SeqCst);
    // Reported once: by the caller (inline) or by the apply thread's error.
    assert_eq!(on_caller + usize::from(outcome.is_err()), 1);
    let applied: Vec<u64> = r.log.lock().iter().map(|e| e.0).collect();
    assert_eq!(applied, vec![1]);
}
