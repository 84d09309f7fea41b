//! `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`,
//! and `watch -i` (watch requests read from stdin).

use std::io::BufRead;

use revkv_client::prefix_end;
use revkv_proto::etcdserverpb::{self as pb, watch_request};
use tokio_stream::StreamExt;

use super::{err, out, Ctx};
use crate::argify::argify;
use crate::conn::{CallError, Conn};
use crate::exit::{
    CtlError, CtlResult, BAD_ARGS, BAD_CONNECTION, ERROR, INTERRUPTED, INVALID_INPUT,
};
use crate::flags::{self, Kind, Spec};
use crate::gofmt::quote;
use crate::printer::Printer;

/// `watch`'s flags.
pub const SPECS: &[Spec] = &[
    Spec::new("interactive", Kind::Bool, "false", "Interactive mode").short('i'),
    Spec::new(
        "prefix",
        Kind::Bool,
        "false",
        "Watch on a prefix if prefix is set",
    ),
    Spec::new(
        "prev-kv",
        Kind::Bool,
        "false",
        "get the previous key-value pair before the event happens",
    ),
    Spec::new("rev", Kind::Int, "0", "Revision to start watching"),
];

const BAD_NUM: &str = "bad number of arguments";
const BAD_NUM_ENV: &str = "bad number of arguments (found conflicting environment key)";
const BAD_NUM_SEP: &str = "bad number of arguments (found separator --, but no commands)";

/// What to watch and what to run on each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The watch request.
    pub req: pb::WatchCreateRequest,
    /// `-- command args` run per event (empty for none).
    pub exec: Vec<String>,
}

/// `ETCDCTL_WATCH_KEY` / `ETCDCTL_WATCH_RANGE_END`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvKey {
    /// The key.
    pub key: String,
    /// The range end.
    pub range_end: String,
}

/// etcdctl's `parseWatchArgs` + `getWatchChan`: `args` are the positional
/// arguments, `dash_at` where those after `--` start.
pub fn build(
    args: &[String],
    dash_at: Option<usize>,
    f: &flags::Parsed,
    env: &EnvKey,
) -> CtlResult<Plan> {
    let bad = |m: &str| Err(CtlError::bad_args(m));
    let (mut watch_args, exec) = match dash_at {
        Some(i) => (args[..i].to_vec(), args[i..].to_vec()),
        None => (args.to_vec(), Vec::new()),
    };
    if dash_at.is_some() && exec.is_empty() {
        return bad(BAD_NUM_SEP);
    }
    if !env.key.is_empty() {
        if !watch_args.is_empty() {
            return bad(BAD_NUM_ENV);
        }
        watch_args.push(env.key.clone());
        if !env.range_end.is_empty() {
            watch_args.push(env.range_end.clone());
        }
    }
    let Some(key) = watch_args.first() else {
        return bad(BAD_NUM);
    };
    let prefix = f.bool(SPECS, "prefix");
    let mut req = pb::WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        start_revision: f.int(SPECS, "rev"),
        prev_kv: f.bool(SPECS, "prev-kv"),
        ..Default::default()
    };
    if watch_args.len() == 2 {
        if prefix {
            return bad("`range_end` and `--prefix` are mutually exclusive");
        }
        req.range_end = watch_args[1].as_bytes().to_vec();
    }
    if prefix {
        req.range_end = if req.key.is_empty() {
            vec![0]
        } else {
            prefix_end(&req.key)
        };
    }
    Ok(Plan { req, exec })
}

fn env_key(ctx: &Ctx) -> CtlResult<EnvKey> {
    let get = |k: &str| {
        ctx.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let e = EnvKey {
        key: get("ETCDCTL_WATCH_KEY"),
        range_end: get("ETCDCTL_WATCH_RANGE_END"),
    };
    if e.key.is_empty() && !e.range_end.is_empty() {
        return Err(CtlError::bad_args(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            quote(e.range_end.as_bytes())
        )));
    }
    Ok(e)
}

/// Runs `watch`.
pub async fn execute(ctx: &mut Ctx) -> CtlResult {
    let env = env_key(ctx)?;
    if ctx.bool("interactive") {
        let (conn, printer, _) = ctx.client().await?;
        return interactive(conn, printer, env).await;
    }
    let plan = build(ctx.args(), ctx.parsed.dash_at, &ctx.parsed, &env)?;
    let (conn, printer, _) = ctx.client().await?;
    run_watch(&conn, &printer, plan).await?;
    Err(CtlError::new(
        INTERRUPTED,
        "watch is canceled by the server",
    ))
}

/// `watch -i`: one watch per `watch …` line, `progress` asks for a progress
/// notification; stdin ending is an error, as in etcdctl.
async fn interactive(conn: Conn, printer: Printer, env: EnvKey) -> CtlResult {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut raw = Vec::new();
            match lock.read_until(b'\n', &mut raw) {
                Ok(_) if raw.last() == Some(&b'\n') => {
                    raw.pop();
                    if tx
                        .send(Some(String::from_utf8_lossy(&raw).into_owned()))
                        .is_err()
                    {
                        return;
                    }
                }
                _ => {
                    let _ = tx.send(None);
                    return;
                }
            }
        }
    });
    let mut all: Vec<Spec> = SPECS.to_vec();
    all.push(super::HELP.short('h'));
    while let Some(Some(line)) = rx.recv().await {
        let args = argify(&line).unwrap_or_default();
        match args.first().map(String::as_str) {
            None => {
                err(format!("Invalid command: {line} (watch and progress supported)\n").as_bytes())
            }
            Some("watch") => {
                if args.len() < 2 && env.key.is_empty() {
                    err(
                        format!("Invalid command {line} (command type or key is not provided)\n")
                            .as_bytes(),
                    );
                    continue;
                }
                let parsed =
                    flags::parse(&all, &args[1..]).map_err(|e| CtlError::new(BAD_ARGS, e))?;
                match build(&parsed.args, parsed.dash_at, &parsed, &env) {
                    Ok(plan) => {
                        let (conn, printer) = (conn.clone(), printer);
                        tokio::spawn(async move {
                            if let Err(e) = run_watch(&conn, &printer, plan).await {
                                crate::finish(Err(e));
                            }
                        });
                    }
                    Err(CtlError {
                        message: Some(m),
                        code,
                    }) if m.contains("mutually exclusive") && code == BAD_ARGS => {
                        err(format!("Invalid command {line} ({m})\n").as_bytes());
                    }
                    Err(e) => return Err(e),
                }
            }
            Some("progress") => {
                // Progress needs a watch stream; a one-off stream asks for it.
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let _ = tx
                    .send(pb::WatchRequest {
                        request_union: Some(watch_request::RequestUnion::ProgressRequest(
                            pb::WatchProgressRequest {},
                        )),
                    })
                    .await;
                let mut w = conn.watch();
                w.watch(conn.request(tokio_stream::wrappers::ReceiverStream::new(rx)))
                    .await
                    .map_err(|s| CtlError::error(CallError::Status(s).message()))?;
            }
            Some(_) => err(format!("Invalid command {line} (only support watch)\n").as_bytes()),
        }
    }
    Err(CtlError::new(
        INVALID_INPUT,
        "Error reading watch request line: EOF",
    ))
}

/// Opens the watch and prints responses until the server cancels it.
async fn run_watch(conn: &Conn, printer: &Printer, plan: Plan) -> CtlResult {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx
        .send(pb::WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(plan.req)),
        })
        .await;
    let mut client = conn.watch();
    let mut stream = client
        .watch(conn.request(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .map_err(|s| CtlError::new(BAD_CONNECTION, CallError::Status(s).message()))?
        .into_inner();
    // Keep the request side open: closing it would end the watch.
    let _keep = tx;
    let mut pending: Option<pb::WatchResponse> = None;
    while let Some(item) = stream.next().await {
        let mut resp =
            item.map_err(|s| CtlError::new(BAD_CONNECTION, CallError::Status(s).message()))?;
        // Reassemble fragments into one response, as clientv3 does.
        if let Some(mut p) = pending.take() {
            p.events.append(&mut resp.events);
            p.fragment = resp.fragment;
            resp = p;
        }
        if resp.fragment {
            pending = Some(resp);
            continue;
        }
        // clientv3 does not deliver the "created" notice.
        if resp.created && resp.events.is_empty() && !resp.canceled {
            continue;
        }
        if resp.canceled {
            err(format!("watch was canceled ({})\n", cancel_reason(&resp)).as_bytes());
        }
        out(&printer.watch(&resp)?);
        run_exec(&plan.exec, &resp)?;
        if resp.canceled {
            break;
        }
    }
    Ok(())
}

/// clientv3's `WatchResponse.Err()` for a cancelled watch.
fn cancel_reason(r: &pb::WatchResponse) -> String {
    if r.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".to_owned()
    } else if !r.cancel_reason.is_empty() {
        crate::conn::status_message(tonic::Code::FailedPrecondition, &r.cancel_reason)
    } else {
        "etcdserver: mvcc: required revision is a future revision".to_owned()
    }
}

/// Runs the `--` command once per event with etcdctl's `ETCD_WATCH_*` variables.
fn run_exec(exec: &[String], r: &pb::WatchResponse) -> CtlResult {
    let Some((cmd, args)) = exec.split_first() else {
        return Ok(());
    };
    let revision = r.header.map(|h| h.revision).unwrap_or(0);
    for ev in &r.events {
        let kv = ev.kv.clone().unwrap_or_default();
        let status = std::process::Command::new(cmd)
            .args(args)
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env(
                "ETCD_WATCH_EVENT_TYPE",
                quote(crate::printer::event_type_name(ev.r#type).as_bytes()),
            )
            .env("ETCD_WATCH_KEY", quote(&kv.key))
            .env("ETCD_WATCH_VALUE", quote(&kv.value))
            .status();
        let why = match status {
            Ok(s) if s.success() => continue,
            Ok(s) => match s.code() {
                Some(c) => format!("exit status {c}"),
                None => s.to_string(),
            },
            Err(e) => format!("exec: {}: {e}", quote(cmd.as_bytes())),
        };
        let list: Vec<String> = exec.iter().map(|a| quote(a.as_bytes())).collect();
        err(format!("command [{}] error ({why})\n", list.join(" ")).as_bytes());
        return Err(CtlError::silent(ERROR));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(argv: &[&str], env: &EnvKey) -> CtlResult<Plan> {
        let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
        let p = flags::parse(SPECS, &argv).expect("flags parse");
        build(&p.args, p.dash_at, &p, env)
    }

    fn create(key: &str, end: &[u8], rev: i64, prev_kv: bool) -> pb::WatchCreateRequest {
        pb::WatchCreateRequest {
            key: key.as_bytes().to_vec(),
            range_end: end.to_vec(),
            start_revision: rev,
            prev_kv,
            ..Default::default()
        }
    }

    #[test]
    fn args_map_to_requests() {
        let none = EnvKey::default();
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let cases: Vec<(&[&str], Plan)> = vec![
            (
                &["foo"],
                Plan {
                    req: create("foo", b"", 0, false),
                    exec: vec![],
                },
            ),
            (
                &["a", "c", "--rev=3"],
                Plan {
                    req: create("a", b"c", 3, false),
                    exec: vec![],
                },
            ),
            (
                &["--prefix", "svc/", "--prev-kv"],
                Plan {
                    req: create("svc/", b"svc0", 0, true),
                    exec: vec![],
                },
            ),
            (
                &["--prefix", ""],
                Plan {
                    req: create("", b"\0", 0, false),
                    exec: vec![],
                },
            ),
            (
                &["k", "--", "echo", "x"],
                Plan {
                    req: create("k", b"", 0, false),
                    exec: s(&["echo", "x"]),
                },
            ),
            (
                &["a", "b", "c"],
                Plan {
                    req: create("a", b"", 0, false),
                    exec: vec![],
                },
            ),
        ];
        for (argv, want) in cases {
            assert_eq!(plan(argv, &none).expect("builds"), want, "{argv:?}");
        }
        let env = EnvKey {
            key: "ek".into(),
            range_end: "ez".into(),
        };
        assert_eq!(
            plan(&["--", "echo"], &env).expect("env").req,
            create("ek", b"ez", 0, false)
        );
        let errs: &[(&[&str], &EnvKey, &str)] = &[
            (&[], &none, BAD_NUM),
            (&["k", "--"], &none, BAD_NUM_SEP),
            (&["k"], &env, BAD_NUM_ENV),
            (
                &["a", "b", "--prefix"],
                &none,
                "`range_end` and `--prefix` are mutually exclusive",
            ),
        ];
        for (argv, env, msg) in errs {
            assert_eq!(plan(argv, env), Err(CtlError::bad_args(*msg)), "{argv:?}");
        }
    }
}
