//! Helpers shared by the worker's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kiln_llb::builder::{LocalOpts, MarshalOpts, State};
use kiln_worker::{LocalDir, StateLock, Worker, WorkerOptions};

/// A worker on a new state directory under `/var/tmp/kiln-tests` (overlayfs needs a real file
/// system), with the directory's lock; both live as long as the returned values.
pub async fn open_worker(prefix: &str) -> (tempfile::TempDir, StateLock, Worker) {
    std::fs::create_dir_all("/var/tmp/kiln-tests").expect("mkdir /var/tmp/kiln-tests");
    let state = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp/kiln-tests")
        .expect("state dir");
    let lock = StateLock::acquire(state.path(), |_| {}).expect("lock");
    let registry = kiln_registry::RegistryClient::new(kiln_registry::RegistryConfig::default())
        .expect("registry client");
    let worker = Worker::open(WorkerOptions {
        root: state.path().to_path_buf(),
        registry: Arc::new(registry),
        platform: kiln_oci::Platform::host(),
        snapshotter: kiln_snapshot::DriverChoice::Auto,
        concurrency: 1,
    })
    .await
    .expect("open worker");
    (state, lock, worker)
}

/// The definition of a local source named `context` alone, and the directory it names.
pub fn local_context(dir: &Path) -> (kiln_llb::Definition, BTreeMap<String, LocalDir>) {
    let def = State::local("context", LocalOpts::default())
        .marshal(&MarshalOpts::default())
        .expect("marshal");
    let mut locals = BTreeMap::new();
    locals.insert(
        "context".to_string(),
        LocalDir {
            path: dir.to_path_buf(),
        },
    );
    (def, locals)
}
