//! The plain display: BuildKit's `textMux`.
//!
//! Each vertex is numbered when it is first printed (`#3 [build 2/4] RUN make`); its new
//! sub-task progress, warnings and log lines follow, each prefixed with its number; when it
//! completes, `#3 DONE 1.2s`, `#3 CACHED` or `#3 ERROR: ...` closes the group. Groups are
//! separated by a blank line. When several vertices are busy at once, one of them is
//! "current"; the display switches to another one (closing the current group with `#3 ...`)
//! when the current one has been quiet for long enough compared with the others, or when
//! another has waited more than ten seconds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use crate::format::{bytes, secs_between};
use crate::trace::Trace;

/// Two prints of the same sub-task need at least this much progress (a fraction of the
/// total) or this much time between them.
const MIN_PROGRESS_DELTA: f64 = 0.05;
const MIN_TIME_DELTA: f64 = 5.0;
/// Anti-flicker: how long a busy vertex keeps the display before sharing it.
const ANTI_FLICKER: f64 = 5.0;
/// A vertex that has waited this long to be shown gets the display.
const MAX_DELAY: f64 = 10.0;

pub(crate) struct PlainPrinter {
    current: Option<usize>,
    last: HashMap<String, (u64, SystemTime)>,
    not_first: bool,
    next_index: usize,
    description: Option<String>,
}

struct Stat {
    block_time: f64,
    speed: f64,
    share: f64,
    over_limit: bool,
}

impl PlainPrinter {
    pub(crate) fn new(description: Option<String>) -> PlainPrinter {
        PlainPrinter {
            current: None,
            last: HashMap::new(),
            not_first: false,
            next_index: 0,
            description,
        }
    }

    fn print_vtx(&mut self, t: &mut Trace, idx: usize, now: SystemTime, out: &mut Vec<u8>) {
        if let Some(desc) = self.description.take() {
            out.extend_from_slice(format!("#0 {desc}\n").as_bytes());
            self.not_first = true;
        }
        if t.vertices.get(idx).is_none() {
            return;
        }
        if t.vertices[idx].index == 0 {
            self.next_index += 1;
            t.vertices[idx].index = self.next_index;
        }
        if self.current != Some(idx) {
            if let Some(old) = self.current.and_then(|c| t.vertices.get_mut(c)) {
                // End a partial line that was printed (BuildKit also does this when the
                // partial line is still waiting to be printed, leaving a stray blank line).
                if old.logs_partial && old.logs_offset > 0 {
                    out.push(b'\n');
                }
                old.logs_offset = 0;
                old.count = 0;
                out.extend_from_slice(format!("#{} ...\n", old.index).as_bytes());
            }
            if self.not_first {
                out.push(b'\n');
            } else {
                self.not_first = true;
            }
            let v = &t.vertices[idx];
            out.extend_from_slice(format!("#{} {}\n", v.index, v.snap.name).as_bytes());
        }

        let v = &mut t.vertices[idx];
        let index = v.index;
        let mut open_status = false;
        for (sidx, s) in v.statuses.iter().enumerate() {
            if !v.status_updates.contains(&sidx) {
                continue;
            }
            if let (Some((last_current, last_time)), None) = (self.last.get(&s.id), s.completed) {
                let progress = match s.total {
                    Some(total) if total > 0 => {
                        (s.current as f64 - *last_current as f64) / total as f64
                    }
                    _ => 0.0,
                };
                let elapsed = secs_between(*last_time, s.timestamp);
                if progress < MIN_PROGRESS_DELTA && elapsed < MIN_TIME_DELTA {
                    continue;
                }
            }
            self.last.insert(s.id.clone(), (s.current, s.timestamp));
            let amount = match s.total {
                Some(total) if total != 0 => format!(" {} / {}", bytes(s.current), bytes(total)),
                _ if s.current != 0 => format!(" {}", bytes(s.current)),
                _ => String::new(),
            };
            let end = s.completed.unwrap_or(s.timestamp);
            let diff = secs_between(s.started, end);
            let mut time = if diff > 0.01 {
                format!(" {diff:.1}s")
            } else {
                String::new()
            };
            if s.completed.is_some() {
                time.push_str(" done");
            } else {
                open_status = true;
            }
            out.extend_from_slice(format!("#{index} {}{amount}{time}\n", s.id).as_bytes());
        }
        v.status_updates.clear();

        for warning in v.warnings.iter().skip(v.warning_idx) {
            out.extend_from_slice(format!("#{index} WARN: {warning}\n").as_bytes());
        }
        v.warning_idx = v.warnings.len();

        let count = v.logs.len();
        for (i, line) in v.logs.iter().enumerate() {
            if i == 0 && v.logs_offset > 0 {
                out.extend_from_slice(line.get(v.logs_offset..).unwrap_or_default());
            } else {
                out.extend_from_slice(format!("#{index} ").as_bytes());
                out.extend_from_slice(line);
            }
            if i + 1 != count || !v.logs_partial {
                out.push(b'\n');
            }
        }
        if !v.logs.is_empty() {
            if v.logs_partial {
                let keep = v.logs.split_off(count - 1);
                v.logs = keep;
                v.logs_offset = v.logs.first().map_or(0, Vec::len);
            } else {
                v.logs.clear();
                v.logs_offset = 0;
            }
        }

        self.current = Some(idx);
        if v.is_completed() && !open_status {
            self.current = None;
            v.count = 0;
            if v.logs_partial {
                out.push(b'\n');
            }
            let line = if v.is_canceled() {
                format!("#{index} CANCELED\n")
            } else if let Some(error) = v.snap.error.as_deref().filter(|e| !e.is_empty()) {
                format!("#{index} ERROR: {error}\n")
            } else if v.snap.cached {
                format!("#{index} CACHED\n")
            } else {
                format!("#{index} DONE {:.1}s\n", v.run_time(now))
            };
            out.extend_from_slice(line.as_bytes());
        }
        t.updates.remove(&idx);
    }

    /// Prints what changed since the last call.
    pub(crate) fn print(&mut self, t: &mut Trace, now: SystemTime, out: &mut Vec<u8>) {
        let mut completed = Vec::new();
        let mut rest = BTreeSet::new();
        for idx in &t.updates {
            match t.vertices.get(*idx) {
                Some(v) if v.is_completed() => completed.push(*idx),
                Some(_) => {
                    rest.insert(*idx);
                }
                None => {}
            }
        }
        let current = self.current;

        // Vertices that completed are printed first, the current one before the others.
        if let Some(c) = current.filter(|c| completed.contains(c)) {
            self.print_vtx(t, c, now, out);
        }
        completed.sort_by_key(|idx| t.vertices[*idx].most_recent_interval().and_then(|i| i.stop));
        for idx in completed
            .iter()
            .copied()
            .filter(|idx| Some(*idx) != current)
        {
            self.print_vtx(t, idx, now, out);
        }

        if rest.is_empty() {
            if let Some(v) = current.and_then(|c| t.vertices.get(c))
                && v.is_started()
                && !v.is_completed()
            {
                return;
            }
            // Make any open vertex the current one.
            let open = t.started_order.iter().copied().find(|idx| {
                t.vertices
                    .get(*idx)
                    .is_some_and(|v| v.is_started() && !v.is_completed())
            });
            if let Some(idx) = open {
                self.print_vtx(t, idx, now, out);
            }
            return;
        }

        // Now the current one, if it is busy.
        if let Some(c) = current.filter(|c| rest.contains(c)) {
            self.print_vtx(t, c, now, out);
        }

        let current_done = current.is_none_or(|c| completed.contains(&c));
        if let Some(c) = current.filter(|_| !current_done) {
            rest.insert(c);
        }
        let mut stats: BTreeMap<usize, Stat> = BTreeMap::new();
        let mut sum = 0.0;
        let mut max: Option<usize> = None;
        for idx in &rest {
            let Some(v) = t.vertices.get(*idx) else {
                continue;
            };
            let Some(block_start) = v.last_block_time else {
                continue;
            };
            let block_time = secs_between(block_start, now).max(1e-9);
            let speed = v.count as f64 / block_time;
            let over_limit = block_time > MAX_DELAY && Some(*idx) != current;
            sum += speed;
            let faster = max
                .and_then(|m| stats.get(&m))
                .is_none_or(|m| m.speed < speed);
            stats.insert(
                *idx,
                Stat {
                    block_time,
                    speed,
                    share: 0.0,
                    over_limit,
                },
            );
            if over_limit || faster {
                max = Some(*idx);
            }
        }
        for stat in stats.values_mut() {
            stat.share = stat.speed / sum;
        }

        if current_done {
            if let Some(m) = max {
                self.print_vtx(t, m, now, out);
            }
            return;
        }
        // Show vertices that have waited too long.
        if let Some(idx) = stats
            .iter()
            .find(|(_, s)| s.over_limit)
            .map(|(idx, _)| *idx)
        {
            self.print_vtx(t, idx, now, out);
            return;
        }
        // A fair split between busy vertices.
        let Some(cur) = current.and_then(|c| stats.get(&c)) else {
            return;
        };
        if 1.0 / (1.0 - cur.share) * ANTI_FLICKER < cur.block_time
            && let Some(m) = max
        {
            self.print_vtx(t, m, now, out);
        }
    }
}
