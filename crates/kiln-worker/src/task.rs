//! Running blocking work (file systems, snapshots, processes) off the async runtime, with the
//! task's failure as a worker error. Every module that does blocking work from async code
//! goes through [`blocking`].

use crate::error::{Error, Result};

/// Runs blocking work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Invalid(format!("worker task failed: {e}")))?
}
