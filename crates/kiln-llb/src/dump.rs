//! Human-readable dumps of a definition, as `buildctl debug dump-llb` prints them.
//!
//! The JSON follows what Go's `encoding/json` makes of BuildKit's generated protobuf structs
//! (through `solver/pb/json.go` for the `oneof`s): field names as spelled in `ops.proto`
//! (`Architecture`, `extraHosts`, `cacheOpt`, `include_patterns`, ...), `omitempty` everywhere
//! except the three indexes of a file action, enums as numbers, bytes as base64, map keys sorted.

use base64::Engine as _;
use kiln_gostd::strconv::quote as go_quote;
use serde_json::{Map, Value, json};

use crate::definition::{Definition, OpMetadata};
use crate::error::Error;
use crate::ops::*;

/// One JSON value per op of `def`, in order: `{"Op": ..., "Digest": "sha256:...", "OpMetadata": ...}`.
pub fn dump_json(def: &Definition) -> Result<Vec<Value>, Error> {
    def.operations()?
        .into_iter()
        .map(|(digest, op)| {
            let md = def.metadata.get(&digest).cloned().unwrap_or_default();
            let mut obj = Map::new();
            obj.insert("Op".to_string(), op_json(&op));
            obj.insert("Digest".to_string(), Value::String(digest.to_string()));
            obj.insert("OpMetadata".to_string(), metadata_json(&md));
            Ok(Value::Object(obj))
        })
        .collect()
}

/// The graph in Graphviz dot format, as `buildctl debug dump-llb --dot` prints it.
pub fn dump_dot(def: &Definition) -> Result<String, Error> {
    let ops = def.operations()?;
    let mut out = String::from("digraph {\n");
    for (digest, op) in &ops {
        let (label, shape) = dot_attr(digest.as_str(), op);
        out.push_str(&format!(
            "  {} [label={} shape={}];\n",
            go_quote(digest.as_str()),
            go_quote(&label),
            go_quote(shape)
        ));
    }
    for (digest, op) in &ops {
        for (i, input) in op.inputs.iter().enumerate() {
            let mut label = String::new();
            if let Some(Op::Exec(e)) = &op.op {
                for m in &e.mounts {
                    if m.input == i as i64 && m.dest != "/" {
                        label.clone_from(&m.dest);
                    }
                }
            }
            out.push_str(&format!(
                "  {} -> {} [label={}];\n",
                go_quote(input.digest.as_str()),
                go_quote(digest.as_str()),
                go_quote(&label)
            ));
        }
    }
    out.push_str("}\n");
    Ok(out)
}

fn dot_attr(digest: &str, op: &Operation) -> (String, &'static str) {
    match &op.op {
        Some(Op::Source(s)) => (s.identifier.clone(), "ellipse"),
        Some(Op::Exec(e)) => (e.meta.args.join(" "), "box"),
        Some(Op::Build(_)) => ("build".to_string(), "box3d"),
        Some(Op::Merge(_)) => ("merge".to_string(), "invtriangle"),
        Some(Op::Diff(_)) => ("diff".to_string(), "doublecircle"),
        Some(Op::File(f)) => {
            let names: Vec<String> = f
                .actions
                .iter()
                .map(|a| match &a.action {
                    FileActionKind::Copy(c) => format!("copy{{src={}, dest={}}}", c.src, c.dest),
                    FileActionKind::Mkfile(m) => format!("mkfile{{path={}}}", m.path),
                    FileActionKind::Mkdir(m) => format!("mkdir{{path={}}}", m.path),
                    FileActionKind::Rm(r) => format!("rm{{path={}}}", r.path),
                    FileActionKind::Symlink(s) => {
                        format!("symlink{{oldpath={}, newpath={}}}", s.oldpath, s.newpath)
                    }
                })
                .collect();
            (names.join(","), "note")
        }
        None => (digest.to_string(), "plaintext"),
    }
}

/// A JSON object that leaves out empty values, like Go's `omitempty`.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn s(mut self, k: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(k.to_string(), Value::String(v.to_string()));
        }
        self
    }
    fn i(mut self, k: &str, v: i64) -> Self {
        if v != 0 {
            self.0.insert(k.to_string(), json!(v));
        }
        self
    }
    fn b(mut self, k: &str, v: bool) -> Self {
        if v {
            self.0.insert(k.to_string(), Value::Bool(true));
        }
        self
    }
    fn strs(mut self, k: &str, v: &[String]) -> Self {
        if !v.is_empty() {
            self.0.insert(k.to_string(), json!(v));
        }
        self
    }
    fn bytes(mut self, k: &str, v: &[u8]) -> Self {
        if !v.is_empty() {
            let text = base64::engine::general_purpose::STANDARD.encode(v);
            self.0.insert(k.to_string(), Value::String(text));
        }
        self
    }
    fn list(mut self, k: &str, v: Vec<Value>) -> Self {
        if !v.is_empty() {
            self.0.insert(k.to_string(), Value::Array(v));
        }
        self
    }
    fn map<V: Into<Value> + Clone>(
        mut self,
        k: &str,
        v: &std::collections::BTreeMap<String, V>,
    ) -> Self {
        if !v.is_empty() {
            let m: Map<String, Value> = v
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            self.0.insert(k.to_string(), Value::Object(m));
        }
        self
    }
    fn opt(mut self, k: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.to_string(), v);
        }
        self
    }
    fn always(mut self, k: &str, v: Value) -> Self {
        self.0.insert(k.to_string(), v);
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

pub(crate) fn metadata_json(md: &OpMetadata) -> Value {
    Obj::default()
        .b("ignore_cache", md.ignore_cache)
        .map("description", &md.description)
        .opt(
            "export_cache",
            md.export_cache.map(|v| Obj::default().b("Value", v).done()),
        )
        .map("caps", &md.caps)
        .opt(
            "progress_group",
            md.progress_group.as_ref().map(|g| {
                Obj::default()
                    .s("id", &g.id)
                    .s("name", &g.name)
                    .b("weak", g.weak)
                    .done()
            }),
        )
        .done()
}

pub(crate) fn op_json(op: &Operation) -> Value {
    let body = match &op.op {
        None => Obj::default(),
        Some(Op::Exec(e)) => Obj::default().always("exec", exec_json(e)),
        Some(Op::Source(s)) => Obj::default().always(
            "source",
            Obj::default()
                .s("identifier", &s.identifier)
                .map("attrs", &s.attrs)
                .done(),
        ),
        Some(Op::File(f)) => Obj::default().always(
            "file",
            Obj::default()
                .list("actions", f.actions.iter().map(file_action_json).collect())
                .done(),
        ),
        Some(Op::Build(b)) => Obj::default().always("build", build_json(b)),
        Some(Op::Merge(m)) => Obj::default().always(
            "merge",
            Obj::default()
                .list(
                    "inputs",
                    m.inputs
                        .iter()
                        .map(|i| Obj::default().i("input", *i).done())
                        .collect(),
                )
                .done(),
        ),
        Some(Op::Diff(d)) => Obj::default().always(
            "diff",
            Obj::default()
                .opt(
                    "lower",
                    d.lower.map(|i| Obj::default().i("input", i).done()),
                )
                .opt(
                    "upper",
                    d.upper.map(|i| Obj::default().i("input", i).done()),
                )
                .done(),
        ),
    };
    Obj::default()
        .list(
            "inputs",
            op.inputs
                .iter()
                .map(|i| {
                    Obj::default()
                        .s("digest", i.digest.as_str())
                        .i("index", i.index)
                        .done()
                })
                .collect(),
        )
        .always("Op", body.done())
        .opt(
            "platform",
            op.platform.as_ref().map(|p| {
                Obj::default()
                    .s("Architecture", &p.architecture)
                    .s("OS", &p.os)
                    .s("Variant", &p.variant)
                    .s("OSVersion", &p.os_version)
                    .strs("OSFeatures", &p.os_features)
                    .done()
            }),
        )
        .opt(
            "constraints",
            op.constraints
                .as_ref()
                .map(|c| Obj::default().strs("filter", &c.filter).done()),
        )
        .done()
}

fn exec_json(e: &ExecOp) -> Value {
    let m = &e.meta;
    let meta = Obj::default()
        .strs("args", &m.args)
        .strs("env", &m.env)
        .s("cwd", &m.cwd)
        .s("user", &m.user)
        .opt(
            "proxy_env",
            m.proxy_env.as_ref().map(|p| {
                Obj::default()
                    .s("http_proxy", &p.http_proxy)
                    .s("https_proxy", &p.https_proxy)
                    .s("ftp_proxy", &p.ftp_proxy)
                    .s("no_proxy", &p.no_proxy)
                    .s("all_proxy", &p.all_proxy)
                    .done()
            }),
        )
        .list(
            "extraHosts",
            m.extra_hosts
                .iter()
                .map(|h| Obj::default().s("Host", &h.host).s("IP", &h.ip).done())
                .collect(),
        )
        .s("hostname", &m.hostname)
        .list(
            "ulimit",
            m.ulimit
                .iter()
                .map(|u| {
                    Obj::default()
                        .s("Name", &u.name)
                        .i("Soft", u.soft)
                        .i("Hard", u.hard)
                        .done()
                })
                .collect(),
        )
        .s("cgroupParent", &m.cgroup_parent)
        .b("removeMountStubsRecursive", m.remove_mount_stubs_recursive)
        .list(
            "validExitCodes",
            m.valid_exit_codes.iter().map(|c| json!(c)).collect(),
        )
        .done();
    Obj::default()
        .always("meta", meta)
        .list("mounts", e.mounts.iter().map(mount_json).collect())
        .i("network", e.network as i64)
        .i("security", e.security as i64)
        .list(
            "secretenv",
            e.secretenv
                .iter()
                .map(|s| {
                    Obj::default()
                        .s("ID", &s.id)
                        .s("name", &s.name)
                        .b("optional", s.optional)
                        .done()
                })
                .collect(),
        )
        .list(
            "cdiDevices",
            e.cdi_devices
                .iter()
                .map(|d| {
                    Obj::default()
                        .s("name", &d.name)
                        .b("optional", d.optional)
                        .done()
                })
                .collect(),
        )
        .done()
}

fn mount_json(m: &Mount) -> Value {
    let id_opt = |id: &str, uid: u32, gid: u32, mode: u32, optional: bool| {
        Obj::default()
            .s("ID", id)
            .i("uid", i64::from(uid))
            .i("gid", i64::from(gid))
            .i("mode", i64::from(mode))
            .b("optional", optional)
            .done()
    };
    Obj::default()
        .i("input", m.input)
        .s("selector", &m.selector)
        .s("dest", &m.dest)
        .i("output", m.output)
        .b("readonly", m.readonly)
        .i("mountType", m.mount_type as i64)
        .opt(
            "TmpfsOpt",
            m.tmpfs_opt.map(|t| Obj::default().i("size", t.size).done()),
        )
        .opt(
            "cacheOpt",
            m.cache_opt.as_ref().map(|c| {
                Obj::default()
                    .s("ID", &c.id)
                    .i("sharing", c.sharing as i64)
                    .done()
            }),
        )
        .opt(
            "secretOpt",
            m.secret_opt
                .as_ref()
                .map(|s| id_opt(&s.id, s.uid, s.gid, s.mode, s.optional)),
        )
        .opt(
            "SSHOpt",
            m.ssh_opt
                .as_ref()
                .map(|s| id_opt(&s.id, s.uid, s.gid, s.mode, s.optional)),
        )
        .s("resultID", &m.result_id)
        .i("contentCache", m.content_cache as i64)
        .done()
}

fn chown_json(c: &Option<ChownOpt>) -> Option<Value> {
    let user = |u: &UserOpt| {
        let inner = match u {
            UserOpt::ByName { name, input } => Obj::default().always(
                "byName",
                Obj::default().s("name", name).i("input", *input).done(),
            ),
            UserOpt::ById(id) => Obj::default().i("byId", i64::from(*id)),
        };
        Obj::default().always("User", inner.done()).done()
    };
    c.as_ref().map(|c| {
        Obj::default()
            .opt("user", c.user.as_ref().map(user))
            .opt("group", c.group.as_ref().map(user))
            .done()
    })
}

fn file_action_json(a: &FileAction) -> Value {
    let action = match &a.action {
        FileActionKind::Copy(c) => Obj::default().always(
            "copy",
            Obj::default()
                .s("src", &c.src)
                .s("dest", &c.dest)
                .opt("owner", chown_json(&c.owner))
                .i("mode", i64::from(c.mode))
                .b("followSymlink", c.follow_symlink)
                .b("dirCopyContents", c.dir_copy_contents)
                .b(
                    "attemptUnpackDockerCompatibility",
                    c.attempt_unpack_docker_compatibility,
                )
                .b("createDestPath", c.create_dest_path)
                .b("allowWildcard", c.allow_wildcard)
                .b("allowEmptyWildcard", c.allow_empty_wildcard)
                .i("timestamp", c.timestamp)
                .strs("include_patterns", &c.include_patterns)
                .strs("exclude_patterns", &c.exclude_patterns)
                .b(
                    "alwaysReplaceExistingDestPaths",
                    c.always_replace_existing_dest_paths,
                )
                .s("modeStr", &c.mode_str)
                .strs("required_paths", &c.required_paths)
                .done(),
        ),
        FileActionKind::Mkfile(m) => Obj::default().always(
            "mkfile",
            Obj::default()
                .s("path", &m.path)
                .i("mode", i64::from(m.mode))
                .bytes("data", &m.data)
                .opt("owner", chown_json(&m.owner))
                .i("timestamp", m.timestamp)
                .done(),
        ),
        FileActionKind::Mkdir(m) => Obj::default().always(
            "mkdir",
            Obj::default()
                .s("path", &m.path)
                .i("mode", i64::from(m.mode))
                .b("makeParents", m.make_parents)
                .opt("owner", chown_json(&m.owner))
                .i("timestamp", m.timestamp)
                .done(),
        ),
        FileActionKind::Rm(r) => Obj::default().always(
            "rm",
            Obj::default()
                .s("path", &r.path)
                .b("allowNotFound", r.allow_not_found)
                .b("allowWildcard", r.allow_wildcard)
                .done(),
        ),
        FileActionKind::Symlink(s) => Obj::default().always(
            "symlink",
            Obj::default()
                .s("oldpath", &s.oldpath)
                .s("newpath", &s.newpath)
                .opt("owner", chown_json(&s.owner))
                .i("timestamp", s.timestamp)
                .done(),
        ),
    };
    Obj::default()
        .always("input", json!(a.input))
        .always("secondaryInput", json!(a.secondary_input))
        .always("output", json!(a.output))
        .always("Action", action.done())
        .done()
}

fn build_json(b: &BuildOp) -> Value {
    let inputs: std::collections::BTreeMap<String, Value> = b
        .inputs
        .iter()
        .map(|(k, v)| (k.clone(), Obj::default().i("input", *v).done()))
        .collect();
    Obj::default()
        .i("builder", b.builder)
        .map("inputs", &inputs)
        .opt(
            "def",
            b.def.as_ref().map(|d| {
                let metadata: std::collections::BTreeMap<String, Value> = d
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), metadata_json(v)))
                    .collect();
                Obj::default()
                    .list(
                        "def",
                        d.def
                            .iter()
                            .map(|dt| {
                                Value::String(base64::engine::general_purpose::STANDARD.encode(dt))
                            })
                            .collect(),
                    )
                    .map("metadata", &metadata)
                    .done()
            }),
        )
        .map("attrs", &b.attrs)
        .done()
}
