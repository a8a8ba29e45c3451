//! `kiln build`: a Dockerfile built on the embedded builder, exported as files, a tarball, or an
//! image (an OCI layout or a Docker image tarball).

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use kiln_frontend_dockerfile::{ImageResolver, ResolveError, ResolvedImage};
use kiln_progress::{Event, ProgressSink};
use kiln_progressui::{Printer, PrinterOptions, ProgressMode, SystemClock};
use kiln_worker::{LocalDir, Worker, WorkerOptions};

use crate::cli::BuildArgs;
use crate::exit::{Rendered, UsageError};
use crate::image_attrs::{ImageFormat, ImageOutput};
use crate::metadata::MetadataLoads;
use crate::outputs::{Output, parse_output};
use crate::source_context;
use crate::steps::{internal_step, step};

/// The default state directory of the embedded builder.
pub(crate) fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/kiln");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("kiln")
}

/// A session id for this build (local sources carry it; their cache keys do not).
fn session_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("kiln-{}-{nanos:x}", std::process::id())
}

/// `kiln build [OPTIONS] CONTEXT`.
pub fn build(args: &BuildArgs) -> anyhow::Result<()> {
    let mut outputs = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(UsageError)?;
    if args.load {
        crate::output_flags::add_load(&mut outputs);
    }
    // As buildx does, `-t` names every image output (replacing its `name`).
    if !args.tags.is_empty() {
        for o in &mut outputs {
            if let Output::Image(image) = o {
                image.names = args.tags.clone();
            }
        }
    }
    // `--push`, and `-t` and the name checks of `type=image|registry`.
    crate::output_flags::apply_tags_and_push(&mut outputs, &args.tags, args.push)
        .map_err(UsageError)?;
    // No output: `-t` names go to kiln's image store, and a warning says how to export.
    let no_output = crate::no_output::apply(&mut outputs, &args.tags).map_err(UsageError)?;
    crate::output_flags::apply_annotations(&mut outputs, &args.annotations).map_err(UsageError)?;
    for o in &outputs {
        if let Output::Image(image) = o {
            for name in &image.names {
                kiln_export::ImageName::parse(name)
                    .map_err(|e| UsageError(format!("invalid tag {name:?}: {e}")))?;
            }
        }
    }
    if args.platform.len() > 1 || args.platform.iter().any(|p| p.contains(',')) {
        return Err(UsageError(
            "building for several platforms at once is not supported by kiln yet".to_string(),
        )
        .into());
    }
    let tar_to_stdout = outputs.iter().any(|o| {
        matches!(
            o,
            Output::Tar { dest: None }
                | Output::Image(ImageOutput {
                    dest: None,
                    load: false,
                    ..
                })
        )
    });
    if outputs
        .iter()
        .any(|o| matches!(o, Output::Image(ImageOutput { load: true, .. })))
    {
        // A DOCKER_HOST kiln cannot use fails before the build, not after it.
        crate::docker_load::Engine::from_env().map_err(|e| UsageError(e.to_string()))?;
    }
    if tar_to_stdout && std::io::stdout().is_terminal() {
        return Err(UsageError(
            "refusing to write a tarball to a terminal: redirect stdout or use dest=FILE"
                .to_string(),
        )
        .into());
    }

    // The context and the Dockerfile: a local directory, stdin (a Dockerfile or a context
    // archive), a git repository or an HTTP(S) URL (a context archive or a Dockerfile).
    let prepared = crate::remote_context::prepare(
        &args.context,
        args.definition.file.as_deref(),
        &args.root.clone().unwrap_or_else(default_root),
        &crate::build_flags::context_session(args)?,
    )?;
    let context_dir = prepared.dir.clone();
    let source = prepared.source.clone();
    let name = prepared.name.clone();
    let mut opts = crate::inputs::convert_options(
        &crate::inputs::BuildInputs {
            context: &prepared.ignore_dir,
            dockerfile: &prepared.ignore_dockerfile,
            name: &name,
            target: args.definition.target.as_deref(),
            build_args: &args.definition.build_args,
            labels: &args.definition.labels,
            build_contexts: &args.definition.build_contexts,
            platform: args.platform.first().map(String::as_str),
            no_cache: args.definition.no_cache,
            no_cache_filter: &args.definition.no_cache_filter,
            pull: args.pull,
        },
        &session_id(),
    )?;
    crate::annotations::source_date_epoch_from_env(&mut opts.build_args);
    let mut session = crate::build_flags::apply(args, &mut opts)?;
    session.oci_layouts = crate::oci_layout::stores(&args.definition.build_contexts);
    let session = Arc::new(session);
    let mut locals = BTreeMap::new();
    locals.insert(
        "context".to_string(),
        LocalDir {
            path: context_dir.clone(),
        },
    );
    for (k, v) in &opts.named_contexts {
        if let kiln_frontend_dockerfile::NamedContext::Local { name, .. } = v {
            let dir = args
                .definition
                .build_contexts
                .iter()
                .find_map(|kv| {
                    kv.split_once('=')
                        .filter(|(n, _)| n == k)
                        .map(|(_, p)| PathBuf::from(p))
                })
                .unwrap_or_default();
            locals.insert(name.clone(), LocalDir { path: dir });
        }
    }

    // Progress.
    let mode: ProgressMode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
            .parse()
            .map_err(|e: kiln_progressui::Error| UsageError(e.to_string()))?
    };
    let mode = mode
        .with_env_default(std::env::var(kiln_progressui::PROGRESS_ENV).ok().as_deref())
        .map_err(|e| UsageError(e.to_string()))?;
    let stderr_tty = std::io::stderr().is_terminal();
    let (rows, cols) = console::Term::stderr().size();
    let mut options =
        PrinterOptions::new(stderr_tty, usize::from(cols).max(40), Arc::new(SystemClock))
            .with_env(|k| std::env::var(k).ok());
    options.height = stderr_tty.then_some(usize::from(rows));
    if !stderr_tty {
        options.colors = kiln_progressui::Colors::none();
    }

    let root = args.root.clone().unwrap_or_else(default_root);
    let _lock = kiln_worker::StateLock::acquire(&root, |pid| {
        let holder = pid
            .map(|p| format!(" (held by pid {p})"))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr().lock(),
            "waiting for another kiln build to release {}{holder}",
            root.display()
        );
    })
    .with_context(|| format!("locking {}", root.display()))?;

    let printer = Printer::with_options(mode, Box::new(std::io::stderr()), options)
        .map_err(|e| UsageError(e.to_string()))?;
    let sink: Arc<dyn ProgressSink> = Arc::new(printer.sink());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(run(
        &root, &source, &name, &opts, &locals, session, &outputs, sink,
    ));
    let summary = printer.finish();
    if result.is_ok()
        && let Some(hint) = &no_output
    {
        hint.print();
    }
    match result {
        Ok(image) => write_result_files(args, &opts.session_id, image.as_ref()),
        Err(BuildFailure::Dockerfile(e)) => {
            let (start, end) = e.lines.first().map(|l| (l.start, l.end)).unwrap_or((0, 0));
            Err(Rendered(source_context::render(
                &name, &source, start, end, &e.message,
            ))
            .into())
        }
        Err(BuildFailure::Step {
            start,
            end,
            message,
        }) => {
            let _ = summary;
            Err(Rendered(source_context::render(
                &name,
                &source,
                start,
                end,
                &format!("failed to solve: {message}"),
            ))
            .into())
        }
        Err(BuildFailure::Other(e)) => {
            let _ = summary;
            Err(anyhow::anyhow!("failed to solve: {e:#}"))
        }
    }
}

/// What an image output made, for `--metadata-file` and `--iidfile`.
struct ImageResult {
    /// The manifest's descriptor, with the annotations the layout's index gives it.
    descriptor: kiln_registry::Descriptor,
    /// The config digest (the image id).
    config: kiln_oci::Digest,
    /// The full names (`docker.io/library/app:latest`).
    names: Vec<String>,
}

/// `--metadata-file` and `--iidfile`. The metadata file holds the build reference
/// (`buildx.build.ref`, `BUILDER/NODE/REF`) and, when the build made an image, buildx's image
/// keys (`containerimage.config.digest`, `containerimage.descriptor`, `containerimage.digest`,
/// `image.name`); the image id file gets the config digest, as buildx writes it for the oci and
/// docker exporters. Without an image, no image id file is written.
fn write_result_files(
    args: &BuildArgs,
    session: &str,
    image: Option<&ImageResult>,
) -> anyhow::Result<()> {
    if let Some(path) = &args.metadata_file {
        let reference = format!("default/default/{}", build_ref(session));
        let mut doc = serde_json::Map::new();
        doc.insert(
            "buildx.build.ref".to_string(),
            serde_json::Value::String(reference),
        );
        if let Some(image) = image {
            doc.insert(
                "containerimage.config.digest".to_string(),
                serde_json::Value::String(image.config.to_string()),
            );
            doc.insert(
                "containerimage.descriptor".to_string(),
                serde_json::to_value(&image.descriptor)?,
            );
            doc.insert(
                "containerimage.digest".to_string(),
                serde_json::Value::String(image.descriptor.digest.to_string()),
            );
            if !image.names.is_empty() {
                doc.insert(
                    "image.name".to_string(),
                    serde_json::Value::String(image.names.join(",")),
                );
            }
        }
        let mut bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(doc))?;
        bytes.push(b'\n');
        write_atomically(path, &bytes)?;
    }
    if let Some(path) = &args.iidfile {
        match image {
            Some(image) => write_atomically(path, image.config.to_string().as_bytes())?,
            None => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "WARNING: no image id written to {}: this build made no image (use -o type=oci or type=docker)",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// A build reference in buildx's shape: 25 lower-case base-36 characters, derived from the
/// session id.
fn build_ref(session: &str) -> String {
    let digest = kiln_oci::Digest::of_bytes(session.as_bytes()).to_string();
    let hex = digest.trim_start_matches("sha256:");
    hex.bytes()
        .take(25)
        .map(|b| {
            let v = (b as char).to_digit(16).unwrap_or(0) as u8;
            (if v < 10 { b'0' + v } else { b'a' + v - 10 }) as char
        })
        .collect()
}

/// A temporary file in `dir` that becomes one of the build's output files once renamed: made
/// with mode 0666 less the umask, as buildx's `os.Create` makes them (a temporary file's own
/// 0600 would keep other users and later CI steps from reading the result).
fn output_temp_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

/// Writes a file whole or not at all (temp file in the same directory, then rename).
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = output_temp_file(dir).with_context(|| format!("writing {}", path.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// How a build failed: in the Dockerfile (shown with its lines), in a step that came from a
/// Dockerfile line, or otherwise.
enum BuildFailure {
    Dockerfile(kiln_frontend_dockerfile::ConvertError),
    Step {
        start: usize,
        end: usize,
        message: String,
    },
    Other(anyhow::Error),
}

/// The Dockerfile lines a failed vertex came from, from the definition's source map.
fn step_failure(def: &kiln_llb::Definition, err: kiln_worker::Error) -> BuildFailure {
    let kiln_worker::Error::Solve(kiln_solver::SolveError::Exec { vertex, source, .. }) = &err
    else {
        return BuildFailure::Other(err.into());
    };
    let lines = def.source.as_ref().and_then(|s| {
        let digest = kiln_oci::Digest::parse(vertex).ok()?;
        let range = s.locations.get(&digest)?.first()?.ranges.first()?;
        Some((
            usize::try_from(range.start.line).ok()?,
            usize::try_from(range.end.line).ok()?,
        ))
    });
    match lines {
        Some((start, end)) if start > 0 => BuildFailure::Step {
            start,
            end,
            message: source.to_string(),
        },
        _ => BuildFailure::Other(err.into()),
    }
}

impl<E: Into<anyhow::Error>> From<E> for BuildFailure {
    fn from(e: E) -> BuildFailure {
        BuildFailure::Other(e.into())
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    root: &Path,
    source: &[u8],
    name: &str,
    opts: &kiln_frontend_dockerfile::ConvertOptions,
    locals: &BTreeMap<String, LocalDir>,
    session: Arc<kiln_worker::Session>,
    outputs: &[Output],
    sink: Arc<dyn ProgressSink>,
) -> Result<Option<ImageResult>, BuildFailure> {
    // A result that goes into the Docker engine needs the engine: one that cannot be reached
    // fails the build now, before any work (or any push of the same build) is done.
    if outputs
        .iter()
        .any(|o| matches!(o, Output::Image(ImageOutput { load: true, .. })))
    {
        let engine =
            crate::docker_load::Engine::from_env().map_err(|e| BuildFailure::Other(e.into()))?;
        engine
            .ping()
            .await
            .map_err(|e| BuildFailure::Other(e.into()))?;
    }
    let definition_id = format!("[internal] load build definition from {name}");
    internal_step(&sink, &definition_id, || Ok(()));

    let registry: Arc<dyn kiln_registry::Registry> = Arc::new(kiln_registry::RegistryClient::new(
        crate::export_image::registry_config(),
    )?);
    let worker = Worker::open(WorkerOptions {
        root: root.to_path_buf(),
        registry: Arc::clone(&registry),
        platform: kiln_oci::Platform::host(),
        snapshotter: kiln_snapshot::DriverChoice::Auto,
        concurrency: 0,
    })
    .await?;
    if worker.driver() == kiln_worker::Driver::Copy {
        sink.send(Event::Warning {
            id: String::new(),
            message: "overlayfs is not available here: kiln uses its copying snapshotter, which is slower".to_string(),
        });
    }

    let loads = MetadataLoads::new(Arc::clone(&sink));
    let resolver = RegistryResolver {
        registry,
        loads: loads.clone(),
        layouts: crate::oci_layout::LayoutResolver::new(session.oci_layouts.clone(), loads),
    };
    let converted = kiln_frontend_dockerfile::convert(source, opts, &resolver)
        .await
        .map_err(BuildFailure::Dockerfile)?;
    for w in &converted.warnings {
        sink.send(Event::Warning {
            id: String::new(),
            message: format!("{}: {} (line {})", w.rule, w.message, w.lines.start),
        });
    }
    let result = worker
        .solve_with_session(&converted.definition, locals, session, Arc::clone(&sink))
        .await
        .map_err(|e| step_failure(&converted.definition, e))?;

    let facts = crate::annotations::BuildFacts {
        build_args: opts.build_args.clone(),
        base_images: converted.base_images.clone(),
        base_history: base_history(&resolver, &converted).await,
    };
    let mut image_result = None;
    for output in outputs {
        match output {
            Output::Image(out) => {
                image_result = Some(
                    export_image(&worker, &result, &converted.image, out, &facts, &sink).await?,
                );
            }
            Output::Store(out) => {
                let made = crate::export_image::export(
                    &worker,
                    &result,
                    &converted.image,
                    &facts,
                    out,
                    &sink,
                )
                .await?;
                image_result = Some(ImageResult {
                    descriptor: made.descriptor,
                    config: made.config,
                    names: made.names,
                });
            }
            Output::Local { dest } => {
                let id = format!("exporting to client directory {}", dest.display());
                step(&sink, &id, worker.export_local(&result, dest)).await?;
            }
            Output::Tar { dest } => {
                let id = "exporting to client tarball".to_string();
                let out: Box<dyn Write + Send> = match dest {
                    None => Box::new(std::io::stdout()),
                    Some(path) => Box::new(
                        std::fs::File::create(path)
                            .with_context(|| format!("creating {}", path.display()))?,
                    ),
                };
                step(&sink, &id, worker.export_tar(&result, out)).await?;
            }
            // Removed by `no_output::apply`; nothing to export in any case.
            Output::CacheOnly => {}
        }
    }
    crate::commands::prune::gc_after_build(worker.storage(), &result, &sink);
    Ok(image_result)
}

/// `-o type=oci|docker`: assembles the image in the worker and writes it as a tarball (to a
/// file, whole or not at all, or to stdout) or as a layout directory.
async fn export_image(
    worker: &Worker,
    result: &kiln_worker::Ref,
    config: &kiln_oci::Image,
    out: &ImageOutput,
    facts: &crate::annotations::BuildFacts,
    sink: &Arc<dyn ProgressSink>,
) -> anyhow::Result<ImageResult> {
    let id = format!("exporting to {} image format", out.format.name());
    let prepared = out.content.prepare_for(facts, config)?;
    let (opts, mut warnings) = out.worker_options();
    warnings.extend(prepared.warnings.iter().cloned());
    for message in warnings {
        sink.send(Event::Warning {
            id: String::new(),
            message,
        });
    }
    let names: Vec<kiln_export::ImageName> = out
        .names
        .iter()
        .map(|n| {
            kiln_export::ImageName::parse(n).map_err(|e| anyhow::anyhow!("invalid name {n:?}: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let annotations = prepared.descriptor.clone();
    let status = |task: String| {
        sink.send(Event::Status {
            id: id.clone(),
            task,
            current: 0,
            total: None,
            completed: true,
        });
    };
    let work = async {
        let made = worker
            .export_image_with(result, config, &opts, &prepared.meta)
            .await?;
        status("exporting layers".to_string());
        for digest in &made.stats.created {
            status(format!("created layer {digest}"));
        }
        status(format!("exporting manifest {}", made.image.manifest.digest));
        status(format!("exporting config {}", made.image.config.digest));
        let store = worker.content().clone();
        let image = made.image.clone();
        let write_names = names.clone();
        let write_annotations = annotations.clone();
        let index_annotations = prepared.index.clone();
        let format = out.format;
        let dest = out.dest.clone();
        let tar = out.tar;
        if out.load {
            let imported = crate::docker_load::load_with_progress(
                sink,
                &id,
                store,
                image,
                write_names,
                write_annotations,
            )
            .await?;
            return anyhow::Ok((made.image, imported));
        }
        tokio::task::spawn_blocking(move || {
            write_image(
                &store,
                &image,
                &write_names,
                kiln_export::LayoutAnnotations {
                    descriptor: &write_annotations,
                    index: &index_annotations,
                },
                format,
                dest.as_deref(),
                tar,
            )
        })
        .await
        .context("writing the image")??;
        status(if out.tar {
            "sending tarball".to_string()
        } else {
            "writing layout".to_string()
        });
        anyhow::Ok((made.image, None))
    };
    let (image, imported) = step(sink, &id, work).await?;
    if let Some(imported) = imported {
        imported.report(sink);
    }
    let mut descriptor = image.manifest.clone();
    descriptor.annotations.extend(annotations);
    Ok(ImageResult {
        descriptor,
        config: image.config.digest.clone(),
        names: names.iter().map(kiln_export::ImageName::full).collect(),
    })
}

/// Writes an assembled image where `-o` said (blocking).
fn write_image(
    store: &kiln_content::ContentStore,
    image: &kiln_export::ExportedImage,
    names: &[kiln_export::ImageName],
    annotations: kiln_export::LayoutAnnotations<'_>,
    format: ImageFormat,
    dest: Option<&Path>,
    tar: bool,
) -> anyhow::Result<()> {
    let write = |w: Box<dyn Write>| -> anyhow::Result<Box<dyn Write>> {
        Ok(match format {
            ImageFormat::Oci => kiln_export::write_oci_tar(store, image, names, annotations, w)?,
            ImageFormat::Docker => {
                kiln_export::write_docker_tar(store, image, names, annotations, w)?
            }
        })
    };
    match dest {
        None => {
            let stdout = std::io::stdout();
            write(Box::new(std::io::BufWriter::new(stdout.lock())))?.flush()?;
        }
        // `tar=false` writes the OCI layout for both exporters (Docker's `manifest.json` only
        // matters to `docker load`, which reads tarballs).
        Some(dir) if !tar => kiln_export::write_oci_dir(store, image, names, annotations, dir)?,
        Some(path) => {
            let parent = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                anyhow::bail!(
                    "cannot write {}: directory {} does not exist",
                    path.display(),
                    parent.display()
                );
            }
            let tmp =
                output_temp_file(parent).with_context(|| format!("writing {}", path.display()))?;
            let (file, tmp_path) = tmp.into_parts();
            let out = write(Box::new(std::io::BufWriter::new(
                file.try_clone()
                    .with_context(|| format!("writing {}", path.display()))?,
            )))?;
            drop(out);
            file.sync_all()
                .with_context(|| format!("syncing {}", path.display()))?;
            tmp_path
                .persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// How many leading history entries of the built config are its base image's: the longest
/// history prefix among the configs of the base images (looked up again, from the build's
/// cache of lookups; a lookup that fails counts as no prefix).
async fn base_history(
    resolver: &RegistryResolver,
    converted: &kiln_frontend_dockerfile::Converted,
) -> usize {
    let mut best = 0;
    for base in &converted.base_images {
        if let Ok(resolved) = resolver
            .resolve(&base.name, &base.platform, kiln_llb::ResolveMode::Default)
            .await
            && let Some(config) = resolved.config
        {
            best = best.max(kiln_worker::base_history_len(
                &converted.image.history,
                &config.history,
            ));
        }
    }
    best
}

/// Resolves base images for the frontend through the registry, reporting each lookup as
/// `[internal] load metadata for REF`.
struct RegistryResolver {
    registry: Arc<dyn kiln_registry::Registry>,
    /// Each reference is looked up once per build, whatever the number of stages using it.
    loads: MetadataLoads,
    /// The images of `oci-layout://` named contexts, read from the layouts the build borrows.
    layouts: crate::oci_layout::LayoutResolver,
}

impl ImageResolver for RegistryResolver {
    fn resolve_oci_layout(
        &self,
        name: &str,
        store: &str,
        reference: &str,
        platform: &kiln_oci::Platform,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send {
        self.layouts.resolve(name, store, reference, platform)
    }

    fn resolve(
        &self,
        reference: &str,
        platform: &kiln_oci::Platform,
        _mode: kiln_llb::ResolveMode,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send {
        let registry = Arc::clone(&self.registry);
        let loads = self.loads.clone();
        let reference = reference.to_string();
        let platform = platform.clone();
        async move {
            let label = format!("[internal] load metadata for {reference}");
            loads
                .load(reference.clone(), &platform, label, || async {
                    let parsed =
                        kiln_oci::Reference::parse(&reference).map_err(|e| e.to_string())?;
                    let resolved = registry
                        .resolve(&parsed, &platform)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(ResolvedImage {
                        reference: resolved.reference.without_tag_or_digest_keep_tag(),
                        digest: resolved.reference.digest().cloned(),
                        config: Some(resolved.config),
                    })
                })
                .await
        }
    }
}

/// The `name:tag` part of a pinned reference (the digest goes separately).
trait KeepTag {
    fn without_tag_or_digest_keep_tag(&self) -> String;
}

impl KeepTag for kiln_oci::Reference {
    fn without_tag_or_digest_keep_tag(&self) -> String {
        match self.tag() {
            Some(t) => format!("{}:{t}", self.name()),
            None => self.name(),
        }
    }
}
