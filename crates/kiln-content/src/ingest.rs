//! Names of ingest files, and which of them belong to processes that are gone.
//!
//! An ingest file is named `<pid>-<start>-<random>.part`, where `<start>` is the start time of
//! the writing process (field 22 of `/proc/<pid>/stat`, in clock ticks since boot). The pair
//! identifies a process even when its pid is reused later, so that a store opened by one
//! process never removes the ingests another live process is still writing.

use std::fs;

/// The identity of a process: its pid and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessTag {
    pub(crate) pid: u32,
    /// The start time in clock ticks since boot, or 0 when `/proc` could not tell.
    pub(crate) start: u64,
}

impl ProcessTag {
    /// The identity of the calling process.
    pub(crate) fn current() -> ProcessTag {
        let pid = std::process::id();
        ProcessTag {
            pid,
            start: start_time("self").unwrap_or(0),
        }
    }

    /// The prefix of the ingest files this process writes.
    pub(crate) fn prefix(&self) -> String {
        format!("{}-{}-", self.pid, self.start)
    }

    /// The process an ingest file name belongs to, if the name has the ingest form.
    pub(crate) fn of_ingest_name(name: &str) -> Option<ProcessTag> {
        let rest = name.strip_suffix(SUFFIX)?;
        let mut parts = rest.splitn(3, '-');
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        parts.next().filter(|random| !random.is_empty())?;
        Some(ProcessTag { pid, start })
    }

    /// Whether this process is still running (the same process, not a reuse of its pid).
    pub(crate) fn is_alive(&self) -> bool {
        if *self == ProcessTag::current() {
            return true;
        }
        match start_time(&self.pid.to_string()) {
            Some(start) => self.start == 0 || start == self.start,
            None => false,
        }
    }
}

/// The suffix of ingest file names.
pub(crate) const SUFFIX: &str = ".part";

/// The start time of a process (`self` or a pid), from `/proc/<pid>/stat`.
fn start_time(pid: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&text)
}

/// Field 22 of a `/proc/<pid>/stat` line. The second field (the command name, in parentheses)
/// may contain spaces and parentheses itself, so fields are counted after its last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    // After the command come field 3 (state) onwards; field 22 is the 20th of them.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{ProcessTag, parse_start_time};

    fn check(name: &str, expected: Option<(u32, u64)>) -> Option<String> {
        let got = ProcessTag::of_ingest_name(name).map(|tag| (tag.pid, tag.start));
        (got != expected).then(|| format!("{name:?}: got {got:?}, want {expected:?}"))
    }

    #[test]
    fn parses_ingest_names() {
        let cases = [
            ("12-345-abcDEF.part", Some((12, 345))),
            ("12-345-a-b.part", Some((12, 345))),
            ("12-345-.part", None),
            ("12-345-abc", None),
            ("x-345-abc.part", None),
            ("12-abc.part", None),
            ("", None),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(name, want)| check(name, *want))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn reads_start_time_after_the_command_name() {
        let line = "4242 (a) (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
        assert_eq!(parse_start_time(line), Some(987_654));
        assert_eq!(parse_start_time("4242 (short) S 1 2"), None);
        let own = ProcessTag::current();
        assert!(
            own.start > 0,
            "no start time read for this process: {own:?}"
        );
        assert!(own.is_alive());
        let gone = ProcessTag {
            pid: own.pid,
            start: own.start + 1,
        };
        assert!(!gone.is_alive(), "a reused pid counted as the same process");
    }
}
