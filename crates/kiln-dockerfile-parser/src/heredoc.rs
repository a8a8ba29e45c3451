//! Heredoc words (`<<EOF`, `<<-'EOF'`, `3<<EOF`) and heredoc bodies.

use kiln_shell::{Lexer, ShellError};

use crate::ast::Heredoc;
use crate::error::ParseError;
use crate::gostr::is_regex_space;

/// Upstream's parser lexes with an empty environment and `SkipUnsetEnv`, so that every
/// variable reference stays as written.
const NO_VARIABLES: &[(String, String)] = &[];

/// Splits `text` into shell words the way upstream's parser does when it looks for heredocs:
/// escape character `\` (whatever the escape directive says), unset variables kept as written,
/// quotes and escapes kept or removed as asked.
fn shell_words(text: &str, raw_quotes: bool, raw_escapes: bool) -> Result<Vec<String>, ShellError> {
    let mut lexer = Lexer::new('\\');
    lexer.raw_quotes = raw_quotes;
    lexer.raw_escapes = raw_escapes;
    lexer.skip_unset_env = true;
    lexer.process_words(text, &NO_VARIABLES)
}

/// Parses one shell word as a heredoc marker (upstream `ParseHeredoc`).
///
/// The word must look like `[digits]<<[-][blanks]name` with no other `<` (upstream's regular
/// expression `^(\d*)<<(-?)\s*([^<]*)$`). The name is then lexed like a shell word: it must be
/// exactly one word, its quotes are removed, and `expand` is false when any part of it was quoted.
/// `Ok(None)` means the word is not a heredoc (`<<`, `<<EOF sh`, `<EOF`); an unbalanced quote in
/// the name is an error (`failed to process "'EOF": unexpected end of statement while looking for
/// matching single-quote`).
///
/// The file descriptor is the leading digits (0 when there are none); a number too large for
/// a `u32` saturates at `u32::MAX` (upstream's `uint` saturates at its own maximum).
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ParseError> {
    let digits_len = word.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, after_digits) = word.split_at(digits_len);
    let Some(after) = after_digits.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_regex_space);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let file_descriptor = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().unwrap_or(u32::MAX)
    };

    let lex_error = |error: ShellError| ParseError::new(0, error.to_string());
    let words = shell_words(rest, false, false).map_err(lex_error)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw_words = shell_words(rest, true, false).map_err(lex_error)?;
    let [raw_name] = raw_words.as_slice() else {
        return Err(ParseError::new(
            0,
            format!("internal lexing of heredoc produced inconsistent results: {rest}"),
        ));
    };
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Ok(Some(Heredoc {
        name: name.clone(),
        file_descriptor,
        expand: quotes(name) == quotes(raw_name),
        chomp,
        content: String::new(),
    }))
}

/// Finds the heredoc markers of a whole instruction line, in order (upstream
/// `heredocsFromLine`).
///
/// The line is split into shell words with quotes and escapes kept (so `"<<EOF"` is not a
/// marker), `<<` keeps the blanks after it in its word (so `<< EOF` is one), and each word goes
/// through [`parse_heredoc`]. When the line itself cannot be split (an unbalanced quote
/// anywhere), it has no heredocs. The escape character is always `\` here, whatever the escape
/// directive says, as upstream does.
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseError> {
    let Ok(words) = shell_words(line, true, true) else {
        return Ok(Vec::new());
    };
    let mut heredocs = Vec::new();
    for word in &words {
        if let Some(heredoc) = parse_heredoc(word)? {
            heredocs.push(heredoc);
        }
    }
    Ok(heredocs)
}

/// Removes the leading tab characters of every line of a heredoc body (what `<<-` asks for;
/// upstream `ChompHeredocContent`). Other leading whitespace is kept.
pub fn chomp_heredoc_content(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}
