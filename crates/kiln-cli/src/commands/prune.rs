//! `kiln prune`: removes build cache as `buildx prune` does, and the garbage collection that
//! runs after each `kiln build`.
//!
//! The garbage collection follows BuildKit's default policy (see
//! [`kiln_worker::default_gc_policy`]). It is configured through the environment:
//!
//! - `KILN_GC=0` turns it off;
//! - `KILN_GC_RESERVED_SPACE`, `KILN_GC_MAX_USED_SPACE`, `KILN_GC_MIN_FREE_SPACE` set the limits
//!   as buildkitd's `reservedSpace`, `maxUsedSpace` and `minFreeSpace` do: a size (`512MB`,
//!   binary units as docker's) or a percentage of the disk (`10%`). Setting any of them replaces
//!   all of BuildKit's default limits (10 % of the disk at most 10 GB reserved, 80 % at most
//!   100 GB used, 20 % free).

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::SystemTime;

use kiln_progress::{Event, ProgressSink};
use kiln_worker::{DiskSpace, GcConfig, PruneOptions, Ref, Storage};

use crate::cli::PruneArgs;
use crate::commands::du::{human_size, parse_filters, row, verbose};
use crate::exit::UsageError;

const NORMAL_WARNING: &str =
    "WARNING! This will remove all dangling build cache. Are you sure you want to continue?";
const ALL_WARNING: &str =
    "WARNING! This will remove all build cache. Are you sure you want to continue?";

/// `kiln prune [--all] [--filter ...] [--keep-storage SIZE] [--force]`.
pub fn prune(args: &PruneArgs) -> anyhow::Result<()> {
    let (filter, until) = parse_filters(&args.filters)?;
    let size = |flag: &str, v: &Option<String>| -> anyhow::Result<u64> {
        match v {
            None => Ok(0),
            Some(text) => kiln_worker::parse_size(text).map_err(|e| {
                UsageError(format!(
                    "invalid argument {text:?} for \"--{flag}\" flag: {e}"
                ))
                .into()
            }),
        }
    };
    let reserved = match (&args.reserved_space, &args.keep_storage) {
        (Some(_), _) => size("reserved-space", &args.reserved_space)?,
        (None, _) => size("keep-storage", &args.keep_storage)?,
    };
    let opts = PruneOptions {
        all: args.all,
        filter,
        keep_duration: until,
        reserved_space: reserved,
        max_used_space: size("max-used-space", &args.max_used_space)?,
        min_free_space: size("min-free-space", &args.min_free_space)?,
    };
    if !args.force {
        let warning = if args.all {
            ALL_WARNING
        } else {
            NORMAL_WARNING
        };
        // As buildx: the question on stdout, one line read from stdin (a terminal or not), and
        // anything but `y` leaves the cache alone.
        let mut stdout = std::io::stdout().lock();
        write!(stdout, "{warning} [y/N] ")?;
        stdout.flush()?;
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim_end_matches(['\r', '\n']).to_lowercase() != "y" {
            return Ok(());
        }
    }
    let (_lock, storage) = super::open_storage(args.root.as_deref())?;
    let removed = storage.prune(&opts, &[])?;
    let now = SystemTime::now();
    let mut out = String::new();
    if args.verbose {
        out.push_str(&verbose(&removed, now));
    } else if !removed.is_empty() {
        let mut lines = vec!["ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED".to_string()];
        lines.extend(removed.iter().map(|r| row(r, now)));
        out.push_str(&crate::commands::du::tabwrite(&lines));
    }
    let total: u64 = removed.iter().map(|r| r.size).sum();
    out.push_str(&crate::commands::du::tabwrite(&[format!(
        "Total:\t{}",
        human_size(total)
    )]));
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// The garbage collection configuration from the environment (see the module documentation);
/// `None` when it is turned off.
fn gc_config(env: impl Fn(&str) -> Option<String>) -> Result<Option<GcConfig>, String> {
    if env("KILN_GC").is_some_and(|v| matches!(v.trim(), "0" | "false" | "off")) {
        return Ok(None);
    }
    let space = |name: &str| -> Result<Option<DiskSpace>, String> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => DiskSpace::parse(&v)
                .map(Some)
                .map_err(|e| format!("{name}: {e}")),
        }
    };
    Ok(Some(GcConfig {
        reserved_space: space("KILN_GC_RESERVED_SPACE")?,
        max_used_space: space("KILN_GC_MAX_USED_SPACE")?,
        min_free_space: space("KILN_GC_MIN_FREE_SPACE")?,
    }))
}

/// Runs the garbage collection after a build whose result is exported, under the build's state
/// lock; `result` (and what it is built on) is kept. Failures become warnings: the build itself
/// succeeded.
pub(crate) fn gc_after_build(storage: &Storage, result: &Ref, sink: &Arc<dyn ProgressSink>) {
    let warn = |message: String| {
        sink.send(Event::Warning {
            id: String::new(),
            message,
        })
    };
    let cfg = match gc_config(|k| std::env::var(k).ok()) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return,
        Err(e) => return warn(format!("garbage collection skipped: {e}")),
    };
    let (disk_total, _) = storage.disk_stat();
    let policies = kiln_worker::default_gc_policy(&cfg, disk_total);
    let held = [result.clone()];
    if let Err(e) = tokio::task::block_in_place(|| storage.collect(&policies, &held)) {
        warn(format!("garbage collection failed: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_config_from_env() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(gc_config(env(&[])), Ok(Some(GcConfig::default())));
        assert_eq!(gc_config(env(&[("KILN_GC", "0")])), Ok(None));
        assert_eq!(
            gc_config(env(&[
                ("KILN_GC_MAX_USED_SPACE", "1MB"),
                ("KILN_GC_RESERVED_SPACE", "5%")
            ])),
            Ok(Some(GcConfig {
                max_used_space: Some(DiskSpace::Bytes(1 << 20)),
                reserved_space: Some(DiskSpace::Percent(5)),
                min_free_space: None,
            }))
        );
        assert!(gc_config(env(&[("KILN_GC_MIN_FREE_SPACE", "lots")])).is_err());
    }
}
