//! `auth enable|disable`, `user add|delete|get|list|passwd|grant-role|revoke-role`,
//! `role add|delete|get|list|grant-permission|revoke-permission`, as etcdctl's.
//!
//! Wired to etcd's Auth RPCs; a server without auth answers with its error, which
//! is printed as etcdctl prints it. Only the simple format renders the answers.

use revkv_client::prefix_end;
use revkv_proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use revkv_proto::etcdserverpb as pb;

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::flags::{Kind, Spec};
use crate::printer::Format;
use crate::unary;

/// `user add`'s flags.
pub const USER_ADD_SPECS: &[Spec] = &[
    Spec::new(
        "interactive",
        Kind::Bool,
        "true",
        "Read password from stdin instead of interactive terminal",
    ),
    Spec::new(
        "new-user-password",
        Kind::Str,
        "",
        "Supply password from the command line flag",
    ),
    Spec::new(
        "no-password",
        Kind::Bool,
        "false",
        "Create a user without password (CN based auth only)",
    ),
];
/// `user passwd`'s flags.
pub const USER_PASSWD_SPECS: &[Spec] = &[Spec::new(
    "interactive",
    Kind::Bool,
    "true",
    "If true, read password from stdin instead of interactive terminal",
)];
/// `user get`'s flags.
pub const USER_GET_SPECS: &[Spec] = &[Spec::new(
    "detail",
    Kind::Bool,
    "false",
    "Show permissions of roles granted to the user",
)];
/// `role grant-permission`'s flags.
pub const GRANT_SPECS: &[Spec] = &[
    Spec::new("prefix", Kind::Bool, "false", "grant a prefix permission"),
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "grant a permission of keys that are greater than or equal to the given key using byte compare",
    ),
];
/// `role revoke-permission`'s flags.
pub const REVOKE_SPECS: &[Spec] = &[
    Spec::new("prefix", Kind::Bool, "false", "revoke a prefix permission"),
    Spec::new(
        "from-key",
        Kind::Bool,
        "false",
        "revoke a permission of keys that are greater than or equal to the given key using byte compare",
    ),
];

/// The flags of the command being built (each defaults as etcdctl's when absent).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--interactive` (`user add`, `user passwd`).
    pub interactive: bool,
    /// `--new-user-password`.
    pub new_user_password: String,
    /// `--no-password`.
    pub no_password: bool,
    /// `--detail`.
    pub detail: bool,
    /// `--prefix`.
    pub prefix: bool,
    /// `--from-key`.
    pub from_key: bool,
}

/// An auth request built from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `auth enable`.
    Enable,
    /// `auth disable`.
    Disable,
    /// `user add`.
    UserAdd(pb::AuthUserAddRequest),
    /// `user delete name`.
    UserDelete(String),
    /// `user get name [--detail]`.
    UserGet { name: String, detail: bool },
    /// `user list`.
    UserList,
    /// `user passwd name`.
    UserPasswd(pb::AuthUserChangePasswordRequest),
    /// `user grant-role user role`.
    UserGrantRole(pb::AuthUserGrantRoleRequest),
    /// `user revoke-role user role`.
    UserRevokeRole(pb::AuthUserRevokeRoleRequest),
    /// `role add name`.
    RoleAdd(String),
    /// `role delete name`.
    RoleDelete(String),
    /// `role get name`.
    RoleGet(String),
    /// `role list`.
    RoleList,
    /// `role grant-permission`.
    Grant(pb::AuthRoleGrantPermissionRequest),
    /// `role revoke-permission`; `shown_key` is the key as typed, which etcdctl prints.
    Revoke {
        req: pb::AuthRoleRevokePermissionRequest,
        shown_key: String,
    },
}

/// The password for a user without `name:password`: with `--interactive=false` the
/// first word of a stdin line (Go's `fmt.Scanf("%s")`), otherwise etcdctl's prompt,
/// twice ([`crate::prompt`]).
fn password(flags: &Flags, name: &str, stdin: &mut dyn FnMut() -> String) -> CtlResult<String> {
    if !flags.interactive {
        return Ok(stdin()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned());
    }
    let first = crate::prompt::ask(&format!("Password of {name}: "), stdin);
    if first.is_empty() {
        return Err(CtlError::bad_args("empty password"));
    }
    let again = crate::prompt::ask(
        &format!("Type password of {name} again for confirmation: "),
        stdin,
    );
    if first != again {
        return Err(CtlError::bad_args("given passwords are different"));
    }
    Ok(first)
}

/// etcdctl's `permRange`: the key and range end of a permission, from `args` (key
/// and an optional end) and the `--prefix` / `--from-key` flags.
fn perm_range(args: &[String], flags: &Flags) -> CtlResult<(Vec<u8>, Vec<u8>)> {
    let exclusive = || CtlError::bad_args("--from-key and --prefix flags are mutually exclusive");
    let key = args[0].as_bytes();
    if key.is_empty() {
        if flags.prefix && flags.from_key {
            return Err(exclusive());
        }
        // An empty key means every key: [\0, open end) for a prefix or from-key.
        let end = if flags.prefix || flags.from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    let end = match (args.get(1), flags.prefix, flags.from_key) {
        (None, true, true) => return Err(exclusive()),
        (None, true, false) => prefix_end(key),
        (None, false, true) => vec![0],
        (None, false, false) => Vec::new(),
        (Some(_), true, _) => {
            return Err(CtlError::bad_args(
                "unexpected endkey argument with --prefix flag",
            ))
        }
        (Some(_), _, true) => {
            return Err(CtlError::bad_args(
                "unexpected endkey argument with --from-key flag",
            ))
        }
        (Some(end), false, false) => end.as_bytes().to_vec(),
    };
    Ok((key.to_vec(), end))
}

/// The request of `<group> <sub> args`, with etcdctl's argument checks in its order.
pub fn build(
    group: &str,
    sub: &str,
    args: &[String],
    flags: &Flags,
    stdin: &mut dyn FnMut() -> String,
) -> CtlResult<Request> {
    let name = |what: &str| -> CtlResult<String> {
        match args {
            [n] => Ok(n.clone()),
            _ => Err(CtlError::bad_args(format!(
                "{group} {sub} command requires {what} name as its argument"
            ))),
        }
    };
    let none = || -> CtlResult<()> {
        if args.is_empty() {
            Ok(())
        } else {
            Err(CtlError::bad_args(format!(
                "{group} {sub} command requires no arguments"
            )))
        }
    };
    let two = |message: &str| -> CtlResult<(String, String)> {
        match args {
            [a, b] => Ok((a.clone(), b.clone())),
            _ => Err(CtlError::bad_args(message)),
        }
    };
    Ok(match (group, sub) {
        ("auth", "enable") | ("auth", "disable") if !args.is_empty() => {
            return Err(CtlError::bad_args(format!(
                "auth {sub} command does not accept any arguments."
            )))
        }
        ("auth", "enable") => Request::Enable,
        ("auth", _) => Request::Disable,
        ("user", "add") => {
            let arg = name("user")?;
            let mut req = pb::AuthUserAddRequest::default();
            if flags.no_password {
                req.name = arg;
                req.options = Some(UserAddOptions { no_password: true });
            } else if !flags.new_user_password.is_empty() {
                req.name = arg;
                req.password = flags.new_user_password.clone();
            } else if let Some((user, pass)) = arg.split_once(':') {
                if user.is_empty() {
                    return Err(CtlError::bad_args("empty user name is not allowed"));
                }
                req.name = user.to_owned();
                req.password = pass.to_owned();
            } else {
                req.password = password(flags, &arg, stdin)?;
                req.name = arg;
            }
            Request::UserAdd(req)
        }
        ("user", "delete") => Request::UserDelete(name("user")?),
        ("user", "get") => Request::UserGet {
            name: name("user")?,
            detail: flags.detail,
        },
        ("user", "passwd") => {
            let name = name("user")?;
            Request::UserPasswd(pb::AuthUserChangePasswordRequest {
                password: password(flags, &name, stdin)?,
                name,
                ..Default::default()
            })
        }
        ("user", "grant-role") => {
            let (user, role) =
                two("user grant command requires user name and role name as its argument")?;
            Request::UserGrantRole(pb::AuthUserGrantRoleRequest { user, role })
        }
        ("user", "revoke-role") => {
            let (name, role) =
                two("user revoke-role requires user name and role name as its argument")?;
            Request::UserRevokeRole(pb::AuthUserRevokeRoleRequest { name, role })
        }
        ("user", _) => {
            none()?;
            Request::UserList
        }
        ("role", "add") => Request::RoleAdd(name("role")?),
        ("role", "delete") => Request::RoleDelete(name("role")?),
        ("role", "get") => Request::RoleGet(name("role")?),
        ("role", "grant-permission") => {
            if args.len() < 3 {
                return Err(CtlError::bad_args("role grant command requires role name, permission type, and key [endkey] as its argument"));
            }
            let perm_type = PermType::from_str_name(&args[1].to_uppercase()).ok_or_else(|| {
                CtlError::bad_args(format!("invalid permission type: {}", args[1]))
            })?;
            let (key, range_end) = perm_range(&args[2..], flags)?;
            Request::Grant(pb::AuthRoleGrantPermissionRequest {
                name: args[0].clone(),
                perm: Some(Permission {
                    perm_type: perm_type as i32,
                    key,
                    range_end,
                }),
            })
        }
        ("role", "revoke-permission") => {
            if args.len() < 2 {
                return Err(CtlError::bad_args("role revoke-permission command requires role name and key [endkey] as its argument"));
            }
            let (key, range_end) = perm_range(&args[1..], flags)?;
            Request::Revoke {
                req: pb::AuthRoleRevokePermissionRequest {
                    role: args[0].clone(),
                    key,
                    range_end,
                },
                shown_key: args[1].clone(),
            }
        }
        _ => {
            none()?;
            Request::RoleList
        }
    })
}

/// etcdctl's simple rendering of one range permission.
fn show_range(out: &mut String, key: &[u8], end: &[u8]) {
    let (k, e) = (String::from_utf8_lossy(key), String::from_utf8_lossy(end));
    if end == [0] {
        out.push_str(&format!("\t[{k}, <open ended>"));
    } else {
        out.push_str(&format!("\t[{k}, {e})"));
    }
    if prefix_end(key) == end {
        out.push_str(&format!(" (prefix {k})"));
    }
    out.push('\n');
}

/// `role get`'s simple output: the role, then its read and its write permissions.
pub fn show_role(role: &str, perms: &[Permission]) -> String {
    let mut s = format!("Role {role}\n");
    for (title, kinds) in [
        ("KV Read:", [PermType::Read, PermType::Readwrite]),
        ("KV Write:", [PermType::Write, PermType::Readwrite]),
    ] {
        s.push_str(title);
        s.push('\n');
        for p in perms
            .iter()
            .filter(|p| kinds.iter().any(|k| *k as i32 == p.perm_type))
        {
            if p.range_end.is_empty() {
                s.push_str(&format!("\t{}\n", String::from_utf8_lossy(&p.key)));
            } else {
                show_range(&mut s, &p.key, &p.range_end);
            }
        }
    }
    s
}

/// What `role revoke-permission` prints.
fn revoked(role: &str, key: &str, end: &[u8]) -> String {
    match end {
        [] => format!("Permission of key {key} is revoked from role {role}\n"),
        [0] => format!("Permission of range [{key}, <open ended> is revoked from role {role}\n"),
        _ => format!(
            "Permission of range [{key}, {}) is revoked from role {role}\n",
            String::from_utf8_lossy(end)
        ),
    }
}

fn flags_of(ctx: &Ctx) -> Flags {
    let has = |name: &str| ctx.specs.iter().any(|s| s.name == name);
    Flags {
        interactive: !has("interactive") || ctx.bool("interactive"),
        new_user_password: if has("new-user-password") {
            ctx.str("new-user-password")
        } else {
            String::new()
        },
        no_password: has("no-password") && ctx.bool("no-password"),
        detail: has("detail") && ctx.bool("detail"),
        prefix: has("prefix") && ctx.bool("prefix"),
        from_key: has("from-key") && ctx.bool("from-key"),
    }
}

/// A role's permissions, as `role get` prints them.
async fn role_get(conn: &crate::conn::Conn, role: String) -> CtlResult<String> {
    let req = pb::AuthRoleGetRequest { role: role.clone() };
    let r = unary!(conn, conn.auth(), role_get, req).map_err(|e| CtlError::error(e.message()))?;
    Ok(show_role(&role, &r.perm))
}

/// Runs an auth, user or role command.
pub async fn execute(group: &str, sub: &str, ctx: &mut Ctx) -> CtlResult {
    let req = build(
        group,
        sub,
        ctx.args(),
        &flags_of(ctx),
        &mut crate::prompt::read_stdin,
    )?;
    let (conn, printer, _) = ctx.client().await?;
    let e = |e: crate::conn::CallError| CtlError::error(e.message());
    let a = conn.auth();
    let text = match req {
        Request::Enable => {
            unary!(conn, a, auth_enable, pb::AuthEnableRequest {}).map_err(e)?;
            "Authentication Enabled\n".to_owned()
        }
        Request::Disable => {
            unary!(conn, a, auth_disable, pb::AuthDisableRequest {}).map_err(e)?;
            "Authentication Disabled\n".to_owned()
        }
        Request::UserAdd(r) => {
            let n = r.name.clone();
            unary!(conn, a, user_add, r).map_err(e)?;
            format!("User {n} created\n")
        }
        Request::UserDelete(name) => {
            let req = pb::AuthUserDeleteRequest { name: name.clone() };
            unary!(conn, a, user_delete, req).map_err(e)?;
            format!("User {name} deleted\n")
        }
        Request::UserGet { name, detail } => {
            let req = pb::AuthUserGetRequest { name: name.clone() };
            let r = unary!(conn, a, user_get, req).map_err(e)?;
            if detail {
                let mut s = format!("User: {name}\n");
                for role in r.roles {
                    s.push('\n');
                    s.push_str(&role_get(&conn, role).await?);
                }
                s
            } else {
                let roles: String = r.roles.iter().map(|x| format!(" {x}")).collect();
                format!("User: {name}\nRoles:{roles}\n")
            }
        }
        Request::UserList => {
            let r = unary!(conn, a, user_list, pb::AuthUserListRequest {}).map_err(e)?;
            r.users.iter().map(|u| format!("{u}\n")).collect()
        }
        Request::UserPasswd(r) => {
            unary!(conn, a, user_change_password, r).map_err(e)?;
            "Password updated\n".to_owned()
        }
        Request::UserGrantRole(r) => {
            let text = format!("Role {} is granted to user {}\n", r.role, r.user);
            unary!(conn, a, user_grant_role, r).map_err(e)?;
            text
        }
        Request::UserRevokeRole(r) => {
            let text = format!("Role {} is revoked from user {}\n", r.role, r.name);
            unary!(conn, a, user_revoke_role, r).map_err(e)?;
            text
        }
        Request::RoleAdd(name) => {
            let req = pb::AuthRoleAddRequest { name: name.clone() };
            unary!(conn, a, role_add, req).map_err(e)?;
            format!("Role {name} created\n")
        }
        Request::RoleDelete(role) => {
            let req = pb::AuthRoleDeleteRequest { role: role.clone() };
            unary!(conn, a, role_delete, req).map_err(e)?;
            format!("Role {role} deleted\n")
        }
        Request::RoleGet(role) => role_get(&conn, role).await?,
        Request::RoleList => {
            let r = unary!(conn, a, role_list, pb::AuthRoleListRequest {}).map_err(e)?;
            r.roles.iter().map(|x| format!("{x}\n")).collect()
        }
        Request::Grant(r) => {
            let text = format!("Role {} updated\n", r.name);
            unary!(conn, a, role_grant_permission, r).map_err(e)?;
            text
        }
        Request::Revoke { req, shown_key } => {
            let text = revoked(&req.role, &shown_key, &req.range_end);
            unary!(conn, a, role_revoke_permission, req).map_err(e)?;
            text
        }
    };
    if printer.format != Format::Simple {
        return Err(CtlError::new(
            crate::exit::BAD_FEATURE,
            "revkvctl prints auth answers in the simple format only",
        ));
    }
    out(text.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    fn build_with(group: &str, sub: &str, args: &[&str], flags: &Flags) -> CtlResult<Request> {
        build(group, sub, &a(args), flags, &mut || {
            "secret extra\n".to_owned()
        })
    }

    fn defaults() -> Flags {
        Flags {
            interactive: true,
            ..Flags::default()
        }
    }

    #[test]
    fn args_map_to_requests() {
        let f = defaults();
        assert_eq!(build_with("auth", "enable", &[], &f), Ok(Request::Enable));
        assert_eq!(build_with("user", "list", &[], &f), Ok(Request::UserList));
        assert_eq!(
            build_with("role", "get", &["r"], &f),
            Ok(Request::RoleGet("r".into()))
        );
        assert!(
            matches!(build_with("user", "add", &["u:p"], &f), Ok(Request::UserAdd(r)) if r.name == "u" && r.password == "p")
        );
        assert_eq!(
            build_with("user", "get", &[], &f),
            Err(CtlError::bad_args(
                "user get command requires user name as its argument"
            ))
        );
        assert_eq!(
            build_with("auth", "enable", &["x"], &f),
            Err(CtlError::bad_args(
                "auth enable command does not accept any arguments."
            ))
        );
        assert_eq!(
            build_with("role", "list", &["x"], &f),
            Err(CtlError::bad_args(
                "role list command requires no arguments"
            ))
        );
    }

    #[test]
    fn passwords_come_from_the_argument_a_flag_or_stdin() {
        let stdin = Flags {
            interactive: false,
            ..Flags::default()
        };
        assert!(
            matches!(build_with("user", "add", &["u"], &stdin), Ok(Request::UserAdd(r)) if r.name == "u" && r.password == "secret")
        );
        let flag = Flags {
            new_user_password: "pw".into(),
            ..defaults()
        };
        assert!(
            matches!(build_with("user", "add", &["u:x"], &flag), Ok(Request::UserAdd(r)) if r.name == "u:x" && r.password == "pw")
        );
        let none = Flags {
            no_password: true,
            ..defaults()
        };
        assert!(
            matches!(build_with("user", "add", &["u"], &none), Ok(Request::UserAdd(r)) if r.options == Some(UserAddOptions { no_password: true }) && r.password.is_empty())
        );
        assert_eq!(
            build_with("user", "add", &[":x"], &defaults()),
            Err(CtlError::bad_args("empty user name is not allowed"))
        );
        assert!(
            matches!(build_with("user", "passwd", &["u"], &stdin), Ok(Request::UserPasswd(r)) if r.password == "secret")
        );
    }

    #[test]
    fn permission_ranges_follow_etcdctls_flags() {
        let f = |prefix, from_key| Flags {
            prefix,
            from_key,
            ..defaults()
        };
        let range = |args: &[&str], flags: &Flags| perm_range(&a(args), flags);
        assert_eq!(range(&["k"], &f(false, false)), Ok((b"k".to_vec(), vec![])));
        assert_eq!(
            range(&["k"], &f(true, false)),
            Ok((b"k".to_vec(), b"l".to_vec()))
        );
        assert_eq!(range(&["k"], &f(false, true)), Ok((b"k".to_vec(), vec![0])));
        assert_eq!(
            range(&["a", "z"], &f(false, false)),
            Ok((b"a".to_vec(), b"z".to_vec()))
        );
        assert_eq!(range(&[""], &f(true, false)), Ok((vec![0], vec![0])));
        assert_eq!(range(&[""], &f(false, false)), Ok((vec![0], vec![])));
        assert!(range(&["k"], &f(true, true)).is_err());
        assert_eq!(
            range(&["a", "z"], &f(true, false)),
            Err(CtlError::bad_args(
                "unexpected endkey argument with --prefix flag"
            ))
        );
        assert_eq!(
            build_with(
                "role",
                "grant-permission",
                &["r", "bogus", "k"],
                &defaults()
            ),
            Err(CtlError::bad_args("invalid permission type: bogus"))
        );
    }

    #[test]
    fn roles_print_their_permissions_as_etcdctl() {
        let p = |t: PermType, k: &[u8], e: &[u8]| Permission {
            perm_type: t as i32,
            key: k.to_vec(),
            range_end: e.to_vec(),
        };
        let perms = [
            p(PermType::Read, b"foo", b""),
            p(PermType::Readwrite, b"dir/", b"dir0"),
            p(PermType::Write, b"a", b"z"),
            p(PermType::Read, b"\0", b"\0"),
        ];
        assert_eq!(
            show_role("r", &perms),
            "Role r\nKV Read:\n\tfoo\n\t[dir/, dir0) (prefix dir/)\n\t[\0, <open ended>\nKV Write:\n\t[dir/, dir0) (prefix dir/)\n\t[a, z)\n"
        );
        assert_eq!(
            revoked("r", "", &[0]),
            "Permission of range [, <open ended> is revoked from role r\n"
        );
    }
}
