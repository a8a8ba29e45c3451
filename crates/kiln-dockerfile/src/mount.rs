//! `RUN --mount=...` specifications, parsed as BuildKit's `commands_runmount.go` parses them.
//!
//! A specification is one CSV record of `key=value` fields (`type=cache,target=/root/.cache`).
//! Keys are case-insensitive. The types are `bind` (the default), `cache`, `tmpfs`, `secret`
//! and `ssh`. Without an expander only the CSV syntax and the `from` key are checked: this is
//! the validation BuildKit does while parsing the Dockerfile; the full parse happens when the
//! instruction is dispatched, with variables expanded. The defaults that BuildKit applies at
//! that point (a secret's id and target, a cache's id, the ssh id) are available through the
//! methods of [`Mount`].

use std::fmt;

use kiln_gostd::path;
use kiln_gostd::strconv::quote;

use crate::error::Error;
use crate::suggest;

/// The type of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MountType {
    /// A read-only (by default) view of a directory of the build context or another stage.
    #[default]
    Bind,
    /// A persistent cache directory, shared between builds.
    Cache,
    /// A temporary file system.
    Tmpfs,
    /// A secret file (or environment variable) provided by the client.
    Secret,
    /// An SSH agent socket forwarded from the client.
    Ssh,
}

impl MountType {
    /// All types, in a fixed order (used for suggestions).
    pub const ALL: [MountType; 5] = [
        MountType::Bind,
        MountType::Cache,
        MountType::Tmpfs,
        MountType::Secret,
        MountType::Ssh,
    ];

    /// The name as written in a Dockerfile (`bind`, `cache`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShareMode {
    /// Several writers at once (BuildKit's default).
    Shared,
    /// A new copy for each concurrent writer.
    Private,
    /// One writer at a time; the others wait.
    Locked,
}

impl ShareMode {
    /// All modes, in a fixed order (used for suggestions).
    pub const ALL: [ShareMode; 3] = [ShareMode::Shared, ShareMode::Private, ShareMode::Locked];

    /// The name as written in a Dockerfile.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareMode::Shared => "shared",
            ShareMode::Private => "private",
            ShareMode::Locked => "locked",
        }
    }
}

impl fmt::Display for ShareMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed `--mount` specification.
///
/// Empty strings mean "not given", as in BuildKit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// The mount type (`type=`), `bind` by default.
    pub mount_type: MountType,
    /// The stage or image to mount from (`from=`); the build context when empty.
    pub from: String,
    /// The path inside the source (`source=` / `src=`), or the secret id for secrets.
    pub source: String,
    /// Where to mount (`target=` / `dst=` / `destination=`).
    pub target: String,
    /// Whether the mount is read-only: `ro`/`readonly` or `rw`/`readwrite`, by default
    /// read-write for `cache` and `tmpfs` and read-only otherwise.
    pub read_only: bool,
    /// The size limit of a `tmpfs` mount in bytes (`size=`, `64m` style), 0 when none.
    pub size_limit: i64,
    /// The cache id, or the secret/ssh id (`id=`).
    pub cache_id: String,
    /// The sharing mode of a cache mount (`sharing=`).
    pub cache_sharing: Option<ShareMode>,
    /// Whether a missing secret or ssh socket is an error (`required`).
    pub required: bool,
    /// For a secret: expose it as this environment variable (`env=`); `Some("")` means
    /// "the secret id".
    pub env: Option<String>,
    /// The file mode (`mode=`, octal), for `secret`, `ssh` and `cache` mounts.
    pub mode: Option<u32>,
    /// The owner user id (`uid=`), for `secret`, `ssh` and `cache` mounts.
    pub uid: Option<u32>,
    /// The owner group id (`gid=`), for `secret`, `ssh` and `cache` mounts.
    pub gid: Option<u32>,
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// A single-word expander: takes a word as written, returns it with variables expanded.
pub type Expander<'a, E = String> = &'a mut dyn FnMut(&str) -> Result<String, E>;

/// Parses one `--mount` value.
///
/// With `expand`, each value is expanded first and the whole specification is parsed and
/// validated. Without it, only the CSV syntax and `from` (which may not use variables) are
/// checked and the other keys are left for later, as BuildKit does at parse time. Errors of
/// the expander are returned as they are.
pub fn parse_mount(value: &str, expand: Option<Expander<'_>>) -> Result<Mount, Error> {
    match expand {
        Some(f) => {
            let mut adapted = |word: &str| f(word).map_err(Error::new);
            parse_mount_with::<Error>(value, Some(&mut adapted))
        }
        None => parse_mount_with::<Error>(value, None),
    }
}

/// [`parse_mount`] with an expander of any error type.
pub(crate) fn parse_mount_with<E: From<Error>>(
    value: &str,
    mut expand: Option<Expander<'_, E>>,
) -> Result<Mount, E> {
    let fields = csv_fields(value)
        .map_err(|e| E::from(Error::new(format!("failed to parse csv mounts: {e}"))))?;
    let mut m = Mount::default();
    let mut ro_auto = true;

    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(value) = value else {
            if expand.is_none() {
                continue;
            }
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                    continue;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                    continue;
                }
                "required" => {
                    if matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                        m.required = true;
                        continue;
                    }
                    return Err(E::from(unexpected_for_type(&key, m.mount_type)));
                }
                _ => {
                    return Err(E::from(Error::new(format!(
                        "invalid field '{field}' must be a key=value pair"
                    ))));
                }
            }
        };

        let value = match expand.as_mut() {
            Some(f) => f(value)?,
            None if key == "from" => {
                if let Some(idx) = value.find('$')
                    && idx != value.len() - 1
                {
                    return Err(E::from(Error::new(format!(
                        "'{key}' doesn't support variable expansion, define alias stage instead"
                    ))));
                }
                value.to_string()
            }
            None => continue,
        };

        match key.as_str() {
            "type" => {
                let lower = value.to_lowercase();
                let Some(t) = MountType::from_name(&lower) else {
                    let names: Vec<&str> = MountType::ALL.iter().map(|t| t.as_str()).collect();
                    return Err(E::from(Error::new(suggest::wrap(
                        format!("unsupported mount type {}", quote(&value)),
                        &value,
                        &names,
                        true,
                    ))));
                };
                m.mount_type = t;
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.read_only =
                    parse_go_bool(&value).ok_or_else(|| E::from(invalid_value(&key, &value)))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                let rw =
                    parse_go_bool(&value).ok_or_else(|| E::from(invalid_value(&key, &value)))?;
                m.read_only = !rw;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                    return Err(E::from(unexpected_for_type(&key, m.mount_type)));
                }
                m.required =
                    parse_go_bool(&value).ok_or_else(|| E::from(invalid_value(&key, &value)))?;
            }
            "size" => {
                if m.mount_type != MountType::Tmpfs {
                    return Err(E::from(unexpected_for_type(&key, m.mount_type)));
                }
                m.size_limit =
                    ram_in_bytes(&value).ok_or_else(|| E::from(invalid_value(&key, &value)))?;
            }
            "id" => m.cache_id = value,
            "sharing" => {
                let lower = value.to_lowercase();
                let Some(mode) = ShareMode::ALL.into_iter().find(|s| s.as_str() == lower) else {
                    let names: Vec<&str> = ShareMode::ALL.iter().map(|s| s.as_str()).collect();
                    return Err(E::from(Error::new(suggest::wrap(
                        format!("unsupported sharing value {}", quote(&value)),
                        &value,
                        &names,
                        true,
                    ))));
                };
                m.cache_sharing = Some(mode);
            }
            "mode" => {
                let mode = parse_go_uint32(&value, 8).ok_or_else(|| {
                    E::from(Error::new(format!("invalid value {value} for mode")))
                })?;
                m.mode = Some(mode);
            }
            "uid" => {
                let uid = parse_go_uint32(&value, 10)
                    .ok_or_else(|| E::from(Error::new(format!("invalid value {value} for uid"))))?;
                m.uid = Some(uid);
            }
            "gid" => {
                let gid = parse_go_uint32(&value, 10)
                    .ok_or_else(|| E::from(Error::new(format!("invalid value {value} for gid"))))?;
                m.gid = Some(gid);
            }
            "env" => m.env = Some(value),
            _ => {
                return Err(E::from(Error::new(suggest::wrap(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    ALL_KEYS,
                    true,
                ))));
            }
        }
    }

    let file_info_allowed = matches!(
        m.mount_type,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(E::from(Error::new(format!(
                    "{name} not allowed for {} type mounts",
                    quote(m.mount_type.as_str())
                ))));
            }
        }
    }

    if ro_auto {
        m.read_only = !matches!(m.mount_type, MountType::Cache | MountType::Tmpfs);
    }

    if m.mount_type == MountType::Secret {
        if !m.from.is_empty() {
            return Err(E::from(Error::new("secret mount should not have a from")));
        }
        if m.cache_sharing.is_some() {
            return Err(E::from(Error::new(
                "secret mount should not define sharing",
            )));
        }
        if m.source.is_empty() && m.target.is_empty() && m.cache_id.is_empty() {
            return Err(E::from(Error::new(
                "invalid secret mount. one of source, target required",
            )));
        }
        if !m.source.is_empty() && !m.cache_id.is_empty() {
            return Err(E::from(Error::new("both source and id can't be set")));
        }
    }

    if m.cache_sharing.is_some() && m.mount_type != MountType::Cache {
        return Err(E::from(Error::new(format!(
            "invalid cache sharing set for {} mount",
            m.mount_type
        ))));
    }

    Ok(m)
}

impl Mount {
    /// The id of a cache mount: `id=`, or else the cleaned target path.
    pub fn effective_cache_id(&self) -> String {
        if self.cache_id.is_empty() {
            path::clean(&self.target)
        } else {
            self.cache_id.clone()
        }
    }

    /// The id of a secret: `source=`, else `id=`, else the last element of the target.
    ///
    /// Fails (`one of source, target required`) when none is set, as BuildKit does when it
    /// dispatches the mount.
    pub fn secret_id(&self) -> Result<String, Error> {
        let id = if self.source.is_empty() {
            &self.cache_id
        } else {
            &self.source
        };
        if !id.is_empty() {
            return Ok(id.clone());
        }
        if self.target.is_empty() {
            return Err(Error::new("one of source, target required"));
        }
        Ok(path::base(&self.target).to_owned())
    }

    /// Where a secret file is mounted: the target, or `/run/secrets/<id>` when there is no
    /// target and the secret is not exposed as an environment variable (`None` then).
    pub fn secret_target(&self) -> Result<Option<String>, Error> {
        if !self.target.is_empty() {
            return Ok(Some(self.target.clone()));
        }
        if self.env.is_some() {
            return Ok(None);
        }
        Ok(Some(format!(
            "/run/secrets/{}",
            path::base(&self.secret_id()?)
        )))
    }

    /// The environment variable a secret is exposed as: `env=`, or the secret id when `env`
    /// is given empty; `None` when the secret is only a file.
    pub fn secret_env_name(&self) -> Result<Option<String>, Error> {
        match &self.env {
            None => Ok(None),
            Some(name) if name.is_empty() => Ok(Some(self.secret_id()?)),
            Some(name) => Ok(Some(name.clone())),
        }
    }

    /// The id of an ssh mount: `id=`, or `default`.
    pub fn ssh_id(&self) -> &str {
        if self.cache_id.is_empty() {
            "default"
        } else {
            &self.cache_id
        }
    }
}

fn unexpected_for_type(key: &str, t: MountType) -> Error {
    Error::new(format!("unexpected key '{key}' for mount type '{t}'"))
}

fn invalid_value(key: &str, value: &str) -> Error {
    Error::new(format!("invalid value for {key}: {value}"))
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, base, 32)` (an optional `0o`/`0x`-free plain number).
fn parse_go_uint32(s: &str, base: u32) -> Option<u32> {
    if s.is_empty() || s.starts_with('+') || s.starts_with('-') {
        return None;
    }
    u32::from_str_radix(s, base).ok()
}

/// go-units' `RAMInBytes`: a number (possibly fractional) with an optional binary suffix
/// (`k`, `m`, `g`, `t`, `p`, then optionally `b` or `ib`; or just `b`), case-insensitive.
pub(crate) fn ram_in_bytes(s: &str) -> Option<i64> {
    let sep = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')?;
    let (num, suffix) = if s.as_bytes().get(sep) == Some(&b' ') {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let lower_num = num.to_ascii_lowercase();
    if lower_num.contains("inf") || lower_num.contains("nan") {
        return None;
    }
    let size: f64 = num.parse().ok()?;
    if size < 0.0 {
        return None;
    }
    if suffix.is_empty() {
        return Some(size as i64);
    }
    if suffix.len() > 3 {
        return None;
    }
    let suffix = suffix.to_lowercase();
    let bytes = suffix.as_bytes();
    let first = *bytes.first()?;
    if first == b'b' {
        return if bytes.len() == 1 {
            Some(size as i64)
        } else {
            None
        };
    }
    let multiplier: f64 = match first {
        b'k' => 1024.0,
        b'm' => 1024.0 * 1024.0,
        b'g' => 1024.0 * 1024.0 * 1024.0,
        b't' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        b'p' => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    match bytes.len() {
        2 if bytes[1] != b'b' => return None,
        3 if &bytes[1..] != b"ib" => return None,
        _ => {}
    }
    Some((size * multiplier) as i64)
}

/// Splits one CSV record as `go-csvvalue` does (fields separated by `,`, double-quoted fields
/// with `""` for a quote). The error text is Go's `encoding/csv` one.
pub(crate) fn csv_fields(input: &str) -> Result<Vec<String>, String> {
    let mut line = input;
    if let Some(stripped) = line.strip_suffix('\n') {
        line = stripped.strip_suffix('\r').unwrap_or(stripped);
    }
    if line.is_empty() {
        return Err("EOF".to_string());
    }
    let bare_quote = |pos: usize| {
        format!(
            "parse error on line 1, column {}: bare \" in non-quoted-field",
            pos + 1
        )
    };
    let bad_quote = |pos: usize| {
        format!(
            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
            pos + 1
        )
    };
    let mut fields: Vec<String> = Vec::new();
    let mut pos = 0;
    let mut rest = line;
    'field: loop {
        if !rest.starts_with('"') {
            let end = rest.find(',');
            let field = match end {
                Some(i) => &rest[..i],
                None => rest,
            };
            if let Some(j) = field.find('"') {
                return Err(bare_quote(pos + j));
            }
            fields.push(field.to_string());
            match end {
                Some(i) => {
                    rest = &rest[i + 1..];
                    pos += i + 1;
                    continue;
                }
                None => break,
            }
        }
        // A quoted field.
        rest = &rest[1..];
        pos += 1;
        let mut value = String::new();
        loop {
            let Some(i) = rest.find('"') else {
                return Err(bad_quote(pos));
            };
            value.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            pos += i + 1;
            if rest.starts_with('"') {
                value.push('"');
                rest = &rest[1..];
                pos += 1;
            } else if rest.starts_with(',') {
                fields.push(value);
                rest = &rest[1..];
                pos += 1;
                continue 'field;
            } else if rest.is_empty() {
                fields.push(value);
                break 'field;
            } else {
                return Err(bad_quote(pos - 1));
            }
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv() {
        let ok = |s: &str, expected: &[&str]| assert_eq!(csv_fields(s).unwrap(), expected, "{s}");
        ok("a,b", &["a", "b"]);
        ok("a,", &["a", ""]);
        ok("\"a,b\",c", &["a,b", "c"]);
        ok("\"a\"\"b\"", &["a\"b"]);
        ok("x\n", &["x"]);
        let err = |s: &str, expected: &str| assert_eq!(csv_fields(s).unwrap_err(), expected, "{s}");
        err("", "EOF");
        err(
            "a\"b",
            "parse error on line 1, column 2: bare \" in non-quoted-field",
        );
        err(
            "x,\"ab",
            "parse error on line 1, column 4: extraneous or missing \" in quoted-field",
        );
        err(
            "\"ab\"c",
            "parse error on line 1, column 4: extraneous or missing \" in quoted-field",
        );
    }

    #[test]
    fn sizes() {
        for (input, expected) in [
            ("64m", Some(64 << 20)),
            ("1g", Some(1 << 30)),
            ("1GiB", Some(1 << 30)),
            ("1 kb", Some(1024)),
            ("512", Some(512)),
            ("10b", Some(10)),
            ("1.5k", Some(1536)),
            ("abc", None),
            ("1x", None),
            ("1kib2", None),
            ("-1", None),
            ("1bb", None),
        ] {
            assert_eq!(ram_in_bytes(input), expected, "{input}");
        }
    }
}
