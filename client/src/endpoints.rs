//! Pure endpoint decisions, kept apart from the I/O so they can be table-tested:
//! how an endpoint string becomes a URI, which list an endpoint sync adopts, and in
//! which order a call tries the endpoints.

use crate::error::{Error, Result};

/// `host:port` or `http://host:port` (etcdctl accepts both) as an `http://` URI.
/// `https://` is kept as given; a trailing `/` is dropped.
///
/// ```
/// use revkv_client::normalize_endpoint;
///
/// assert_eq!(normalize_endpoint("127.0.0.1:2379").unwrap(), "http://127.0.0.1:2379");
/// assert_eq!(normalize_endpoint("http://h:1/").unwrap(), "http://h:1");
/// assert!(normalize_endpoint("").is_err());
/// ```
pub fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if e.is_empty() {
        return Err(Error::InvalidArgument("empty endpoint".into()));
    }
    if e.starts_with("http://") || e.starts_with("https://") {
        Ok(e.to_owned())
    } else if e.contains("://") {
        Err(Error::InvalidArgument(format!(
            "endpoint {endpoint:?}: only http:// and https:// are supported"
        )))
    } else {
        Ok(format!("http://{e}"))
    }
}

/// The endpoint list an endpoint sync adopts: the member list's client URLs when it
/// has any, else the last good list, else the endpoints the client was started with.
/// Never empty while `initial` is not (a member list that lists nobody, e.g. from a
/// member that has not started yet, must not leave the client without endpoints).
///
/// ```
/// use revkv_client::resolve_endpoints;
///
/// let initial = vec!["http://a:1".to_string()];
/// let current = vec!["http://a:1".to_string(), "http://b:1".to_string()];
/// assert_eq!(resolve_endpoints(&[], &current, &initial), current);
/// assert_eq!(resolve_endpoints(&[], &[], &initial), initial);
/// ```
pub fn resolve_endpoints(
    discovered: &[String],
    current: &[String],
    initial: &[String],
) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for e in discovered {
        if let Ok(e) = normalize_endpoint(e) {
            if !found.contains(&e) {
                found.push(e);
            }
        }
    }
    if !found.is_empty() {
        found
    } else if !current.is_empty() {
        current.to_vec()
    } else {
        initial.to_vec()
    }
}

/// The order in which one call tries `n` endpoints: round robin from `start`, the
/// ones marked `down` (recently unreachable) after the others so a dead member costs
/// a connection attempt only when nothing better is left.
pub(crate) fn try_order(n: usize, start: usize, down: &[bool]) -> Vec<usize> {
    let rotated = (0..n).map(|i| (start + i) % n);
    let (up, dn): (Vec<usize>, Vec<usize>) =
        rotated.partition(|&i| !down.get(i).copied().unwrap_or(false));
    up.into_iter().chain(dn).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn endpoints_normalize() {
        for (input, want) in [
            ("127.0.0.1:2379", "http://127.0.0.1:2379"),
            (" localhost:1 ", "http://localhost:1"),
            ("http://h:2/", "http://h:2"),
            ("https://h:3", "https://h:3"),
        ] {
            assert_eq!(normalize_endpoint(input).expect(input), want);
        }
        assert!(normalize_endpoint("unix://sock").is_err());
        assert!(normalize_endpoint("  ").is_err());
    }

    #[test]
    fn sync_never_adopts_an_empty_list() {
        let initial = v(&["http://a:1"]);
        let current = v(&["http://a:1", "http://b:1"]);
        // Discovered wins, normalized and deduplicated.
        assert_eq!(
            resolve_endpoints(&v(&["c:1", "http://c:1", "d:1"]), &current, &initial),
            v(&["http://c:1", "http://d:1"])
        );
        // Nothing discovered: keep the last good list.
        assert_eq!(resolve_endpoints(&[], &current, &initial), current);
        // Only unusable URLs discovered counts as nothing discovered.
        assert_eq!(
            resolve_endpoints(&v(&["", " "]), &current, &initial),
            current
        );
        // No last good list: the endpoints the client started with.
        assert_eq!(resolve_endpoints(&[], &[], &initial), initial);
    }

    #[test]
    fn order_is_round_robin_with_down_endpoints_last() {
        assert_eq!(try_order(3, 0, &[false; 3]), vec![0, 1, 2]);
        assert_eq!(try_order(3, 1, &[false; 3]), vec![1, 2, 0]);
        assert_eq!(try_order(3, 1, &[false, true, false]), vec![2, 0, 1]);
        assert_eq!(try_order(3, 4, &[true, true, true]), vec![1, 2, 0]);
        assert_eq!(try_order(2, 0, &[]), vec![0, 1]);
        assert!(try_order(0, 0, &[]).is_empty());
    }
}
