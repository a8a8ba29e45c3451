//! Image-config lookups for the frontend, once each per build.
//!
//! The frontend asks for the config of every base image (`FROM`, `COPY --from=IMAGE`, named
//! contexts); several stages often name the same one. [`MetadataLoads`] runs each lookup once
//! per build and platform, whoever asks first, and reports it as a progress vertex
//! (`[internal] load metadata for REF`, as BuildKit does), whatever the image comes from
//! (a registry, an OCI layout the build borrows).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use kiln_frontend_dockerfile::{ResolveError, ResolvedImage};
use kiln_oci::Platform;
use kiln_progress::{Event, ProgressSink};

/// One lookup's shared outcome.
type Cell = Arc<tokio::sync::OnceCell<Result<ResolvedImage, String>>>;

/// The lookups of one build, by what was looked up and platform.
#[derive(Clone)]
pub struct MetadataLoads {
    sink: Arc<dyn ProgressSink>,
    cells: Arc<Mutex<BTreeMap<(String, String), Cell>>>,
}

impl MetadataLoads {
    /// No lookups yet; progress goes to `sink`.
    pub fn new(sink: Arc<dyn ProgressSink>) -> MetadataLoads {
        MetadataLoads {
            sink,
            cells: Arc::default(),
        }
    }

    /// The outcome of looking up `key` for `platform`: `fetch` runs the first time only,
    /// shown as the vertex `label`; later and concurrent callers share its outcome.
    pub async fn load<Fut>(
        &self,
        key: String,
        platform: &Platform,
        label: String,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<ResolvedImage, ResolveError>
    where
        Fut: Future<Output = Result<ResolvedImage, String>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(cells.entry((key, platform.format_all())).or_default())
        };
        let result = cell
            .get_or_init(|| async {
                self.sink.send(Event::Vertex {
                    id: label.clone(),
                    name: label.clone(),
                    inputs: Vec::new(),
                });
                self.sink.send(Event::Started {
                    id: label.clone(),
                    at: SystemTime::now(),
                });
                let result = fetch().await;
                self.sink.send(Event::Completed {
                    id: label,
                    at: SystemTime::now(),
                    error: result.as_ref().err().cloned(),
                });
                result
            })
            .await
            .clone();
        result.map_err(|message| ResolveError { message })
    }
}
