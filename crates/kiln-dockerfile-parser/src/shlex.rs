//! The parts of BuildKit's shell word lexer (`frontend/dockerfile/shell`) that the parser uses
//! to find heredocs.
//!
//! Upstream runs its full lexer, with an empty environment and `SkipUnsetEnv` (so every variable
//! reference is kept as written), over the instruction line and over heredoc words. This module
//! reproduces exactly that configuration: the escape character is always `\`, quotes and escapes
//! are processed or kept raw as asked, `$name` and `${...}` forms are re-written as they were
//! (including upstream's re-spelling of `${a//x/y}` as `${a/x/y}`), `<<` swallows the blanks
//! after it, and words are split on unquoted Unicode whitespace. Upstream's quirks are kept on
//! purpose: a nested `${...}` resets the word being built (the lexer shares one word buffer
//! between nesting levels), and a U+FEFF at the very start of the input is skipped.
//!
//! This is not the general variable-expansion lexer of kiln (that lives in `kiln-shell`); it only
//! needs to agree with upstream on which words a line splits into.

use crate::gostr::{is_digit, is_letter, is_space, quote};

const ESCAPE: char = '\\';

/// How deep `${...}` substitutions may nest before the lexer gives up. Upstream has no limit
/// (Go's stacks grow); this bound only keeps absurd input from exhausting the stack.
const MAX_NESTING: usize = 200;

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
    /// Upstream shares one buffer for the word being built across nested calls.
    word_buf: String,
    depth: usize,
}

#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if is_space(ch) && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !is_space(ch) {
            self.add_raw_char(buf, ch);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for ch in s.chars() {
            self.add_char(buf, ch);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// Upstream's `processStopOn`: reads until `stop` (or the end when `stop` is `None`).
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        if self.depth >= MAX_NESTING {
            return Err("variable substitutions nested too deeply".to_owned());
        }
        self.depth += 1;
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        result
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        self.word_buf.clear();
        let mut words = Words::default();

        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                let words = words.finish(&mut self.word_buf);
                return Ok((result, words));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&mut self.word_buf, &tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.word_buf, &tmp);
                }
                '\'' => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.word_buf, &tmp);
                }
                '"' => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.word_buf, &tmp);
                }
                _ => {
                    self.pos += 1;
                    let mut ch = ch;
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.word_buf, ch);
                            result.push(ch);
                        }
                        match self.next() {
                            None => break,
                            Some(escaped) => {
                                ch = escaped;
                                words.add_raw_char(&mut self.word_buf, ch);
                            }
                        }
                    } else {
                        words.add_char(&mut self.word_buf, ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        let words = words.finish(&mut self.word_buf);
        Ok((result, words))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_owned(),
                    );
                }
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_owned(),
                    );
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next @ ('"' | '$' | ESCAPE)) => {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    /// `$name`, `${name}` and the `${name<modifier>...}` forms, with every variable unset and
    /// kept as written.
    fn process_dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            return Ok(format!("${name}"));
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_owned()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_owned()),
            Some(_) => {}
        }
        let name = self.process_name();
        let first = self.next();
        let mut chs = first.map_or('\u{fffd}', |c| c).to_string();
        let modifier = match first {
            Some('}') => return Ok(format!("${{{name}}}")),
            Some(':') => {
                let second = self.next();
                chs.push(second.unwrap_or('\u{fffd}'));
                if matches!(second, Some('#' | '%')) {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                second
            }
            Some(c @ ('+' | '-' | '?' | '#' | '%')) => Some(c),
            Some('/') => {
                if self.peek() == Some('/') {
                    self.pos += 1;
                }
                let (pattern, _) = self.process_stop_on(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".to_owned()
                    } else {
                        e
                    }
                })?;
                let (replacement, _) = self
                    .process_stop_on(Some('}'), true)
                    .map_err(|e| self.missing_brace(e))?;
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            _ => return Err(format!("unsupported modifier ({chs}) in substitution")),
        };
        let raw_escapes = matches!(modifier, Some('#' | '%'));
        let (word, _) = self
            .process_stop_on(Some('}'), raw_escapes)
            .map_err(|e| self.missing_brace(e))?;
        Ok(format!("${{{name}{chs}{word}}}"))
    }

    fn missing_brace(&self, error: String) -> String {
        if self.peek().is_none() {
            "syntax error: missing '}'".to_owned()
        } else {
            error
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(digit) = self.peek().filter(|c| is_digit(*c)) {
                    name.push(digit);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !is_letter(ch) && !is_digit(ch) && ch != '_' {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    /// `<` alone, or `<<` followed by the blanks after it (so `<< EOF` stays one word).
    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.pos += 1;
        let mut result = "<<".to_owned();
        while let Some(ch) = self
            .peek()
            .filter(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        {
            result.push(ch);
            self.pos += 1;
        }
        result
    }
}

/// Upstream's `Lex.ProcessWords` with escape `\`, an empty environment and `SkipUnsetEnv`:
/// splits `source` into words. The error is upstream's message, prefixed like upstream's
/// (`failed to process "<source>": ...`).
pub(crate) fn process_words(
    source: &str,
    raw_quotes: bool,
    raw_escapes: bool,
) -> Result<Vec<String>, String> {
    let mut chars: Vec<char> = source.chars().collect();
    // Go's text/scanner skips a byte order mark at the very start of its input.
    if chars.first() == Some(&'\u{feff}') {
        chars.remove(0);
    }
    let mut lexer = Lexer {
        chars,
        pos: 0,
        raw_quotes,
        raw_escapes,
        word_buf: String::new(),
        depth: 0,
    };
    lexer
        .process_stop_on(None, raw_escapes)
        .map(|(_, words)| words)
        .map_err(|e| format!("failed to process {}: {e}", quote(source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_line_words() {
        let words =
            |s: &str| process_words(s, true, true).unwrap_or_else(|e| vec![format!("error: {e}")]);
        assert_eq!(words("RUN <<  EOF x"), ["RUN", "<<  EOF", "x"]);
        assert_eq!(words("RUN <<- EOF"), ["RUN", "<<-", "EOF"]);
        assert_eq!(
            words("RUN '<<EOF' \"a b\" c\\ d"),
            ["RUN", "'<<EOF'", "\"a b\"", "c\\ d"]
        );
        assert_eq!(
            words("a $B ${C:-d e} ${x//a/b}"),
            ["a", "$B", "${C:-d", "e}", "${x/a/b}"]
        );
        assert_eq!(words("pre${a:-b}post"), ["${a:-b}post"]);
        assert_eq!(
            words("'unterminated"),
            [
                "error: failed to process \"'unterminated\": unexpected end of statement while looking for matching single-quote"
            ]
        );
        let deep = format!("{}x{}", "${a:-".repeat(300), "}".repeat(300));
        assert!(process_words(&deep, true, true).is_err());
    }
}
