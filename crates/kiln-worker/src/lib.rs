//! The embedded worker: executes LLB on kiln's own storage, with a persistent cache.
//!
//! A [`Worker`] is a struct of parts, opened on a state directory (`/var/lib/kiln` for root):
//! the content store (`kiln-content`), the snapshotter (`kiln-snapshot`), one metadata database
//! (`redb`) shared by the snapshotter, the solver's cache index and the checksum cache, the
//! container executor (`kiln-executor`, runc), the registry client (`kiln-registry`) and the
//! content hasher (`kiln-contenthash`). [`Worker::solve`] turns an LLB definition into solver
//! vertices (one solver op per LLB op kind) and runs them with `kiln-solver`, whose
//! results are committed snapshots ([`Ref`]). [`Worker::export_local`] and
//! [`Worker::export_tar`] write a result out; [`Worker::export_image`] assembles it into an
//! image in the content store (one layer per snapshot of its chain), which `kiln-export`
//! writes as an OCI layout or a Docker tarball.
//! Named images (`-o type=image`) are records of kiln's own image store ([`Worker::images`],
//! [`Worker::name_image`]), whose blobs the garbage collector keeps.
//!
//! What it deliberately does not know: Dockerfiles (it runs LLB), the command line, terminals
//! (progress is events), image formats on disk (`kiln-export` writes them).
//!
//! Sources: images (pulled into the content store, unpacked into snapshots named by chain id;
//! from a registry, or from an OCI layout the client lends, [`OciLayoutStore`]),
//! local directories (filtered copies; a changed directory becomes a layer on top of its last
//! copy holding only what changed), HTTP(S) files (checksummed, revalidated with ETags) and
//! git repositories (through the `git` binary, with a bare-repository cache per remote and
//! hardened argument handling).
//!
//! Cache keys are explicit ([`cachekey`]): image sources key on their manifest digest and
//! platform, local sources on the digest of their filtered content, HTTP sources on their
//! checksum or content, git sources on the resolved commit, exec and file ops on a canonical
//! encoding of their fields plus their inputs' keys, and copies on the content of what they
//! copy, so that an unrelated change in the build context keeps them cached.
//!
//! Cache mounts (`RUN --mount=type=cache`) are directories under `cache-mounts/` that outlive
//! builds and never enter a layer. A manager the worker owns hands them out with BuildKit's
//! `shared`, `private` and `locked` sharing; `du` and `prune` see which instances are in use.
//!
//! Housekeeping ([`Storage`]): disk usage per cache record, prune with BuildKit's filters and
//! keep-storage rules, and the garbage-collection policy run after builds.
//!
//! What the client lends a build comes in a [`Session`] (BuildKit's session attachables, in
//! process): secrets, written to a private tmpfs for the one `RUN` that mounts them and never
//! part of a key, a layer or a file that outlives the run; SSH agents (the client's, behind a
//! read-only filter, or kiln's own holding keys loaded from files), answering on a socket of
//! the mount's owner and mode; OCI layout directories, by store id, that `oci-layout://`
//! sources read from; and the entitlements (`--allow`) that exec ops with
//! `--network=host` or `--security=insecure` need.
//!
//! One process at a time uses a state directory: [`StateLock`]. A process may die at any
//! moment (`kill -9`), so [`Worker::open`] starts by removing what an interrupted build left:
//! containers still running (through the executor), mounts, temporary snapshots, and
//! committed snapshots that never made it into the cache index ([`check_state`] reports the
//! same leftovers without a build).

pub mod cachekey;
mod cachemount;
mod checksums;
mod error;
mod git;
mod http;
mod image;
mod image_meta;
mod images;
mod localsync;
mod lock;
mod mounts;
mod ocilayout;
mod ops;
mod refs;
mod session;
mod sshagent;
mod state;
mod task;
mod usage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_llb::{Definition, Graph, Op as LlbOp};
use kiln_oci::{Platform, Reference};
use kiln_progress::ProgressSink;
use kiln_snapshot::{DriverChoice, Snapshotter};
use kiln_solver::{Edge, Solver};

pub use error::{Error, Result};
pub use image::{
    DOCKER_CONFIG, DOCKER_MANIFEST, ExportStats, ImageExport, ImageOptions, OCI_CONFIG,
    OCI_MANIFEST,
};
pub use image_meta::{
    BuildSource, ImageMeta, base_history_len, buildinfo, epoch_time as image_epoch_time,
};
pub use images::ImageRecord;
pub use kiln_export::ExportedImage;
pub use kiln_snapshot::Driver;
pub use lock::StateLock;
pub use ocilayout::OciLayoutStore;
pub use ops::LocalDir;
pub use refs::Ref;
pub use session::{
    Entitlements, MAX_SECRET_SIZE, SecretSource, SecretSpec, SecretStore, Session, SshAgents,
    SshSpec,
};
pub use state::{StateCheck, check_state};
pub use usage::{
    DiskSpace, Filter, GcConfig, PruneOptions, RecordType, Storage, UsageRecord, default_gc_policy,
    parse_size,
};

use mounts::Mounted;

/// The parts every op uses.
pub(crate) struct Parts {
    pub content: kiln_content::ContentStore,
    pub snapshots: Arc<Snapshotter>,
    /// The container executor, started on first use ([`Parts::executor`]).
    pub executor: tokio::sync::OnceCell<kiln_executor::Executor>,
    /// The executor's state directory.
    pub executor_root: PathBuf,
    pub registry: Arc<dyn kiln_registry::Registry>,
    /// Hashes local directories, with a persistent stat cache.
    pub hasher: kiln_contenthash::Hasher,
    /// Hashes mounted snapshots (temporary paths: no stat cache).
    pub view_hasher: kiln_contenthash::Hasher,
    /// The checksums already computed in committed snapshots.
    pub checksums: checksums::ChecksumMemo,
    /// The last copy of each local directory, for incremental copies.
    pub locals: localsync::LocalRecords,
    /// Where snapshots are mounted while ops run.
    pub mount_dir: PathBuf,
    /// The cache mounts (`RUN --mount=type=cache`): their directories and who holds them.
    pub cache_mounts: Arc<cachemount::CacheMounts>,
    /// The state directory (remote sources keep their metadata and repositories under it).
    pub root: PathBuf,
}

/// How to open a worker.
pub struct WorkerOptions {
    /// The state directory.
    pub root: PathBuf,
    /// The registry client for image sources.
    pub registry: Arc<dyn kiln_registry::Registry>,
    /// The platform of the machine (the default of ops without one).
    pub platform: Platform,
    /// The snapshotter driver to use.
    pub snapshotter: DriverChoice,
    /// How many ops may run at once (0: the number of CPUs).
    pub concurrency: usize,
}

/// The embedded worker.
pub struct Worker {
    parts: Arc<Parts>,
    solver: Solver<Ref>,
    platform: Platform,
    storage: Arc<usage::Storage>,
}

impl Worker {
    /// Opens the worker's storage in `opts.root` (creating it), recovering from a crash of a
    /// previous process: the containers, mounts and temporary snapshots of an interrupted
    /// build are removed, and so are the committed snapshots no cache entry holds (see
    /// [`check_state`]). The caller must hold the [`StateLock`] of the directory.
    pub async fn open(opts: WorkerOptions) -> Result<Worker> {
        let root = opts.root.clone();
        let mount_dir = root.join("mounts");
        for dir in [&root, &mount_dir] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        // Nothing else uses this directory (the caller holds the lock): whatever is in use is
        // left by an interrupted build. Its containers may still run on its mounts, so the
        // executor (which kills and deletes them) comes first, then the mounts, then the
        // snapshots.
        // Starting the executor probes the container runtimes (a trivial container), which
        // costs as much as a whole cached build: it is started here only when an interrupted
        // build left containers or bundles behind, else on the first RUN that has to execute.
        let executor_root = root.join("executor");
        let executor = tokio::sync::OnceCell::new();
        if executor_leftovers(&executor_root) {
            let started = kiln_executor::Executor::new(kiln_executor::ExecutorConfig::new(
                executor_root.clone(),
            ))
            .await?;
            let _ = executor.set(started);
        }
        unmount_stale(&mount_dir)?;
        session::prepare_dir(&session::session_dir(&root))?;
        let cache_mounts = Arc::new(cachemount::CacheMounts::open(root.join("cache-mounts"))?);
        let db = state::open_db(&root)?;
        let snapshots = Arc::new(Snapshotter::open(
            root.join("snapshotter"),
            Arc::clone(&db),
            opts.snapshotter,
        )?);
        let content = kiln_content::ContentStore::open(root.join("content"))?;
        let hasher = kiln_contenthash::Hasher::new(Some(kiln_contenthash::StatCache::persistent(
            Arc::clone(&db),
        )?));
        let parts = Arc::new(Parts {
            content: content.clone(),
            snapshots: Arc::clone(&snapshots),
            executor,
            executor_root,
            registry: opts.registry,
            hasher,
            view_hasher: kiln_contenthash::Hasher::new(None),
            checksums: checksums::ChecksumMemo::new(Arc::clone(&db)),
            locals: localsync::LocalRecords::new(Arc::clone(&db)),
            mount_dir,
            cache_mounts: Arc::clone(&cache_mounts),
            root: root.clone(),
        });
        let store = Arc::new(state::open_index(
            &root,
            Arc::clone(&db),
            Arc::clone(&snapshots),
        )?);
        // Temporary snapshots of an interrupted build, and what it committed without recording
        // it in the cache index, would otherwise stay for ever.
        state::collect_garbage(&root, &snapshots, &store)?;
        parts.checksums.retain(|name| {
            snapshots
                .stat(name)
                .is_ok_and(|info| info.kind == kiln_snapshot::Kind::Committed)
        })?;
        let storage = Arc::new(usage::Storage::new(
            &root,
            db,
            Arc::clone(&snapshots),
            content,
            Arc::clone(&store),
            cache_mounts,
        )?);
        let concurrency = if opts.concurrency == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            opts.concurrency
        };
        let solver = Solver::with_concurrency(store, concurrency);
        Ok(Worker {
            parts,
            solver,
            platform: opts.platform,
            storage,
        })
    }

    /// The build cache: disk usage, pruning and garbage collection.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The snapshotter driver in use (the copy driver means overlayfs is unavailable).
    pub fn driver(&self) -> Driver {
        self.parts.snapshots.driver()
    }

    /// Runs an LLB definition and returns its result. `locals` are the directories the client
    /// serves, by name (`context`, `dockerfile`, named contexts). The build has no secrets, no
    /// SSH agents and no entitlements (see [`Worker::solve_with_session`]).
    pub async fn solve(
        &self,
        def: &Definition,
        locals: &BTreeMap<String, LocalDir>,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Ref> {
        self.solve_with_session(def, locals, Arc::new(Session::default()), progress)
            .await
    }

    /// [`Worker::solve`] with what the client lends the build: secrets, SSH agents and
    /// entitlements. An exec op needing an entitlement the session lacks fails the build before
    /// anything runs.
    pub async fn solve_with_session(
        &self,
        def: &Definition,
        locals: &BTreeMap<String, LocalDir>,
        session: Arc<Session>,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Ref> {
        let graph = Graph::from_definition(def)?;
        let mut solver_graph = kiln_solver::Graph::new();
        for (digest, vertex) in &graph.vertices {
            let Some(body) = vertex.body() else { continue };
            let id = digest.to_string();
            let name = vertex
                .metadata
                .description
                .get("llb.customname")
                .cloned()
                .unwrap_or_else(|| format!("{} {}", body.kind(), &id));
            let platform = vertex.op.platform.clone();
            let op: Arc<dyn kiln_solver::Op<Ref>> = match body {
                LlbOp::Source(s) => self.source_op(s, platform, locals, &session).await?,
                LlbOp::Exec(e) => {
                    session::check_entitlements(e, session.entitlements)?;
                    Arc::new(ops::Exec {
                        parts: Arc::clone(&self.parts),
                        op: e.clone(),
                        platform,
                        session: Arc::clone(&session),
                    })
                }
                LlbOp::File(f) => Arc::new(ops::File {
                    parts: Arc::clone(&self.parts),
                    op: f.clone(),
                    inputs: vertex.op.inputs.len(),
                }),
                LlbOp::Merge(_) => Arc::new(ops::Merge {
                    parts: Arc::clone(&self.parts),
                    inputs: vertex.op.inputs.len(),
                }),
                LlbOp::Diff(_) | LlbOp::Build(_) => {
                    return Err(Error::Unsupported(format!(
                        "{} ops are not supported by kiln yet",
                        body.kind()
                    )));
                }
            };
            let op: Arc<dyn kiln_solver::Op<Ref>> = Arc::new(usage::Described {
                inner: op,
                storage: Arc::clone(&self.storage),
            });
            let mut v = kiln_solver::Vertex::new(id, name, op)
                .outputs(vertex.output_count().max(1))
                .ignore_cache(vertex.metadata.ignore_cache);
            for input in &vertex.op.inputs {
                v = v.input(
                    input.digest.to_string(),
                    usize::try_from(input.index).unwrap_or(0),
                );
            }
            solver_graph.add(v)?;
        }
        let target = &graph.terminal;
        let result = self
            .solver
            .solve(
                solver_graph,
                Edge::new(
                    target.digest.to_string(),
                    usize::try_from(target.index).unwrap_or(0),
                ),
                progress,
            )
            .await?;
        Ok(result)
    }

    async fn source_op(
        &self,
        s: &kiln_llb::ops::SourceOp,
        platform: Option<Platform>,
        locals: &BTreeMap<String, LocalDir>,
        session: &Session,
    ) -> Result<Arc<dyn kiln_solver::Op<Ref>>> {
        if let Some(r) = s.identifier.strip_prefix("docker-image://") {
            let mut reference = Reference::parse(r)
                .map_err(|e| Error::Invalid(format!("invalid image {r:?}: {e}")))?;
            let platform = platform.unwrap_or_else(|| self.platform.clone());
            let mut identifier = s.identifier.clone();
            if reference.digest().is_none() {
                // Pin the reference first, so that the key says which image it is.
                let resolved = self.parts.registry.resolve(&reference, &platform).await?;
                reference = resolved.reference.clone();
                identifier = format!("docker-image://{reference}");
            }
            return Ok(Arc::new(ops::ImageSource {
                parts: Arc::clone(&self.parts),
                identifier,
                reference,
                platform,
                registry: Arc::clone(&self.parts.registry),
            }));
        }
        if s.identifier.starts_with("oci-layout://") {
            let platform = platform.unwrap_or_else(|| self.platform.clone());
            return Ok(Arc::new(ocilayout::image_source(
                &self.parts,
                &s.identifier,
                &s.attrs,
                platform,
                session,
            )?));
        }
        if let Some(name) = s.identifier.strip_prefix("local://") {
            let dir = locals.get(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "no local directory {name:?} was given for the build"
                ))
            })?;
            let excludes = ops::json_list(&s.attrs, "local.excludepatterns")?;
            let includes = ops::json_list(&s.attrs, "local.includepattern")?;
            let follow_paths = ops::json_list(&s.attrs, "local.followpaths")?;
            let filter = kiln_contenthash::Filter {
                excludes: excludes.clone(),
                includes: includes.clone(),
                follow_paths: follow_paths.clone(),
            };
            let parts = Arc::clone(&self.parts);
            let path = dir.path.clone();
            let (content, manifest) =
                tokio::task::spawn_blocking(move || parts.hasher.tree_manifest(&path, &filter))
                    .await
                    .map_err(|e| Error::Invalid(format!("worker task failed: {e}")))??;
            let record =
                localsync::record_key(&dir.path, name, &[&excludes, &includes, &follow_paths]);
            return Ok(Arc::new(ops::LocalSource {
                parts: Arc::clone(&self.parts),
                name: name.to_string(),
                dir: dir.path.clone(),
                excludes,
                includes,
                follow_paths,
                content,
                manifest: Arc::new(manifest),
                record,
            }));
        }
        if let Some(id) = s.identifier.strip_prefix("git://") {
            let spec = git::GitSpec::parse(id, &s.attrs)?;
            return Ok(Arc::new(
                git::GitSource::resolve(Arc::clone(&self.parts), spec, session).await?,
            ));
        }
        if s.identifier.starts_with("https://") || s.identifier.starts_with("http://") {
            let spec = http::HttpSpec::parse(&s.identifier, &s.attrs)?;
            return Ok(Arc::new(
                http::HttpSource::resolve(Arc::clone(&self.parts), spec).await?,
            ));
        }
        Err(Error::Unsupported(format!(
            "source {:?} is not supported by kiln yet",
            s.identifier
        )))
    }

    /// Writes a result's files into `dest` (created when missing), as `-o type=local` does.
    pub async fn export_local(&self, result: &Ref, dest: &Path) -> Result<()> {
        let parts = Arc::clone(&self.parts);
        let result = result.clone();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dest).map_err(|e| Error::io("creating", &dest, e))?;
            with_view(&parts, &result, |dir| {
                let copy = kiln_llb::ops::FileActionCopy {
                    src: "/".to_string(),
                    dest: "/".to_string(),
                    mode: -1,
                    dir_copy_contents: true,
                    create_dest_path: true,
                    always_replace_existing_dest_paths: true,
                    timestamp: -1,
                    ..Default::default()
                };
                let users = kiln_fileop::PasswdLookup::new(dir);
                kiln_fileop::copy(dir, &dest, &copy, &users).map_err(Error::from)
            })?;
            // As BuildKit's client does (its filesync target), the exported files belong to the
            // user running the build, whatever their owner in the image.
            own_tree(
                &dest,
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            )
        })
        .await
        .map_err(|e| Error::Invalid(format!("worker task failed: {e}")))?
    }

    /// Writes a result's files as a tarball, as `-o type=tar` does.
    pub async fn export_tar(
        &self,
        result: &Ref,
        out: Box<dyn std::io::Write + Send>,
    ) -> Result<()> {
        let parts = Arc::clone(&self.parts);
        let result = result.clone();
        tokio::task::spawn_blocking(move || {
            with_view(&parts, &result, |dir| {
                let mut out = out;
                kiln_diff::write_diff_dirs(None, dir, &mut out, kiln_diff::DiffOpts::default())?;
                out.flush()
                    .map_err(|e| Error::io("writing", "tar output", e))
            })
        })
        .await
        .map_err(|e| Error::Invalid(format!("worker task failed: {e}")))?
    }

    /// Assembles a result into a single-platform image with `config` (whose `rootfs` and
    /// missing history times are filled in): one layer per snapshot of the result's chain,
    /// pulled layers reused as they are, the others diffed and compressed into the content
    /// store, where the config and manifest go too. Exporting the same result again with the
    /// same options reuses the blobs made the first time.
    pub async fn export_image(
        &self,
        result: &Ref,
        config: &kiln_oci::Image,
        opts: &ImageOptions,
    ) -> Result<ImageExport> {
        let parts = Arc::clone(&self.parts);
        let result = result.clone();
        let config = config.clone();
        let opts = *opts;
        tokio::task::spawn_blocking(move || image::export_image(&parts, &result, &config, &opts))
            .await
            .map_err(|e| Error::Invalid(format!("worker task failed: {e}")))?
    }

    /// [`Worker::export_image`] with an epoch (`SOURCE_DATE_EPOCH`, `rewrite-timestamp`),
    /// manifest annotations and build information.
    pub async fn export_image_with(
        &self,
        result: &Ref,
        config: &kiln_oci::Image,
        opts: &ImageOptions,
        meta: &ImageMeta,
    ) -> Result<ImageExport> {
        let parts = Arc::clone(&self.parts);
        let result = result.clone();
        let config = config.clone();
        let opts = *opts;
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            image::export_image_with(&parts, &result, &config, &opts, &meta)
        })
        .await
        .map_err(|e| Error::Invalid(format!("worker task failed: {e}")))?
    }

    /// The content store, where [`Worker::export_image`] leaves an image's blobs.
    pub fn content(&self) -> &kiln_content::ContentStore {
        &self.parts.content
    }
}

/// Gives every entry under `root` (not following symlinks) to `uid:gid`, keeping the set-id bits
/// that `chown` clears on files.
fn own_tree(root: &Path, uid: u32, gid: u32) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| Error::io("changing the owner of", &path, e))?;
            if !meta.file_type().is_symlink() && meta.mode() & 0o6000 != 0 {
                std::fs::set_permissions(
                    &path,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )
                .map_err(|e| Error::io("restoring the mode of", &path, e))?;
            }
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| Error::io("reading", &path, e))? {
                stack.push(entry.map_err(|e| Error::io("reading", &path, e))?.path());
            }
        }
    }
    Ok(())
}

/// Runs `f` on a read-only mount of a result.
fn with_view<T>(parts: &Parts, r: &Ref, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let (key, view) = match r.snapshot() {
        None => (None, Mounted::new(&parts.mount_dir, &[])?),
        Some(name) => {
            let key = mounts::unique_id("view/");
            let m = parts.snapshots.view(&key, Some(name))?;
            (Some(key), Mounted::new(&parts.mount_dir, &m)?)
        }
    };
    let result = f(view.path());
    drop(view);
    if let Some(k) = key {
        let _ = parts.snapshots.remove(&k);
    }
    result
}

impl Parts {
    /// The container executor, started (runtimes probed) the first time a RUN executes.
    pub(crate) async fn executor(&self) -> Result<&kiln_executor::Executor> {
        self.executor
            .get_or_try_init(|| {
                kiln_executor::Executor::new(kiln_executor::ExecutorConfig::new(
                    self.executor_root.clone(),
                ))
            })
            .await
            .map_err(Error::from)
    }
}

/// Whether an interrupted build left containers (runtime state) or bundles in the executor's
/// directory, which only a started executor cleans up.
fn executor_leftovers(executor_root: &Path) -> bool {
    let non_empty = |dir: &Path| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    non_empty(&executor_root.join("bundles"))
        || ["runc", "crun"]
            .iter()
            .any(|rt| non_empty(&executor_root.join(rt)))
}

/// Unmounts what an interrupted build left mounted under the worker's mount directory (where
/// its ops mount snapshots, and nothing else is mounted), and removes the mount points.
fn unmount_stale(mount_dir: &Path) -> Result<()> {
    let canonical =
        std::fs::canonicalize(mount_dir).map_err(|e| Error::io("resolving", mount_dir, e))?;
    kiln_snapshot::unmount_under(&canonical)?;
    let Ok(entries) = std::fs::read_dir(mount_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let _ = std::fs::remove_dir(entry.path());
    }
    Ok(())
}

use std::io::Write as _;
