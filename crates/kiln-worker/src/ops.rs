//! The LLB ops as solver ops: image and local sources, exec, file and merge.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use kiln_llb::ops::{
    ChownOpt, ExecOp, FileActionCopy, FileActionKind, FileOp, MountType, NetMode, SecurityMode,
    UserOpt,
};
use kiln_oci::{Digest, Platform, Reference};
use kiln_progress::Event;
use kiln_solver::{BoxError, BoxFuture, CacheKeyInput, ContentDigest, ExecCtx, Op, Selector};

use crate::Parts;
use crate::cachekey;
use crate::error::{Error, Result};
use crate::mounts::{Mounted, unique_id};
use crate::refs::Ref;
use crate::session;
use crate::task::blocking;

pub(crate) fn boxed(e: Error) -> BoxError {
    Box::new(e)
}

/// Prepares a writable snapshot on `parent` and mounts it.
pub(crate) fn prepare_mounted(parts: &Parts, parent: &Ref) -> Result<(String, Mounted)> {
    let key = unique_id("active/");
    let mounts = parts.snapshots.prepare(&key, parent.snapshot())?;
    match Mounted::new(&parts.mount_dir, &mounts) {
        Ok(m) => Ok((key, m)),
        Err(e) => {
            let _ = parts.snapshots.remove(&key);
            Err(e)
        }
    }
}

/// Mounts a committed result read-only (scratch gives an empty directory).
fn view_mounted(parts: &Parts, r: &Ref) -> Result<(Option<String>, Mounted)> {
    match r.snapshot() {
        None => Ok((None, Mounted::new(&parts.mount_dir, &[])?)),
        Some(name) => {
            let key = unique_id("view/");
            let mounts = parts.snapshots.view(&key, Some(name))?;
            match Mounted::new(&parts.mount_dir, &mounts) {
                Ok(m) => Ok((Some(key), m)),
                Err(e) => {
                    let _ = parts.snapshots.remove(&key);
                    Err(e)
                }
            }
        }
    }
}

/// Unmounts and commits an active snapshot under a new unique name.
pub(crate) fn commit(parts: &Parts, key: String, mounted: Mounted, prefix: &str) -> Result<Ref> {
    mounted.release()?;
    let name = unique_id(prefix);
    parts.snapshots.commit(&name, &key)?;
    Ok(Ref::Snapshot(name.into()))
}

fn remove_view(parts: &Parts, key: Option<String>, mounted: Mounted) {
    drop(mounted);
    if let Some(k) = key {
        let _ = parts.snapshots.remove(&k);
    }
}

// ---------------------------------------------------------------------------------------------
// Image source

/// `docker-image://...`: pulls the image's layers into the content store and unpacks them into a
/// chain of snapshots named by chain id, so that every image sharing a layer shares its snapshot.
/// `oci-layout://...` is the same source reading from a layout instead of a registry.
pub(crate) struct ImageSource {
    pub parts: Arc<Parts>,
    pub identifier: String,
    pub reference: Reference,
    pub platform: Platform,
    /// Where the image comes from: the worker's registry client, or an OCI layout the client
    /// lends the build ([`crate::ocilayout::OciLayoutStore`]).
    pub registry: Arc<dyn kiln_registry::Registry>,
}

impl Op<Ref> for ImageSource {
    /// The key is the manifest digest the reference is pinned to and the platform, not the
    /// reference's name: the same image pulled from another registry or under another tag is the
    /// same result (as BuildKit keys image sources).
    fn cache_key(&self) -> CacheKeyInput {
        let what = match self.reference.digest() {
            Some(d) => d.to_string(),
            None => self.identifier.clone(),
        };
        CacheKeyInput::new(
            "kiln.source.image.v2",
            cachekey::image_source(&what, Some(&self.platform)),
        )
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        Box::pin(async move { self.pull(ctx).await.map(|r| vec![r]).map_err(boxed) })
    }
}

impl ImageSource {
    async fn pull(&self, ctx: &ExecCtx) -> Result<Ref> {
        let parts = &self.parts;
        let resolved = self
            .registry
            .resolve(&self.reference, &self.platform)
            .await?;
        let diff_ids = &resolved.config.rootfs.diff_ids;
        if diff_ids.len() != resolved.manifest.layers.len() {
            return Err(Error::Invalid(format!(
                "{}: the image has {} layers but its config lists {} diff ids",
                self.reference,
                resolved.manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let mut parent: Option<String> = None;
        let mut chain: Option<String> = None;
        for (layer, diff_id) in resolved.manifest.layers.iter().zip(diff_ids) {
            let chain_id = match &chain {
                None => diff_id.clone(),
                Some(c) => Digest::of_bytes(format!("{c} {diff_id}").as_bytes()).to_string(),
            };
            let name = format!("layer/{chain_id}");
            if parts.snapshots.stat(&name).is_err() {
                self.fetch(ctx, layer).await?;
                let parts2 = Arc::clone(parts);
                let parent2 = parent.clone();
                let digest = layer.digest.clone();
                let want = diff_id.clone();
                let name2 = name.clone();
                blocking(move || unpack(&parts2, parent2.as_deref(), &digest, &want, &name2))
                    .await?;
            }
            parent = Some(name);
            chain = Some(chain_id);
        }
        Ok(parent
            .map(|p| Ref::Snapshot(p.into()))
            .unwrap_or(Ref::Scratch))
    }

    /// Downloads a layer into the content store unless it is there already.
    async fn fetch(&self, ctx: &ExecCtx, layer: &kiln_registry::Descriptor) -> Result<()> {
        let parts = &self.parts;
        if parts.content.exists(&layer.digest)? {
            return Ok(());
        }
        let mut writer = parts
            .content
            .writer(Some((layer.digest.clone(), layer.size)))?;
        let task = layer.digest.to_string();
        let sink = ctx.progress().clone();
        let vertex = ctx.vertex().to_string();
        let total = layer.size;
        let progress = move |n: u64| {
            sink.send(Event::Status {
                id: vertex.clone(),
                task: task.clone(),
                current: n,
                total: Some(total),
                completed: false,
            });
        };
        self.registry
            .fetch_blob(&self.reference, layer, &mut writer, &progress)
            .await?;
        writer.commit()?;
        ctx.progress().send(Event::Status {
            id: ctx.vertex().to_string(),
            task: layer.digest.to_string(),
            current: layer.size,
            total: Some(layer.size),
            completed: true,
        });
        Ok(())
    }
}

/// Unpacks one layer blob on top of `parent` and commits it as `name`.
fn unpack(
    parts: &Parts,
    parent: Option<&str>,
    blob: &Digest,
    diff_id: &str,
    name: &str,
) -> Result<()> {
    let key = unique_id("active/");
    let mounts = parts.snapshots.prepare(&key, parent)?;
    let result = (|| {
        let mounted = Mounted::new(&parts.mount_dir, &mounts)?;
        let file = parts.content.open_blob(blob)?;
        let applied = kiln_diff::apply_layer_with(
            std::io::BufReader::new(file),
            mounted.path(),
            &kiln_diff::ApplyOptions {
                mode: kiln_diff::WhiteoutMode::Delete,
                lowers: &[],
                sync: true,
            },
        )?;
        mounted.release()?;
        if applied.diff_id.to_string() != diff_id {
            return Err(Error::Invalid(format!(
                "layer {blob}: uncompressed digest {} does not match the config's diff id {diff_id}",
                applied.diff_id
            )));
        }
        match parts.snapshots.commit(name, &key) {
            Ok(()) => {
                // Which blob the layer came from, for `du` and `prune` (advisory: a layer
                // without the label leaves its blob to be pruned on its own).
                let _ = parts.snapshots.update_labels(name, |l| {
                    l.insert(crate::usage::BLOB_LABEL.to_string(), blob.to_string());
                });
                Ok(())
            }
            // Another build unpacked the same layer meanwhile.
            Err(kiln_snapshot::Error::AlreadyExists { .. }) => {
                let _ = parts.snapshots.remove(&key);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    })();
    if result.is_err() {
        let _ = parts.snapshots.remove(&key);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Local source

/// A local directory the client serves (the build context, named contexts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDir {
    /// Where it is.
    pub path: PathBuf,
}

/// `local://NAME`: a copy of the client's directory, filtered by its exclude patterns and
/// follow paths. Its key is the digest of the filtered content, so an unchanged context (even
/// with new mtimes) is a cache hit and needs no copy.
///
/// Every copied path belongs to root (0:0), whoever owns it on the client: BuildKit's clients
/// (buildx, `docker build`, buildctl) send local directories with uid and gid reset to 0, so a
/// `COPY` from the context without `--chown` gives root-owned files.
pub(crate) struct LocalSource {
    pub parts: Arc<Parts>,
    pub name: String,
    pub dir: PathBuf,
    pub excludes: Vec<String>,
    pub includes: Vec<String>,
    pub follow_paths: Vec<String>,
    pub content: Digest,
    /// What the filtered directory holds, from the same walk as `content`.
    pub manifest: Arc<Vec<kiln_contenthash::ManifestEntry>>,
    /// Where the last copy of this directory is recorded ([`crate::localsync`]).
    pub record: String,
}

impl Op<Ref> for LocalSource {
    fn cache_key(&self) -> CacheKeyInput {
        // v2: the copy belongs to root (v1 kept the client's owners).
        CacheKeyInput::new(
            "kiln.source.local.v2",
            cachekey::local_source(&self.name, &self.content.to_string()),
        )
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a ExecCtx,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        let parts = Arc::clone(&self.parts);
        let dir = self.dir.clone();
        let copy = FileActionCopy {
            src: "/".to_string(),
            dest: "/".to_string(),
            mode: -1,
            dir_copy_contents: true,
            create_dest_path: true,
            allow_wildcard: false,
            timestamp: -1,
            owner: Some(ChownOpt {
                user: Some(UserOpt::ById(0)),
                group: Some(UserOpt::ById(0)),
            }),
            include_patterns: self
                .includes
                .iter()
                .chain(&self.follow_paths)
                .cloned()
                .collect(),
            exclude_patterns: self.excludes.clone(),
            ..FileActionCopy::default()
        };
        let manifest = Arc::clone(&self.manifest);
        let record = self.record.clone();
        Box::pin(async move {
            blocking(move || {
                // On top of the last copy of the directory, writing only what changed; else
                // a full copy.
                let last = parts.locals.get(&record)?.filter(|last| {
                    parts
                        .snapshots
                        .stat(&last.snapshot)
                        .is_ok_and(|i| i.kind == kiln_snapshot::Kind::Committed)
                        && chain_depth(&parts, &last.snapshot) < crate::localsync::MAX_LAYERS
                });
                let incremental = last.and_then(|last| {
                    crate::localsync::plan(&last.manifest, &manifest)
                        .map(|changes| (Ref::Snapshot(last.snapshot.into()), changes))
                });
                let (parent, changes) = match incremental {
                    Some((parent, changes)) => (parent, Some(changes)),
                    None => (Ref::Scratch, None),
                };
                let (key, mounted) = prepare_mounted(&parts, &parent)?;
                let written = match &changes {
                    Some(changes) => crate::localsync::apply(changes, &dir, mounted.path()),
                    None => {
                        let users = kiln_fileop::PasswdLookup::new(mounted.path());
                        kiln_fileop::copy(&dir, mounted.path(), &copy, &users).map_err(Error::from)
                    }
                };
                if let Err(e) = written {
                    drop(mounted);
                    let _ = parts.snapshots.remove(&key);
                    return Err(e);
                }
                let result = commit(&parts, key, mounted, "local/")?;
                if let Some(name) = result.snapshot() {
                    parts.locals.put(&record, name, &manifest)?;
                }
                Ok(result)
            })
            .await
            .map(|r| vec![r])
            .map_err(boxed)
        })
    }
}

/// How many snapshots `name`'s chain holds (itself included), counted up to
/// [`crate::localsync::MAX_LAYERS`].
fn chain_depth(parts: &Parts, name: &str) -> usize {
    let mut depth = 0;
    let mut next = Some(name.to_string());
    while let Some(n) = next {
        depth += 1;
        if depth >= crate::localsync::MAX_LAYERS {
            break;
        }
        next = parts.snapshots.stat(&n).ok().and_then(|i| i.parent);
    }
    depth
}

// ---------------------------------------------------------------------------------------------
// Exec

/// An exec op: runs a command in a container on a writable snapshot of its root input.
pub(crate) struct Exec {
    pub parts: Arc<Parts>,
    pub op: ExecOp,
    pub platform: Option<Platform>,
    /// The secrets and SSH agents of the build.
    pub session: Arc<crate::Session>,
}

impl Op<Ref> for Exec {
    fn cache_key(&self) -> CacheKeyInput {
        CacheKeyInput::new(
            "kiln.exec.v1",
            cachekey::exec(&self.op, self.platform.as_ref()),
        )
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        Box::pin(async move { self.run(ctx, inputs).await.map(|r| vec![r]).map_err(boxed) })
    }
}

impl Exec {
    async fn run(&self, ctx: &ExecCtx, inputs: Vec<Ref>) -> Result<Ref> {
        let parts = Arc::clone(&self.parts);
        let input = |i: i64| -> Ref {
            usize::try_from(i)
                .ok()
                .and_then(|i| inputs.get(i).cloned())
                .unwrap_or(Ref::Scratch)
        };
        let root = self
            .op
            .mounts
            .iter()
            .find(|m| m.dest == "/")
            .ok_or_else(|| Error::Invalid("exec op without a root mount".to_string()))?;
        let root_ref = input(root.input);
        let p2 = Arc::clone(&parts);
        let (root_key, rootfs) = blocking(move || prepare_mounted(&p2, &root_ref)).await?;

        let mut views: Vec<(Option<String>, Mounted)> = Vec::new();
        let mut actives: Vec<(String, Mounted)> = Vec::new();
        let mut held: Vec<session::Held> = Vec::new();
        // Released when dropped: also when the step fails or its future is dropped.
        let mut caches = crate::cachemount::RunCaches::default();
        let mut specs = Vec::new();
        let mut prepared = Ok(());
        for m in self.op.mounts.iter().filter(|m| m.dest != "/") {
            let spec = match m.mount_type {
                MountType::Bind => {
                    let r = input(m.input);
                    let p2 = Arc::clone(&parts);
                    let mounted = if m.readonly {
                        blocking(move || view_mounted(&p2, &r)).await.map(|(k, v)| {
                            let path = v.path().to_path_buf();
                            views.push((k, v));
                            path
                        })
                    } else {
                        blocking(move || prepare_mounted(&p2, &r))
                            .await
                            .map(|(k, v)| {
                                let path = v.path().to_path_buf();
                                actives.push((k, v));
                                path
                            })
                    };
                    match mounted {
                        Ok(path) => kiln_executor::MountSpec {
                            dest: m.dest.clone(),
                            source: selected(&path, &m.selector),
                            kind: kiln_executor::MountKind::Bind {
                                readonly: m.readonly,
                            },
                        },
                        Err(e) => {
                            prepared = Err(e);
                            break;
                        }
                    }
                }
                MountType::Cache => {
                    let from = input(m.input);
                    match caches.mount(&parts, m, from, ctx.cancel_token()).await {
                        Ok(dir) => kiln_executor::MountSpec {
                            dest: m.dest.clone(),
                            source: dir,
                            kind: kiln_executor::MountKind::Bind {
                                readonly: m.readonly,
                            },
                        },
                        Err(e) => {
                            prepared = Err(e);
                            break;
                        }
                    }
                }
                MountType::Tmpfs => kiln_executor::MountSpec {
                    dest: m.dest.clone(),
                    source: PathBuf::from("tmpfs"),
                    kind: kiln_executor::MountKind::Tmpfs {
                        size: m
                            .tmpfs_opt
                            .map(|t| t.size)
                            .filter(|s| *s > 0)
                            .and_then(|s| u64::try_from(s).ok()),
                        readonly: false,
                    },
                },
                MountType::Secret | MountType::Ssh => {
                    let mounted = if m.mount_type == MountType::Secret {
                        let (p2, s2, m2) =
                            (Arc::clone(&parts), Arc::clone(&self.session), m.clone());
                        blocking(move || session::secret_mount(&p2, &s2, &m2)).await
                    } else {
                        session::ssh_mount(&parts, &self.session, m)
                    };
                    match mounted {
                        Ok(None) => continue,
                        Ok(Some((spec, h))) => {
                            held.push(h);
                            spec
                        }
                        Err(e) => {
                            prepared = Err(e);
                            break;
                        }
                    }
                }
            };
            specs.push(spec);
        }
        let mut secret_env = Vec::new();
        if prepared.is_ok() {
            match session::secret_env(&self.session, &self.op.secretenv) {
                Ok(env) => secret_env = env,
                Err(e) => prepared = Err(e),
            }
        }

        let result = match prepared {
            Ok(()) => {
                self.run_container(ctx, rootfs.path().to_path_buf(), specs, secret_env)
                    .await
            }
            Err(e) => Err(e),
        };

        let p2 = Arc::clone(&parts);
        blocking(move || {
            // Secrets and SSH sockets go first: nothing of them outlives the process.
            drop(held);
            drop(caches);
            for (k, v) in views {
                remove_view(&p2, k, v);
            }
            for (k, v) in actives {
                drop(v);
                let _ = p2.snapshots.remove(&k);
            }
            match result {
                Ok(()) => commit(&p2, root_key, rootfs, "exec/"),
                Err(e) => {
                    drop(rootfs);
                    let _ = p2.snapshots.remove(&root_key);
                    Err(e)
                }
            }
        })
        .await
    }

    async fn run_container(
        &self,
        ctx: &ExecCtx,
        rootfs: PathBuf,
        mounts: Vec<kiln_executor::MountSpec>,
        secret_env: Vec<(String, String)>,
    ) -> Result<()> {
        let meta = &self.op.meta;
        let mut spec = kiln_executor::RunSpec::new(rootfs, meta.args.clone());
        spec.mounts = mounts;
        spec.secret_env = secret_env;
        // Negative limits are unlimited (`-1`), as Go's conversion to an unsigned limit gives.
        spec.ulimits = meta
            .ulimit
            .iter()
            .map(|u| kiln_executor::Ulimit {
                name: u.name.clone(),
                soft: u64::try_from(u.soft).unwrap_or(u64::MAX),
                hard: u64::try_from(u.hard).unwrap_or(u64::MAX),
            })
            .collect();
        spec.env = meta.env.clone();
        spec.cwd = if meta.cwd.is_empty() {
            "/".to_string()
        } else {
            meta.cwd.clone()
        };
        spec.user = meta.user.clone();
        spec.hostname = if meta.hostname.is_empty() {
            "buildkitsandbox".to_string()
        } else {
            meta.hostname.clone()
        };
        spec.network = match self.op.network {
            NetMode::None => kiln_executor::Network::None,
            NetMode::Host | NetMode::Sandbox => kiln_executor::Network::Host,
        };
        spec.security = match self.op.security {
            SecurityMode::Insecure => kiln_executor::Security::Insecure,
            SecurityMode::Sandbox => kiln_executor::Security::Sandbox,
        };
        for h in &meta.extra_hosts {
            let ip = h
                .ip
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid extra host address {:?}", h.ip)))?;
            spec.extra_hosts.push((h.host.clone(), ip));
        }
        if !meta.cgroup_parent.is_empty() {
            spec.cgroup_parent = Some(meta.cgroup_parent.clone());
        }

        let (io, mut stdout, mut stderr) = kiln_executor::ProcessIo::channels(64);
        let sink = ctx.progress().clone();
        let vertex = ctx.vertex().to_string();
        let forward = tokio::spawn(async move {
            let mut out_open = true;
            let mut err_open = true;
            while out_open || err_open {
                let (stream, chunk) = tokio::select! {
                    c = stdout.recv(), if out_open => match c { Some(c) => (1, c), None => { out_open = false; continue; } },
                    c = stderr.recv(), if err_open => match c { Some(c) => (2, c), None => { err_open = false; continue; } },
                };
                sink.send(Event::Log {
                    id: vertex.clone(),
                    stream,
                    data: chunk,
                    at: SystemTime::now(),
                });
            }
        });
        let cancel = kiln_executor::CancellationToken::new();
        let token = ctx.cancel_token().clone();
        let cancel2 = cancel.clone();
        let watcher = tokio::spawn(async move {
            token.cancelled().await;
            cancel2.cancel();
        });
        let status = match self.parts.executor().await {
            Ok(executor) => executor.run(spec, io, cancel).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        watcher.abort();
        let _ = forward.await;
        let status = status?;
        let ok = if meta.valid_exit_codes.is_empty() {
            status.success()
        } else {
            meta.valid_exit_codes.contains(&status.code())
        };
        if ok {
            Ok(())
        } else {
            Err(Error::ProcessFailed {
                command: meta.args.join(" "),
                code: status.code(),
            })
        }
    }
}

/// `dir` joined with a mount's selector (the sub-path of the input that is mounted).
fn selected(dir: &std::path::Path, selector: &str) -> PathBuf {
    let rel = selector.trim_start_matches('/');
    if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(rel)
    }
}

// ---------------------------------------------------------------------------------------------
// File

/// A file op: a chain of copy/mkdir/mkfile/rm/symlink actions on a writable snapshot.
pub(crate) struct File {
    pub parts: Arc<Parts>,
    pub op: FileOp,
    pub inputs: usize,
}

impl File {
    /// The copies reading each input (for content-based keys).
    fn copies_from(&self, input: usize) -> Vec<&FileActionCopy> {
        self.op
            .actions
            .iter()
            .filter(|a| usize::try_from(a.secondary_input).ok() == Some(input))
            .filter_map(|a| match &a.action {
                FileActionKind::Copy(c) => Some(c),
                _ => None,
            })
            .collect()
    }
}

impl Op<Ref> for File {
    fn cache_key(&self) -> CacheKeyInput {
        CacheKeyInput::new("kiln.file.v1", cachekey::file(&self.op))
    }

    /// The sources of copies are keyed by their content: an input whose unrelated files changed
    /// keeps the copy cached.
    fn content_keys(&self) -> Vec<Option<Selector>> {
        (0..self.inputs)
            .map(|i| {
                let copies = self.copies_from(i);
                let is_base = self
                    .op
                    .actions
                    .iter()
                    .any(|a| usize::try_from(a.input).ok() == Some(i));
                if copies.is_empty() || is_base {
                    return None;
                }
                let mut w = cachekey::KeyWriter::new("kiln.file.selector.v1");
                w.list(&copies, |w, c| {
                    w.str(&c.src).bool(c.follow_symlink).bool(c.allow_wildcard);
                    w.list(&c.include_patterns, |w, p| {
                        w.str(p);
                    });
                    w.list(&c.exclude_patterns, |w, p| {
                        w.str(p);
                    });
                });
                Some(Selector::new(w.finish()))
            })
            .collect()
    }

    fn content_digest<'a>(
        &'a self,
        input: usize,
        value: &'a Ref,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<ContentDigest, BoxError>> {
        let parts = Arc::clone(&self.parts);
        let copies: Vec<FileActionCopy> = self.copies_from(input).into_iter().cloned().collect();
        let value = value.clone();
        // What the checksum covers, for the memo of committed snapshots: the selector names
        // the sources and their options; the prefix versions kiln's checksum algorithm.
        let material = [
            kiln_contenthash::VERSION.as_bytes(),
            b"\0",
            selector.as_bytes(),
        ]
        .concat();
        Box::pin(async move {
            blocking(move || {
                if let Some(name) = value.snapshot()
                    && let Some(known) = parts.checksums.get(name, &material)?
                {
                    return Ok(ContentDigest::new(known));
                }
                let (key, view) = view_mounted(&parts, &value)?;
                let mut digests = Vec::new();
                let mut result = Ok(());
                for c in &copies {
                    let opts = kiln_contenthash::ChecksumOpts {
                        follow_links: c.follow_symlink,
                        wildcard: c.allow_wildcard,
                        includes: c.include_patterns.clone(),
                        excludes: c.exclude_patterns.clone(),
                    };
                    match parts.view_hasher.checksum(view.path(), &c.src, &opts) {
                        Ok(d) => digests.push(d.to_string()),
                        Err(e) => {
                            result = Err(Error::from(e));
                            break;
                        }
                    }
                }
                remove_view(&parts, key, view);
                result?;
                let digest = digests.join(",");
                if let Some(name) = value.snapshot() {
                    parts.checksums.put(name, &material, &digest)?;
                }
                Ok(ContentDigest::new(digest))
            })
            .await
            .map_err(boxed)
        })
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a ExecCtx,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        let parts = Arc::clone(&self.parts);
        let op = self.op.clone();
        Box::pin(async move {
            blocking(move || run_file_op(&parts, &op, &inputs))
                .await
                .map(|r| vec![r])
                .map_err(boxed)
        })
    }
}

fn run_file_op(parts: &Parts, op: &FileOp, inputs: &[Ref]) -> Result<Ref> {
    let n = inputs.len() as i64;
    let Some(first) = op.actions.first() else {
        return Err(Error::Invalid("file op without actions".to_string()));
    };
    let base = if first.input < 0 {
        Ref::Scratch
    } else {
        inputs.get(first.input as usize).cloned().ok_or_else(|| {
            Error::Invalid(format!("file action input {} out of range", first.input))
        })?
    };
    for (i, a) in op.actions.iter().enumerate().skip(1) {
        if a.input != n + i as i64 - 1 {
            return Err(Error::Unsupported(
                "file ops whose actions do not form one chain are not supported yet".to_string(),
            ));
        }
    }
    let (key, dest) = prepare_mounted(parts, &base)?;
    let users = kiln_fileop::PasswdLookup::new(dest.path());
    let mut result = Ok(());
    for a in &op.actions {
        let r = match &a.action {
            FileActionKind::Copy(c) => {
                let src = usize::try_from(a.secondary_input)
                    .ok()
                    .and_then(|i| inputs.get(i).cloned())
                    .unwrap_or(Ref::Scratch);
                match view_mounted(parts, &src) {
                    Ok((vkey, view)) => {
                        let r = kiln_fileop::copy(view.path(), dest.path(), c, &users)
                            .map_err(Error::from);
                        remove_view(parts, vkey, view);
                        r
                    }
                    Err(e) => Err(e),
                }
            }
            FileActionKind::Mkdir(m) => {
                kiln_fileop::mkdir(dest.path(), m, &users).map_err(Error::from)
            }
            FileActionKind::Mkfile(m) => {
                kiln_fileop::mkfile(dest.path(), m, &users).map_err(Error::from)
            }
            FileActionKind::Rm(r) => kiln_fileop::rm(dest.path(), r).map_err(Error::from),
            FileActionKind::Symlink(s) => {
                kiln_fileop::symlink(dest.path(), s, &users).map_err(Error::from)
            }
        };
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    match result {
        Ok(()) => commit(parts, key, dest, "file/"),
        Err(e) => {
            drop(dest);
            let _ = parts.snapshots.remove(&key);
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Merge

/// A merge op: its inputs stacked in order (used by `COPY --link`).
pub(crate) struct Merge {
    pub parts: Arc<Parts>,
    pub inputs: usize,
}

impl Op<Ref> for Merge {
    fn cache_key(&self) -> CacheKeyInput {
        let mut w = cachekey::KeyWriter::new("kiln.merge.v1");
        w.int(self.inputs as i64);
        CacheKeyInput::new("kiln.merge.v1", w.finish())
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a ExecCtx,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, BoxError>> {
        let parts = Arc::clone(&self.parts);
        Box::pin(async move {
            blocking(move || {
                let base = inputs.first().cloned().unwrap_or(Ref::Scratch);
                let (key, dest) = prepare_mounted(&parts, &base)?;
                let users = kiln_fileop::PasswdLookup::new(dest.path());
                let copy = FileActionCopy {
                    src: "/".to_string(),
                    dest: "/".to_string(),
                    mode: -1,
                    dir_copy_contents: true,
                    create_dest_path: true,
                    always_replace_existing_dest_paths: true,
                    timestamp: -1,
                    ..FileActionCopy::default()
                };
                let mut result = Ok(());
                for r in inputs.iter().skip(1) {
                    let (vkey, view) = view_mounted(&parts, r)?;
                    let res = kiln_fileop::copy(view.path(), dest.path(), &copy, &users);
                    remove_view(&parts, vkey, view);
                    if let Err(e) = res {
                        result = Err(Error::from(e));
                        break;
                    }
                }
                match result {
                    Ok(()) => commit(&parts, key, dest, "merge/"),
                    Err(e) => {
                        drop(dest);
                        let _ = parts.snapshots.remove(&key);
                        Err(e)
                    }
                }
            })
            .await
            .map(|r| vec![r])
            .map_err(boxed)
        })
    }
}

/// Parses `local.*` JSON list attributes.
pub(crate) fn json_list(attrs: &BTreeMap<String, String>, key: &str) -> Result<Vec<String>> {
    match attrs.get(key) {
        None => Ok(Vec::new()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| Error::Invalid(format!("invalid {key} attribute: {e}"))),
    }
}
