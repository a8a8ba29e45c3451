//! `kiln debug ...`: parse trees and LLB graphs.

use crate::cli::{DumpLlbArgs, ParseDockerfileArgs};
use crate::exit::Rendered;
use crate::source_context;
use anyhow::Context as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Reads a file, or stdin when the path is `-`.
pub(crate) fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The name under which errors about a Dockerfile are shown.
pub(crate) fn display_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "Dockerfile".to_string()
    } else {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    }
}

/// `kiln debug parse-dockerfile [FILE]`.
pub fn parse_dockerfile(args: &ParseDockerfileArgs) -> anyhow::Result<()> {
    let source = read_input(&args.file)?;
    let name = display_name(&args.file);
    let df = kiln_dockerfile_parser::parse(&source).map_err(|e| {
        Rendered(source_context::render(
            &name, &source, e.line, e.line, &e.message,
        ))
    })?;
    let mut stderr = std::io::stderr().lock();
    for w in &df.warnings {
        let rule = w
            .rule
            .as_deref()
            .map(|r| format!("{r}: "))
            .unwrap_or_default();
        writeln!(
            stderr,
            "WARNING: {rule}{} ({name}:{})",
            w.short, w.lines.start
        )?;
    }
    std::io::stdout()
        .lock()
        .write_all(kiln_dockerfile_parser::dump(&df).as_bytes())?;
    Ok(())
}

/// The session id `dump-llb` writes into local sources: fixed, so that dumps are reproducible
/// (a real build uses a fresh id per session, as buildx does).
const DEBUG_SESSION_ID: &str = "kiln-debug";

/// `kiln debug dump-llb [OPTIONS] CONTEXT`.
pub fn dump_llb(args: &DumpLlbArgs) -> anyhow::Result<()> {
    let dockerfile_path: PathBuf = match &args.definition.file {
        Some(f) => f.clone(),
        None => args.context.join("Dockerfile"),
    };
    let source = read_input(&dockerfile_path)?;
    let name = display_name(&dockerfile_path);
    let opts = crate::inputs::convert_options(
        &crate::inputs::BuildInputs {
            context: &args.context,
            dockerfile: &dockerfile_path,
            name: &name,
            target: args.definition.target.as_deref(),
            build_args: &args.definition.build_args,
            labels: &args.definition.labels,
            build_contexts: &args.definition.build_contexts,
            platform: args.platform.as_deref(),
            no_cache: args.definition.no_cache,
            no_cache_filter: &args.definition.no_cache_filter,
            pull: false,
        },
        DEBUG_SESSION_ID,
    )?;
    let converted = futures::executor::block_on(kiln_frontend_dockerfile::convert(
        &source,
        &opts,
        &kiln_frontend_dockerfile::Unresolved,
    ))
    .map_err(|e| {
        let (start, end) = e.lines.first().map(|l| (l.start, l.end)).unwrap_or((0, 0));
        Rendered(source_context::render(
            &name, &source, start, end, &e.message,
        ))
    })?;

    let mut stderr = std::io::stderr().lock();
    if !converted.base_images.is_empty() {
        writeln!(
            stderr,
            "note: base images are not resolved by dump-llb (no registry access): {}",
            converted
                .base_images
                .iter()
                .map(|b| b.reference.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    print_warnings(&mut stderr, &name, &converted.warnings)?;

    let mut stdout = std::io::stdout().lock();
    if args.image_config {
        serde_json::to_writer_pretty(&mut stdout, &converted.image)?;
        writeln!(stdout)?;
        return Ok(());
    }
    for op in kiln_llb::dump_json(&converted.definition)? {
        serde_json::to_writer(&mut stdout, &op)?;
        writeln!(stdout)?;
    }
    Ok(())
}

/// Prints build-check warnings as buildx does at the end of a build.
pub(crate) fn print_warnings(
    out: &mut impl Write,
    name: &str,
    warnings: &[kiln_dockerfile::LintWarning],
) -> std::io::Result<()> {
    if warnings.is_empty() {
        return Ok(());
    }
    let s = if warnings.len() == 1 { "" } else { "s" };
    writeln!(out, "{} warning{s} found:", warnings.len())?;
    for w in warnings {
        writeln!(
            out,
            " - {}: {} ({name}:{})",
            w.rule, w.message, w.lines.start
        )?;
    }
    Ok(())
}
