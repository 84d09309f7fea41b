//! The transport over real loopback sockets, with a mailbox standing in for raft.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft::prelude::{Message, MessageType};
use revkv_proto::revkvpb::peer_server::{Peer, PeerServer};
use revkv_proto::revkvpb::{RaftMessage, SendResponse};
use tokio::net::TcpListener;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::*;
use crate::raft::{Command, Mailbox};

fn cfg() -> TransportConfig {
    let mut c = TransportConfig::new(
        Duration::from_millis(10),
        Duration::from_millis(100),
        1 << 20,
    );
    c.backoff_max = Duration::from_millis(100);
    c
}

async fn serve<S>(svc: PeerServer<S>) -> String
where
    S: Peer,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    url
}

fn heartbeat(from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// Polls the mailbox (from a blocking thread) until `pred` holds for a command.
async fn wait_for(mailbox: &Mailbox, pred: impl Fn(&Command) -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match mailbox.receiver().try_recv() {
            Ok(c) if pred(&c) => return true,
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

fn steps(mailbox: &Mailbox) -> usize {
    mailbox
        .receiver()
        .try_iter()
        .filter(|c| matches!(c, Command::Step(_)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_the_peer_and_traffic_marks_both_sides_active() {
    let (a_box, b_box) = (Mailbox::with_capacity(1024), Mailbox::with_capacity(1024));
    let me_a = Identity {
        cluster_id: 7,
        member_id: 1,
    };
    let me_b = Identity {
        cluster_id: 7,
        member_id: 2,
    };
    let a = Transport::new(me_a, cfg(), a_box.peer_inbox(), Handle::current());
    let b = Transport::new(me_b, cfg(), b_box.peer_inbox(), Handle::current());
    let b_url = serve(b.service()).await;
    a.add_peer(2, vec![b_url]).expect("add");
    let got = {
        let mut ok = false;
        for term in 0..200 {
            a.send(vec![heartbeat(1, 2, term)]);
            if wait_step(&b_box).await {
                ok = true;
                break;
            }
        }
        ok
    };
    assert!(got, "no message reached the peer");
    // Dialed side learnt of B from its replies, accepting side of A from its messages.
    assert!(a.activity().is_active(2));
    assert!(b.activity().is_active(1));
    // A message for an unknown member is dropped quietly.
    a.send(vec![heartbeat(1, 99, 1)]);
}

async fn wait_step(mailbox: &Mailbox) -> bool {
    for _ in 0..5 {
        if steps(mailbox) > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accepting_side_refuses_another_cluster() {
    let (a_box, b_box) = (Mailbox::with_capacity(1024), Mailbox::with_capacity(1024));
    let a = Transport::new(
        Identity {
            cluster_id: 0xaaaa,
            member_id: 1,
        },
        cfg(),
        a_box.peer_inbox(),
        Handle::current(),
    );
    let b = Transport::new(
        Identity {
            cluster_id: 0xbbbb,
            member_id: 2,
        },
        cfg(),
        b_box.peer_inbox(),
        Handle::current(),
    );
    let b_url = serve(b.service()).await;
    a.add_peer(2, vec![b_url]).expect("add");
    for term in 0..20 {
        a.send(vec![heartbeat(1, 2, term)]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Raft on A hears that B cannot be reached; nothing reaches raft on B.
    assert!(wait_for(&a_box, |c| matches!(c, Command::Unreachable(2))).await);
    assert_eq!(steps(&b_box), 0);
    assert!(!a.activity().is_active(2));
    assert!(!b.activity().is_active(1));
}

/// A peer that accepts any stream, answers as a member of another cluster and
/// counts the raft messages it is sent.
struct Impostor {
    received: std::sync::Arc<AtomicU64>,
}

#[tonic::async_trait]
impl Peer for Impostor {
    async fn send(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<BoxStream<SendResponse>>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let _ = tx.try_send(Ok(SendResponse {
            cluster_id: 0xbbbb,
            member_id: 2,
            received: 0,
        }));
        let received = self.received.clone();
        tokio::spawn(async move {
            let _keep = tx;
            while let Ok(Some(m)) = inbound.message().await {
                if !m.message.is_empty() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialing_side_refuses_another_cluster() {
    let a_box = Mailbox::with_capacity(1024);
    let a = Transport::new(
        Identity {
            cluster_id: 0xaaaa,
            member_id: 1,
        },
        cfg(),
        a_box.peer_inbox(),
        Handle::current(),
    );
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let url = serve(PeerServer::new(Impostor {
        received: received.clone(),
    }))
    .await;
    a.add_peer(2, vec![url]).expect("add");
    for term in 0..20 {
        a.send(vec![heartbeat(1, 2, term)]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(wait_for(&a_box, |c| matches!(c, Command::Unreachable(2))).await);
    assert_eq!(received.load(Ordering::Relaxed), 0, "sent to an impostor");
    assert!(!a.activity().is_active(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_reports_the_peer_unreachable() {
    let a_box = Mailbox::with_capacity(1024);
    let mut c = cfg();
    c.queue_len = 2;
    let a = Transport::new(
        Identity {
            cluster_id: 1,
            member_id: 1,
        },
        c,
        a_box.peer_inbox(),
        Handle::current(),
    );
    // Nobody listens there; the sender is busy dialing while the queue fills.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    a.add_peer(2, vec![format!("http://127.0.0.1:{port}")])
        .expect("add");
    a.send((0..100).map(|t| heartbeat(1, 2, t)).collect());
    assert!(wait_for(&a_box, |c| matches!(c, Command::Unreachable(2))).await);
    assert!(a.add_peer(3, vec!["ftp://x".into()]).is_err());
}

/// A membership in which member 1 was removed.
struct Removed1(revkv_proto::revkvpb::Membership);

impl Directory for Removed1 {
    fn membership(&self) -> revkv_proto::revkvpb::Membership {
        self.0.clone()
    }
    fn is_removed(&self, member: u64) -> bool {
        member == 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_told_so_and_a_joiner_can_fetch_the_membership() {
    let (a_box, b_box) = (Mailbox::with_capacity(1024), Mailbox::with_capacity(1024));
    let ident = |member_id| Identity {
        cluster_id: 7,
        member_id,
    };
    let a = Transport::new(ident(1), cfg(), a_box.peer_inbox(), Handle::current());
    let b = Transport::new(ident(2), cfg(), b_box.peer_inbox(), Handle::current());
    let membership = revkv_proto::revkvpb::Membership {
        cluster_id: 7,
        members: Vec::new(),
        removed: vec![1],
    };
    b.set_directory(Arc::new(Removed1(membership.clone())));
    let b_url = serve(b.service()).await;

    let fetched = fetch_membership(
        &["http://127.0.0.1:1".to_string(), b_url.clone()],
        Duration::from_secs(2),
        &revkv_proto::tls::Connector::new(None),
    )
    .await
    .expect("fetched from the second URL");
    assert_eq!(fetched, membership);

    let mut removed = a.removed();
    a.add_peer(2, vec![b_url]).expect("add");
    a.send(vec![heartbeat(1, 2, 1)]);
    tokio::time::timeout(Duration::from_secs(5), removed.wait_for(|r| *r))
        .await
        .expect("told in time")
        .expect("still open");
    assert_eq!(
        steps(&b_box),
        0,
        "nothing from a removed member reaches raft"
    );
}
