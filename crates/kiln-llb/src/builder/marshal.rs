//! `State::marshal`: turning a built graph into a [`Definition`] exactly as BuildKit's
//! `State.Marshal` does: ops in dependency order, each once, then the terminal op.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use kiln_oci::{Digest, Platform};

use super::exec::{ExecNode, exec_caps};
use super::file::{Chown, ChownUser, CopyMode, FileNode, FileStep};
use super::paths;
use super::source::{attr, caps};
use super::state::{Constraints, Node, NodeKind, Output, SourceLocation, SourceMap, State};
use crate::definition::{Definition, Location, OpMetadata, Range, Source, SourceInfo};
use crate::error::Error;
use crate::ops::*;

/// Options of [`State::marshal`], BuildKit's marshal-time constraints.
#[derive(Clone, Default)]
pub struct MarshalOpts {
    /// The platform of ops that set none themselves; [`default_platform`] when `None`.
    pub platform: Option<Platform>,
    /// The unique id given to local sources without session (BuildKit draws a random one per
    /// marshal; kiln leaves the attribute out when no id is given, to stay deterministic).
    pub local_unique_id: Option<String>,
    /// Worker constraints added to every op.
    pub worker_constraints: Vec<String>,
    /// Metadata merged into every op's metadata.
    pub metadata: OpMetadata,
}

/// The platform of the machine kiln runs on, in Go's naming (`linux/amd64`), as BuildKit's
/// `platforms.DefaultSpec` gives it.
pub fn default_platform() -> Platform {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", ""),
        "x86" => ("386", ""),
        "aarch64" => ("arm64", ""),
        "arm" => ("arm", "v7"),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", ""),
        "powerpc64" => ("ppc64", ""),
        "loongarch64" => ("loong64", ""),
        other => (other, ""),
    };
    Platform {
        os: os.to_string(),
        architecture: architecture.to_string(),
        variant: variant.to_string(),
        ..Platform::default()
    }
}

struct Marshalled {
    digest: Digest,
    bytes: Vec<u8>,
    metadata: OpMetadata,
    locations: Vec<SourceLocation>,
}

struct Marshaller<'a> {
    opts: &'a MarshalOpts,
    platform: Platform,
    memo: HashMap<usize, Rc<Marshalled>>,
    visited: HashSet<usize>,
    seen: HashSet<Digest>,
    def: Vec<Vec<u8>>,
    metadata: BTreeMap<Digest, OpMetadata>,
    maps: Vec<Arc<SourceMap>>,
    ranges: Vec<BTreeMap<Digest, Vec<Range>>>,
}

fn key(node: &Arc<Node>) -> usize {
    Arc::as_ptr(node) as usize
}

impl State {
    /// Marshals this state and everything it depends on into a [`Definition`].
    ///
    /// Scratch marshals to an empty definition. Marshalling the same graph twice gives the same
    /// bytes.
    pub fn marshal(&self, opts: &MarshalOpts) -> Result<Definition, Error> {
        let Some(out) = &self.output else {
            return Ok(Definition::default());
        };
        let mut m = Marshaller {
            opts,
            platform: opts.platform.clone().unwrap_or_else(default_platform),
            memo: HashMap::new(),
            visited: HashSet::new(),
            seen: HashSet::new(),
            def: Vec::new(),
            metadata: BTreeMap::new(),
            maps: Vec::new(),
            ranges: Vec::new(),
        };
        m.walk(&out.node)?;
        let input = m.input_of(out)?;
        let terminal = Operation {
            inputs: vec![input],
            ..Operation::default()
        };
        let bytes = terminal.encode();
        let digest = Digest::of_bytes(&bytes);
        m.def.push(bytes);

        let mut md = m.metadata.get(&digest).cloned().unwrap_or_default();
        md.caps = BTreeMap::from([
            (caps::CONSTRAINTS.to_string(), true),
            (caps::PLATFORM.to_string(), true),
        ]);
        for other in m.metadata.values() {
            if other.ignore_cache {
                md.caps.insert(caps::META_IGNORE_CACHE.to_string(), true);
            }
            if !other.description.is_empty() {
                md.caps.insert(caps::META_DESCRIPTION.to_string(), true);
            }
            if other.export_cache.is_some() {
                md.caps.insert(caps::META_EXPORT_CACHE.to_string(), true);
            }
        }
        m.metadata.insert(digest, md);
        let source = m.source_map()?;
        Ok(Definition {
            def: m.def,
            metadata: m.metadata,
            source: Some(source),
        })
    }
}

impl Marshaller<'_> {
    /// Depth-first walk over the inputs, emitting each op after its inputs (BuildKit's `marshal`).
    fn walk(&mut self, node: &Arc<Node>) -> Result<(), Error> {
        if self.visited.contains(&key(node)) {
            return Ok(());
        }
        for input in inputs(node) {
            self.walk(&input.node)?;
        }
        let done = self.vertex(node)?;
        self.visited.insert(key(node));
        self.metadata
            .entry(done.digest.clone())
            .or_default()
            .merge(&done.metadata);
        for loc in &done.locations {
            let idx = match self.maps.iter().position(|m| Arc::ptr_eq(m, &loc.map)) {
                Some(i) => i,
                None => {
                    self.maps.push(Arc::clone(&loc.map));
                    self.ranges.push(BTreeMap::new());
                    self.maps.len() - 1
                }
            };
            if let Some(r) = self.ranges.get_mut(idx) {
                r.entry(done.digest.clone())
                    .or_default()
                    .extend(loc.ranges.iter().copied());
            }
        }
        if self.seen.insert(done.digest.clone()) {
            self.def.push(done.bytes.clone());
        }
        Ok(())
    }

    fn input_of(&mut self, out: &Output) -> Result<Input, Error> {
        let index = out.index.clone().map_err(Error::Build)?;
        let digest = self.vertex(&out.node)?.digest.clone();
        Ok(Input { digest, index })
    }

    /// BuildKit's `MarshalConstraints`: the op skeleton with platform and worker constraints,
    /// and the merged metadata.
    fn constraints(&self, c: &Constraints) -> (Operation, OpMetadata) {
        let platform = c.platform.clone().unwrap_or_else(|| self.platform.clone());
        let mut filter = self.opts.worker_constraints.clone();
        filter.extend(c.worker_constraints.iter().cloned());
        let mut md = self.opts.metadata.clone();
        md.merge(&c.metadata);
        (
            Operation {
                inputs: Vec::new(),
                op: None,
                platform: Some(platform),
                constraints: Some(WorkerConstraints { filter }),
            },
            md,
        )
    }

    fn vertex(&mut self, node: &Arc<Node>) -> Result<Rc<Marshalled>, Error> {
        if let Some(done) = self.memo.get(&key(node)) {
            return Ok(Rc::clone(done));
        }
        let (op, metadata) = match &node.kind {
            NodeKind::Source {
                identifier,
                attrs,
                error,
            } => self.source(node, identifier, attrs, error.as_ref())?,
            NodeKind::Exec(exec) => self.exec(node, exec)?,
            NodeKind::File(file) => self.file(node, file)?,
            NodeKind::Merge(inputs) => {
                if inputs.len() < 2 {
                    return Err(Error::build("merge must have at least 2 inputs"));
                }
                let (mut op, md) = self.constraints(&node.constraints);
                op.platform = None;
                let mut merge = MergeOp::default();
                for input in inputs {
                    merge.inputs.push(op.inputs.len() as i64);
                    op.inputs.push(self.input_of(input)?);
                }
                op.op = Some(Op::Merge(merge));
                (op, md)
            }
            NodeKind::Diff { lower, upper } => {
                let (mut op, md) = self.constraints(&node.constraints);
                op.platform = None;
                let mut diff = DiffOp::default();
                for (side, out) in [(&mut diff.lower, lower), (&mut diff.upper, upper)] {
                    *side = Some(match out {
                        Some(out) => {
                            let input = self.input_of(out)?;
                            op.inputs.push(input);
                            op.inputs.len() as i64 - 1
                        }
                        None => EMPTY_INPUT,
                    });
                }
                op.op = Some(Op::Diff(diff));
                (op, md)
            }
        };
        let bytes = op.encode();
        let done = Rc::new(Marshalled {
            digest: Digest::of_bytes(&bytes),
            bytes,
            metadata,
            locations: node.constraints.locations.clone(),
        });
        self.memo.insert(key(node), Rc::clone(&done));
        Ok(done)
    }

    fn source(
        &mut self,
        node: &Arc<Node>,
        identifier: &str,
        attrs: &BTreeMap<String, String>,
        error: Option<&Error>,
    ) -> Result<(Operation, OpMetadata), Error> {
        if let Some(e) = error {
            return Err(e.clone());
        }
        if identifier.is_empty() {
            return Err(Error::build("source identifier can't be empty"));
        }
        let mut c = node.constraints.clone();
        let mut attrs = attrs.clone();
        if identifier.starts_with("local://") && !attrs.contains_key(attr::LOCAL_SESSION_ID) {
            let uid = c
                .local_unique_id
                .clone()
                .or_else(|| self.opts.local_unique_id.clone());
            if let Some(uid) = uid {
                attrs.insert(attr::LOCAL_UNIQUE_ID.to_string(), uid);
                c.add_cap(caps::SOURCE_LOCAL_UNIQUE);
            }
        }
        let (mut op, md) = self.constraints(&c);
        if !(identifier.starts_with("docker-image://") || identifier.starts_with("oci-layout://")) {
            op.platform = None;
        }
        op.op = Some(Op::Source(SourceOp {
            identifier: identifier.to_string(),
            attrs,
        }));
        Ok((op, md))
    }

    fn exec(
        &mut self,
        node: &Arc<Node>,
        exec: &ExecNode,
    ) -> Result<(Operation, OpMetadata), Error> {
        if exec.args.is_empty() {
            return Err(Error::build("arguments are required"));
        }
        if exec.meta.dir.is_empty() {
            return Err(Error::build("working directory is required"));
        }
        let mut c = node.constraints.clone();
        let mut env = exec.meta.env.clone();
        if let Some(first) = exec.ssh.first()
            && !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK")
        {
            env.push(("SSH_AUTH_SOCK".to_string(), first.target.clone()));
        }
        exec_caps(exec, &mut c);
        if c.platform.is_none() {
            c.platform.clone_from(&exec.meta.platform);
        }
        let (mut op, md) = self.constraints(&c);

        let mut body = ExecOp {
            meta: Meta {
                args: exec.args.clone(),
                env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                cwd: exec.meta.dir.clone(),
                user: exec.meta.user.clone(),
                proxy_env: exec.proxy_env.clone(),
                extra_hosts: exec.meta.extra_hosts.clone(),
                hostname: exec.meta.hostname.clone(),
                ulimit: exec.meta.ulimits.clone(),
                cgroup_parent: exec.meta.cgroup_parent.clone(),
                remove_mount_stubs_recursive: true,
                valid_exit_codes: exec.valid_exit_codes.clone().unwrap_or_default(),
            },
            network: exec.meta.network,
            security: exec.meta.security,
            ..ExecOp::default()
        };
        for m in &exec.mounts {
            let input = match &m.source {
                Some(source) => {
                    if m.tmpfs.is_some() {
                        return Err(Error::build("tmpfs mounts must use scratch"));
                    }
                    let input = self.input_of(source)?;
                    match op.inputs.iter().position(|i| *i == input) {
                        Some(i) => i as i64,
                        None => {
                            op.inputs.push(input);
                            op.inputs.len() as i64 - 1
                        }
                    }
                }
                None => EMPTY_INPUT,
            };
            let mut mount = Mount {
                input,
                selector: m.selector.clone(),
                dest: m.target.clone(),
                output: m.output.unwrap_or(SKIP_OUTPUT),
                readonly: m.readonly,
                content_cache: m.content_cache,
                ..Mount::default()
            };
            if let Some((id, sharing)) = &m.cache {
                mount.mount_type = MountType::Cache;
                mount.cache_opt = Some(CacheOpt {
                    id: id.clone(),
                    sharing: *sharing,
                });
            }
            if let Some(size) = m.tmpfs {
                mount.mount_type = MountType::Tmpfs;
                mount.tmpfs_opt = Some(TmpfsOpt { size });
            }
            body.mounts.push(mount);
        }
        for s in &exec.secrets {
            if let Some(name) = &s.env {
                body.secretenv.push(SecretEnv {
                    id: s.id.clone(),
                    name: name.clone(),
                    optional: s.optional,
                });
            }
            if let Some(target) = &s.target {
                body.mounts.push(Mount {
                    input: EMPTY_INPUT,
                    dest: target.clone(),
                    mount_type: MountType::Secret,
                    secret_opt: Some(SecretOpt {
                        id: s.id.clone(),
                        uid: s.uid,
                        gid: s.gid,
                        mode: s.mode,
                        optional: s.optional,
                    }),
                    ..Mount::default()
                });
            }
        }
        for s in &exec.ssh {
            body.mounts.push(Mount {
                input: EMPTY_INPUT,
                dest: s.target.clone(),
                mount_type: MountType::Ssh,
                ssh_opt: Some(SshOpt {
                    id: s.id.clone(),
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                    optional: s.optional,
                }),
                ..Mount::default()
            });
        }
        op.op = Some(Op::Exec(body));
        Ok((op, md))
    }

    fn file(
        &mut self,
        node: &Arc<Node>,
        file: &FileNode,
    ) -> Result<(Operation, OpMetadata), Error> {
        if file.steps.is_empty() {
            return Err(Error::build("action is required"));
        }
        let mut c = node.constraints.clone();
        c.add_cap(caps::FILE_BASE);
        for step in &file.steps {
            match step {
                FileStep::Copy { info, .. } => {
                    if !info.include_patterns.is_empty() || !info.exclude_patterns.is_empty() {
                        c.add_cap(caps::FILE_COPY_INCLUDE_EXCLUDE_PATTERNS);
                    }
                    if info.always_replace_existing_dest_paths {
                        c.add_cap(caps::FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS);
                    }
                    if matches!(info.mode, Some(CopyMode::Symbolic(_))) {
                        c.add_cap(caps::FILE_COPY_MODE_STRING);
                    }
                }
                FileStep::Symlink { .. } => c.add_cap(caps::FILE_SYMLINK_CREATE),
                _ => {}
            }
        }
        let (mut op, md) = self.constraints(&c);
        op.platform = None;

        let add_input =
            |m: &mut Marshaller<'_>, op: &mut Operation, out: &Output| -> Result<i64, Error> {
                let input = m.input_of(out)?;
                Ok(match op.inputs.iter().position(|i| *i == input) {
                    Some(i) => i as i64,
                    None => {
                        op.inputs.push(input);
                        op.inputs.len() as i64 - 1
                    }
                })
            };
        // (input, relative, secondary input, relative, base) per action, as BuildKit's marshalState.
        let mut planned = Vec::with_capacity(file.steps.len());
        for (i, step) in file.steps.iter().enumerate() {
            let base = match &file.base {
                Some(out) => add_input(self, &mut op, out)?,
                None => EMPTY_INPUT,
            };
            let input = if i == 0 {
                (base, None)
            } else {
                (EMPTY_INPUT, Some(i - 1))
            };
            let secondary = match step {
                FileStep::Copy { src: Some(src), .. } => add_input(self, &mut op, src)?,
                _ => EMPTY_INPUT,
            };
            planned.push((input, secondary, base));
        }
        let n_inputs = op.inputs.len() as i64;
        let last = file.steps.len() - 1;
        let mut actions = Vec::with_capacity(file.steps.len());
        for (i, (step, ((input, relative), secondary, base))) in
            file.steps.iter().zip(planned).enumerate()
        {
            let input = match relative {
                Some(target) => n_inputs + target as i64,
                None => input,
            };
            actions.push(FileAction {
                input,
                secondary_input: secondary,
                output: if i == last { 0 } else { SKIP_OUTPUT },
                action: file_action(step, &file.base_dir, base),
            });
        }
        op.op = Some(Op::File(FileOp { actions }));
        Ok((op, md))
    }

    fn source_map(&mut self) -> Result<Source, Error> {
        let mut source = Source::default();
        let maps = self.maps.clone();
        for (i, map) in maps.iter().enumerate() {
            let definition = match (&map.definition, &map.state) {
                (Some(def), _) => Some(def.clone()),
                (None, Some(state)) => Some(state.marshal(self.opts)?),
                (None, None) => None,
            };
            source.infos.push(SourceInfo {
                filename: map.filename.clone(),
                data: map.data.clone(),
                definition,
                language: map.language.clone(),
            });
            if let Some(ranges) = self.ranges.get(i) {
                for (digest, ranges) in ranges {
                    source
                        .locations
                        .entry(digest.clone())
                        .or_default()
                        .push(Location {
                            source_index: i as i32,
                            ranges: ranges.clone(),
                        });
                }
            }
        }
        Ok(source)
    }
}

/// The inputs of a vertex in the order BuildKit walks them.
fn inputs(node: &Arc<Node>) -> Vec<Output> {
    let mut out: Vec<Output> = Vec::new();
    let mut push = |o: &Output| {
        if !out.iter().any(|x| x.same(o)) {
            out.push(o.clone());
        }
    };
    match &node.kind {
        NodeKind::Source { .. } => {}
        NodeKind::Exec(exec) => {
            for m in &exec.mounts {
                if let Some(s) = &m.source {
                    push(s);
                }
            }
        }
        NodeKind::File(file) => {
            // BuildKit starts from the last action: the base, then copy sources last to first.
            if let Some(b) = &file.base {
                push(b);
            }
            for step in file.steps.iter().rev() {
                if let FileStep::Copy { src: Some(src), .. } = step {
                    push(src);
                }
            }
        }
        NodeKind::Merge(inputs) => return inputs.clone(),
        NodeKind::Diff { lower, upper } => {
            for o in [lower, upper].into_iter().flatten() {
                out.push(o.clone());
            }
        }
    }
    out
}

fn timestamp(t: Option<i64>) -> i64 {
    t.unwrap_or(-1)
}

fn chown(c: &Option<Chown>, base: i64) -> Option<ChownOpt> {
    let user = |u: &ChownUser| match u {
        ChownUser::Name(name) => UserOpt::ByName {
            name: name.clone(),
            input: base,
        },
        ChownUser::Id(id) => UserOpt::ById(*id),
    };
    c.as_ref().map(|c| ChownOpt {
        user: c.user.as_ref().map(user),
        group: c.group.as_ref().map(user),
    })
}

fn file_action(step: &FileStep, parent: &str, base: i64) -> FileActionKind {
    match step {
        FileStep::Copy {
            src_dir,
            src_path,
            dest,
            info,
            ..
        } => {
            let cleaned = paths::clean(src_path);
            let dir = if paths::is_abs(&cleaned) {
                "/"
            } else {
                src_dir.as_str()
            };
            let (mode, mode_str) = match &info.mode {
                Some(CopyMode::Bits(bits)) => (*bits as i32, String::new()),
                Some(CopyMode::Symbolic(s)) => (0, s.clone()),
                None => (-1, String::new()),
            };
            FileActionKind::Copy(FileActionCopy {
                src: paths::join(&[dir, &cleaned]),
                dest: paths::normalize(parent, dest, true),
                owner: chown(&info.chown, base),
                mode,
                follow_symlink: info.follow_symlinks,
                dir_copy_contents: info.copy_dir_contents_only,
                attempt_unpack_docker_compatibility: info.attempt_unpack,
                create_dest_path: info.create_dest_path,
                allow_wildcard: info.allow_wildcard,
                allow_empty_wildcard: info.allow_empty_wildcard,
                timestamp: timestamp(info.created_time),
                include_patterns: info.include_patterns.clone(),
                exclude_patterns: info.exclude_patterns.clone(),
                always_replace_existing_dest_paths: info.always_replace_existing_dest_paths,
                mode_str,
                required_paths: info.required_paths.clone(),
            })
        }
        FileStep::Mkdir { path, mode, opts } => FileActionKind::Mkdir(FileActionMkDir {
            path: paths::normalize(parent, path, false),
            mode: (*mode & 0o777) as i32,
            make_parents: opts.make_parents,
            owner: chown(&opts.chown, base),
            timestamp: timestamp(opts.created_time),
        }),
        FileStep::Mkfile {
            path,
            mode,
            data,
            opts,
        } => FileActionKind::Mkfile(FileActionMkFile {
            path: paths::normalize(parent, path, false),
            mode: (*mode & 0o777) as i32,
            data: data.clone(),
            owner: chown(&opts.chown, base),
            timestamp: timestamp(opts.created_time),
        }),
        FileStep::Rm { path, opts } => FileActionKind::Rm(FileActionRm {
            path: paths::normalize(parent, path, false),
            allow_not_found: opts.allow_not_found,
            allow_wildcard: opts.allow_wildcard,
        }),
        FileStep::Symlink {
            oldpath,
            newpath,
            opts,
        } => FileActionKind::Symlink(FileActionSymlink {
            oldpath: oldpath.clone(),
            newpath: newpath.clone(),
            owner: chown(&opts.chown, base),
            timestamp: timestamp(opts.created_time),
        }),
    }
}
