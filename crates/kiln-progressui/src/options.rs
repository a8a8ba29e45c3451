//! How a display is set up: terminal size, colors, clock, and the environment variables that
//! buildx and BuildKit read, passed in by the caller.

use std::fmt;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};

/// The colors of the tty display, as ANSI SGR parameters (`"34"` for blue).
///
/// `None` leaves a line in the terminal's default color.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colors {
    /// Finished steps (BuildKit's `run`, blue).
    pub run: Option<String>,
    /// Canceled steps (yellow).
    pub cancel: Option<String>,
    /// Warnings (yellow), also used for the warning summary at the end.
    pub warning: Option<String>,
    /// Failed steps (red).
    pub error: Option<String>,
}

impl Default for Colors {
    /// BuildKit's colors on Linux.
    fn default() -> Colors {
        Colors {
            run: Some("34".into()),
            cancel: Some("33".into()),
            warning: Some("33".into()),
            error: Some("31".into()),
        }
    }
}

impl Colors {
    /// No colors at all (`NO_COLOR`).
    pub fn none() -> Colors {
        Colors {
            run: None,
            cancel: None,
            warning: None,
            error: None,
        }
    }

    /// Applies a `BUILDKIT_COLORS` value (`run=123,20,245:error=yellow:cancel=blue`) on top
    /// of these colors. Keys are `run`, `cancel`, `error` and `warning`; values are color
    /// names (`red`, `light-blue`, `default`...) or `R,G,B`. Entries that cannot be parsed are
    /// skipped, as BuildKit does (it only logs them).
    pub fn apply_spec(&mut self, spec: &str) {
        for field in spec.split(':') {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            if value.contains('=') {
                continue;
            }
            let Some(sgr) = color_sgr(value) else {
                continue;
            };
            match key.to_ascii_lowercase().as_str() {
                "run" => self.run = Some(sgr),
                "cancel" => self.cancel = Some(sgr),
                "error" => self.error = Some(sgr),
                "warning" => self.warning = Some(sgr),
                _ => {}
            }
        }
    }
}

/// The SGR parameters of a color name or of an `R,G,B` triple.
fn color_sgr(value: &str) -> Option<String> {
    let named = match value.to_ascii_lowercase().as_str() {
        "default" => "39",
        "black" => "30",
        "red" => "31",
        "green" => "32",
        "yellow" => "33",
        "blue" => "34",
        "magenta" => "35",
        "cyan" => "36",
        "white" => "37",
        "light-black" => "90",
        "light-red" => "91",
        "light-green" => "92",
        "light-yellow" => "93",
        "light-blue" => "94",
        "light-magenta" => "95",
        "light-cyan" => "96",
        "light-white" => "97",
        _ => "",
    };
    if !named.is_empty() {
        return Some(named.to_string());
    }
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() != 3 {
        return None;
    }
    let mut rgb = [0u8; 3];
    for (slot, part) in rgb.iter_mut().zip(&parts) {
        *slot = part.trim().parse().ok()?;
    }
    Some(format!("38;2;{};{};{}", rgb[0], rgb[1], rgb[2]))
}

/// A description of the builder, shown as BuildKit shows `WithDesc`: `#0 <text>` before the
/// first step in plain mode, and `<console>` right-aligned in the tty header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// For plain mode: `building with "default" instance using embedded driver`.
    pub text: String,
    /// For the tty header: `embedded:default`.
    pub console: String,
}

/// Everything a display needs besides its mode and its output.
#[derive(Clone)]
pub struct PrinterOptions {
    /// Whether the output is a terminal.
    pub is_terminal: bool,
    /// Whether the terminal is a dumb one (`TERM=dumb`): `auto` then means plain.
    pub dumb_terminal: bool,
    /// The width of the terminal in columns; lines of the tty display are cut to it.
    pub width: usize,
    /// The height of the terminal in rows, when known. The tty display then keeps its live
    /// part within it, as BuildKit does; without it, every line is shown, which misdraws once
    /// the live part is taller than the terminal. The binary should pass the real height.
    pub height: Option<usize>,
    /// The colors of the tty display and of the warning summary.
    pub colors: Colors,
    /// How many of the last log lines of a running step the tty display shows
    /// (`BUILDKIT_TTY_LOG_LINES`, 6 by default).
    pub log_lines: usize,
    /// The word in the tty header (`[+] Building 1.2s (3/4)`).
    pub phase: String,
    /// The builder's description, if any.
    pub description: Option<Description>,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for PrinterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrinterOptions")
            .field("is_terminal", &self.is_terminal)
            .field("dumb_terminal", &self.dumb_terminal)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("colors", &self.colors)
            .field("log_lines", &self.log_lines)
            .field("phase", &self.phase)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// The default number of log lines shown under a running step.
pub const DEFAULT_LOG_LINES: usize = 6;

impl PrinterOptions {
    /// Options with BuildKit's defaults: colors on, six log lines, phase `Building`, no height.
    pub fn new(is_terminal: bool, width: usize, clock: Arc<dyn Clock>) -> PrinterOptions {
        PrinterOptions {
            is_terminal,
            dumb_terminal: false,
            width,
            height: None,
            colors: Colors::default(),
            log_lines: DEFAULT_LOG_LINES,
            phase: "Building".into(),
            description: None,
            clock,
        }
    }

    /// Applies the environment variables buildx and BuildKit read for their displays, looked
    /// up through `lookup` (the library reads no environment itself):
    /// `TERM=dumb`, `NO_COLOR` (any non-empty value turns colors off), `BUILDKIT_COLORS` and
    /// `BUILDKIT_TTY_LOG_LINES`.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> PrinterOptions {
        if lookup("TERM").as_deref() == Some("dumb") {
            self.dumb_terminal = true;
        }
        if lookup("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            self.colors = Colors::none();
        } else if let Some(spec) = lookup("BUILDKIT_COLORS") {
            self.colors.apply_spec(&spec);
        }
        if let Some(lines) = lookup("BUILDKIT_TTY_LOG_LINES")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
        {
            self.log_lines = lines;
        }
        self
    }
}

impl Default for PrinterOptions {
    /// Not a terminal, 80 columns, the system clock.
    fn default() -> PrinterOptions {
        PrinterOptions::new(false, 80, Arc::new(SystemClock))
    }
}
