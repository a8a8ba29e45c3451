//! A character cursor that behaves like the parts of Go's `text/scanner` that BuildKit uses
//! (`Peek` and `Next`).

/// Reads a string one character at a time.
///
/// Like Go's `text/scanner`, a byte-order mark (U+FEFF) at the very start is skipped.
pub(crate) struct Scanner {
    chars: Vec<char>,
    pos: usize,
}

impl Scanner {
    pub(crate) fn new(text: &str) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let pos = usize::from(chars.first() == Some(&'\u{feff}'));
        Scanner { chars, pos }
    }

    /// The next character without consuming it; `None` at the end.
    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Consumes and returns the next character; `None` at the end.
    pub(crate) fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }
}

/// How upstream prints "no character" (Go's `string(rune(-1))`): the replacement character.
pub(crate) fn char_or_eof(c: Option<char>) -> char {
    c.unwrap_or('\u{fffd}')
}
