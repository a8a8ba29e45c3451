//! The `kiln build` flags that reach `RUN` containers, parsed as buildx parses them:
//! `--secret`, `--ssh`, `--allow`, `--add-host`, `--shm-size` and `--ulimit`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use kiln_worker::{Entitlements, SecretSpec, SecretStore, Session, SshAgents, SshSpec};

/// Applies the flags of `args` to the converter options (`--add-host`, `--shm-size`,
/// `--ulimit`) and returns what the client lends the build (`--secret`, `--ssh`, `--allow`).
/// `--ulimit` and `--shm-size` values that do not parse are usage errors, as pflag reports them;
/// the others are build errors, as buildx reports them.
pub fn apply(
    args: &crate::cli::BuildArgs,
    opts: &mut kiln_frontend_dockerfile::ConvertOptions,
) -> anyhow::Result<Session> {
    let flag_error = |flag: &str, value: &str, e: String| {
        crate::exit::UsageError(format!(
            "invalid argument {value:?} for \"--{flag}\" flag: {e}"
        ))
    };
    for u in &args.ulimits {
        opts.ulimits
            .push(parse_ulimit(u).map_err(|e| flag_error("ulimit", u, e))?);
    }
    if let Some(v) = &args.shm_size {
        opts.shm_size = Some(parse_shm_size(v).map_err(|e| flag_error("shm-size", v, e))?);
    }
    for h in &args.add_hosts {
        opts.extra_hosts
            .extend(parse_add_host(h).map_err(anyhow::Error::msg)?);
    }
    let entitlements = parse_allow(&args.allow).map_err(anyhow::Error::msg)?;
    Ok(Session {
        entitlements,
        ..context_session(args)?
    })
}

/// What fetching the context with `args` needs: the secrets of `--secret` (`GIT_AUTH_TOKEN`
/// for a git repository over HTTP(S)) and the agents of `--ssh`. As buildx does, a build
/// without `--ssh` whose context is a git repository over SSH forwards the agent of
/// `SSH_AUTH_SOCK` as `default`.
pub fn context_session(args: &crate::cli::BuildArgs) -> anyhow::Result<Session> {
    let secrets = secrets(args)?;
    let mut ssh_specs: Vec<SshSpec> = args.ssh.iter().map(|s| parse_ssh(s)).collect();
    if ssh_specs.is_empty()
        && args
            .context
            .to_str()
            .is_some_and(crate::remote_context::is_git_ssh)
    {
        ssh_specs.push(parse_ssh("default"));
    }
    let auth_sock = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from);
    let ssh = SshAgents::new(&ssh_specs, auth_sock.as_deref())?;
    Ok(Session {
        secrets,
        ssh,
        ..Session::default()
    })
}

/// The secrets of `--secret` (also what a git context fetches with: `GIT_AUTH_TOKEN`).
pub fn secrets(args: &crate::cli::BuildArgs) -> anyhow::Result<SecretStore> {
    let specs = args
        .secrets
        .iter()
        .map(|s| parse_secret(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    Ok(SecretStore::new(&specs, &env)?)
}

/// `--secret id=ID[,src=FILE|source=FILE][,env=VAR][,type=file|env]` (buildx's
/// `buildflags.Secret`): with `type=env`, a `src` names a variable.
pub fn parse_secret(value: &str) -> Result<SecretSpec, String> {
    let fields =
        crate::attrs::split_csv(value).map_err(|e| format!("failed to parse csv secret: {e}"))?;
    let mut spec = SecretSpec::default();
    let mut typ: Option<String> = None;
    for field in fields {
        let Some((key, v)) = field.split_once('=') else {
            return Err(format!("invalid field '{field}' must be a key=value pair"));
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                if v != "file" && v != "env" {
                    return Err(format!("unsupported secret type {v:?}"));
                }
                typ = Some(v.to_string());
            }
            "id" => spec.id = v.to_string(),
            "source" | "src" => spec.file = Some(PathBuf::from(v)),
            "env" => spec.env = Some(v.to_string()),
            k => return Err(format!("unexpected key '{k}' in '{field}'")),
        }
    }
    if typ.as_deref() == Some("env") && spec.env.as_deref().unwrap_or("").is_empty() {
        spec.env = spec.file.take().map(|f| f.to_string_lossy().into_owned());
    }
    Ok(spec)
}

/// `--ssh ID[=PATH[,PATH...]]` (buildx's `buildflags.SSH`).
pub fn parse_ssh(value: &str) -> SshSpec {
    match value.split_once('=') {
        None => SshSpec {
            id: value.to_string(),
            paths: Vec::new(),
        },
        Some((id, paths)) => SshSpec {
            id: id.to_string(),
            paths: paths.split(',').map(PathBuf::from).collect(),
        },
    }
}

/// `--allow` values (comma-separated lists are accepted, as with buildx's string slice flag).
pub fn parse_allow(values: &[String]) -> Result<Entitlements, String> {
    let mut out = Entitlements::default();
    for v in values.iter().flat_map(|v| v.split(',')) {
        match v {
            "" => {}
            "network.host" => out.network_host = true,
            "security.insecure" => out.security_insecure = true,
            "device" | "fs" | "fs.read" | "fs.write" => {
                return Err(format!("entitlement {v} is not supported by kiln yet"));
            }
            _ => return Err(format!("unknown entitlement {v}")),
        }
    }
    Ok(out)
}

/// `--add-host HOST:IP` or `HOST=IP` (buildx's `toBuildkitExtraHosts`): the address may be in
/// square brackets, and several comma-separated addresses give several entries. `host-gateway`
/// needs a daemon that knows its gateway, which the embedded builder is not.
pub fn parse_add_host(value: &str) -> Result<Vec<(String, IpAddr)>, String> {
    let invalid = || format!("invalid host {value}");
    let (host, ips) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(invalid)?;
    if host.is_empty() || ips.is_empty() {
        return Err(invalid());
    }
    if ips == "host-gateway" {
        return Err("unable to derive the IP value for host-gateway".to_string());
    }
    ips.split(',')
        .map(|ip| {
            let ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .filter(|i| !i.is_empty())
                .unwrap_or(ip);
            ip.parse::<IpAddr>()
                .map(|ip| (host.to_string(), ip))
                .map_err(|_| invalid())
        })
        .collect()
}

/// The limit names `--ulimit` accepts (go-units' `ulimitNameMapping`).
const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit NAME=SOFT[:HARD]` (go-units' `ParseUlimit`): the hard limit defaults to the soft
/// one, and may not be below it.
pub fn parse_ulimit(value: &str) -> Result<(String, i64, i64), String> {
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {value}"))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let soft = int(soft)?;
            (soft, soft)
        }
        [soft, hard] => {
            let hard = int(hard)?;
            (int(soft)?, hard)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ));
        }
    };
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok((name.to_string(), soft, hard))
}

/// `--shm-size` (docker's `MemBytes`, go-units' `RAMInBytes`): a number, possibly fractional,
/// with an optional binary suffix `b`, `k`, `m`, `g`, `t`, `p` (with an optional `i` and `b`,
/// any case), in bytes.
pub fn parse_shm_size(value: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{value}'");
    let s = value;
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid());
    }
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let rest = suffix.strip_prefix(' ').unwrap_or(suffix);
    let mut chars = rest.chars().peekable();
    let power = match chars.peek().map(char::to_ascii_lowercase) {
        Some(u @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            chars.next();
            match u {
                'k' => 1,
                'm' => 2,
                'g' => 3,
                't' => 4,
                _ => 5,
            }
        }
        _ => 0,
    };
    if matches!(chars.peek(), Some('i' | 'I')) {
        chars.next();
    }
    if matches!(chars.peek(), Some('b' | 'B')) {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(invalid());
    }
    let bytes = number * 1024f64.powi(power);
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `parse` on every input and compares its `Debug` output (or error) with the
    /// expected text; collects all mismatches.
    fn check<T: std::fmt::Debug>(
        parse: impl Fn(&str) -> Result<T, String>,
        cases: &[(&str, &str)],
    ) {
        let mut failures = Vec::new();
        for (input, expected) in cases {
            let got = match parse(input) {
                Ok(v) => format!("{v:?}"),
                Err(e) => format!("error: {e}"),
            };
            if &got != expected {
                failures.push(format!("{input:?}: got {got}, want {expected}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn secrets() {
        check(
            parse_secret,
            &[
                (
                    "id=a,src=/f",
                    r#"SecretSpec { id: "a", file: Some("/f"), env: None }"#,
                ),
                (
                    "id=a,source=/f",
                    r#"SecretSpec { id: "a", file: Some("/f"), env: None }"#,
                ),
                (
                    "id=a,env=TOKEN",
                    r#"SecretSpec { id: "a", file: None, env: Some("TOKEN") }"#,
                ),
                (
                    "id=a,type=env,src=TOKEN",
                    r#"SecretSpec { id: "a", file: None, env: Some("TOKEN") }"#,
                ),
                (
                    "type=file,id=a,src=/f",
                    r#"SecretSpec { id: "a", file: Some("/f"), env: None }"#,
                ),
                ("id=a", r#"SecretSpec { id: "a", file: None, env: None }"#),
                (
                    "ID=a,SRC=/f",
                    r#"SecretSpec { id: "a", file: Some("/f"), env: None }"#,
                ),
                (
                    r#"id=a,"src=/x,y""#,
                    r#"SecretSpec { id: "a", file: Some("/x,y"), env: None }"#,
                ),
                ("id=a,type=npm", r#"error: unsupported secret type "npm""#),
                ("id=a,foo=bar", "error: unexpected key 'foo' in 'foo=bar'"),
                ("a", "error: invalid field 'a' must be a key=value pair"),
            ],
        );
    }

    #[test]
    fn ssh() {
        check(
            |v| Ok::<_, String>(parse_ssh(v)),
            &[
                ("default", r#"SshSpec { id: "default", paths: [] }"#),
                (
                    "gh=/run/agent.sock",
                    r#"SshSpec { id: "gh", paths: ["/run/agent.sock"] }"#,
                ),
                (
                    "keys=/a,/b",
                    r#"SshSpec { id: "keys", paths: ["/a", "/b"] }"#,
                ),
            ],
        );
    }

    #[test]
    fn entitlements() {
        check(
            |v| parse_allow(&[v.to_string()]),
            &[
                (
                    "network.host",
                    "Entitlements { network_host: true, security_insecure: false }",
                ),
                (
                    "security.insecure,network.host",
                    "Entitlements { network_host: true, security_insecure: true }",
                ),
                (
                    "",
                    "Entitlements { network_host: false, security_insecure: false }",
                ),
                ("network.none", "error: unknown entitlement network.none"),
                (
                    "device",
                    "error: entitlement device is not supported by kiln yet",
                ),
            ],
        );
    }

    #[test]
    fn add_hosts() {
        check(
            parse_add_host,
            &[
                ("db:10.0.0.2", r#"[("db", 10.0.0.2)]"#),
                ("db=10.0.0.2", r#"[("db", 10.0.0.2)]"#),
                ("v6=::1", r#"[("v6", ::1)]"#),
                ("v6=[fe80::1]", r#"[("v6", fe80::1)]"#),
                ("v6:[::1]", r#"[("v6", ::1)]"#),
                (
                    "two=10.0.0.1,10.0.0.2",
                    r#"[("two", 10.0.0.1), ("two", 10.0.0.2)]"#,
                ),
                ("db", "error: invalid host db"),
                (":1.2.3.4", "error: invalid host :1.2.3.4"),
                ("db:", "error: invalid host db:"),
                ("db:nope", "error: invalid host db:nope"),
                (
                    "gw:host-gateway",
                    "error: unable to derive the IP value for host-gateway",
                ),
            ],
        );
    }

    #[test]
    fn ulimits() {
        check(
            parse_ulimit,
            &[
                ("nofile=1024:2048", r#"("nofile", 1024, 2048)"#),
                ("nofile=1024", r#"("nofile", 1024, 1024)"#),
                ("core=-1", r#"("core", -1, -1)"#),
                ("nofile", "error: invalid ulimit argument: nofile"),
                ("as=1", "error: invalid ulimit type: as"),
                (
                    "nofile=2:1",
                    "error: ulimit soft limit must be less than or equal to hard limit: 2 > 1",
                ),
                (
                    "nofile=1:2:3",
                    "error: too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`",
                ),
                (
                    "nofile=x",
                    r#"error: strconv.ParseInt: parsing "x": invalid syntax"#,
                ),
            ],
        );
    }

    #[test]
    fn shm_sizes() {
        check(
            parse_shm_size,
            &[
                ("64m", "67108864"),
                ("64M", "67108864"),
                ("64mb", "67108864"),
                ("64MiB", "67108864"),
                ("1g", "1073741824"),
                ("1.5k", "1536"),
                ("100", "100"),
                ("100b", "100"),
                ("2 m", "2097152"),
                ("", "error: invalid size: ''"),
                ("m", "error: invalid size: 'm'"),
                ("12x", "error: invalid size: '12x'"),
                ("-1m", "error: invalid size: '-1m'"),
            ],
        );
    }
}
