//! The tty display: buildx's redrawn list of steps.
//!
//! Every frame redraws the whole live area in place: the cursor goes back up to the header
//! line, the header (`[+] Building 3.2s (7/9)`) and one line per started step are written
//! padded to the terminal width with the step's time right-aligned, and lines left over from a
//! longer previous frame are blanked. Finished steps are colored (blue, red for errors,
//! yellow when canceled); running steps with output show the last lines of it, faint, as
//! ` => => # ...`. When the terminal height is known, the list is cut to fit it, keeping the
//! running steps visible, as BuildKit does.

use std::time::SystemTime;

use crate::format::{bytes, secs_between};
use crate::options::Colors;
use crate::trace::Trace;

/// Columns of a log tail line taken by ` => => # ` and a margin.
pub(crate) const TERM_PAD: usize = 10;
/// The smallest log tail BuildKit keeps when the terminal is short.
const TERM_HEIGHT_MIN: usize = 6;

const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";
const FAINT: &str = "2";
const RESET: &str = "\x1b[0m";

struct Job {
    /// (start, stop) pairs; a missing start counts as no time.
    intervals: Vec<(Option<SystemTime>, Option<SystemTime>)>,
    completed: bool,
    name: String,
    status: String,
    has_error: bool,
    canceled: bool,
    vertex: Option<usize>,
    show_term: bool,
}

pub(crate) struct TtyDisplay {
    width: usize,
    height: Option<usize>,
    phase: String,
    description: Option<String>,
    colors: Colors,
    log_lines: usize,
    line_count: usize,
    repeated: bool,
}

/// Wraps `text` (one line, without its newline) in an SGR color.
fn paint(text: &str, sgr: Option<&str>) -> String {
    match sgr {
        Some(sgr) => format!("\x1b[{sgr}m{text}{RESET}"),
        None => text.to_string(),
    }
}

/// Pads `left` so that ` right` ends at column `width`, as BuildKit's `align`.
fn align(left: &str, right: &str, width: usize) -> String {
    let right_width = console::measure_text_width(right);
    let pad = width.saturating_sub(right_width + 1);
    let used = console::measure_text_width(left);
    let mut out = String::with_capacity(left.len() + pad + right.len() + 1);
    out.push_str(left);
    out.extend(std::iter::repeat_n(' ', pad.saturating_sub(used)));
    out.push(' ');
    out.push_str(right);
    out
}

/// Cuts `text` to at most `width` columns.
fn cut(text: &str, width: usize) -> String {
    console::truncate_str(text, width, "").into_owned()
}

impl TtyDisplay {
    pub(crate) fn new(
        width: usize,
        height: Option<usize>,
        phase: String,
        description: Option<String>,
        colors: Colors,
        log_lines: usize,
    ) -> TtyDisplay {
        TtyDisplay {
            width,
            height,
            phase,
            description,
            colors,
            log_lines: log_lines.max(1),
            line_count: 0,
            repeated: false,
        }
    }

    /// Follows a change of the terminal's size.
    pub(crate) fn resize(&mut self, width: usize, height: Option<usize>) {
        self.width = width;
        self.height = height;
    }

    /// The rows and columns of the log tail screens.
    pub(crate) fn term_size(&self) -> (usize, usize) {
        let rows = match self.height {
            None => self.log_lines,
            Some(h) => {
                let min = TERM_HEIGHT_MIN.min(self.log_lines);
                self.log_lines
                    .min(h.saturating_sub(TERM_HEIGHT_MIN + 1))
                    .max(min)
            }
        };
        (rows, self.width.saturating_sub(TERM_PAD).max(1))
    }

    fn jobs(&self, t: &Trace) -> Vec<Job> {
        let mut jobs = Vec::new();
        for idx in &t.started_order {
            let Some(v) = t.vertices.get(*idx) else {
                continue;
            };
            let mut name = v.snap.name.replace('\t', " ");
            let canceled = v.is_canceled();
            let has_error = v.has_error();
            if canceled {
                name = format!("CANCELED {name}");
            } else if has_error {
                name = format!("ERROR {name}");
            }
            if v.snap.cached {
                name = format!("CACHED {name}");
            }
            jobs.push(Job {
                intervals: v.merged.iter().map(|i| (Some(i.start), i.stop)).collect(),
                completed: v.merged.iter().all(|i| i.stop.is_some()),
                name,
                status: String::new(),
                has_error,
                canceled,
                vertex: Some(*idx),
                show_term: false,
            });
            for s in &v.statuses {
                let status = match s.total {
                    Some(total) if total != 0 => {
                        format!("{} / {}", bytes(s.current), bytes(total))
                    }
                    _ if s.current != 0 => bytes(s.current),
                    _ => String::new(),
                };
                jobs.push(Job {
                    intervals: vec![(Some(s.started), s.completed)],
                    completed: s.completed.is_some(),
                    name: format!("=> {}", s.id),
                    status,
                    has_error: false,
                    canceled: false,
                    vertex: None,
                    show_term: false,
                });
            }
            let recent = v
                .most_recent_interval()
                .map_or((None, None), |i| (Some(i.start), i.stop));
            for warning in &v.warnings {
                jobs.push(Job {
                    intervals: vec![recent],
                    completed: false,
                    name: format!("WARN: {warning}"),
                    status: String::new(),
                    has_error: false,
                    canceled: true,
                    vertex: None,
                    show_term: false,
                });
            }
        }
        jobs
    }

    /// Chooses which running steps show their output, and cuts the list to the height.
    fn setup_terminals(&self, t: &Trace, mut jobs: Vec<Job>, all: bool) -> Vec<Job> {
        let term_bytes = |j: &Job| {
            j.vertex
                .and_then(|i| t.vertices.get(i))
                .map(|v| v.term_bytes)
        };
        let mut candidates: Vec<usize> = (0..jobs.len())
            .filter(|i| !jobs[*i].completed && term_bytes(&jobs[*i]).unwrap_or(0) > 0)
            .collect();
        let weight = |j: &Job| {
            j.vertex.and_then(|i| t.vertices.get(i)).map_or(0, |v| {
                v.term_bytes.saturating_add(v.term_count.saturating_mul(50))
            })
        };
        candidates.sort_by_key(|i| std::cmp::Reverse(weight(&jobs[*i])));
        let Some(height) = self.height else {
            for i in candidates {
                jobs[i].show_term = true;
            }
            return jobs;
        };
        let in_use = jobs.iter().filter(|j| !j.completed).count() as isize;
        let mut free = height as isize - 2 - in_use;
        let term_limit = self.term_size().0 as isize + 3;
        let mut to_hide = 0isize;
        for i in candidates {
            if free <= term_limit {
                break;
            }
            jobs[i].show_term = true;
            let used = jobs[i]
                .vertex
                .and_then(|v| t.vertices.get(v))
                .and_then(|v| v.term.as_ref())
                .map_or(0, |term| term.used_height());
            to_hide += used as isize;
            free -= term_limit;
        }
        if all {
            jobs
        } else {
            wrap_height(jobs, height as isize - 2 - to_hide)
        }
    }

    /// Draws one frame; `all` is the final frame, drawn whole and with `FINISHED`.
    pub(crate) fn print(&mut self, t: &mut Trace, now: SystemTime, all: bool, out: &mut Vec<u8>) {
        let jobs = self.jobs(t);
        let jobs = self.setup_terminals(t, jobs, all);
        let width = self.width;
        let mut frame = String::new();
        if self.repeated {
            frame.push_str(&format!("\x1b[{}A", self.line_count + 1));
        }
        self.repeated = true;
        frame.push('\r');
        frame.push_str(HIDE_CURSOR);

        let (total, completed) = t.counts();
        let status = if completed > 0 && completed == total && all {
            "FINISHED"
        } else {
            ""
        };
        let elapsed = t.start_time.map_or(0.0, |start| secs_between(start, now));
        let header = format!(
            "[+] {} {:.1}s ({completed}/{total}) {status}",
            self.phase,
            elapsed.max(0.0)
        );
        let header = match self.description.as_deref() {
            Some(desc) if !desc.is_empty() => align(&header, desc, width.saturating_sub(1)),
            _ => align(&header, "", width),
        };
        frame.push_str(&cut(&header, width));
        frame.push('\n');

        let mut line_count = 0;
        for job in &jobs {
            if job.intervals.is_empty() {
                continue;
            }
            let mut dt: f64 = job
                .intervals
                .iter()
                .map(|(start, stop)| match start {
                    Some(start) => secs_between(*start, stop.unwrap_or(now)),
                    None => 0.0,
                })
                .sum();
            if dt < 0.05 {
                dt = 0.0;
            }
            let prefix = " => ";
            let timer = format!(" {dt:3.1}s");
            // BuildKit counts the newline in the timer's length.
            let mut left = width as isize - prefix.len() as isize - timer.len() as isize - 2;
            let status_width = console::measure_text_width(&job.status) as isize;
            let show_status = !job.status.is_empty() && left + status_width > 20;
            if show_status {
                left -= status_width + 1;
            }
            if left < 12 {
                continue;
            }
            let mut line = format!("{prefix}{}", cut(&job.name, left as usize));
            if show_status {
                line.push(' ');
                line.push_str(&job.status);
            }
            let line = align(&line, &timer, width.saturating_sub(1));
            let color = if !job.completed {
                None
            } else if job.canceled {
                self.colors.cancel.as_deref()
            } else if job.has_error {
                self.colors.error.as_deref()
            } else {
                self.colors.run.as_deref()
            };
            frame.push_str(&paint(&line, color));
            frame.push('\n');
            line_count += 1;
            if job.show_term
                && let Some(v) = job.vertex.and_then(|i| t.vertices.get_mut(i))
            {
                if let Some(term) = v.term.as_ref() {
                    for l in term.lines() {
                        frame.push_str(&paint(&format!(" => => # {l}"), Some(FAINT)));
                        frame.push('\n');
                        line_count += 1;
                    }
                }
                v.term_count += 1;
            }
        }
        if self.line_count > line_count {
            let diff = self.line_count - line_count;
            for _ in 0..diff {
                frame.extend(std::iter::repeat_n(' ', width));
                frame.push('\n');
            }
            frame.push_str(&format!("\x1b[{diff}A\r"));
        }
        self.line_count = line_count;
        frame.push_str(SHOW_CURSOR);
        out.extend_from_slice(frame.as_bytes());
    }
}

/// Keeps the last `limit` jobs, bringing back running jobs that would be cut in place of
/// finished ones, as BuildKit's `wrapHeight`.
fn wrap_height(jobs: Vec<Job>, limit: isize) -> Vec<Job> {
    if limit < 0 {
        return Vec::new();
    }
    let limit = limit as usize;
    if jobs.len() <= limit {
        return jobs;
    }
    let mut jobs = jobs;
    let wrapped = jobs.split_off(jobs.len() - limit);
    let invisible: Vec<Job> = jobs.into_iter().filter(|j| !j.completed).collect();
    if invisible.is_empty() {
        return wrapped;
    }
    let total = wrapped.len();
    let mut budget = invisible.len() as isize;
    let mut rewrapped = Vec::with_capacity(total);
    for job in wrapped {
        if !job.completed || budget <= 0 {
            rewrapped.push(job);
        }
        budget -= 1;
    }
    let free = total - rewrapped.len();
    let mut result: Vec<Job> = invisible.into_iter().rev().take(free).collect();
    result.reverse();
    result.extend(rewrapped);
    result
}
