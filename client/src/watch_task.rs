//! The task behind one watch: owns the gRPC stream, and when the member under it
//! fails, recreates the watch on another endpoint at the revision after the last one
//! delivered. [`Resume`] (pure, unit-tested) keeps that revision.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use revkv_proto::etcdserverpb::{
    self as pb, watch_client::WatchClient as RawWatch, watch_create_request::FilterType,
    watch_request::RequestUnion,
};
use tokio::sync::{mpsc, oneshot};

use crate::decorator::namespace::strip_prefix;
use crate::error::Result;
use crate::pool::Pool;
use crate::watch::{Event, WatchOptions, WatchResponse};

/// Responses buffered for a slow reader before the task stops reading the stream.
pub(crate) const BUFFERED: usize = 64;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a [`crate::Watcher`] asks of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Cancel,
    Progress,
}

/// The watch as the server sees it (key and range already namespaced).
pub(crate) struct WatchSpec {
    pub(crate) key: Vec<u8>,
    pub(crate) range_end: Vec<u8>,
    pub(crate) options: WatchOptions,
    /// Namespace stripped from the keys of events.
    pub(crate) prefix: Vec<u8>,
}

impl WatchSpec {
    fn create_request(&self, start_revision: i64) -> pb::WatchRequest {
        let o = &self.options;
        let mut filters = Vec::new();
        if o.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if o.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
                key: self.key.clone(),
                range_end: self.range_end.clone(),
                start_revision,
                progress_notify: o.progress_notify,
                filters,
                prev_kv: o.prev_kv,
                watch_id: 0,
                fragment: o.fragment,
            })),
        }
    }
}

/// Where the watch stands: the revision to (re)start from, and the fragments of a
/// revision not yet complete.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    /// The first revision not yet delivered; 0 until known ("from now").
    next_rev: i64,
    /// Fragments received so far of the current response.
    pending: Option<WatchResponse>,
}

impl Resume {
    pub(crate) fn new(start_revision: i64) -> Self {
        Resume {
            next_rev: start_revision.max(0),
            pending: None,
        }
    }

    /// The start revision of a (re)created watch.
    pub(crate) fn start_revision(&self) -> i64 {
        self.next_rev
    }

    /// Feeds one server response; returns what to deliver, if anything. Creates are
    /// swallowed, fragments merged, and events below the resume point dropped (a
    /// resumed watch must not repeat them).
    pub(crate) fn on_response(&mut self, mut r: WatchResponse) -> Option<WatchResponse> {
        if r.canceled {
            self.pending = None;
            return Some(r);
        }
        if r.created {
            // A watch "from now" starts after the revision it was created at.
            if self.next_rev == 0 {
                self.next_rev = r.header.revision + 1;
            }
            self.pending = None;
            return None;
        }
        if r.fragment {
            match &mut self.pending {
                Some(p) => p.events.append(&mut r.events),
                None => self.pending = Some(r),
            }
            return None;
        }
        if let Some(mut p) = self.pending.take() {
            p.events.append(&mut r.events);
            r.events = p.events;
        }
        let progress = r.events.is_empty();
        let floor = self.next_rev;
        r.events.retain(|e| e.kv.mod_revision >= floor);
        match r.events.last() {
            Some(last) => self.next_rev = last.kv.mod_revision + 1,
            // A progress notification: every change up to its revision is delivered.
            None if progress => self.next_rev = self.next_rev.max(r.header.revision + 1),
            // Only repeats: nothing to deliver.
            None => return None,
        }
        Some(r)
    }
}

fn convert(r: pb::WatchResponse, prefix: &[u8]) -> WatchResponse {
    WatchResponse {
        header: r.header.into(),
        watch_id: r.watch_id,
        created: r.created,
        canceled: r.canceled,
        compact_revision: r.compact_revision,
        cancel_reason: r.cancel_reason,
        fragment: r.fragment,
        events: r
            .events
            .into_iter()
            .map(|e| {
                let mut e = Event::from(e);
                strip_prefix(prefix, &mut e.kv.key);
                if let Some(p) = &mut e.prev_kv {
                    strip_prefix(prefix, &mut p.key);
                }
                e
            })
            .collect(),
    }
}

type Opened = (
    mpsc::UnboundedSender<pb::WatchRequest>,
    tonic::Streaming<pb::WatchResponse>,
);

/// Opens a watch stream on `ch` with the create request already queued (the server
/// sends nothing, not even headers, before it has a request to answer).
async fn open(
    ch: tonic::transport::Channel,
    create: pb::WatchRequest,
) -> std::result::Result<Opened, tonic::Status> {
    let (tx, rx) = mpsc::unbounded_channel();
    // Cannot fail: the receiver is alive.
    let _ = tx.send(create);
    let stream = RawWatch::new(ch)
        .watch(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, stream))
}

/// Runs one watch until it is cancelled, its stream is dropped, or (before it was
/// ever created) no endpoint takes it.
pub(crate) async fn run(
    pool: Arc<Pool>,
    spec: WatchSpec,
    mut control: mpsc::UnboundedReceiver<Control>,
    out: mpsc::Sender<Result<WatchResponse>>,
    created: oneshot::Sender<Result<i64>>,
    serving: Arc<Mutex<String>>,
) {
    let mut created = Some(created);
    let mut resume = Resume::new(spec.options.start_revision);
    let mut failed: Option<String> = None;
    let mut backoff = MIN_BACKOFF;
    let mut control_open = true;
    loop {
        let create = spec.create_request(resume.start_revision());
        let opened = pool
            .open(failed.as_deref(), |ch| open(ch, create.clone()))
            .await;
        let (endpoint, (requests, mut stream)) = match opened {
            Ok(o) => o,
            Err(e) => {
                if let Some(c) = created.take() {
                    let _ = c.send(Err(e));
                    return;
                }
                tracing::debug!(error = %e, "watch: no endpoint, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = out.closed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone_from(&endpoint);
        let mut watch_id: Option<i64> = None;
        let mut cancelling = false;
        loop {
            tokio::select! {
                _ = out.closed() => return,
                c = control.recv(), if control_open => match c {
                    Some(Control::Cancel) => {
                        let Some(id) = watch_id else { return };
                        cancelling = true;
                        let cancel = pb::WatchRequest {
                            request_union: Some(RequestUnion::CancelRequest(pb::WatchCancelRequest { watch_id: id })),
                        };
                        if requests.send(cancel).is_err() {
                            return;
                        }
                    }
                    Some(Control::Progress) => {
                        let req = pb::WatchRequest {
                            request_union: Some(RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
                        };
                        let _ = requests.send(req);
                    }
                    None => control_open = false,
                },
                msg = stream.message() => match msg {
                    Ok(Some(r)) => {
                        backoff = MIN_BACKOFF;
                        if r.created || (r.canceled && watch_id.is_none()) {
                            watch_id = Some(r.watch_id);
                            if let Some(c) = created.take() {
                                let _ = c.send(Ok(r.watch_id));
                            }
                        }
                        let r = convert(r, &spec.prefix);
                        let canceled = r.canceled;
                        if let Some(r) = resume.on_response(r) {
                            if out.send(Ok(r)).await.is_err() {
                                return;
                            }
                        }
                        if canceled {
                            return;
                        }
                    }
                    Ok(None) | Err(_) if cancelling => return,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%endpoint, error = %status, "watch stream broke; resuming elsewhere");
                        if created.is_some() {
                            // Never created: report rather than retry forever.
                            if let Some(c) = created.take() {
                                let _ = c.send(Err(crate::Error::from_call(&endpoint, status)));
                            }
                            return;
                        }
                        break;
                    }
                }
            }
        }
        failed = Some(endpoint);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = out.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::{KeyValue, ResponseHeader};
    use crate::watch::EventType;

    fn put(key: &str, rev: i64) -> Event {
        Event {
            kind: EventType::Put,
            kv: KeyValue {
                key: key.into(),
                mod_revision: rev,
                ..Default::default()
            },
            prev_kv: None,
        }
    }

    fn resp(rev: i64, events: Vec<Event>) -> WatchResponse {
        WatchResponse {
            header: ResponseHeader {
                revision: rev,
                ..Default::default()
            },
            events,
            ..Default::default()
        }
    }

    #[test]
    fn a_watch_from_now_resumes_after_its_creation_revision() {
        let mut r = Resume::new(0);
        assert_eq!(r.start_revision(), 0);
        let created = WatchResponse {
            created: true,
            ..resp(7, vec![])
        };
        assert_eq!(r.on_response(created), None, "creates are not delivered");
        assert_eq!(r.start_revision(), 8);
    }

    #[test]
    fn events_and_progress_move_the_resume_point() {
        let mut r = Resume::new(5);
        let got = r.on_response(resp(6, vec![put("a", 5), put("b", 6)]));
        assert_eq!(got.map(|g| g.events.len()), Some(2));
        assert_eq!(r.start_revision(), 7);
        // A progress notification at 9: changes up to 9 are all delivered.
        assert!(r.on_response(resp(9, vec![])).is_some());
        assert_eq!(r.start_revision(), 10);
        // A lagging member's progress never moves it back.
        assert!(r.on_response(resp(4, vec![])).is_some());
        assert_eq!(r.start_revision(), 10);
    }

    #[test]
    fn repeated_events_are_dropped() {
        let mut r = Resume::new(5);
        r.on_response(resp(6, vec![put("a", 5), put("b", 6)]));
        assert_eq!(r.on_response(resp(6, vec![put("b", 6)])), None);
        let got = r
            .on_response(resp(7, vec![put("b", 6), put("c", 7)]))
            .expect("new event");
        assert_eq!(got.events, vec![put("c", 7)]);
    }

    #[test]
    fn fragments_are_merged_and_only_complete_revisions_count() {
        let mut r = Resume::new(3);
        let frag = |events| WatchResponse {
            fragment: true,
            ..resp(3, events)
        };
        assert_eq!(r.on_response(frag(vec![put("a", 3)])), None);
        assert_eq!(r.on_response(frag(vec![put("b", 3)])), None);
        assert_eq!(r.start_revision(), 3, "revision 3 not complete yet");
        let whole = r.on_response(resp(3, vec![put("c", 3)])).expect("merged");
        assert_eq!(whole.events, vec![put("a", 3), put("b", 3), put("c", 3)]);
        assert!(!whole.fragment);
        assert_eq!(r.start_revision(), 4);
    }

    #[test]
    fn cancellation_is_delivered() {
        let mut r = Resume::new(3);
        let c = WatchResponse {
            canceled: true,
            compact_revision: 9,
            ..resp(12, vec![])
        };
        assert_eq!(r.on_response(c.clone()), Some(c));
    }

    #[test]
    fn create_request_carries_options() {
        let spec = WatchSpec {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            options: WatchOptions::new()
                .with_prev_kv()
                .with_no_put()
                .with_no_delete()
                .with_fragment()
                .with_progress_notify(),
            prefix: Vec::new(),
        };
        let Some(RequestUnion::CreateRequest(c)) = spec.create_request(4).request_union else {
            panic!("not a create");
        };
        assert_eq!(
            (c.key.as_slice(), c.range_end.as_slice()),
            (&b"a"[..], &b"b"[..])
        );
        assert_eq!(c.start_revision, 4);
        assert!(c.prev_kv && c.fragment && c.progress_notify);
        assert_eq!(
            c.filters,
            vec![FilterType::Noput as i32, FilterType::Nodelete as i32]
        );
    }
}
