//! revkvctl's help against stock etcdctl 3.4's, byte for byte: every command's `-h`,
//! every group's (with `-h` and bare), the root's, and `help [command]`. The only
//! difference allowed is the root's list, where etcdctl also names the commands
//! revkvctl does not have (`completion …`, `migrate`; see docs/COMPATIBILITY.md).

use std::time::Duration;

use revkv_tests::etcdctl::etcdctl_bin;
use revkv_tests::revkvctl::{revkvctl_bin, run_cli, Run};

const LIMIT: Duration = Duration::from_secs(20);
/// Help never dials; the endpoint only has to parse.
const NOWHERE: &str = "127.0.0.1:1";
/// etcdctl 3.4 commands revkvctl does not implement.
const MISSING: &[&str] = &["completion", "migrate"];

fn help(bin: &std::path::Path, args: &[&str]) -> Run {
    run_cli(bin, NOWHERE, args, None, &[], LIMIT)
}

/// The command paths etcdctl's root help lists.
fn etcdctl_commands(root: &str) -> Vec<String> {
    root.lines()
        .skip_while(|l| *l != "COMMANDS:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.trim_start_matches('\t').split('\t').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_matches_etcdctl() {
    let (etcdctl, revkvctl) = (etcdctl_bin(), revkvctl_bin());
    let root = help(&etcdctl, &["-h"]);
    let commands = etcdctl_commands(&root.stdout);
    assert!(commands.len() > 40, "{commands:?}");
    let ours = |path: &str| !MISSING.iter().any(|m| path.split(' ').next() == Some(m));

    // The root, without the lines of commands revkvctl lacks.
    let mut want = root;
    want.stdout = want
        .stdout
        .split_inclusive('\n')
        .filter(|l| !MISSING.iter().any(|m| l.starts_with(&format!("\t{m}"))))
        .collect();
    assert_eq!(help(&revkvctl, &["-h"]), want, "root help");
    assert_eq!(help(&revkvctl, &["help"]), want, "`help`");

    let mut groups: Vec<&str> = Vec::new();
    for path in commands.iter().filter(|p| ours(p) && *p != "help") {
        let words: Vec<&str> = path.split(' ').collect();
        let mut args = words.clone();
        args.push("-h");
        assert_eq!(help(&revkvctl, &args), help(&etcdctl, &args), "{path} -h");
        if words.len() > 1 && !groups.contains(&words[0]) {
            groups.push(words[0]);
        }
    }
    assert!(groups.len() >= 9, "{groups:?}");
    for group in groups {
        for args in [vec![group, "-h"], vec![group], vec!["help", group]] {
            assert_eq!(help(&revkvctl, &args), help(&etcdctl, &args), "{args:?}");
        }
    }
    assert_eq!(
        help(&revkvctl, &["help", "get"]),
        help(&etcdctl, &["help", "get"])
    );
}
