//! `member add|remove|update|list|promote`.

use revkv_proto::etcdserverpb as pb;

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::flags::{Kind, Spec};
use crate::gofmt::{self, quote};
use crate::printer::{Format, MemberOp};
use crate::unary;

/// `member add`'s flags.
pub const ADD_SPECS: &[Spec] = &[
    Spec::new(
        "learner",
        Kind::Bool,
        "false",
        "indicates if the new member is raft learner",
    ),
    Spec::new(
        "peer-urls",
        Kind::Str,
        "",
        "comma separated peer URLs for the new member.",
    ),
];
/// `member update`'s flags.
pub const UPDATE_SPECS: &[Spec] = &[Spec::new(
    "peer-urls",
    Kind::Str,
    "",
    "comma separated peer URLs for the updated member.",
)];

/// A cluster request built from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `member add <name> --peer-urls=… [--learner]`.
    Add {
        /// The new member's name (only printed; the server learns it when it starts).
        name: String,
        /// The request.
        req: pb::MemberAddRequest,
    },
    /// `member remove <id>`.
    Remove(pb::MemberRemoveRequest),
    /// `member update <id> --peer-urls=…`.
    Update(pb::MemberUpdateRequest),
    /// `member list`.
    List,
    /// `member promote <id>`.
    Promote(pb::MemberPromoteRequest),
}

fn member_id(args: &[String]) -> CtlResult<u64> {
    let [a] = args else {
        return Err(CtlError::bad_args("member ID is not provided"));
    };
    gofmt::parse_uint(a, 16)
        .map_err(|e| CtlError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn urls(s: &str) -> Vec<String> {
    s.split(',').map(str::to_owned).collect()
}

/// The request of `member <sub> args`.
pub fn build(sub: &str, args: &[String], peer_urls: &str, learner: bool) -> CtlResult<Request> {
    Ok(match sub {
        "add" => {
            let [name] = args else {
                return Err(CtlError::bad_args("member name not provided"));
            };
            if peer_urls.is_empty() {
                return Err(CtlError::bad_args("member peer urls not provided"));
            }
            Request::Add {
                name: name.clone(),
                req: pb::MemberAddRequest {
                    peer_ur_ls: urls(peer_urls),
                    is_learner: learner,
                },
            }
        }
        "remove" => Request::Remove(pb::MemberRemoveRequest {
            id: member_id(args)?,
        }),
        "update" => {
            let id = member_id(args)?;
            if peer_urls.is_empty() {
                return Err(CtlError::bad_args("member peer urls not provided"));
            }
            Request::Update(pb::MemberUpdateRequest {
                id,
                peer_ur_ls: urls(peer_urls),
            })
        }
        "promote" => Request::Promote(pb::MemberPromoteRequest {
            id: member_id(args)?,
        }),
        _ => Request::List,
    })
}

/// The environment block `member add` prints for starting the new member.
fn add_env(name: &str, r: &pb::MemberAddResponse) -> String {
    let new = r.member.clone().unwrap_or_default();
    let conf: Vec<String> = r
        .members
        .iter()
        .flat_map(|m| {
            let n = if m.id == new.id {
                name
            } else {
                m.name.as_str()
            };
            m.peer_ur_ls.iter().map(move |u| format!("{n}={u}"))
        })
        .collect();
    format!(
        "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        quote(name.as_bytes()),
        quote(conf.join(",").as_bytes()),
        quote(new.peer_ur_ls.join(",").as_bytes())
    )
}

/// Runs `member <sub>`.
pub async fn execute(sub: &str, ctx: &mut Ctx) -> CtlResult {
    let req = build(sub, ctx.args(), &ctx.str("peer-urls"), ctx.bool("learner"))?;
    let (conn, printer, _) = ctx.client().await?;
    let err = |e: crate::conn::CallError| CtlError::error(e.message());
    let bytes = match req {
        Request::Add { name, req } => {
            let resp = unary!(conn, conn.cluster(), member_add, req).map_err(err)?;
            let mut bytes = printer.member_add(&resp)?;
            if printer.format == Format::Simple {
                bytes.extend_from_slice(add_env(&name, &resp).as_bytes());
            }
            bytes
        }
        Request::Remove(r) => {
            let id = r.id;
            let resp = unary!(conn, conn.cluster(), member_remove, r).map_err(err)?;
            printer.member_change(MemberOp::Remove(id), resp.header.as_ref(), &resp.members)?
        }
        Request::Update(r) => {
            let id = r.id;
            let resp = unary!(conn, conn.cluster(), member_update, r).map_err(err)?;
            printer.member_change(MemberOp::Update(id), resp.header.as_ref(), &resp.members)?
        }
        Request::Promote(r) => {
            let id = r.id;
            let resp = unary!(conn, conn.cluster(), member_promote, r).map_err(err)?;
            printer.member_change(MemberOp::Promote(id), resp.header.as_ref(), &resp.members)?
        }
        Request::List => {
            let req = pb::MemberListRequest {
                linearizable: false,
            };
            let resp = unary!(conn, conn.cluster(), member_list, req).map_err(err)?;
            printer.member_list(&resp)?
        }
    };
    out(&bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn args_map_to_requests() {
        let add = build("add", &argv(&["n1"]), "http://a:1,http://b:2", true).expect("add");
        assert_eq!(
            add,
            Request::Add {
                name: "n1".into(),
                req: pb::MemberAddRequest {
                    peer_ur_ls: argv(&["http://a:1", "http://b:2"]),
                    is_learner: true
                }
            }
        );
        assert_eq!(
            build("remove", &argv(&["2e1259d415f2a040"]), "", false),
            Ok(Request::Remove(pb::MemberRemoveRequest {
                id: 0x2e1259d415f2a040
            }))
        );
        assert_eq!(
            build("update", &argv(&["a"]), "http://x:1", false),
            Ok(Request::Update(pb::MemberUpdateRequest {
                id: 10,
                peer_ur_ls: argv(&["http://x:1"])
            }))
        );
        assert_eq!(build("list", &[], "", false), Ok(Request::List));
        let errs: &[(&str, &[&str], &str, &str)] = &[
            ("add", &[], "", "member name not provided"),
            ("add", &["x"], "", "member peer urls not provided"),
            ("remove", &[], "", "member ID is not provided"),
            ("remove", &["zz"], "", "bad member ID arg (strconv.ParseUint: parsing \"zz\": invalid syntax), expecting ID in Hex"),
            ("update", &["1"], "", "member peer urls not provided"),
            ("promote", &[], "", "member ID is not provided"),
        ];
        for (sub, args, urls, msg) in errs {
            assert_eq!(
                build(sub, &argv(args), urls, false),
                Err(CtlError::bad_args(*msg)),
                "{sub}"
            );
        }
    }

    #[test]
    fn add_prints_the_new_members_environment() {
        let m = |id, name: &str, url: &str| pb::Member {
            id,
            name: name.into(),
            peer_ur_ls: vec![url.into()],
            ..Default::default()
        };
        let r = pb::MemberAddResponse {
            header: None,
            member: Some(m(2, "", "http://127.0.0.1:1")),
            members: vec![
                m(1, "default", "http://127.0.0.1:2380"),
                m(2, "", "http://127.0.0.1:1"),
            ],
        };
        assert_eq!(
            add_env("l1", &r),
            "\nETCD_NAME=\"l1\"\nETCD_INITIAL_CLUSTER=\"default=http://127.0.0.1:2380,l1=http://127.0.0.1:1\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://127.0.0.1:1\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        );
    }
}
