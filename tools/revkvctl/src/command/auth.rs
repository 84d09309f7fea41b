//! `auth enable|disable`, `user add|delete|get|list`, `role add|delete|get|list`.
//!
//! Wired to etcd's Auth RPCs; a server without auth answers with its error, which
//! is printed as etcdctl prints it. Only the simple format renders the answers.

use revkv_proto::etcdserverpb as pb;

use super::{out, Ctx};
use crate::exit::{CtlError, CtlResult};
use crate::printer::Format;
use crate::unary;

/// An auth request built from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `auth enable`.
    Enable,
    /// `auth disable`.
    Disable,
    /// `user add name:password`.
    UserAdd(pb::AuthUserAddRequest),
    /// `user delete name`.
    UserDelete(String),
    /// `user get name`.
    UserGet(String),
    /// `user list`.
    UserList,
    /// `role add name`.
    RoleAdd(String),
    /// `role delete name`.
    RoleDelete(String),
    /// `role get name`.
    RoleGet(String),
    /// `role list`.
    RoleList,
}

/// The request of `<group> <sub> args`.
pub fn build(group: &str, sub: &str, args: &[String]) -> CtlResult<Request> {
    let name = |what: &str| -> CtlResult<String> {
        match args {
            [n] => Ok(n.clone()),
            _ => Err(CtlError::bad_args(format!(
                "{group} {sub} command requires {what} name as its argument"
            ))),
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
            let n = name("user")?;
            let Some((user, password)) = n.split_once(':') else {
                return Err(CtlError::bad_args(
                    "password prompt is not supported; pass user add name:password",
                ));
            };
            Request::UserAdd(pb::AuthUserAddRequest {
                name: user.to_owned(),
                password: password.to_owned(),
                ..Default::default()
            })
        }
        ("user", "delete") => Request::UserDelete(name("user")?),
        ("user", "get") => Request::UserGet(name("user")?),
        ("user", _) => Request::UserList,
        ("role", "add") => Request::RoleAdd(name("role")?),
        ("role", "delete") => Request::RoleDelete(name("role")?),
        ("role", "get") => Request::RoleGet(name("role")?),
        _ => Request::RoleList,
    })
}

/// Runs an auth, user or role command.
pub async fn execute(group: &str, sub: &str, ctx: &mut Ctx) -> CtlResult {
    let req = build(group, sub, ctx.args())?;
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
            unary!(
                conn,
                a,
                user_delete,
                pb::AuthUserDeleteRequest { name: name.clone() }
            )
            .map_err(e)?;
            format!("User {name} deleted\n")
        }
        Request::UserGet(name) => {
            let r = unary!(
                conn,
                a,
                user_get,
                pb::AuthUserGetRequest { name: name.clone() }
            )
            .map_err(e)?;
            let roles: String = r.roles.iter().map(|x| format!(" {x}")).collect();
            format!("User: {name}\nRoles:{roles}\n")
        }
        Request::UserList => {
            let r = unary!(conn, a, user_list, pb::AuthUserListRequest {}).map_err(e)?;
            r.users.iter().map(|u| format!("{u}\n")).collect()
        }
        Request::RoleAdd(name) => {
            unary!(
                conn,
                a,
                role_add,
                pb::AuthRoleAddRequest { name: name.clone() }
            )
            .map_err(e)?;
            format!("Role {name} created\n")
        }
        Request::RoleDelete(role) => {
            unary!(
                conn,
                a,
                role_delete,
                pb::AuthRoleDeleteRequest { role: role.clone() }
            )
            .map_err(e)?;
            format!("Role {role} deleted\n")
        }
        Request::RoleGet(role) => {
            unary!(
                conn,
                a,
                role_get,
                pb::AuthRoleGetRequest { role: role.clone() }
            )
            .map_err(e)?;
            format!("Role {role}\nKV Read:\nKV Write:\n")
        }
        Request::RoleList => {
            let r = unary!(conn, a, role_list, pb::AuthRoleListRequest {}).map_err(e)?;
            r.roles.iter().map(|x| format!("{x}\n")).collect()
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

    #[test]
    fn args_map_to_requests() {
        let a = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(build("auth", "enable", &[]), Ok(Request::Enable));
        assert_eq!(build("user", "list", &[]), Ok(Request::UserList));
        assert_eq!(
            build("role", "get", &a(&["r"])),
            Ok(Request::RoleGet("r".into()))
        );
        assert!(
            matches!(build("user", "add", &a(&["u:p"])), Ok(Request::UserAdd(r)) if r.name == "u" && r.password == "p")
        );
        assert_eq!(
            build("user", "get", &[]),
            Err(CtlError::bad_args(
                "user get command requires user name as its argument"
            ))
        );
        assert_eq!(
            build("auth", "enable", &a(&["x"])),
            Err(CtlError::bad_args(
                "auth enable command does not accept any arguments."
            ))
        );
    }
}
