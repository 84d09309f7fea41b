//! The `process_*` metrics that Prometheus's Go client exports for every Go program,
//! and so for etcd: read from `/proc` at each scrape. Tools depend on them —
//! `etcdctl check datascale` reads `process_resident_memory_bytes` from every endpoint
//! before and after its load and fails when it is missing.

use super::write_metric;

/// What `/proc/self/stat` says, in its own units (fields 14, 15, 22, 23 and 24).
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    utime_ticks: u64,
    stime_ticks: u64,
    start_ticks: u64,
    vsize_bytes: u64,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (the state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The boot time in seconds since the epoch, from `/proc/stat`'s `btime` line.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A resource limit as Go's collector reports it: "unlimited" is the largest u64.
fn limit_value(limit: Option<u64>) -> f64 {
    limit.unwrap_or(u64::MAX) as f64
}

/// Appends the process metrics to a Prometheus text exposition. Leaves them out when
/// `/proc` cannot be read, as the Go collector does.
pub(super) fn render(out: &mut String) {
    let Some(stat) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t))
    else {
        return;
    };
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as u64;
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).ok();
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_boot_time(&t));
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let address_space = rustix::process::getrlimit(rustix::process::Resource::As);

    let mut metric =
        |name: &str, kind: &str, help: &str, value: f64| write_metric(out, name, kind, help, value);
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        (stat.utime_ticks + stat.stime_ticks) as f64 / ticks,
    );
    metric(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        limit_value(nofile.current),
    );
    if let Some(n) = open_fds {
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            n as f64,
        );
    }
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        (stat.rss_pages * page) as f64,
    );
    if let Some(boot) = boot {
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot as f64 + stat.start_ticks as f64 / ticks,
        );
    }
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        stat.vsize_bytes as f64,
    );
    metric(
        "process_virtual_memory_max_bytes",
        "gauge",
        "Maximum amount of virtual memory available in bytes.",
        limit_value(address_space.current),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a parenthesis of its own.
        let line = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 987654321 2345 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime_ticks: 250,
                stime_ticks: 75,
                start_ticks: 123456,
                vsize_bytes: 987654321,
                rss_pages: 2345,
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
    }

    #[test]
    fn boot_time_comes_from_the_btime_line() {
        let text = "cpu  1 2 3 4\nintr 5\nbtime 1795500000\nprocesses 99\n";
        assert_eq!(parse_boot_time(text), Some(1_795_500_000));
        assert_eq!(parse_boot_time("cpu 1 2 3\n"), None);
    }

    #[test]
    fn this_process_reports_its_memory_fds_and_start() {
        let mut out = String::new();
        render(&mut out);
        let value = |name: &str| -> f64 {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from:\n{out}"));
            line[name.len() + 1..].parse().expect("a number")
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let started = value("process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
        assert!(out.contains("# TYPE process_cpu_seconds_total counter"));
    }
}
