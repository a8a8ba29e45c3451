//! Cache mounts (`RUN --mount=type=cache`): directories that outlive the `RUN` steps and the
//! builds using them and never become part of a layer, handed out as BuildKit's mount manager
//! hands them out (`solver/llbsolver/mounts`, `cacheRefGetter`).
//!
//! # Keys and instances
//!
//! A cache mount is found by its *key*: the mount's id (the Dockerfile frontend's default is the
//! target path, prefixed with the `BUILDKIT_CACHE_MOUNT_NS` namespace) and, when the mount has a
//! `from` input, the name of that input's snapshot (BuildKit appends the id of the `from` ref).
//! The Dockerfile frontend turns `uid`, `gid` and `mode` into such an input (an empty directory
//! `/cache` with that owner and mode, mounted through the selector `/cache`), so they take part
//! in the key that way and a cache mount with other permissions is another cache. The selector
//! (`source`) does not take part: it only picks what part of the cache is mounted.
//!
//! A key has one or more *instances*, directories of the manager's directory named after the
//! SHA-256 of the key: `<digest>`, then `<digest>-1`, `<digest>-2`, ... A new instance is made
//! when every existing one is in use and the sharing mode does not wait. Instances are kept and
//! used again later, as BuildKit keeps the records of a cache directory; each is one record of
//! type `exec.cachemount` for `kiln du` and `kiln prune`, which remove them through
//! [`CacheMounts::remove`] (never while in use).
//!
//! # Sharing
//!
//! - `shared`: while shared users of the key hold an instance, every further shared user gets
//!   that same instance; otherwise it takes a free instance (or makes one) and shares it from
//!   then on.
//! - `private`: a free instance, or a new one when all are in use.
//! - `locked`: a free instance; when every instance of the key is in use, it waits until one is
//!   released (or the build is cancelled); a key without instances gets a new one. Waiting
//!   users are served in the order they came (BuildKit wakes them in no set order), so none
//!   starves.
//!
//! As in BuildKit, a shared or private user never waits for a locked one (it gets another
//! instance), and a locked user waits for the last shared user of an instance.
//!
//! # Creation and release
//!
//! A new instance starts as an empty directory (mode 0755, owned by root), or as a copy of its
//! `from` snapshot (BuildKit puts a writable snapshot on top of it) whose root keeps the owner
//! and mode of the snapshot's root. It is built under `<name>.tmp` and renamed into place, so
//! an interrupted creation leaves only a `.tmp` directory, which [`CacheMounts::open`] removes.
//!
//! What a `RUN` holds is a [`CacheMount`] guard: dropping it releases the instance, whether the
//! step succeeded, failed or was cancelled (its future dropped). A release sets the instance's
//! modification time, which `kiln du` shows as its last use.
//!
//! The state is in memory, owned by the worker (one process uses a state directory at a time),
//! never global: two managers on two directories know nothing of each other.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use kiln_llb::ops::{CacheSharing, FileActionCopy, Mount};
use kiln_solver::CancelToken;
use tokio::sync::Notify;

use crate::Parts;
use crate::error::{Error, Result};
use crate::refs::Ref;

/// Fills a new instance's directory (given, still under its temporary name).
pub(crate) type Seed = Box<dyn FnOnce(&Path) -> Result<()> + Send>;

/// The cache mounts of a state directory: which instances exist, which are in use.
pub(crate) struct CacheMounts {
    dir: PathBuf,
    state: Mutex<State>,
    /// Fires when an instance is released or finished, for the users waiting for one.
    changed: Notify,
}

impl std::fmt::Debug for CacheMounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheMounts")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    /// The instances on disk, by directory name.
    instances: BTreeSet<String>,
    /// The instances in use or being made, by directory name.
    busy: HashMap<String, Busy>,
    /// For each key, the instance its shared users hold now.
    shares: HashMap<String, String>,
    /// For each key, the `locked` users waiting for it, first come first served.
    queues: HashMap<String, VecDeque<u64>>,
    /// The number of the next waiting user.
    next_ticket: u64,
}

/// A `locked` user's place in its key's queue; leaves the queue when dropped (served,
/// cancelled, or the waiting future dropped).
struct Ticket<'a> {
    manager: &'a CacheMounts,
    key: String,
    id: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.manager.lock();
            if let Some(queue) = state.queues.get_mut(&self.key) {
                queue.retain(|t| *t != self.id);
                if queue.is_empty() {
                    state.queues.remove(&self.key);
                }
            }
        }
        // The next in line may be served now.
        self.manager.changed.notify_waiters();
    }
}

#[derive(Debug)]
struct Busy {
    key: String,
    /// How many guards hold it (several only when shared).
    holders: usize,
    shared: bool,
    /// Whether its directory is there (false while it is being made).
    ready: bool,
}

/// What a user of a key gets now.
enum Step {
    /// This existing instance (already marked as held).
    Take(String),
    /// A new instance of this name, to make (already marked as held, not ready).
    Make(String),
    /// Nothing yet: wait for a change.
    Wait,
}

impl CacheMounts {
    /// Opens the cache mounts kept in `dir` (created when missing), removing what an
    /// interrupted creation or removal left (`*.tmp`).
    pub(crate) fn open(dir: PathBuf) -> Result<CacheMounts> {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let mut instances = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io("reading", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("reading", &dir, e))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Error::io("removing half-made cache mount", &path, e))?;
            } else if path.is_dir() {
                instances.insert(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(CacheMounts {
            dir,
            state: Mutex::new(State {
                instances,
                ..State::default()
            }),
            changed: Notify::new(),
        })
    }

    /// The directory holding the instances.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An instance of `key` for one user, as `sharing` allows (see the module documentation).
    /// A new instance is filled by `seed`. Waiting (`locked`) ends with an error when `cancel`
    /// fires.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        key: &str,
        sharing: CacheSharing,
        seed: Option<Seed>,
        cancel: &CancelToken,
    ) -> Result<CacheMount> {
        // `locked` users that have to wait are served in the order they came.
        let mut ticket: Option<Ticket<'_>> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            let step = {
                let mut state = self.lock();
                // Registered before the state is read: a release after this point wakes us.
                notified.as_mut().enable();
                let behind = sharing == CacheSharing::Locked
                    && state
                        .queues
                        .get(key)
                        .and_then(VecDeque::front)
                        .is_some_and(|first| ticket.as_ref().map(|t| t.id) != Some(*first));
                if behind {
                    if ticket.is_none() {
                        ticket = Some(state.enqueue(self, key));
                    }
                    Step::Wait
                } else {
                    let step = state.choose(key, sharing);
                    if matches!(step, Step::Wait)
                        && sharing == CacheSharing::Locked
                        && ticket.is_none()
                    {
                        ticket = Some(state.enqueue(self, key));
                    }
                    step
                }
            };
            match step {
                Step::Take(name) => return Ok(self.guard(name)),
                Step::Make(name) => return self.make(self.guard(name), seed).await,
                Step::Wait => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = cancel.cancelled() => {
                            return Err(Error::Invalid(format!(
                                "cancelled while waiting for the locked cache mount {key:?}"
                            )));
                        }
                    }
                }
            }
        }
    }

    fn guard(self: &Arc<Self>, name: String) -> CacheMount {
        CacheMount {
            path: self.dir.join(&name),
            manager: Arc::clone(self),
            name,
        }
    }

    /// Makes the new instance `guard` holds, off the async runtime. The guard travels with the
    /// work, so the instance stays reserved until the work ends even if the caller goes away.
    async fn make(self: &Arc<Self>, guard: CacheMount, seed: Option<Seed>) -> Result<CacheMount> {
        let manager = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            manager.fill(&guard.name, seed)?;
            {
                let mut state = manager.lock();
                state.instances.insert(guard.name.clone());
                if let Some(busy) = state.busy.get_mut(&guard.name) {
                    busy.ready = true;
                }
            }
            manager.changed.notify_waiters();
            Ok(guard)
        })
        .await
        .map_err(|e| Error::Invalid(format!("worker task failed: {e}")))?
    }

    /// Writes the instance `name`: a temporary directory, seeded, renamed into place.
    fn fill(&self, name: &str, seed: Option<Seed>) -> Result<()> {
        let dir = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(|e| Error::io("removing half-made cache mount", &tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| Error::io("creating cache mount", &tmp, e))?;
        let result = (|| {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("creating cache mount", &tmp, e))?;
            if let Some(seed) = seed {
                seed(&tmp)?;
            }
            std::fs::rename(&tmp, &dir).map_err(|e| Error::io("creating cache mount", &dir, e))?;
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io("syncing", &self.dir, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn release(&self, name: &str, path: &Path) {
        let was_ready = {
            let mut state = self.lock();
            let Some(busy) = state.busy.get_mut(name) else {
                return;
            };
            busy.holders = busy.holders.saturating_sub(1);
            if busy.holders > 0 {
                return;
            }
            let Some(busy) = state.busy.remove(name) else {
                return;
            };
            if busy.shared && state.shares.get(&busy.key).is_some_and(|n| n == name) {
                state.shares.remove(&busy.key);
            }
            busy.ready
        };
        if was_ready {
            // The last use, for `du` and the garbage collector (advisory).
            let _ = std::fs::File::open(path).and_then(|d| d.set_modified(SystemTime::now()));
        }
        self.changed.notify_waiters();
    }

    /// Whether the instance `name` (a directory name) is in use.
    pub(crate) fn in_use(&self, name: &str) -> bool {
        self.lock().busy.contains_key(name)
    }

    /// Removes the instance `name` unless it is in use (then returns false). It is renamed
    /// first, so that no user can take it any more and a crash leaves a `.tmp` directory that
    /// [`CacheMounts::open`] removes, never a half-deleted instance.
    pub(crate) fn remove(&self, name: &str) -> Result<bool> {
        let dir = self.dir.join(name);
        let doomed = self.dir.join(format!(
            "{}.tmp",
            crate::mounts::unique_id(&format!("{name}.removed-"))
        ));
        {
            let mut state = self.lock();
            if state.busy.contains_key(name) {
                return Ok(false);
            }
            std::fs::rename(&dir, &doomed).map_err(|e| Error::io("removing", &dir, e))?;
            state.instances.remove(name);
        }
        std::fs::remove_dir_all(&doomed).map_err(|e| Error::io("removing", &doomed, e))?;
        Ok(true)
    }
}

impl State {
    fn choose(&mut self, key: &str, sharing: CacheSharing) -> Step {
        let shared = sharing == CacheSharing::Shared;
        if shared && let Some(name) = self.shares.get(key).cloned() {
            match self.busy.get_mut(&name) {
                Some(busy) if busy.ready => {
                    busy.holders += 1;
                    return Step::Take(name);
                }
                Some(_) => return Step::Wait,
                None => {
                    self.shares.remove(key);
                }
            }
        }
        let prefix = instance_prefix(key);
        let free = instances_of(&self.instances, &prefix)
            .into_iter()
            .find(|name| !self.busy.contains_key(name));
        if let Some(name) = free {
            self.hold(&name, key, shared, true);
            return Step::Take(name);
        }
        if sharing == CacheSharing::Locked && self.busy.values().any(|b| b.key == key) {
            return Step::Wait;
        }
        let mut index = 0u64;
        let name = loop {
            let name = instance_name(&prefix, index);
            if !self.instances.contains(&name) && !self.busy.contains_key(&name) {
                break name;
            }
            index += 1;
        };
        self.hold(&name, key, shared, false);
        Step::Make(name)
    }

    /// Puts a `locked` user of `key` at the end of its queue.
    fn enqueue<'a>(&mut self, manager: &'a CacheMounts, key: &str) -> Ticket<'a> {
        let id = self.next_ticket;
        self.next_ticket += 1;
        self.queues
            .entry(key.to_string())
            .or_default()
            .push_back(id);
        Ticket {
            manager,
            key: key.to_string(),
            id,
        }
    }

    fn hold(&mut self, name: &str, key: &str, shared: bool, ready: bool) {
        self.busy.insert(
            name.to_string(),
            Busy {
                key: key.to_string(),
                holders: 1,
                shared,
                ready,
            },
        );
        if shared {
            self.shares.insert(key.to_string(), name.to_string());
        }
    }
}

/// The SHA-256 of a key, hex: the name of its first instance and the prefix of the others.
fn instance_prefix(key: &str) -> String {
    hex::encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(key.as_bytes()),
    ))
}

fn instance_name(prefix: &str, index: u64) -> String {
    if index == 0 {
        prefix.to_string()
    } else {
        format!("{prefix}-{index}")
    }
}

/// The instances of the key with this prefix, first instance first.
fn instances_of(instances: &BTreeSet<String>, prefix: &str) -> Vec<String> {
    let mut found: Vec<(u64, String)> = instances
        .range(prefix.to_string()..)
        .take_while(|name| name.starts_with(prefix))
        .filter_map(|name| {
            let rest = &name[prefix.len()..];
            let index = if rest.is_empty() {
                0
            } else {
                rest.strip_prefix('-')?.parse().ok().filter(|i| *i > 0)?
            };
            Some((index, name.clone()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, name)| name).collect()
}

/// The key of a cache mount: its id, and the snapshot of its `from` input if any (see the
/// module documentation).
pub(crate) fn cache_key(id: &str, from: &Ref) -> String {
    match from.snapshot() {
        Some(snapshot) => format!("{id}:{snapshot}"),
        None => id.to_string(),
    }
}

/// One instance held by a user; released when dropped.
#[derive(Debug)]
pub(crate) struct CacheMount {
    manager: Arc<CacheMounts>,
    name: String,
    path: PathBuf,
}

impl CacheMount {
    /// The instance's directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CacheMount {
    fn drop(&mut self) {
        self.manager.release(&self.name, &self.path);
    }
}

/// The cache mounts one `RUN` holds. Two mounts of the same key in one step share one
/// instance whatever their sharing mode (as BuildKit's per-step map does), so a step never
/// waits for itself. Everything is released when this is dropped.
#[derive(Debug, Default)]
pub(crate) struct RunCaches {
    held: Vec<(String, CacheMount)>,
}

impl RunCaches {
    /// The host directory to mount for the cache mount `m` whose `from` input is `from`: an
    /// instance of its cache, with the mount's selector resolved inside it.
    pub(crate) async fn mount(
        &mut self,
        parts: &Arc<Parts>,
        m: &Mount,
        from: Ref,
        cancel: &CancelToken,
    ) -> Result<PathBuf> {
        let (id, sharing) = match &m.cache_opt {
            Some(c) if !c.id.is_empty() => (c.id.as_str(), c.sharing),
            Some(c) => (m.dest.as_str(), c.sharing),
            None => (m.dest.as_str(), CacheSharing::Shared),
        };
        let key = cache_key(id, &from);
        let root = match self.held.iter().find(|(k, _)| *k == key) {
            Some((_, held)) => held.path().to_path_buf(),
            None => {
                let seed: Option<Seed> = from.snapshot().is_some().then(|| {
                    let parts = Arc::clone(parts);
                    Box::new(move |dir: &Path| seed_from(&parts, &from, dir)) as Seed
                });
                let held = parts
                    .cache_mounts
                    .acquire(&key, sharing, seed, cancel)
                    .await?;
                let path = held.path().to_path_buf();
                self.held.push((key, held));
                path
            }
        };
        let selector = m.selector.clone();
        crate::task::blocking(move || select_in(&root, &selector)).await
    }
}

/// Copies the snapshot `from` into the new instance `dir`, its root's owner and mode included.
fn seed_from(parts: &Parts, from: &Ref, dir: &Path) -> Result<()> {
    crate::with_view(parts, from, |src| {
        let copy = FileActionCopy {
            src: "/".to_string(),
            dest: "/".to_string(),
            mode: -1,
            dir_copy_contents: true,
            create_dest_path: true,
            timestamp: -1,
            ..FileActionCopy::default()
        };
        let users = kiln_fileop::PasswdLookup::new(src);
        kiln_fileop::copy(src, dir, &copy, &users)?;
        let meta = std::fs::symlink_metadata(src).map_err(|e| Error::io("reading", src, e))?;
        // The owner first: changing it clears the set-id bits.
        std::os::unix::fs::lchown(dir, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| Error::io("changing the owner of", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io("changing the mode of", dir, e))
    })
}

/// `selector` resolved inside `root` (symbolic links read with `root` as `/`, as containerd's
/// `fs.RootPath` does for mount selectors); it must exist.
fn select_in(root: &Path, selector: &str) -> Result<PathBuf> {
    if selector.trim_start_matches('/').is_empty() {
        return Ok(root.to_path_buf());
    }
    let fd = kiln_fsroot::open_root(root).map_err(|e| Error::io("opening", root, e))?;
    let inside = kiln_fsroot::resolve(
        std::os::fd::AsFd::as_fd(&fd),
        selector.as_bytes(),
        &kiln_fsroot::Options::continuity(),
    )
    .map_err(|e| {
        Error::io(
            "resolving cache mount source",
            root.join(selector),
            e.into_io(),
        )
    })?;
    let path = root.join(inside.to_path_buf());
    std::fs::symlink_metadata(&path).map_err(|e| Error::io("mounting cache", &path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How long a step that must block is watched before it counts as blocked.
    const BLOCKED_FOR: Duration = Duration::from_millis(300);
    /// How long a step that must finish may take.
    const DEADLINE: Duration = Duration::from_secs(5);

    /// One step of a scenario, run in order. Users are named; instances are numbered as their
    /// directories (`<digest>` is 0, `<digest>-N` is N).
    enum Step {
        /// The user gets an instance of the key at once: this one.
        Get(&'static str, CacheSharing, &'static str, u64),
        /// The user asks for the key and is still waiting after [`BLOCKED_FOR`].
        Blocks(&'static str, CacheSharing, &'static str),
        /// A user that was waiting gets this instance once the previous steps have run.
        Wakes(&'static str, u64),
        /// The user releases what it holds.
        Put(&'static str),
        /// The user's instance holds the file `name` (written by [`Step::Write`]).
        Sees(&'static str, &'static str),
        /// The user writes the file `name` into its instance.
        Write(&'static str, &'static str),
    }
    use Step::{Blocks, Get, Put, Sees, Wakes, Write};
    use kiln_llb::ops::CacheSharing::{Locked, Private, Shared};

    fn index_of(mount: &CacheMount, key: &str) -> Option<u64> {
        let name = mount.path().file_name()?.to_str()?;
        let rest = name.strip_prefix(&instance_prefix(key))?;
        if rest.is_empty() {
            return Some(0);
        }
        rest.strip_prefix('-')?.parse().ok()
    }

    /// Runs a scenario on a fresh manager and fails with every step that went wrong.
    fn check(steps: &[Step]) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("dir");
        let failures = runtime.block_on(run_scenario(dir.path(), steps));
        assert!(failures.is_empty(), "{failures:#?}");
    }

    type Waiting = tokio::task::JoinHandle<Result<(CacheMount, Option<u64>)>>;

    async fn run_scenario(dir: &Path, steps: &[Step]) -> Vec<String> {
        let manager = Arc::new(CacheMounts::open(dir.join("cache-mounts")).expect("open manager"));
        let cancel = CancelToken::new();
        let mut held: HashMap<&str, (CacheMount, &str)> = HashMap::new();
        let mut waiting: HashMap<&str, (Waiting, &str)> = HashMap::new();
        let mut failures = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Get(user, sharing, key, want) => {
                    let got = tokio::time::timeout(
                        DEADLINE,
                        manager.acquire(key, *sharing, None, &cancel),
                    )
                    .await;
                    match got {
                        Ok(Ok(m)) => {
                            let index = index_of(&m, key);
                            if index != Some(*want) {
                                failures.push(format!(
                                    "step {i}: {user} got instance {index:?}, expected {want}"
                                ));
                            }
                            held.insert(user, (m, key));
                        }
                        Ok(Err(e)) => failures.push(format!("step {i}: {user}: {e}")),
                        Err(_) => failures.push(format!("step {i}: {user} was kept waiting")),
                    }
                }
                Blocks(user, sharing, key) => {
                    let (manager, cancel, sharing) =
                        (Arc::clone(&manager), cancel.clone(), *sharing);
                    let key_owned = key.to_string();
                    let mut task = tokio::spawn(async move {
                        let m = manager.acquire(&key_owned, sharing, None, &cancel).await?;
                        let index = index_of(&m, &key_owned);
                        Ok((m, index))
                    });
                    if tokio::time::timeout(BLOCKED_FOR, &mut task).await.is_ok() {
                        failures.push(format!("step {i}: {user} did not wait"));
                    } else {
                        waiting.insert(user, (task, key));
                    }
                }
                Wakes(user, want) => {
                    let Some((task, key)) = waiting.remove(user) else {
                        failures.push(format!("step {i}: {user} is not waiting"));
                        continue;
                    };
                    match tokio::time::timeout(DEADLINE, task).await {
                        Ok(Ok(Ok((m, index)))) => {
                            if index != Some(*want) {
                                failures.push(format!(
                                    "step {i}: {user} got instance {index:?}, expected {want}"
                                ));
                            }
                            held.insert(user, (m, key));
                        }
                        Ok(Ok(Err(e))) => failures.push(format!("step {i}: {user}: {e}")),
                        Ok(Err(e)) => failures.push(format!("step {i}: {user}: {e}")),
                        Err(_) => failures.push(format!("step {i}: {user} never got it")),
                    }
                }
                Put(user) => {
                    if held.remove(user).is_none() {
                        failures.push(format!("step {i}: {user} holds nothing"));
                    }
                }
                Write(user, file) => match held.get(user) {
                    Some((m, _)) => std::fs::write(m.path().join(file), file).expect("write"),
                    None => failures.push(format!("step {i}: {user} holds nothing")),
                },
                Sees(user, file) => match held.get(user) {
                    Some((m, _)) if m.path().join(file).is_file() => {}
                    Some(_) => failures.push(format!("step {i}: {user} does not see {file}")),
                    None => failures.push(format!("step {i}: {user} holds nothing")),
                },
            }
        }
        // Nothing may stay waiting: cancel it, so that the runtime can shut down.
        cancel.cancel();
        for (user, (task, _)) in waiting {
            failures.push(format!("{user} was still waiting at the end"));
            let _ = task.await;
        }
        failures
    }

    #[test]
    fn shared_users_get_one_directory_at_the_same_time() {
        check(&[
            Get("a", Shared, "k", 0),
            Get("b", Shared, "k", 0),
            Write("a", "from-a"),
            Sees("b", "from-a"),
            Put("a"),
            Get("c", Shared, "k", 0),
            Sees("c", "from-a"),
            Put("b"),
            Put("c"),
            Get("d", Shared, "k", 0),
            Sees("d", "from-a"),
        ]);
    }

    #[test]
    fn locked_users_wait_for_the_release() {
        check(&[
            Get("a", Locked, "k", 0),
            Write("a", "from-a"),
            Blocks("b", Locked, "k"),
            Blocks("c", Locked, "k"),
            Put("a"),
            Wakes("b", 0),
            Sees("b", "from-a"),
            Put("b"),
            Wakes("c", 0),
        ]);
    }

    #[test]
    fn locked_users_wait_for_the_last_shared_user() {
        check(&[
            Get("a", Shared, "k", 0),
            Get("b", Shared, "k", 0),
            Blocks("c", Locked, "k"),
            Put("a"),
            Put("b"),
            Wakes("c", 0),
        ]);
    }

    #[test]
    fn private_users_get_another_instance_while_one_is_held() {
        check(&[
            Get("a", Private, "k", 0),
            Get("b", Private, "k", 1),
            Write("a", "from-a"),
            Write("b", "from-b"),
            Put("a"),
            Put("b"),
            // Kept and used again: first the first instance, then the second.
            Get("c", Private, "k", 0),
            Sees("c", "from-a"),
            Get("d", Private, "k", 1),
            Sees("d", "from-b"),
            Get("e", Private, "k", 2),
        ]);
    }

    #[test]
    fn shared_and_private_users_never_wait_for_a_locked_one() {
        check(&[
            Get("a", Locked, "k", 0),
            Get("b", Shared, "k", 1),
            Get("c", Shared, "k", 1),
            Get("d", Private, "k", 2),
            // Every instance is held: a locked user waits, then takes the first one freed.
            Blocks("e", Locked, "k"),
            Put("d"),
            Wakes("e", 2),
        ]);
    }

    #[test]
    fn keys_are_separate_caches() {
        check(&[
            Get("a", Locked, "one", 0),
            Get("b", Locked, "two", 0),
            Write("a", "from-a"),
            Put("a"),
            Put("b"),
            Get("c", Locked, "two", 0),
            Get("d", Locked, "one", 0),
            Sees("d", "from-a"),
        ]);
    }

    #[test]
    fn the_key_includes_the_from_snapshot() {
        let cases = [
            ("/root/.cache", Ref::Scratch, "/root/.cache"),
            (
                "/root/.cache",
                Ref::Snapshot("file/1-2-3".into()),
                "/root/.cache:file/1-2-3",
            ),
        ];
        for (id, from, want) in cases {
            assert_eq!(cache_key(id, &from), want);
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_cancelled_wait_ends_and_holds_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        runtime().block_on(async {
            let manager = Arc::new(CacheMounts::open(dir.path().join("c")).expect("open"));
            let never = CancelToken::new();
            let a = manager.acquire("k", Locked, None, &never).await.expect("a");
            let cancel = CancelToken::new();
            let waiter = {
                let (manager, cancel) = (Arc::clone(&manager), cancel.clone());
                tokio::spawn(async move { manager.acquire("k", Locked, None, &cancel).await })
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
            let got = tokio::time::timeout(DEADLINE, waiter)
                .await
                .expect("the cancelled wait ends")
                .expect("task");
            assert!(got.is_err(), "a cancelled wait is an error");
            drop(a);
            let again = tokio::time::timeout(DEADLINE, manager.acquire("k", Locked, None, &never))
                .await
                .expect("nothing stays locked")
                .expect("again");
            assert_eq!(index_of(&again, "k"), Some(0));
        });
    }

    #[test]
    fn a_failed_creation_is_released_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        runtime().block_on(async {
            let manager = Arc::new(CacheMounts::open(dir.path().join("c")).expect("open"));
            let cancel = CancelToken::new();
            let fail: Seed = Box::new(|_| Err(Error::Invalid("seed failed".to_string())));
            let err = manager
                .acquire("k", Locked, Some(fail), &cancel)
                .await
                .expect_err("the seed fails");
            assert_eq!(err.to_string(), "seed failed");
            let leftovers: Vec<_> = std::fs::read_dir(manager.dir())
                .expect("read")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            let m = tokio::time::timeout(DEADLINE, manager.acquire("k", Locked, None, &cancel))
                .await
                .expect("not locked by the failed creation")
                .expect("acquire");
            assert_eq!(index_of(&m, "k"), Some(0));
        });
    }

    #[test]
    fn instances_persist_and_half_made_ones_are_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().join("c");
        runtime().block_on(async {
            let cancel = CancelToken::new();
            let manager = Arc::new(CacheMounts::open(root.clone()).expect("open"));
            let a = manager
                .acquire("k", Private, None, &cancel)
                .await
                .expect("a");
            let b = manager
                .acquire("k", Private, None, &cancel)
                .await
                .expect("b");
            std::fs::write(b.path().join("kept"), "x").expect("write");
            let mode = std::fs::metadata(a.path()).expect("stat").mode();
            assert_eq!(mode & 0o7777, 0o755, "a new instance is 0755");
            drop((a, b));
            drop(manager);
            std::fs::create_dir(root.join("half.tmp")).expect("mkdir");

            let manager = Arc::new(CacheMounts::open(root.clone()).expect("reopen"));
            assert!(
                !root.join("half.tmp").exists(),
                "half-made instance removed"
            );
            let a = manager
                .acquire("k", Private, None, &cancel)
                .await
                .expect("a");
            let b = manager
                .acquire("k", Private, None, &cancel)
                .await
                .expect("b");
            assert_eq!((index_of(&a, "k"), index_of(&b, "k")), (Some(0), Some(1)));
            assert!(b.path().join("kept").is_file(), "contents persist");
        });
    }

    #[test]
    fn instances_in_use_are_not_removed() {
        let dir = tempfile::tempdir().expect("dir");
        runtime().block_on(async {
            let cancel = CancelToken::new();
            let manager = Arc::new(CacheMounts::open(dir.path().join("c")).expect("open"));
            let a = manager
                .acquire("k", Shared, None, &cancel)
                .await
                .expect("a");
            let name = a
                .path()
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            assert!(manager.in_use(&name));
            assert!(!manager.remove(&name).expect("remove"), "in use: kept");
            assert!(a.path().is_dir());
            let path = a.path().to_path_buf();
            drop(a);
            assert!(!manager.in_use(&name));
            assert!(manager.remove(&name).expect("remove"), "released: removed");
            assert!(!path.exists());
            let again = manager
                .acquire("k", Shared, None, &cancel)
                .await
                .expect("again");
            assert!(again.path().is_dir(), "a removed instance is made again");
        });
    }

    #[test]
    fn selectors_stay_inside_the_instance() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("cache/sub")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", root.join("cache/escape")).expect("symlink");
        std::os::unix::fs::symlink("../../..", root.join("cache/up")).expect("symlink");
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("")),
            ("/", Some("")),
            ("/cache", Some("cache")),
            ("cache/sub/", Some("cache/sub")),
            ("/cache/up/cache", Some("cache")),
            ("/../../cache", Some("cache")),
            // `/etc` inside the instance, which does not exist: never the host's.
            ("/cache/escape", None),
            ("/missing", None),
        ];
        let mut failures = Vec::new();
        for (selector, want) in cases {
            let got = select_in(root, selector).ok();
            let want = want.map(|w| {
                if w.is_empty() {
                    root.to_path_buf()
                } else {
                    root.join(w)
                }
            });
            if got != want {
                failures.push(format!("{selector:?}: got {got:?}, expected {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
