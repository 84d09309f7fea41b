//! Linearizability under faults: concurrent clients put and read a few keys through
//! every member of a three-member cluster while members are killed with SIGKILL and
//! restarted (the leader first, then a follower), and the history they saw is checked
//! (`revkv_tests::linearizability`, Wing & Gong / Lowe, per key). Runs against revkv or,
//! with `REVKV_TEST_TARGET=etcd`, real etcd with the same flags.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::Client;
use revkv_tests::cluster::serial;
use revkv_tests::linearizability::{check, Action, Op};
use revkv_tests::TestCluster;

const CLIENTS: usize = 4;
const KEYS: [&str; 3] = ["lin/a", "lin/b", "lin/c"];
/// A call not answered by then has an unknown outcome.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// A small deterministic generator, one per client (xorshift64).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One client: random puts of unique values and linearizable gets until `stop`.
async fn client(
    id: usize,
    endpoints: Vec<String>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<(String, Op)> {
    let mut history = Vec::new();
    let Ok(mut c) = Client::connect(endpoints, None).await else {
        return history;
    };
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
    let now = || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = KEYS[dice.roll(KEYS.len() as u64) as usize];
        let call = now();
        if dice.roll(2) == 0 {
            n += 1;
            let value = format!("c{id}-{n}");
            let r = tokio::time::timeout(CALL_TIMEOUT, c.put(key, value.clone(), None)).await;
            let ret = matches!(r, Ok(Ok(_))).then(now);
            history.push((
                key.to_owned(),
                Op {
                    call,
                    ret,
                    action: Action::Put(value),
                },
            ));
            if ret.is_none() {
                // The member may be gone: give the client a moment to move on.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            let r = tokio::time::timeout(CALL_TIMEOUT, c.get(key, None)).await;
            match r {
                Ok(Ok(resp)) => {
                    let ret = now();
                    let seen = resp
                        .kvs()
                        .first()
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
                    history.push((
                        key.to_owned(),
                        Op {
                            call,
                            ret: Some(ret),
                            action: Action::Get(seen),
                        },
                    ));
                }
                // A read without a result constrains nothing.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    history
}

#[test]
fn puts_and_reads_stay_linearizable_while_members_are_killed() {
    let _serial = serial();
    let mut c = TestCluster::start(3);
    let endpoints: Vec<String> = c.endpoints().split(',').map(str::to_owned).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| runtime.spawn(client(id, endpoints.clone(), epoch, stop.clone())))
        .collect();

    let pause = |ms| std::thread::sleep(Duration::from_millis(ms));
    pause(1_500);
    let leader = c.wait_leader(None, Duration::from_secs(20));
    c.member_mut(leader).kill9();
    pause(2_000);
    c.member_mut(leader).restart();
    pause(1_000);
    let leader = c.wait_leader(None, Duration::from_secs(20));
    let follower = (leader + 1) % 3;
    c.member_mut(follower).kill9();
    pause(1_500);
    c.member_mut(follower).restart();
    pause(1_000);
    stop.store(true, Ordering::Relaxed);

    let history: Vec<(String, Op)> = runtime.block_on(async {
        let mut all = Vec::new();
        for h in clients {
            all.extend(h.await.expect("client task"));
        }
        all
    });
    let answered = history.iter().filter(|(_, o)| o.ret.is_some()).count();
    let unknown = history.len() - answered;
    for key in KEYS {
        let ops = || history.iter().filter(|(k, o)| k == key && o.ret.is_some());
        assert!(
            ops().any(|(_, o)| matches!(o.action, Action::Put(_))),
            "no put of {key} was answered"
        );
        assert!(
            ops().any(|(_, o)| matches!(o.action, Action::Get(Some(_)))),
            "no get of {key} saw a value"
        );
    }
    assert!(
        answered >= 100,
        "only {answered} operations were answered ({unknown} unknown)"
    );
    if let Err(e) = check(&history) {
        panic!("{e}\n({answered} answered, {unknown} unknown)");
    }
    eprintln!("{answered} operations answered, {unknown} of unknown outcome: linearizable");
}
