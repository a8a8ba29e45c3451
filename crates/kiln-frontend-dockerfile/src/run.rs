//! `RUN`: the exec op, its mounts, heredocs, network and security modes.
//!
//! BuildKit's `dispatchRun`, `dispatchRunMounts`, `dispatchSecret` and `dispatchSSH`: the
//! arguments (shell form, heredocs), the `--mount` values turned into exec mounts, the
//! per-build settings (proxy variables, extra hosts, `/dev/shm`, ulimits, cgroup parent), the
//! progress name, and the history entry with its `|N k=v` prefix of declared arguments.

use std::collections::BTreeMap;

use kiln_dockerfile::{
    Mount, MountType, NetworkMode, RunCommand, SecurityMode, ShareMode, ShellDependantCmdLine,
};
use kiln_llb::ops::{CacheSharing, NetMode};
use kiln_llb::{
    Chown, FileActions, MkdirOpts, MkfileOpts, MountKind, RunMount, RunOpts, State, VertexOpts,
};

use crate::convert::{Ctx, DFCMD_KEY};
use crate::dispatch::clean_path;
use crate::error::ConvertError;
use crate::names::{self, go_plain_slice};
use crate::stage::StageState;

/// Where a heredoc with a shebang is mounted and run from.
const PIPES_DIR: &str = "/dev/pipes/";

/// The custom name of the file op that writes a heredoc.
pub(crate) const INLINE_DOCUMENT_NAME: &str = "[internal] preparing inline document";

/// The custom name of the file op that creates a cache mount with an owner or a mode.
const CACHE_PERMISSIONS_NAME: &str = "[internal] setting cache mount permissions";

impl Ctx<'_> {
    /// Dispatches a `RUN` (`sources` holds the state of each `--mount`).
    pub(crate) fn dispatch_run(
        &mut self,
        ds: &mut StageState,
        c: &RunCommand,
        sources: &[usize],
    ) -> Result<(), ConvertError> {
        // A command can read anything of its stage.
        self.mark_own_path(ds, "/");

        let mut custom_name = c.original.clone();
        let mut mounts = Vec::new();
        let mut args = c.cmd.cmd_line.clone();
        if let Some(first_file) = c.cmd.files.first() {
            let [arg] = args.as_slice() else {
                return Err(invalid_run_command(c, &args));
            };
            if !c.cmd.prepend_shell {
                return Err(invalid_run_command(c, &args));
            }
            let single_heredoc = kiln_dockerfile_parser::parse_heredoc(arg)
                .ok()
                .flatten()
                .is_some();
            if single_heredoc {
                let data = if first_file.chomp {
                    kiln_dockerfile_parser::chomp_heredoc_content(&first_file.data)
                } else {
                    first_file.data.clone()
                };
                if ds.image.os != "windows" && data.starts_with("#!") {
                    // A script with an interpreter: written to a file and run from a mount.
                    let script = State::scratch().dir("/").file(
                        FileActions::new().mkfile(
                            &first_file.name,
                            0o755,
                            data,
                            MkfileOpts::default(),
                        ),
                        VertexOpts {
                            custom_name: Some(INLINE_DOCUMENT_NAME.to_string()),
                            platform: ds.platform.clone(),
                            ..VertexOpts::default()
                        },
                    );
                    let mut mount = RunMount::bind(PIPES_DIR, script);
                    mount.selector = Some("/".to_string());
                    mount.readonly = true;
                    mounts.push(mount);
                    args = vec![join_paths(&[PIPES_DIR, &first_file.name])];
                } else {
                    // The shell runs the body itself.
                    args = vec![data];
                }
                custom_name.push_str(&format!(
                    " ({})",
                    names::summarize_heredoc(&first_file.data)
                ));
            } else {
                // A heredoc inside a longer command: the shell gets the text back as written.
                let mut text = arg.clone();
                for file in &c.cmd.files {
                    text.push('\n');
                    text.push_str(&file.data);
                    text.push_str(&file.name);
                }
                args = vec![text];
            }
        }
        if c.cmd.prepend_shell {
            let cmd = ShellDependantCmdLine {
                cmd_line: args,
                files: Vec::new(),
                prepend_shell: true,
            };
            args = self.with_shell(ds, &cmd);
        }

        mounts.extend(self.run_mounts(ds, c, sources)?);
        if let Some(size) = self.opts.shm_size.filter(|s| *s > 0) {
            mounts.push(RunMount::of_kind("/dev/shm", MountKind::Tmpfs { size }));
        }
        let network = match c.network {
            NetworkMode::Default => None,
            NetworkMode::None => Some(NetMode::None),
            NetworkMode::Host => Some(NetMode::Host),
        };
        let security = Some(match c.security {
            SecurityMode::Sandbox => kiln_llb::ops::SecurityMode::Sandbox,
            SecurityMode::Insecure => kiln_llb::ops::SecurityMode::Insecure,
        });

        let env = ds.state.env().to_vec();
        let display = self.run_display_name(c, &custom_name, &env);
        let platform = ds.state.get_platform().cloned();
        let name = names::prefix_command(
            ds,
            &display,
            self.opts.multi_platform,
            platform.as_ref(),
            &env,
        );
        let mut description = BTreeMap::new();
        description.insert(DFCMD_KEY.to_string(), c.original.clone());

        let history = format!("RUN {}", run_command_string(&args, &ds.build_args, &env));
        let exec = ds.state.run(RunOpts {
            args,
            mounts,
            network,
            security,
            proxy_env: self.proxy.clone(),
            extra_hosts: self.opts.extra_hosts.clone(),
            ulimits: self.opts.ulimits.clone(),
            cgroup_parent: self.opts.cgroup_parent.clone().filter(|p| !p.is_empty()),
            vertex: VertexOpts {
                custom_name: Some(name),
                description,
                ignore_cache: ds.ignore_cache,
                locations: vec![self.location(c.lines)],
                ..VertexOpts::default()
            },
            ..RunOpts::default()
        });
        ds.state = exec.root();
        self.commit(ds, history, true, true);
        Ok(())
    }

    /// The command shown in progress output: the instruction as written, expanded with the
    /// stage's variables (quotes kept, unknown variables left as they are, secrets exposed as
    /// variables masked), its keyword upper-cased.
    fn run_display_name(&self, c: &RunCommand, text: &str, env: &[(String, String)]) -> String {
        let mut lexer = self.lexer.clone();
        lexer.raw_quotes = true;
        lexer.skip_unset_env = true;
        let mut masked = env.to_vec();
        for m in &c.mounts {
            if m.mount_type == MountType::Secret
                && let Some(name) = &m.env
            {
                crate::args::env_set(&mut masked, name, "****");
            }
        }
        let expanded = lexer
            .process_word(text, &masked)
            .unwrap_or_else(|_| text.to_string());
        names::uppercase_command(&expanded)
    }

    /// The mounts of the `--mount` values, in order (BuildKit's `dispatchRunMounts`). Records
    /// the paths they read: of the build context, or of the stage they mount.
    fn run_mounts(
        &mut self,
        ds: &mut StageState,
        c: &RunCommand,
        sources: &[usize],
    ) -> Result<Vec<RunMount>, ConvertError> {
        let mut out = Vec::with_capacity(c.mounts.len());
        for (i, m) in c.mounts.iter().enumerate() {
            // A cache without `from` starts empty; the other types read the build context.
            let from = if m.from.is_empty() && m.mount_type == MountType::Cache {
                "scratch"
            } else {
                m.from.as_str()
            };
            let mut source = self.context.clone();
            let mut source_index = None;
            if !from.is_empty() {
                let index = sources
                    .get(i)
                    .copied()
                    .filter(|&s| s < self.states.len())
                    .ok_or_else(|| {
                        ConvertError::at(c.lines, format!("no source for mount {}", m.target))
                    })?;
                let src = &self.states[index];
                if !src.dispatched {
                    return Err(ConvertError::at(
                        c.lines,
                        format!(
                            "cannot mount from stage {} to {}, stage needs to be defined before current command",
                            kiln_dockerfile::go_quote(from),
                            kiln_dockerfile::go_quote(&m.target)
                        ),
                    ));
                }
                source = src.state.clone();
                source_index = Some(index);
            }
            let mut kind = MountKind::Bind;
            match m.mount_type {
                MountType::Tmpfs => {
                    source = State::scratch();
                    kind = MountKind::Tmpfs { size: m.size_limit };
                }
                MountType::Secret => {
                    out.push(secret_mount(m).map_err(|e| ConvertError::at(c.lines, e))?);
                    continue;
                }
                MountType::Ssh => {
                    if !m.source.is_empty() {
                        return Err(ConvertError::at(c.lines, "ssh does not support source"));
                    }
                    out.push(RunMount::of_kind(
                        m.target.clone(),
                        MountKind::Ssh {
                            id: m.cache_id.clone(),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                            mode: m.mode.unwrap_or(0o600),
                            optional: !m.required,
                        },
                    ));
                    continue;
                }
                MountType::Cache => {
                    let sharing = match m.cache_sharing {
                        Some(ShareMode::Private) => CacheSharing::Private,
                        Some(ShareMode::Locked) => CacheSharing::Locked,
                        Some(ShareMode::Shared) | None => CacheSharing::Shared,
                    };
                    let namespace = self
                        .opts
                        .build_args
                        .get("BUILDKIT_CACHE_MOUNT_NS")
                        .map(String::as_str);
                    let id = format!("{}/{}", namespace.unwrap_or(""), m.effective_cache_id());
                    kind = MountKind::Cache { id, sharing };
                }
                MountType::Bind => {}
            }
            let readonly = m.read_only;
            let no_output = !readonly && m.mount_type == MountType::Bind;

            let target = if clean_path(&m.target).starts_with('/') {
                m.target.clone()
            } else {
                join_paths(&["/", ds.state.get_dir(), &m.target])
            };
            if target == "/" {
                return Err(ConvertError::at(
                    c.lines,
                    format!(
                        "invalid mount target {}",
                        kiln_dockerfile::go_quote(&target)
                    ),
                ));
            }
            let source_path = join_paths(&["/", &m.source]);
            let selector = if source_path != "/" {
                Some(source_path.clone())
            } else if m.uid.is_some() || m.gid.is_some() || m.mode.is_some() {
                source = source.file(
                    FileActions::new().mkdir(
                        "/cache",
                        m.mode.unwrap_or(0o755),
                        MkdirOpts {
                            chown: Some(Chown::ids(m.uid.unwrap_or(0), m.gid.unwrap_or(0))),
                            ..MkdirOpts::default()
                        },
                    ),
                    VertexOpts::named(CACHE_PERMISSIONS_NAME),
                );
                Some("/cache".to_string())
            } else {
                None
            };
            let mut mount = RunMount::bind(target, source);
            mount.selector = selector;
            mount.readonly = readonly;
            mount.no_output = no_output;
            mount.kind = kind;
            out.push(mount);

            match source_index {
                None => self.mark_context_path(ds, &source_path),
                Some(index) => self.mark_stage_path(index, &source_path),
            }
        }
        Ok(out)
    }

    /// Records a path of the main build context that the stage reads.
    pub(crate) fn mark_context_path(&mut self, ds: &mut StageState, path: &str) {
        ds.ctx_paths.insert(path.to_string());
        self.ctx_paths.insert(path.to_string());
    }

    /// Records a path that is read from another state, in it and in the stages it is based on
    /// (BuildKit shares one set of paths along a chain of stages).
    pub(crate) fn mark_stage_path(&mut self, index: usize, path: &str) {
        let mut next = Some(index);
        let mut steps = 0;
        while let Some(i) = next
            && steps <= self.states.len()
        {
            let Some(state) = self.states.get_mut(i) else {
                return;
            };
            state.paths.insert(path.to_string());
            next = state.base;
            steps += 1;
        }
    }

    /// Records a path of the stage being dispatched as read, in it and in its base stages.
    pub(crate) fn mark_own_path(&mut self, ds: &mut StageState, path: &str) {
        ds.paths.insert(path.to_string());
        if let Some(base) = ds.base {
            self.mark_stage_path(base, path);
        }
    }
}

/// The error of a heredoc `RUN` whose command line is not a single shell-form string.
fn invalid_run_command(c: &RunCommand, args: &[String]) -> ConvertError {
    ConvertError::at(
        c.lines,
        format!(
            "parsing produced an invalid run command: {}",
            go_plain_slice(args)
        ),
    )
}

/// A secret mount (BuildKit's `dispatchSecret`): a file at the target (by default
/// `/run/secrets/<id>`) unless the secret is only exposed as a variable.
fn secret_mount(m: &Mount) -> Result<RunMount, String> {
    let id = m.secret_id().map_err(|e| e.message)?;
    let target = m.secret_target().map_err(|e| e.message)?;
    Ok(RunMount::of_kind(
        target.unwrap_or_default(),
        MountKind::Secret {
            id,
            uid: m.uid.unwrap_or(0),
            gid: m.gid.unwrap_or(0),
            mode: m.mode.unwrap_or(0o400),
            optional: !m.required,
            env: m.env.clone(),
        },
    ))
}

/// Go's `path.Join`: the non-empty elements joined with `/`, cleaned; empty when all are empty.
pub(crate) fn join_paths(elems: &[&str]) -> String {
    kiln_gostd::path::join(elems)
}

/// The history text of a `RUN` (BuildKit's `runCommandString`): `|N k=v ...` for the declared
/// arguments (each once, at its first position, with its last value; the value in the
/// environment wins over the declared one), then the arguments joined with spaces.
fn run_command_string(
    args: &[String],
    build_args: &[(String, Option<String>)],
    env: &[(String, String)],
) -> String {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (key, declared) in build_args {
        let value = crate::args::env_get(env, key)
            .map(str::to_string)
            .unwrap_or_else(|| declared.clone().unwrap_or_default());
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key.clone(), value)),
        }
    }
    let mut parts: Vec<String> = Vec::with_capacity(entries.len() + args.len() + 1);
    if !entries.is_empty() {
        parts.push(format!("|{}", entries.len()));
        parts.extend(entries.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// Helpers shared by the tests of `RUN`, `COPY` and `ADD`: a fake resolver, default options
/// and a readable rendering of a conversion.
#[cfg(test)]
pub(crate) mod test_support {
    use std::future::Future;

    use base64::Engine as _;
    use kiln_llb::ResolveMode;
    use kiln_oci::{Digest, Image, Platform};
    use serde_json::{Map, Value, json};

    use crate::{
        ConvertError, ConvertOptions, Converted, ImageResolver, ResolveError, ResolvedImage,
    };

    /// Resolves every reference to a busybox-like image for linux/amd64, pinned to a digest
    /// derived from the reference.
    pub(crate) struct FakeResolver;

    impl ImageResolver for FakeResolver {
        fn resolve(
            &self,
            reference: &str,
            _platform: &Platform,
            _mode: ResolveMode,
        ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send {
            let digest = kiln_llb::Digest::of_bytes(reference.as_bytes());
            let config: Image = serde_json::from_value(json!({
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": ["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},
                "history": [{"created_by": "/bin/sh -c #(nop) ADD file:busybox in / "}],
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]}
            }))
            .unwrap_or_default();
            std::future::ready(Ok(ResolvedImage {
                reference: reference.to_string(),
                digest: Digest::parse(digest.as_str()).ok(),
                config: Some(config),
            }))
        }
    }

    /// The options buildx sends for a single-platform linux/amd64 build with session `S`.
    pub(crate) fn options() -> ConvertOptions {
        let amd64 = Platform::new("linux", "amd64", "");
        ConvertOptions {
            target_platform: Some(amd64.clone()),
            build_platforms: vec![amd64],
            session_id: "S".to_string(),
            ..ConvertOptions::default()
        }
    }

    /// Converts `dockerfile` with `opts` and the fake resolver.
    pub(crate) fn convert_with(
        dockerfile: &str,
        opts: &ConvertOptions,
    ) -> Result<Converted, ConvertError> {
        futures::executor::block_on(crate::convert(dockerfile.as_bytes(), opts, &FakeResolver))
    }

    /// The conversion as JSON for snapshots: the ops in definition order, each with its inputs
    /// written as `#<op index>:<output>`, file-op data decoded, and its custom name,
    /// description, cache and progress-group metadata; then the history entries and the image
    /// config. Digests are left out so that the snapshot shows content, not encoding.
    pub(crate) fn render(converted: &Converted) -> Value {
        let ops = kiln_llb::dump_json(&converted.definition).unwrap_or_default();
        let index: Map<String, Value> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| Some((op.get("Digest")?.as_str()?.to_string(), json!(i))))
            .collect();
        let mut rendered = Vec::new();
        for op in ops.iter().take(ops.len().saturating_sub(1)) {
            let mut body = op.get("Op").cloned().unwrap_or(Value::Null);
            rewrite(&mut body, &index);
            let mut entry = Map::new();
            entry.insert("op".to_string(), body);
            if let Some(md) = op.get("OpMetadata").and_then(Value::as_object) {
                for key in ["description", "ignore_cache", "progress_group"] {
                    if let Some(v) = md.get(key) {
                        entry.insert(key.to_string(), v.clone());
                    }
                }
            }
            rendered.push(Value::Object(entry));
        }
        let history: Vec<Value> = converted
            .image
            .history
            .iter()
            .map(|h| json!({"created_by": h.created_by, "empty_layer": h.empty_layer}))
            .collect();
        json!({
            "ops": rendered,
            "history": history,
            "config": serde_json::to_value(&converted.image.config).unwrap_or(Value::Null),
        })
    }

    /// Replaces input digests by op indexes and base64 file data by text.
    fn rewrite(v: &mut Value, index: &Map<String, Value>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(d)) = map.get("digest")
                    && let Some(n) = index.get(d)
                {
                    let output = map.get("index").and_then(Value::as_i64).unwrap_or(0);
                    *v = Value::String(format!("#{n}:{output}"));
                    return;
                }
                if let Some(Value::String(data)) = map.get("data")
                    && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
                {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    map.insert("data".to_string(), Value::String(text));
                }
                for value in map.values_mut() {
                    rewrite(value, index);
                }
            }
            Value::Array(items) => {
                for item in items {
                    rewrite(item, index);
                }
            }
            _ => {}
        }
    }

    /// Renders each case (name, Dockerfile, options), or its error, into one JSON object.
    pub(crate) fn render_cases(cases: &[(&str, &str, ConvertOptions)]) -> Value {
        let mut out = Map::new();
        for (name, dockerfile, opts) in cases {
            let value = match convert_with(dockerfile, opts) {
                Ok(c) => render(&c),
                Err(e) => {
                    json!({"error": e.message, "lines": e.lines.iter().map(|l| json!([l.start, l.end])).collect::<Vec<_>>()})
                }
            };
            out.insert((*name).to_string(), value);
        }
        Value::Object(out)
    }

    /// Converts each case and compares the error (message and first line) with the expected
    /// one; returns the list of mismatches.
    pub(crate) fn error_mismatches(cases: &[(&str, &str, &str, usize)]) -> Vec<String> {
        let mut failures = Vec::new();
        for (name, dockerfile, message, line) in cases {
            match convert_with(dockerfile, &options()) {
                Ok(_) => failures.push(format!("{name}: converted, expected error {message:?}")),
                Err(e) => {
                    let got_line = e.lines.first().map_or(0, |l| l.start);
                    if e.message != *message || got_line != *line {
                        failures.push(format!(
                            "{name}: got {:?} at line {got_line}, expected {message:?} at line {line}",
                            e.message
                        ));
                    }
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use kiln_oci::Platform;

    use super::test_support::{error_mismatches, options, render_cases};
    use super::*;
    use crate::{ConvertOptions, NoCache};

    /// The default options changed by `f`.
    fn with(f: impl FnOnce(&mut ConvertOptions)) -> ConvertOptions {
        let mut opts = options();
        f(&mut opts);
        opts
    }

    fn build_arg(key: &str, value: &str) -> ConvertOptions {
        with(|o| {
            o.build_args.insert(key.to_string(), value.to_string());
        })
    }

    /// Golden examples 9.1, 9.3 and 9.4 of `docs/dev/dockerfile2llb.md`.
    #[test]
    fn golden_examples() {
        insta::assert_json_snapshot!(render_cases(&[
            (
                "9.1 single stage, shell RUN",
                "FROM busybox\nRUN echo hi\n",
                options()
            ),
            (
                "9.3 multi-stage with ARGs and COPY --from",
                "ARG ALPINE=3.20\nFROM alpine:${ALPINE} AS build\nARG NAME=world\nRUN echo \"hello $NAME\" > /greeting\nFROM scratch\nCOPY --from=build /greeting /\n",
                build_arg("NAME", "kiln"),
            ),
            (
                "9.3 build stage history",
                "ARG ALPINE=3.20\nFROM alpine:${ALPINE} AS build\nARG NAME=world\nRUN echo \"hello $NAME\" > /greeting\nFROM scratch\nCOPY --from=build /greeting /\n",
                with(|o| {
                    o.build_args.insert("NAME".to_string(), "kiln".to_string());
                    o.target = Some("build".to_string());
                }),
            ),
            (
                "9.4 heredocs, secret mount, network",
                "FROM busybox\nRUN --mount=type=secret,id=tok,required --network=none <<EOF\n#!/bin/sh\nwc -c /run/secrets/tok\nEOF\nRUN <<EOF\necho one\necho two\nEOF\n",
                options(),
            ),
        ]));
    }

    /// Every mount type, with its defaults and options.
    #[test]
    fn mounts() {
        insta::assert_json_snapshot!(render_cases(&[
            (
                "bind of the build context, whole and a subdirectory",
                "FROM busybox\nWORKDIR /w\nRUN --mount=target=ctx --mount=type=bind,source=src/,target=/src make\n",
                options(),
            ),
            (
                "bind from a stage, read-write, and from an image",
                "FROM busybox AS tools\nFROM busybox\nRUN --mount=from=tools,source=/bin,target=/tools,rw --mount=from=alpine,target=/alpine ls\n",
                options(),
            ),
            (
                "cache mounts",
                "FROM busybox\nWORKDIR /w\nRUN --mount=type=cache,target=/root/.cache/ --mount=type=cache,id=go,target=gocache,sharing=private --mount=type=cache,target=/locked,sharing=locked,ro --mount=type=cache,target=/owned,uid=1000,gid=1001,mode=0700 --mount=type=cache,target=/partial,gid=5 go build\n",
                options(),
            ),
            (
                "cache mount id namespace",
                "FROM busybox\nRUN --mount=type=cache,target=/root/.cache --mount=type=cache,id=x,target=/x true\n",
                build_arg("BUILDKIT_CACHE_MOUNT_NS", "ns"),
            ),
            (
                "cache mount seeded from a stage",
                "FROM busybox AS seed\nFROM busybox\nRUN --mount=type=cache,from=seed,source=/var/cache,target=/var/cache --mount=type=cache,from=seed,target=/c2,uid=1 true\n",
                options(),
            ),
            (
                "tmpfs mounts",
                "FROM busybox\nCOPY a /a\nRUN --mount=type=tmpfs,target=/tmp --mount=type=tmpfs,target=/big,size=64m true\n",
                options(),
            ),
            (
                "secret mounts",
                "FROM busybox\nRUN --mount=type=secret,id=a --mount=type=secret,id=b,target=/etc/b,uid=1000,gid=1000,mode=0440,required --mount=type=secret,source=c --mount=type=secret,target=/run/d/dd --mount=type=secret,id=e,env=E_TOKEN --mount=type=secret,id=f,env=F,target=/f cat /run/secrets/a $E_TOKEN ${F}\n",
                options(),
            ),
            (
                "ssh mounts",
                "FROM busybox\nRUN --mount=type=ssh --mount=type=ssh,id=github,target=/gh.sock,required,uid=1,gid=2,mode=0660 ssh-add -l\n",
                options(),
            ),
            (
                "ssh mount with SSH_AUTH_SOCK already set",
                "FROM busybox\nENV SSH_AUTH_SOCK=/mine\nRUN --mount=type=ssh,target=/agent ssh-add -l\n",
                options(),
            ),
            (
                "mount values expanded",
                "FROM busybox\nARG CACHE=/root/.npm\nRUN --mount=type=cache,target=$CACHE npm ci\n",
                options(),
            ),
        ]));
    }

    /// Heredocs: with and without a shebang, chomped, inside a longer command, several.
    #[test]
    fn heredocs() {
        insta::assert_json_snapshot!(render_cases(&[
            (
                "shebang",
                "FROM busybox\nRUN <<EOT\n#!/usr/bin/env python3\nprint('hi')\nEOT\n",
                options()
            ),
            (
                "no shebang",
                "FROM busybox\nRUN <<EOF\nset -e\necho hi\nEOF\n",
                options()
            ),
            (
                "chomped",
                "FROM busybox\nRUN <<-EOF\n\techo one\n\t\techo two\nEOF\n",
                options()
            ),
            (
                "quoted delimiter",
                "FROM busybox\nRUN <<'EOF'\necho $HOME\nEOF\n",
                options()
            ),
            (
                "inside a longer command",
                "FROM busybox\nRUN cat <<EOF > /x\nhello\nEOF\n",
                options()
            ),
            (
                "several heredocs",
                "FROM busybox\nRUN <<A cat /dev/stdin - <<B\none\nA\ntwo\nB\n",
                options(),
            ),
            (
                "custom shell",
                "FROM busybox\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nRUN <<EOF\n#!/bin/sh\necho hi\nEOF\n",
                options()
            ),
        ]));
    }

    /// Network and security modes, the per-build settings, names and history prefixes.
    #[test]
    fn run_settings() {
        let amd64 = Platform::new("linux", "amd64", "");
        let arm64 = Platform::new("linux", "arm64", "");
        insta::assert_json_snapshot!(render_cases(&[
            (
                "exec form",
                "FROM busybox\nRUN [\"echo\", \"a b\"]\n",
                options()
            ),
            (
                "network host and security insecure",
                "FROM busybox\nRUN --network=host --security=insecure true\nRUN --network=default true\n",
                options()
            ),
            (
                "proxy arguments",
                "FROM busybox\nRUN wget x\n",
                with(|o| {
                    for (k, v) in [
                        ("HTTP_PROXY", "http://upper"),
                        ("http_proxy", "http://lower"),
                        ("NO_PROXY", "localhost"),
                    ] {
                        o.build_args.insert(k.to_string(), v.to_string());
                    }
                }),
            ),
            (
                "build options",
                "FROM busybox\nRUN true\n",
                with(|o| {
                    o.extra_hosts =
                        vec![("db".to_string(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))];
                    o.shm_size = Some(1 << 26);
                    o.ulimits = vec![("nofile".to_string(), 1024, 2048)];
                    o.cgroup_parent = Some("/kiln".to_string());
                    o.hostname = Some("builder".to_string());
                    o.force_network = Some(NetMode::None);
                }),
            ),
            (
                "no cache",
                "FROM busybox\nRUN true\n",
                with(|o| o.no_cache = NoCache::All)
            ),
            (
                "declared arguments in history",
                "FROM busybox AS base\nARG A=1\nFROM base\nARG B\nARG C=$A-c\nENV A=env\nARG A\nRUN true\n",
                build_arg("B", "from-cli"),
            ),
            (
                "user, workdir and environment",
                "FROM busybox\nENV X=1\nUSER nobody\nWORKDIR /app\nRUN --mount=type=bind,target=src id\n",
                options(),
            ),
            (
                "onbuild trigger",
                "FROM busybox AS base\nONBUILD RUN echo triggered\nFROM base\nRUN echo own\n",
                options(),
            ),
            (
                "multi-platform name with a target arch",
                "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH\n",
                with(|o| {
                    o.multi_platform = true;
                    o.target_platform = Some(arm64);
                    o.build_platforms = vec![amd64];
                }),
            ),
            (
                "unknown variables left in the name",
                "FROM busybox\nARG X=x\nRUN echo \"$X\" '$X' $UNSET ${X:-d}\n",
                options(),
            ),
            ("RUN on scratch", "FROM scratch\nRUN true\n", options()),
        ]));
    }

    #[test]
    fn errors() {
        let failures = error_mismatches(&[
            (
                "mount target /",
                "FROM busybox\nRUN --mount=type=cache,target=/ true\n",
                "invalid mount target \"/\"",
                2,
            ),
            (
                "relative mount target resolving to /",
                "FROM busybox\nRUN --mount=type=tmpfs,target=. true\n",
                "invalid mount target \"/\"",
                2,
            ),
            (
                "mount from a later stage",
                "FROM busybox AS first\nRUN --mount=from=later,target=/x true\nFROM busybox AS later\nFROM first\n",
                "cannot mount from stage \"later\" to \"/x\", stage needs to be defined before current command",
                2,
            ),
            (
                "ssh with a source",
                "FROM busybox\nRUN --mount=type=ssh,source=x true\n",
                "ssh does not support source",
                2,
            ),
            (
                "unsupported mount type",
                "FROM busybox\nRUN --mount=type=nfs,target=/x true\n",
                "unsupported mount type \"nfs\"",
                2,
            ),
        ]);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn run_command_strings() {
        let check = |args: &[&str],
                     build_args: &[(&str, Option<&str>)],
                     env: &[(&str, &str)],
                     expected: &str| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let build_args: Vec<(String, Option<String>)> = build_args
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect();
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                run_command_string(&args, &build_args, &env),
                expected,
                "{args:?} {build_args:?} {env:?}"
            );
        };
        check(
            &["/bin/sh", "-c", "echo hi"],
            &[],
            &[],
            "/bin/sh -c echo hi",
        );
        check(
            &["make"],
            &[("A", Some("1")), ("B", None)],
            &[("A", "1")],
            "|2 A=1 B= make",
        );
        check(
            &["make"],
            &[("A", Some("1")), ("B", None), ("A", Some("2"))],
            &[("A", "3")],
            "|2 A=3 B= make",
        );
        check(
            &["make"],
            &[("A", Some("declared"))],
            &[],
            "|1 A=declared make",
        );
    }

    #[test]
    fn heredoc_summaries() {
        let check = |doc: &str, expected: &str| {
            assert_eq!(names::summarize_heredoc(doc), expected, "{doc:?}")
        };
        check("echo hi\n", "echo hi");
        check("\n  #!/bin/sh\necho\n", "#!/bin/sh...");
        check("a\r\nb", "a...");
        check("", "");
    }

    #[test]
    fn path_joins() {
        let check =
            |elems: &[&str], expected: &str| assert_eq!(join_paths(elems), expected, "{elems:?}");
        check(&["/", "/w", "rel"], "/w/rel");
        check(&["/", "/w", "../x/"], "/x");
        check(&["/dev/pipes/", "EOF"], "/dev/pipes/EOF");
        check(&["/", ""], "/");
        check(&["", ""], "");
    }
}
