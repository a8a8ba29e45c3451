//! The state of a build as the displays see it, rebuilt from the events.
//!
//! This follows BuildKit's `progressui` trace: a vertex is shown once it started; the order
//! of the tty lines is the order in which vertices started; a vertex is "updated" (and so
//! printed again by the plain display) when its name, start, completion, cache state or error
//! changes, when it logs, or when one of its sub-tasks progresses.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::SystemTime;

use kiln_progress::Event;

use crate::format::{log_offset, secs_between, unix_nanos};
use crate::logtail::LogTail;

/// How many log lines of a failed step are kept for the error summary.
pub(crate) const ERROR_LOG_LINES: usize = 10;

/// The message suffix that marks a canceled step.
const CANCELED_SUFFIX: &str = "context canceled";

/// The state of a vertex as BuildKit's `client.Vertex` carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    pub name: String,
    pub inputs: Vec<String>,
    pub started: Option<SystemTime>,
    pub completed: Option<SystemTime>,
    pub cached: bool,
    pub error: Option<String>,
}

/// A span of time during which a vertex ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    pub start: SystemTime,
    pub stop: Option<SystemTime>,
}

impl Interval {
    /// How long it lasted, or has lasted until `now`.
    pub(crate) fn duration(&self, now: SystemTime) -> f64 {
        secs_between(self.start, self.stop.unwrap_or(now))
    }
}

/// Merges overlapping intervals; an open interval swallows every interval after it.
pub(crate) fn merge_intervals(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort_by_key(|i| i.start);
    let mut merged = Vec::new();
    let mut iter = intervals.into_iter();
    let Some(mut cur) = iter.next() else {
        return merged;
    };
    for next in iter {
        let Some(cur_stop) = cur.stop else {
            merged.push(cur);
            return merged;
        };
        if cur_stop < next.start {
            merged.push(cur);
            cur = next;
            continue;
        }
        let Some(next_stop) = next.stop else {
            merged.push(Interval {
                start: cur.start,
                stop: None,
            });
            return merged;
        };
        if cur_stop >= next_stop {
            continue;
        }
        cur = Interval {
            start: cur.start,
            stop: Some(next_stop),
        };
    }
    merged.push(cur);
    merged
}

/// A sub-task of a vertex (a layer being pulled, a context being transferred).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusState {
    pub id: String,
    pub vertex: String,
    pub current: u64,
    pub total: Option<u64>,
    pub timestamp: SystemTime,
    pub started: SystemTime,
    pub completed: Option<SystemTime>,
}

/// A vertex and everything the displays remember about it.
pub(crate) struct Vertex {
    pub snap: Snapshot,
    prev: Option<Snapshot>,
    intervals: BTreeMap<i128, Interval>,
    pub merged: Vec<Interval>,
    /// The plain display's number, 0 until it is first printed.
    pub index: usize,
    pub statuses: Vec<StatusState>,
    pub status_updates: BTreeSet<usize>,
    /// Log lines not printed yet by the plain display, each `<offset> <text>`.
    pub logs: Vec<Vec<u8>>,
    pub logs_partial: bool,
    pub logs_offset: usize,
    /// The last lines of output, for the error summary.
    pub error_logs: VecDeque<Vec<u8>>,
    pub last_block_time: Option<SystemTime>,
    pub count: usize,
    pub warnings: Vec<String>,
    pub warning_idx: usize,
    pub term: Option<LogTail>,
    pub term_bytes: usize,
    pub term_count: usize,
}

impl Vertex {
    fn new() -> Vertex {
        Vertex {
            snap: Snapshot::default(),
            prev: None,
            intervals: BTreeMap::new(),
            merged: Vec::new(),
            index: 0,
            statuses: Vec::new(),
            status_updates: BTreeSet::new(),
            logs: Vec::new(),
            logs_partial: false,
            logs_offset: 0,
            error_logs: VecDeque::new(),
            last_block_time: None,
            count: 0,
            warnings: Vec::new(),
            warning_idx: 0,
            term: None,
            term_bytes: 0,
            term_count: 0,
        }
    }

    /// Counts an update, remembering when the current burst of updates began.
    pub(crate) fn bump(&mut self, now: SystemTime) {
        if self.count == 0 {
            self.last_block_time = Some(now);
        }
        self.count += 1;
    }

    pub(crate) fn most_recent_interval(&self) -> Option<&Interval> {
        self.merged.last()
    }

    pub(crate) fn is_started(&self) -> bool {
        !self.merged.is_empty()
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.most_recent_interval()
            .is_some_and(|i| i.stop.is_some())
    }

    /// Whether the vertex failed because the build was canceled.
    pub(crate) fn is_canceled(&self) -> bool {
        self.snap
            .error
            .as_deref()
            .is_some_and(|e| e.ends_with(CANCELED_SUFFIX))
    }

    /// Whether the vertex failed (not canceled).
    pub(crate) fn has_error(&self) -> bool {
        self.snap.error.as_deref().is_some_and(|e| !e.is_empty()) && !self.is_canceled()
    }

    /// The total time spent running, over all of its runs.
    pub(crate) fn run_time(&self, now: SystemTime) -> f64 {
        self.merged.iter().map(|i| i.duration(now)).sum()
    }
}

/// What applying an event changed, for the rawjson display.
pub(crate) enum Applied {
    /// A vertex's state, after the event.
    Vertex(Snapshot),
    /// A sub-task's state, after the event.
    Status(StatusState),
    /// Nothing that rawjson reports from the trace (logs and warnings come from the event).
    Other,
}

/// What the trace keeps besides the vertices themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TraceConfig {
    /// Keep unprinted log lines for the plain display.
    pub pending_logs: bool,
    /// Keep a log tail screen per vertex for the tty display, of this many rows and columns.
    pub terminal: Option<(usize, usize)>,
}

/// The whole build.
pub(crate) struct Trace {
    pub vertices: Vec<Vertex>,
    by_id: HashMap<String, usize>,
    /// Vertices in the order they started (the order of the tty lines).
    pub started_order: Vec<usize>,
    /// Vertices with changes the plain display has not printed.
    pub updates: BTreeSet<usize>,
    pub start_time: Option<SystemTime>,
    /// Every warning, with its vertex id (empty for the build).
    pub warnings: Vec<(String, String)>,
    /// The latest time carried by an event.
    latest: Option<SystemTime>,
    config: TraceConfig,
}

impl Trace {
    pub(crate) fn new(config: TraceConfig) -> Trace {
        Trace {
            vertices: Vec::new(),
            by_id: HashMap::new(),
            started_order: Vec::new(),
            updates: BTreeSet::new(),
            start_time: None,
            warnings: Vec::new(),
            latest: None,
            config,
        }
    }

    pub(crate) fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    fn vertex_or_insert(&mut self, id: &str) -> usize {
        if let Some(idx) = self.by_id.get(id) {
            return *idx;
        }
        let idx = self.vertices.len();
        self.vertices.push(Vertex::new());
        self.by_id.insert(id.to_string(), idx);
        idx
    }

    /// Resizes the log tail screens (tty display).
    pub(crate) fn resize_terminals(&mut self, rows: usize, cols: usize) {
        self.config.terminal = Some((rows, cols));
        for v in &mut self.vertices {
            if let Some(term) = v.term.as_mut() {
                term.resize(rows, cols);
            }
        }
    }

    /// Applies one event at time `now`. Events that carry no time of their own (cached
    /// vertices, sub-task progress, warnings) are stamped with `now`, or with the latest time
    /// seen in an event if that is later (a replayed stream, or a clock that lags).
    pub(crate) fn apply(&mut self, event: &Event, now: SystemTime) -> Applied {
        if let Event::Started { at, .. } | Event::Completed { at, .. } | Event::Log { at, .. } =
            event
        {
            self.latest = Some(self.latest.map_or(*at, |l| l.max(*at)));
        }
        let now = self.latest.map_or(now, |l| l.max(now));
        match event {
            Event::Vertex { id, name, inputs } => {
                let idx = self.vertex_or_insert(id);
                let mut snap = self.vertices[idx].snap.clone();
                snap.name = name.clone();
                snap.inputs = inputs.clone();
                self.set_snapshot(idx, snap, now)
            }
            Event::Started { id, at } => {
                let idx = self.vertex_or_insert(id);
                let mut snap = self.vertices[idx].snap.clone();
                snap.started = Some(*at);
                snap.completed = None;
                snap.error = None;
                self.set_snapshot(idx, snap, now)
            }
            Event::Cached { id } => {
                let idx = self.vertex_or_insert(id);
                let mut snap = self.vertices[idx].snap.clone();
                snap.cached = true;
                let started = *snap.started.get_or_insert(now);
                if snap.completed.is_none() {
                    snap.completed = Some(now.max(started));
                }
                self.set_snapshot(idx, snap, now)
            }
            Event::Completed { id, at, error } => {
                let idx = self.vertex_or_insert(id);
                let mut snap = self.vertices[idx].snap.clone();
                if snap.cached && snap.completed.is_some() && error.is_none() {
                    // A cached vertex is complete already; a later plain completion adds
                    // nothing and must not print it a second time.
                    return Applied::Vertex(snap);
                }
                snap.started.get_or_insert(*at);
                snap.completed = Some(*at);
                snap.error = error.clone();
                self.set_snapshot(idx, snap, now)
            }
            Event::Log { id, data, at, .. } => {
                self.log(id, data, *at, now);
                Applied::Other
            }
            Event::Status {
                id,
                task,
                current,
                total,
                completed,
            } => self.status(id, task, *current, *total, *completed, now),
            Event::Warning { id, message } => {
                self.warnings.push((id.clone(), message.clone()));
                if let Some(idx) = self.index_of(id) {
                    let v = &mut self.vertices[idx];
                    v.warnings.push(message.clone());
                    v.bump(now);
                }
                Applied::Other
            }
        }
    }

    /// BuildKit's `trace.update` for one vertex message.
    fn set_snapshot(&mut self, idx: usize, snap: Snapshot, now: SystemTime) -> Applied {
        if self.start_time.is_none() {
            self.start_time = snap.started;
        }
        let was_started = self.vertices[idx].is_started();
        self.trigger_vertex_event(idx, &snap, now);
        if snap.started.is_some() && !was_started {
            self.started_order.push(idx);
        }
        let v = &mut self.vertices[idx];
        if let Some(start) = snap.started {
            v.intervals.insert(
                unix_nanos(start),
                Interval {
                    start,
                    stop: snap.completed,
                },
            );
            v.merged = merge_intervals(v.intervals.values().copied().collect());
        }
        v.snap = snap.clone();
        Applied::Vertex(snap)
    }

    fn trigger_vertex_event(&mut self, idx: usize, snap: &Snapshot, now: SystemTime) {
        if snap.started.is_none() {
            return;
        }
        let v = &mut self.vertices[idx];
        let changed = match &v.prev {
            None => true,
            Some(old) => {
                old.name != snap.name
                    || old.started != snap.started
                    || (snap.completed.is_some() && old.completed != snap.completed)
                    || old.cached != snap.cached
                    || old.error != snap.error
            }
        };
        if changed {
            v.bump(now);
            self.updates.insert(idx);
        }
        v.prev = Some(snap.clone());
    }

    fn log(&mut self, id: &str, data: &[u8], at: SystemTime, now: SystemTime) {
        // Like BuildKit, output of a vertex nobody announced is not shown; empty writes carry
        // nothing.
        let Some(idx) = self.index_of(id) else { return };
        if data.is_empty() {
            return;
        }
        let pending_logs = self.config.pending_logs;
        let terminal = self.config.terminal;
        let v = &mut self.vertices[idx];
        if let Some((rows, cols)) = terminal {
            let term = v.term.get_or_insert_with(|| LogTail::new(rows, cols));
            v.term_bytes = v.term_bytes.saturating_add(data.len());
            term.write(data);
        }
        let offset = v
            .most_recent_interval()
            .map_or(0.0, |i| secs_between(i.start, at));
        let prefix = log_offset(offset);
        let complete = data.last() == Some(&b'\n');
        let body = if complete {
            data.get(..data.len() - 1).unwrap_or_default()
        } else {
            data
        };
        for (i, segment) in body.split(|b| *b == b'\n').enumerate() {
            let continues = i == 0 && v.logs_partial;
            if pending_logs {
                match v.logs.last_mut() {
                    Some(last) if continues => last.extend_from_slice(segment),
                    _ => v.logs.push(line_with_prefix(&prefix, segment)),
                }
            }
            match v.error_logs.back_mut() {
                Some(last) if continues => last.extend_from_slice(segment),
                _ => {
                    v.error_logs.push_back(line_with_prefix(&prefix, segment));
                    if v.error_logs.len() > ERROR_LOG_LINES {
                        v.error_logs.pop_front();
                    }
                }
            }
        }
        v.logs_partial = !complete;
        v.bump(now);
        self.updates.insert(idx);
    }

    fn status(
        &mut self,
        vertex: &str,
        task: &str,
        current: u64,
        total: Option<u64>,
        completed: bool,
        now: SystemTime,
    ) -> Applied {
        let fresh = StatusState {
            id: task.to_string(),
            vertex: vertex.to_string(),
            current,
            total,
            timestamp: now,
            started: now,
            completed: completed.then_some(now),
        };
        let Some(idx) = self.index_of(vertex) else {
            return Applied::Status(fresh);
        };
        let v = &mut self.vertices[idx];
        let sidx = match v.statuses.iter().position(|s| s.id == task) {
            Some(sidx) => {
                if let Some(s) = v.statuses.get_mut(sidx) {
                    s.current = current;
                    s.total = total;
                    s.timestamp = now;
                    s.completed = if completed {
                        Some(s.completed.unwrap_or(now))
                    } else {
                        None
                    };
                }
                sidx
            }
            None => {
                v.statuses.push(fresh);
                v.statuses.len() - 1
            }
        };
        v.status_updates.insert(sidx);
        v.bump(now);
        self.updates.insert(idx);
        match v.statuses.get(sidx) {
            Some(s) => Applied::Status(s.clone()),
            None => Applied::Other,
        }
    }

    /// How many vertices are known, and how many of them completed.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let completed = self.vertices.iter().filter(|v| v.is_completed()).count();
        (self.vertices.len(), completed)
    }

    /// BuildKit's error summary: for each failed step (not canceled) in start order, its
    /// name and its last lines of output between `------` rulers.
    pub(crate) fn error_logs(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for idx in &self.started_order {
            let Some(v) = self.vertices.get(*idx) else {
                continue;
            };
            if !v.has_error() {
                continue;
            }
            out.extend_from_slice(b"------\n");
            out.extend_from_slice(format!(" > {}:\n", v.snap.name).as_bytes());
            for line in &v.error_logs {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            out.extend_from_slice(b"------\n");
        }
        out
    }

    /// The distinct warning messages, in the order they first came.
    pub(crate) fn distinct_warnings(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.warnings
            .iter()
            .filter(|(_, message)| seen.insert(message.clone()))
            .map(|(_, message)| message.clone())
            .collect()
    }
}

fn line_with_prefix(prefix: &str, segment: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(prefix.len() + 1 + segment.len());
    line.extend_from_slice(prefix.as_bytes());
    line.push(b' ');
    line.extend_from_slice(segment);
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn iv(start: u64, stop: Option<u64>) -> Interval {
        Interval {
            start: t(start),
            stop: stop.map(t),
        }
    }

    #[test]
    fn intervals_merge_like_buildkit() {
        let cases: Vec<(Vec<Interval>, Vec<Interval>)> = vec![
            (vec![], vec![]),
            (vec![iv(1, Some(2))], vec![iv(1, Some(2))]),
            (
                vec![iv(3, Some(4)), iv(1, Some(2))],
                vec![iv(1, Some(2)), iv(3, Some(4))],
            ),
            (vec![iv(1, Some(3)), iv(2, Some(4))], vec![iv(1, Some(4))]),
            (vec![iv(1, Some(5)), iv(2, Some(4))], vec![iv(1, Some(5))]),
            (vec![iv(1, None), iv(2, Some(4))], vec![iv(1, None)]),
            (
                vec![iv(1, Some(3)), iv(2, None), iv(5, Some(6))],
                vec![iv(1, None)],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(merge_intervals(input.clone()), want, "merging {input:?}");
        }
    }
}
