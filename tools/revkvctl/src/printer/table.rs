//! The `table` format (olekukonko/tablewriter as etcdctl configures it: upper-case
//! centred headers, right-aligned cells), and the rows that the simple format
//! prints comma-joined.

use revkv_proto::etcdserverpb as pb;

use super::{DbStatus, EpHashKv, EpHealth, EpStatus};
use crate::gofmt::humanize_bytes;

/// `member list` columns.
pub const MEMBER_HEADER: [&str; 6] = [
    "ID",
    "Status",
    "Name",
    "Peer Addrs",
    "Client Addrs",
    "Is Learner",
];

/// `endpoint status` columns.
pub const STATUS_HEADER: [&str; 10] = [
    "endpoint",
    "ID",
    "version",
    "db size",
    "is leader",
    "is learner",
    "raft term",
    "raft index",
    "raft applied index",
    "errors",
];

/// `endpoint hashkv` columns.
pub const HASHKV_HEADER: [&str; 2] = ["endpoint", "hash"];

/// `snapshot status` columns.
pub const DB_STATUS_HEADER: [&str; 4] = ["hash", "revision", "total keys", "total size"];

/// `endpoint health` columns.
pub const HEALTH_HEADER: [&str; 4] = ["endpoint", "health", "took", "error"];

/// One row per member.
pub fn member_rows(r: &pb::MemberListResponse) -> Vec<Vec<String>> {
    r.members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_owned(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

/// One row per endpoint.
pub fn status_rows(eps: &[EpStatus]) -> Vec<Vec<String>> {
    eps.iter()
        .map(|e| {
            let r = &e.resp;
            let member_id = r.header.map(|h| h.member_id).unwrap_or(0);
            vec![
                e.ep.clone(),
                format!("{member_id:x}"),
                r.version.clone(),
                humanize_bytes(r.db_size.max(0) as u64),
                (r.leader == member_id).to_string(),
                r.is_learner.to_string(),
                r.raft_term.to_string(),
                r.raft_index.to_string(),
                r.raft_applied_index.to_string(),
                r.errors.join(", "),
            ]
        })
        .collect()
}

/// One row per endpoint: the endpoint and its hash.
pub fn hashkv_rows(hs: &[EpHashKv]) -> Vec<Vec<String>> {
    hs.iter()
        .map(|h| vec![h.ep.clone(), h.resp.hash.to_string()])
        .collect()
}

/// The one row of `snapshot status`.
pub fn db_status_rows(s: &DbStatus) -> Vec<Vec<String>> {
    vec![vec![
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        humanize_bytes(s.total_size),
    ]]
}

/// One row per endpoint.
pub fn health_rows(hs: &[EpHealth]) -> Vec<Vec<String>> {
    hs.iter()
        .map(|h| {
            vec![
                h.ep.clone(),
                h.health.to_string(),
                h.took.clone(),
                h.error.clone(),
            ]
        })
        .collect()
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Draws the table.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> Vec<u8> {
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| width(s))
                .chain([width(&header[c])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths.iter().fold(String::from("+"), |mut acc, w| {
        acc.push_str(&"-".repeat(w + 2));
        acc.push('+');
        acc
    });
    let mut out = String::new();
    out.push_str(&rule);
    out.push('\n');
    out.push('|');
    for (h, w) in header.iter().zip(&widths) {
        let gap = w - width(h);
        let left = gap / 2;
        out.push_str(&format!(
            " {}{h}{} |",
            " ".repeat(left),
            " ".repeat(gap - left)
        ));
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for r in rows {
        out.push('|');
        for (c, w) in widths.iter().enumerate() {
            let cell = r.get(c).map(String::as_str).unwrap_or("");
            out.push_str(&format!(" {}{cell} |", " ".repeat(w - width(cell))));
        }
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_tablewriter() {
        let rows = vec![vec![
            "127.0.0.1:23790".to_owned(),
            "true".to_owned(),
            "1.3ms".to_owned(),
            String::new(),
        ]];
        let got = String::from_utf8(render(&HEALTH_HEADER, &rows)).expect("utf8");
        let want = "\
+-----------------+--------+-------+-------+
|    ENDPOINT     | HEALTH | TOOK  | ERROR |
+-----------------+--------+-------+-------+
| 127.0.0.1:23790 |   true | 1.3ms |       |
+-----------------+--------+-------+-------+
";
        assert_eq!(got, want);
    }
}
