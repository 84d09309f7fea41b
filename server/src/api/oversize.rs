//! A request message over the gRPC limit, refused in grpc-go's words (etcd's).
//!
//! etcd's gRPC server refuses such a message with `ResourceExhausted` "grpc: received
//! message larger than max (N vs. M)", before any handler sees it. tonic's decoder
//! refuses it with `OutOfRange` "Error, decoded message length too large: found N
//! bytes, the limit is: M bytes". The KV calls decode their own requests and use
//! [`too_large`] directly (`unary.rs`); for the services behind tonic's router the
//! refusal is translated where it surfaces: a unary call's trailers-only answer
//! ([`translate_headers`]), or the error a streaming handler reads from its request
//! stream ([`translate`]), which the handler then ends its answer with, as etcd's
//! handlers end theirs with the receive error.

use http::{HeaderMap, HeaderValue};
use tonic::{Code, Status};

/// The refusal of a message of `len` bytes past a limit of `max`.
pub fn too_large(len: usize, max: usize) -> Status {
    Status::resource_exhausted(format!(
        "grpc: received message larger than max ({len} vs. {max})"
    ))
}

/// `status` in grpc-go's words if it is tonic's refusal of an oversized message;
/// anything else unchanged.
pub fn translate(status: Status) -> Status {
    match sizes(&status) {
        Some((len, max)) => too_large(len, max),
        None => status,
    }
}

/// The message and limit sizes in tonic's refusal.
fn sizes(status: &Status) -> Option<(usize, usize)> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let rest = status
        .message()
        .strip_prefix("Error, decoded message length too large: found ")?;
    let (len, rest) = rest.split_once(" bytes, the limit is: ")?;
    let max = rest.strip_suffix(" bytes")?;
    Some((len.parse().ok()?, max.parse().ok()?))
}

/// Rewrites a trailers-only answer's status (in `headers`) that is tonic's refusal of
/// an oversized message. Other answers are left alone; only `OutOfRange` ones are
/// decoded at all.
pub fn translate_headers(headers: &mut HeaderMap) {
    if headers.get("grpc-status").map(HeaderValue::as_bytes) != Some(b"11") {
        return;
    }
    let Some(refusal) = Status::from_header_map(headers)
        .as_ref()
        .and_then(sizes)
        .map(|(len, max)| too_large(len, max))
    else {
        return;
    };
    // Through tonic's own encoder, so the message is percent-encoded as gRPC wants.
    let mut encoded = HeaderMap::new();
    if refusal.add_header(&mut encoded).is_ok() {
        for name in ["grpc-status", "grpc-message"] {
            if let Some(v) = encoded.remove(name) {
                headers.insert(name, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tonics(len: usize, max: usize) -> Status {
        Status::out_of_range(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {max} bytes"
        ))
    }

    #[test]
    fn tonics_refusal_becomes_grpc_gos() {
        let s = translate(tonics(2_621_450, 2_097_152));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "grpc: received message larger than max (2621450 vs. 2097152)"
        );
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for s in [
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision"),
            Status::invalid_argument("Error, decoded message length too large: found 1 bytes"),
            Status::out_of_range(
                "Error, decoded message length too large: found x bytes, the limit is: 1 bytes",
            ),
        ] {
            let t = translate(s.clone());
            assert_eq!((t.code(), t.message()), (s.code(), s.message()));
        }
    }

    #[test]
    fn a_trailers_only_answer_is_rewritten_in_place() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        tonics(11, 10).add_header(&mut headers).expect("encode");
        translate_headers(&mut headers);
        let s = Status::from_header_map(&headers).expect("a status");
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "grpc: received message larger than max (11 vs. 10)"
        );
        assert_eq!(headers["content-type"], "application/grpc");

        let mut ok = HeaderMap::new();
        Status::out_of_range("etcdserver: too large lease TTL")
            .add_header(&mut ok)
            .expect("encode");
        let before = ok.clone();
        translate_headers(&mut ok);
        assert_eq!(ok, before);
    }
}
