//! A command-line flag parser with spf13/pflag's grammar and error strings.
//!
//! etcdctl is built on cobra/pflag, and its users (and scripts) rely on pflag's
//! details: flags may sit anywhere between positional arguments, `--name=value`,
//! `--name value`, `-w json`, `-wjson`, bare booleans, `--` ending the flags, and the
//! exact error wording (`unknown flag: --x`, `flag needs an argument: --rev`, …). A
//! generic parser (clap) words all of these differently, so this is a small pflag.

use std::collections::HashMap;
use std::time::Duration;

use crate::gofmt;

/// The type of a flag's value, which decides parsing and the usage rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--x` alone means true.
    Bool,
    /// Free text.
    Str,
    /// A signed integer (Go `int` / `int64`).
    Int,
    /// A Go duration (`2s`, `500ms`).
    Duration,
    /// A list; repeated flags and commas both add items (pflag's `StringSlice`).
    StrSlice,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Long name without dashes.
    pub name: &'static str,
    /// One-letter shorthand.
    pub short: Option<char>,
    /// Value type.
    pub kind: Kind,
    /// Default value as pflag prints it (`simple`, `0`, `2s`, `false`).
    pub default: &'static str,
    /// Help text.
    pub usage: &'static str,
    /// Left out of the usage text (revkvctl's additions to etcdctl 3.4's flags).
    pub hidden: bool,
    /// A flag of the command's group (cobra's persistent flag, e.g. `endpoint
    /// --cluster`): its help lists it with the global options.
    pub inherited: bool,
}

impl Spec {
    /// A flag without shorthand.
    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        usage: &'static str,
    ) -> Self {
        Spec {
            name,
            short: None,
            kind,
            default,
            usage,
            hidden: false,
            inherited: false,
        }
    }

    /// The same flag, declared by the command's group.
    pub const fn inherited(mut self) -> Self {
        self.inherited = true;
        self
    }

    /// The same flag, left out of the usage text.
    pub const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// The same flag with a shorthand.
    pub const fn short(mut self, c: char) -> Self {
        self.short = Some(c);
        self
    }
}

/// The result of parsing: flag values and positional arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    /// Positional arguments, in order (including those after `--`).
    pub args: Vec<String>,
    /// Index into `args` where the arguments after `--` start, if `--` was given.
    pub dash_at: Option<usize>,
}

impl Parsed {
    /// Whether the flag was given on the command line (or set from the environment).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Records a value as if given on the command line (used for `ETCDCTL_*`).
    pub fn set(&mut self, name: &'static str, value: String) {
        self.values.entry(name).or_default().push(value);
    }

    fn last(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// A string flag (or its default).
    pub fn str(&self, specs: &[Spec], name: &str) -> String {
        match self.last(name) {
            Some(v) => v.to_owned(),
            None => default_of(specs, name).to_owned(),
        }
    }

    /// A boolean flag; values were validated while parsing.
    pub fn bool(&self, specs: &[Spec], name: &str) -> bool {
        parse_bool(&self.str(specs, name)).unwrap_or(false)
    }

    /// An integer flag; values were validated while parsing.
    pub fn int(&self, specs: &[Spec], name: &str) -> i64 {
        gofmt::parse_int(&self.str(specs, name), 0).unwrap_or(0)
    }

    /// A duration flag; values were validated while parsing.
    pub fn duration(&self, specs: &[Spec], name: &str) -> Duration {
        gofmt::parse_duration(&self.str(specs, name)).unwrap_or_default()
    }

    /// A string-slice flag: every occurrence, each split on commas.
    pub fn slice(&self, specs: &[Spec], name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(vals) => vals
                .iter()
                .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                .collect(),
            None => {
                let d = default_of(specs, name);
                let d = d.trim_start_matches('[').trim_end_matches(']');
                if d.is_empty() {
                    Vec::new()
                } else {
                    d.split(',').map(str::to_owned).collect()
                }
            }
        }
    }
}

fn default_of<'a>(specs: &'a [Spec], name: &str) -> &'a str {
    specs
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.default)
        .unwrap_or("")
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Checks a value against the flag's kind; the error is pflag's suffix after
/// `invalid argument "v" for "--f" flag: `.
pub fn validate(kind: Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Bool => parse_bool(value).map(|_| ()).ok_or_else(|| {
            format!(
                "strconv.ParseBool: parsing {}: invalid syntax",
                gofmt::quote(value.as_bytes())
            )
        }),
        Kind::Int => gofmt::parse_int(value, 0).map(|_| ()),
        Kind::Duration => gofmt::parse_duration(value).map(|_| ()),
        Kind::Str | Kind::StrSlice => Ok(()),
    }
}

/// How `--name` is written in pflag's "invalid argument" message.
fn flag_label(spec: &Spec) -> String {
    match spec.short {
        Some(c) => format!("-{c}, --{}", spec.name),
        None => format!("--{}", spec.name),
    }
}

fn invalid(spec: &Spec, value: &str, why: String) -> String {
    format!(
        "invalid argument {} for {} flag: {why}",
        gofmt::quote(value.as_bytes()),
        gofmt::quote(flag_label(spec).as_bytes())
    )
}

/// Parses `args` against `specs` with pflag's interspersed grammar.
///
/// The error is pflag's message, which cobra prints as `Error: <message>`.
pub fn parse(specs: &[Spec], args: &[String]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            out.dash_at = Some(out.args.len());
            out.args.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let spec = specs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| format!("unknown flag: --{name}"))?;
            let value = match (inline, spec.kind) {
                (Some(v), _) => v,
                (None, Kind::Bool) => "true".to_owned(),
                (None, _) => {
                    if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(format!("flag needs an argument: --{name}"));
                    }
                }
            };
            validate(spec.kind, &value).map_err(|e| invalid(spec, &value, e))?;
            out.values.entry(spec.name).or_default().push(value);
        } else if a.len() > 1 && a.starts_with('-') {
            // A group of shorthands, `-abc` or `-wjson` / `-w=json`.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let spec = specs.iter().find(|s| s.short == Some(c)).ok_or_else(|| {
                    format!("unknown shorthand flag: {} in {a}", gofmt::quote_rune(c))
                })?;
                let rest: String = chars[j..].iter().collect();
                let value = if spec.kind == Kind::Bool {
                    if let Some(v) = rest.strip_prefix('=') {
                        j = chars.len();
                        v.to_owned()
                    } else {
                        "true".to_owned()
                    }
                } else if let Some(v) = rest.strip_prefix('=') {
                    j = chars.len();
                    v.to_owned()
                } else if !rest.is_empty() {
                    j = chars.len();
                    rest
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(format!(
                        "flag needs an argument: {} in -{c}",
                        gofmt::quote_rune(c)
                    ));
                };
                validate(spec.kind, &value).map_err(|e| invalid(spec, &value, e))?;
                out.values.entry(spec.name).or_default().push(value);
            }
        } else {
            out.args.push(a.clone());
        }
    }
    Ok(out)
}

/// Whether `token` is a flag of `specs` that takes the next token as its value
/// (used to skip flag values while looking for the command name).
pub fn takes_value(specs: &[Spec], token: &str) -> bool {
    if token.contains('=') {
        return false;
    }
    let spec = if let Some(long) = token.strip_prefix("--") {
        specs.iter().find(|s| s.name == long)
    } else if let Some(short) = token.strip_prefix('-') {
        let mut cs = short.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => specs.iter().find(|s| s.short == Some(c)),
            _ => None,
        }
    } else {
        None
    };
    spec.is_some_and(|s| s.kind != Kind::Bool)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec::new("prefix", Kind::Bool, "false", ""),
        Spec::new("rev", Kind::Int, "0", ""),
        Spec::new("write-out", Kind::Str, "simple", "").short('w'),
        Spec::new("endpoints", Kind::StrSlice, "[127.0.0.1:2379]", ""),
        Spec::new("dial-timeout", Kind::Duration, "2s", ""),
        Spec::new("interactive", Kind::Bool, "false", "").short('i'),
    ];

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn grammar_matches_pflag() {
        type Case<'a> = (&'a [&'a str], &'a [&'a str], bool, i64, &'a str);
        let cases: &[Case<'_>] = &[
            (&["a", "--prefix", "b"], &["a", "b"], true, 0, "simple"),
            (&["--rev", "3", "a"], &["a"], false, 3, "simple"),
            (&["--rev=4", "-w", "json", "a"], &["a"], false, 4, "json"),
            (&["-wjson", "a"], &["a"], false, 0, "json"),
            (&["-w=fields"], &[], false, 0, "fields"),
            (&["--prefix=false", "a"], &["a"], false, 0, "simple"),
            (
                &["a", "--", "--prefix", "-w"],
                &["a", "--prefix", "-w"],
                false,
                0,
                "simple",
            ),
            (&["-"], &["-"], false, 0, "simple"),
        ];
        for (input, args, prefix, rev, w) in cases {
            let p = parse(SPECS, &argv(input)).expect("parses");
            assert_eq!(p.args, argv(args), "{input:?}");
            assert_eq!(p.bool(SPECS, "prefix"), *prefix, "{input:?}");
            assert_eq!(p.int(SPECS, "rev"), *rev, "{input:?}");
            assert_eq!(p.str(SPECS, "write-out"), *w, "{input:?}");
        }
    }

    #[test]
    fn errors_are_worded_as_pflag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bogus"], "unknown flag: --bogus"),
            (&["-x"], "unknown shorthand flag: 'x' in -x"),
            (&["--rev"], "flag needs an argument: --rev"),
            (&["-w"], "flag needs an argument: 'w' in -w"),
            (
                &["--rev=x"],
                "invalid argument \"x\" for \"--rev\" flag: strconv.ParseInt: parsing \"x\": invalid syntax",
            ),
            (
                &["--dial-timeout=x"],
                "invalid argument \"x\" for \"--dial-timeout\" flag: time: invalid duration \"x\"",
            ),
            (
                &["--prefix=maybe"],
                "invalid argument \"maybe\" for \"--prefix\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(SPECS, &argv(input)).expect_err("fails"), *want);
        }
    }

    #[test]
    fn slices_split_on_commas_and_repeat() {
        let p = parse(SPECS, &argv(&["--endpoints=a:1,b:2", "--endpoints", "c:3"])).expect("ok");
        assert_eq!(p.slice(SPECS, "endpoints"), ["a:1", "b:2", "c:3"]);
        let p = parse(SPECS, &[]).expect("ok");
        assert_eq!(p.slice(SPECS, "endpoints"), ["127.0.0.1:2379"]);
        assert_eq!(p.duration(SPECS, "dial-timeout"), Duration::from_secs(2));
    }
}
