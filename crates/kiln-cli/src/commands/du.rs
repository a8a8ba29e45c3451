//! `kiln du`: the disk usage of the build cache, printed as `buildx du` prints it.

use std::io::Write;
use std::time::{Duration, SystemTime};

use kiln_worker::{Filter, UsageRecord};

use crate::cli::DuArgs;
use crate::exit::UsageError;

/// `kiln du [--verbose] [--filter ...]`.
pub fn du(args: &DuArgs) -> anyhow::Result<()> {
    let (filter, until) = parse_filters(&args.filters)?;
    let (_lock, storage) = super::open_storage(args.root.as_deref())?;
    let now = SystemTime::now();
    let records: Vec<UsageRecord> = storage
        .disk_usage(&filter, &[])?
        .into_iter()
        .filter(|r| unused_for(r, until, now))
        .collect();
    let mut out = String::new();
    if args.verbose {
        out.push_str(&verbose(&records, now));
    } else {
        out.push_str(&table(&records, now));
    }
    if args.filters.is_empty() {
        out.push_str(&summary(&records));
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// Whether a record was not used within `until` (always, without `until`).
pub(crate) fn unused_for(r: &UsageRecord, until: Option<Duration>, now: SystemTime) -> bool {
    match (until, r.last_used) {
        (Some(d), Some(used)) => now.duration_since(used).is_ok_and(|age| age >= d),
        _ => true,
    }
}

/// Turns buildx's `--filter key=value` flags into a BuildKit filter and the `until` duration, as
/// buildx's `toBuildkitPruneInfo` does: `id=` matches a prefix-free regexp (`id~=`), a key ending
/// in `!` or `~` keeps its operator, other keys compare for equality.
pub(crate) fn parse_filters(flags: &[String]) -> anyhow::Result<(Filter, Option<Duration>)> {
    let mut until = None;
    let mut parts = Vec::new();
    for flag in flags {
        let (key, value) = match flag.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (flag.trim(), None),
        };
        match (key, value) {
            ("until" | "unused-for", Some(v)) => {
                if until.is_some() {
                    return Err(UsageError(format!("{key:?} filter expects only one value")).into());
                }
                until = Some(parse_go_duration(v).ok_or_else(|| {
                    UsageError(format!(
                        "{key:?} filter expects a duration (e.g., '24h'), got {v:?}"
                    ))
                })?);
            }
            (k, None) => parts.push(k.to_string()),
            ("id", Some(v)) => parts.push(format!("id~={v}")),
            (k, Some(v)) if k.ends_with('!') || k.ends_with('~') => parts.push(format!("{k}={v}")),
            (k, Some(v)) => parts.push(format!("{k}=={v}")),
        }
    }
    let filter = Filter::parse(&parts.join(",")).map_err(|e| UsageError(e.to_string()))?;
    Ok((filter, until))
}

/// Parses a Go duration (`24h`, `1h30m`, `90s`, `1.5h`, `500ms`).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(end);
        let value: f64 = num.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * secs;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// go-units' `HumanSize`: decimal units, four significant digits (`1.235MB`, `0B`).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g4(value), UNITS[unit])
}

/// Go's `%.4g` for values below 10000.
fn format_g4(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    // The exponent after rounding to four significant digits.
    let sci = format!("{value:.3e}");
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let decimals = usize::try_from(3 - exp).unwrap_or(0);
    let mut s = format!("{value:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// go-units' `HumanDuration`.
pub(crate) fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".to_string();
    }
    if seconds == 1 {
        return "1 second".to_string();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    if hours == 1 {
        return "About an hour".to_string();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

fn ago(r: &UsageRecord, now: SystemTime) -> String {
    r.last_used
        .map(|t| {
            format!(
                "{} ago",
                human_duration(now.duration_since(t).unwrap_or_default())
            )
        })
        .unwrap_or_default()
}

/// The table of `buildx du` (and of `buildx prune`): a header and one row per record.
pub(crate) fn table(records: &[UsageRecord], now: SystemTime) -> String {
    let mut lines = vec!["ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED".to_string()];
    for r in records {
        lines.push(row(r, now));
    }
    tabwrite(&lines)
}

/// One row of the table, in buildx's `%-40s\t%-5v\t%-10s\t%s` layout.
pub(crate) fn row(r: &UsageRecord, now: SystemTime) -> String {
    let id = if r.mutable {
        format!("{}*", r.id)
    } else {
        r.id.clone()
    };
    let mut size = human_size(r.size);
    if r.shared {
        size.push('*');
    }
    format!("{id:<40}\t{:<5}\t{size:<10}\t{}", !r.in_use, ago(r, now))
}

/// The `--verbose` form: one block of `Key:\tvalue` lines per record.
pub(crate) fn verbose(records: &[UsageRecord], now: SystemTime) -> String {
    let mut lines = Vec::new();
    for r in records {
        lines.push(format!("ID:\t{}", r.id));
        if !r.parents.is_empty() {
            lines.push(format!("Parent:\t{}", r.parents.join(",")));
        }
        lines.push(format!("Created at:\t{}", go_time(r.created)));
        lines.push(format!("Mutable:\t{}", r.mutable));
        lines.push(format!("Reclaimable:\t{}", !r.in_use));
        lines.push(format!("Shared:\t{}", r.shared));
        lines.push(format!("Size:\t{}", human_size(r.size)));
        if !r.description.is_empty() {
            lines.push(format!("Description:\t{}", r.description));
        }
        lines.push(format!("Usage count:\t{}", r.usage_count));
        if r.last_used.is_some() {
            lines.push(format!("Last used:\t{}", ago(r, now)));
        }
        lines.push(format!("Type:\t{}", r.record_type.as_str()));
        lines.push(String::new());
    }
    tabwrite(&lines)
}

/// The totals `buildx du` prints after the table.
pub(crate) fn summary(records: &[UsageRecord]) -> String {
    let total: u64 = records.iter().map(|r| r.size).sum();
    let reclaimable: u64 = records.iter().filter(|r| !r.in_use).map(|r| r.size).sum();
    let shared: u64 = records.iter().filter(|r| r.shared).map(|r| r.size).sum();
    let mut lines = Vec::new();
    if shared > 0 {
        lines.push(format!("Shared:\t{}", human_size(shared)));
        lines.push(format!("Private:\t{}", human_size(total - shared)));
    }
    lines.push(format!("Reclaimable:\t{}", human_size(reclaimable)));
    lines.push(format!("Total:\t{}", human_size(total)));
    tabwrite(&lines)
}

/// A time as Go prints a `time.Time` in UTC (`2024-05-01 10:00:00.123456789 +0000 UTC`).
fn go_time(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86400).unwrap_or(0);
    let rem = secs % 86400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut frac = format!("{:09}", d.subsec_nanos());
    while frac.ends_with('0') {
        frac.pop();
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{frac} +0000 UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Go's `text/tabwriter` as buildx configures it (`minwidth 1, tabwidth 8, padding 1`, padded
/// with tabs): the tab-terminated cells of consecutive lines form columns, each as wide as its
/// widest cell plus one, rounded up to a tab stop.
pub(crate) fn tabwrite(lines: &[String]) -> String {
    const TAB: usize = 8;
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths: Vec<Vec<usize>> = vec![Vec::new(); lines.len()];
    // Column c of a block of consecutive lines that all have a tab-terminated cell c.
    let max_cols = cells
        .iter()
        .map(|c| c.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    for (i, w) in widths.iter_mut().enumerate() {
        *w = vec![0; cells[i].len().saturating_sub(1)];
    }
    for col in 0..max_cols {
        let mut start = 0;
        while start < lines.len() {
            if cells[start].len().saturating_sub(1) <= col {
                start += 1;
                continue;
            }
            let mut end = start;
            while end < lines.len() && cells[end].len().saturating_sub(1) > col {
                end += 1;
            }
            let width = cells[start..end]
                .iter()
                .map(|c| c[col].chars().count() + 1)
                .max()
                .unwrap_or(1);
            let width = width.div_ceil(TAB) * TAB;
            for w in &mut widths[start..end] {
                w[col] = width;
            }
            start = end;
        }
    }
    for (i, line) in cells.iter().enumerate() {
        let last = line.len() - 1;
        for (c, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if c < last {
                let pad = widths[i][c].saturating_sub(cell.chars().count());
                for _ in 0..pad.div_ceil(TAB) {
                    out.push('\t');
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_size(bytes: u64, want: &str) {
        assert_eq!(human_size(bytes), want, "{bytes}");
    }

    #[test]
    fn sizes_as_go_units() {
        check_size(0, "0B");
        check_size(999, "999B");
        check_size(1000, "1kB");
        check_size(1234567, "1.235MB");
        check_size(12_345, "12.35kB");
        check_size(100_000, "100kB");
        check_size(999_950, "1000kB");
        check_size(2_000_000_000, "2GB");
    }

    #[test]
    fn durations_as_go_units() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (7200, "2 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}");
        }
        assert_eq!(parse_go_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(
            go_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14 22:13:20 +0000 UTC"
        );
    }

    #[test]
    fn tabwriter_pads_with_tabs() {
        let lines = vec!["Reclaimable:\t1kB".to_string(), "Total:\t2kB".to_string()];
        assert_eq!(tabwrite(&lines), "Reclaimable:\t1kB\nTotal:\t\t2kB\n");
    }
}
