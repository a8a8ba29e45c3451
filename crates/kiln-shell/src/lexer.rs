//! The word processor: quotes, escapes, `$VAR` / `${VAR…}` expansion and word splitting.

use std::collections::BTreeSet;

use kiln_gostd::unicode::{is_digit, is_letter, is_space};

use crate::env::EnvGetter;
use crate::error::{ShellError, ShellErrorKind};
use crate::pattern;
use crate::scanner::{Scanner, char_or_eof};

/// How deeply `${…}` substitutions may nest inside each other (for example
/// `${a:-${b:-${c}}}` nests three deep). Real Dockerfiles use a handful of levels; the limit
/// only exists so that hostile input cannot exhaust the stack.
pub const MAX_NESTING: usize = 100;

/// Expands and splits shell words the way BuildKit's Dockerfile frontend does.
///
/// The options are the public fields, as on upstream's `Lex`. A `Lexer` holds no state
/// between calls, so one value may be shared and used from several threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character: `\` by default, or `` ` `` after `# escape=``.
    pub escape: char,
    /// Keep quote characters in the output (their contents are still processed: no
    /// splitting inside them, `$` still expands inside `"…"`).
    pub raw_quotes: bool,
    /// Keep escape characters in the output, in front of the character they escape.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written (`$X`, `${X}`, `${X:-d}`…) instead
    /// of expanding them to the empty string (or the default).
    pub skip_unset_env: bool,
    /// Treat `'` and `"` as ordinary characters.
    pub skip_process_quotes: bool,
}

/// The full result of processing one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessResult {
    /// The word after expansion, quote removal and escape processing, not split.
    pub result: String,
    /// The same text split into words (see [`Lexer::process_words`]).
    pub words: Vec<String>,
    /// Variable names that were looked up and found.
    pub matched: BTreeSet<String>,
    /// Variable names that were looked up and not found.
    pub unmatched: BTreeSet<String>,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer with the given escape character and all options off.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Expands `word` as a single word: nothing is split, whitespace is kept.
    pub fn process_word(&self, word: &str, env: &dyn EnvGetter) -> Result<String, ShellError> {
        self.process(word, env).map(|r| r.result)
    }

    /// Expands `word` and also reports the split words and which variables were used.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn EnvGetter,
    ) -> Result<ProcessResult, ShellError> {
        self.process(word, env)
    }

    /// Expands `word` and splits the result into words.
    ///
    /// Words are separated by unquoted whitespace, including whitespace that comes from the
    /// value of an unquoted variable (`ENV x="a b"` makes `$x` two words, `"$x"` one).
    /// Escaped whitespace (`a\ b`) does not separate. An empty quoted string (`""`) does not
    /// make a word of its own. An unquoted `<<` keeps the blanks that follow it in its word
    /// (`<<  EOF` is one word), as upstream does so that its Dockerfile parser can find heredoc
    /// markers written with a space.
    ///
    /// Each `${…}` level collects its words separately. Upstream's current code shares one
    /// buffer between the levels, so that there `a${x:-b}c` splits to `["bc"]`; kiln gives
    /// `["abc"]`, which is what the code evidently intends.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn EnvGetter,
    ) -> Result<Vec<String>, ShellError> {
        self.process(word, env).map(|r| r.words)
    }

    fn process(&self, word: &str, env: &dyn EnvGetter) -> Result<ProcessResult, ShellError> {
        let mut p = Processor {
            lex: self,
            scanner: Scanner::new(word),
            env,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match p.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(ProcessResult {
                result,
                words,
                matched: p.matched,
                unmatched: p.unmatched,
            }),
            Err(kind) => Err(ShellError {
                word: word.to_owned(),
                kind,
            }),
        }
    }
}

/// Collects split words while the text of one level is being built.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted, unescaped character: whitespace ends the current word.
    fn add_char(&mut self, c: char) {
        if is_space(c) {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    /// A character that is part of the word whatever it is (escaped or quoted).
    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    /// The value of an unquoted variable: split like unquoted text.
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    /// The contents of quotes: never split.
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

/// The state of one `process` call.
struct Processor<'a> {
    lex: &'a Lexer,
    scanner: Scanner,
    env: &'a dyn EnvGetter,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

type Step<T> = Result<T, ShellErrorKind>;

impl Processor<'_> {
    /// Processes text up to the end of the word, or up to (and consuming) `stop`.
    /// `raw_escapes` keeps escape characters in the output at this level.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lex.skip_process_quotes;
        while let Some(c) = self.scanner.peek() {
            if stop == Some(c) {
                self.scanner.next();
                return Ok((result, words.finish()));
            }
            if c == '$' {
                let value = self.process_dollar()?;
                result.push_str(&value);
                words.add_string(&value);
            } else if c == '<' {
                let value = self.process_possible_heredoc();
                result.push_str(&value);
                words.add_raw_string(&value);
            } else if quotes && c == '\'' {
                let value = self.process_single_quote()?;
                result.push_str(&value);
                words.add_raw_string(&value);
            } else if quotes && c == '"' {
                let value = self.process_double_quote(raw_escapes)?;
                result.push_str(&value);
                words.add_raw_string(&value);
            } else {
                self.scanner.next();
                if c == self.lex.escape {
                    if raw_escapes {
                        words.add_raw_char(c);
                        result.push(c);
                    }
                    // The escape character escapes the next character; at the end of the
                    // word it disappears.
                    let Some(escaped) = self.scanner.next() else {
                        break;
                    };
                    words.add_raw_char(escaped);
                    result.push(escaped);
                } else {
                    words.add_char(c);
                    result.push(c);
                }
            }
        }
        match stop {
            Some(stop) => Err(ShellErrorKind::UnexpectedEnd(stop)),
            None => Ok((result, words.finish())),
        }
    }

    /// `'…'`: everything up to the next `'` is literal; there is no escape.
    fn process_single_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.scanner.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.scanner.next() {
                None => return Err(ShellErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"…"`: literal except `$` (expands) and the escape character, which escapes only `"`,
    /// `$` and itself and otherwise stays as it is.
    fn process_double_quote(&mut self, raw_escapes: bool) -> Step<String> {
        let mut result = String::new();
        let open = self.scanner.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.scanner.peek() {
                None => return Err(ShellErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.scanner.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let Some(mut c) = self.scanner.next() else {
                        continue;
                    };
                    if c == self.lex.escape {
                        if raw_escapes {
                            // Upstream writes the escape here and, for a character that
                            // cannot be escaped, the escape again below; kept as is.
                            result.push(c);
                        }
                        match self.scanner.peek() {
                            // An escape right before the end: dropped (the missing `"` is
                            // reported next).
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                                self.scanner.next();
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    /// `$name`, `${name}` and `${name<modifier>…}`, starting at the `$`.
    fn process_dollar(&mut self) -> Step<String> {
        self.scanner.next();

        if self.scanner.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }

        self.scanner.next();
        match self.scanner.peek() {
            None => return Err(ShellErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let first = self.scanner.next();
        let mut modifier_text = char_or_eof(first).to_string();

        match first {
            Some('}') => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut modifier = first;
                let null_is_unset = first == Some(':');
                if null_is_unset {
                    modifier = self.scanner.next();
                    modifier_text.push(char_or_eof(modifier));
                }
                let pattern_modifier = matches!(modifier, Some('#' | '%'));
                if null_is_unset && pattern_modifier {
                    return Err(ShellErrorKind::UnsupportedModifier(modifier_text));
                }
                // The argument may itself contain substitutions. A pattern keeps its escape
                // characters, for the pattern syntax.
                let word =
                    self.nested(Some('}'), pattern_modifier, ShellErrorKind::MissingBrace)?;

                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{modifier_text}{word}}}"));
                }
                let unset_or_null =
                    value.is_none() || (null_is_unset && value.as_deref() == Some(""));
                match modifier {
                    Some('-') => Ok(if unset_or_null {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if unset_or_null { String::new() } else { word }),
                    Some('?') => {
                        let default = match value {
                            None => "is not allowed to be unset",
                            Some(_) if unset_or_null => "is not allowed to be empty",
                            Some(v) => return Ok(v),
                        };
                        let message = if word.is_empty() {
                            default.to_owned()
                        } else {
                            word
                        };
                        Err(ShellErrorKind::Required { name, message })
                    }
                    Some(m @ ('#' | '%')) => {
                        // A doubled modifier (`##`, `%%`) asks for the longest match.
                        let (pattern, greedy) = match word.strip_prefix(m) {
                            Some(rest) => (rest, true),
                            None => (word.as_str(), false),
                        };
                        let value = value.unwrap_or_default();
                        if m == '%' {
                            pattern::trim_suffix(pattern, &value, greedy)
                        } else {
                            pattern::trim_prefix(pattern, &value, greedy)
                        }
                    }
                    _ => Err(ShellErrorKind::UnsupportedModifier(modifier_text)),
                }
            }
            Some('/') => {
                let all = self.scanner.peek() == Some('/');
                if all {
                    self.scanner.next();
                }
                let pattern = self.nested(Some('/'), true, ShellErrorKind::MissingSlash)?;
                let replacement = self.nested(Some('}'), true, ShellErrorKind::MissingBrace)?;
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                pattern::replace(&pattern, &value.unwrap_or_default(), &replacement, all)
            }
            _ => Err(ShellErrorKind::UnsupportedModifier(modifier_text)),
        }
    }

    /// Processes the argument of a modifier, up to `stop`. When the word ends before `stop`,
    /// upstream reports `at_end` instead of whatever error occurred inside.
    fn nested(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        at_end: ShellErrorKind,
    ) -> Step<String> {
        if self.depth >= MAX_NESTING {
            return Err(ShellErrorKind::TooDeep(MAX_NESTING));
        }
        self.depth += 1;
        let result = self.process_stop_on(stop, raw_escapes);
        self.depth -= 1;
        match result {
            Ok((word, _)) => Ok(word),
            Err(ShellErrorKind::TooDeep(n)) => Err(ShellErrorKind::TooDeep(n)),
            Err(_) if self.scanner.peek().is_none() => Err(at_end),
            Err(e) => Err(e),
        }
    }

    /// `<`, starting at it. A lone `<` is an ordinary character; `<<` takes the blanks (space,
    /// tab, CR, LF) that follow it into the same word, so that a heredoc marker written
    /// `<< EOF` stays one word. Nothing is removed, so this only changes how words split.
    fn process_possible_heredoc(&mut self) -> String {
        self.scanner.next();
        if self.scanner.peek() != Some('<') {
            return "<".to_owned();
        }
        self.scanner.next();
        let mut value = "<<".to_owned();
        while let Some(c) = self
            .scanner
            .peek()
            .filter(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        {
            self.scanner.next();
            value.push(c);
        }
        value
    }

    /// Reads a variable name: a run of digits (a positional parameter), one special
    /// parameter character (`@ * # ? - $ !`), or letters, digits and `_`.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.scanner.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.scanner.peek().filter(|&d| is_digit(d)) {
                    self.scanner.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.scanner.next();
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            self.scanner.next();
            name.push(c);
        }
        name
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_owned());
                Some(v.to_owned())
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }
}
