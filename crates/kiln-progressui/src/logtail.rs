//! The last lines of a running step's output, as a small terminal screen.
//!
//! BuildKit feeds each step's output into a tiny VT100 emulator and shows its non-empty rows
//! under the step, so that progress bars drawn with `\r` or cursor movements look as they
//! would in a terminal. This does the same with the `vt100` crate, with two adjustments that
//! match BuildKit's emulator: a line feed also returns the carriage (program output is not
//! cooked by a tty), and the screen scrolls only when something is written below its last
//! row, so a full screen of lines that each end with `\n` still shows all of them.

use std::num::NonZeroU16;

/// A small screen holding the tail of a step's output.
pub(crate) struct LogTail {
    parser: vt100::Parser,
    rows: u16,
    cols: u16,
    /// Line feeds written after the last visible character, not yet applied.
    pending_newlines: usize,
}

/// The largest screen kept, whatever the terminal or `BUILDKIT_TTY_LOG_LINES` say: enough
/// for any real display, small enough that many steps logging at once stay cheap.
const MAX_ROWS: usize = 200;
const MAX_COLS: usize = 500;

fn nonzero(n: usize, max: usize) -> NonZeroU16 {
    let clamped = u16::try_from(n.min(max)).unwrap_or(u16::MAX).max(1);
    NonZeroU16::new(clamped).unwrap_or(NonZeroU16::MIN)
}

impl LogTail {
    /// A blank screen of `rows` by `cols`.
    pub(crate) fn new(rows: usize, cols: usize) -> LogTail {
        let (r, c) = (nonzero(rows, MAX_ROWS), nonzero(cols, MAX_COLS));
        LogTail {
            parser: vt100::Parser::new(r, c, 0),
            rows: r.get(),
            cols: c.get(),
            pending_newlines: 0,
        }
    }

    /// Writes output to the screen.
    pub(crate) fn write(&mut self, data: &[u8]) {
        let trailing = data.iter().rev().take_while(|b| **b == b'\n').count();
        let body = data.get(..data.len() - trailing).unwrap_or_default();
        if !body.is_empty() {
            let mut buf = Vec::with_capacity(body.len() + 2 * self.pending_newlines + 16);
            for _ in 0..self.pending_newlines {
                buf.extend_from_slice(b"\r\n");
            }
            self.pending_newlines = 0;
            for b in body {
                if *b == b'\n' {
                    buf.extend_from_slice(b"\r\n");
                } else {
                    buf.push(*b);
                }
            }
            self.parser.process(&buf);
        }
        self.pending_newlines = self.pending_newlines.saturating_add(trailing);
    }

    /// Resizes the screen (the width follows the terminal's).
    pub(crate) fn resize(&mut self, rows: usize, cols: usize) {
        let (r, c) = (nonzero(rows, MAX_ROWS), nonzero(cols, MAX_COLS));
        if (r.get(), c.get()) != (self.rows, self.cols) {
            self.parser.screen_mut().set_size(r, c);
            self.rows = r.get();
            self.cols = c.get();
        }
    }

    /// The rows that hold something other than blanks, top to bottom, padded with spaces to
    /// the screen's width as BuildKit prints them.
    pub(crate) fn lines(&self) -> Vec<String> {
        let width = usize::from(self.cols);
        self.parser
            .screen()
            .rows(0, self.cols)
            .filter(|row| row.chars().any(|c| c != ' '))
            .map(|row| {
                let used = console::measure_text_width(&row);
                let mut padded = row;
                padded.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
                padded
            })
            .collect()
    }

    /// How many rows hold something.
    pub(crate) fn used_height(&self) -> usize {
        self.lines().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rows: usize, cols: usize, writes: &[&[u8]], expected: &[&str]) {
        let mut tail = LogTail::new(rows, cols);
        for w in writes {
            tail.write(w);
        }
        let got: Vec<String> = tail
            .lines()
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect();
        assert_eq!(got, expected, "writes {writes:?}");
    }

    #[test]
    fn tails() {
        check(3, 10, &[b"a\nb\n"], &["a", "b"]);
        check(3, 10, &[b"1\n2\n3\n"], &["1", "2", "3"]);
        check(3, 10, &[b"1\n2\n3\n4\n"], &["2", "3", "4"]);
        check(3, 10, &[b"1\n2\n3\n4"], &["2", "3", "4"]);
        check(3, 10, &[b"1\n", b"\n", b"2\n"], &["1", "2"]);
        check(3, 4, &[b"abcdefgh\n"], &["abcd", "efgh"]);
        check(3, 10, &[b"10%\r50%\r100%\n"], &["100%"]);
        check(3, 10, &[b"\x1b[31mred\x1b[0m\n"], &["red"]);
        check(2, 10, &[b"x\ny\n", b"z\n"], &["y", "z"]);
    }
}
