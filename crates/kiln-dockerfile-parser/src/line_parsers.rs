//! Turning one logical line into a [`Node`]: the keyword, the flags, and the arguments shaped
//! per keyword (upstream `newNodeFromLine`, `splitCommand` and the `parse*` line parsers).

use crate::ast::Node;
use crate::error::ParseError;
use crate::gostr::{
    is_latin1_space, quote, split_token_space, split_token_space_once, to_lower, trim_space,
};
use crate::json::{self, TopValue};
use crate::words::{extract_flags, split_words};

/// How many `ONBUILD` instructions may be nested in one another (`ONBUILD ONBUILD ...`).
/// Upstream has no limit in its parser (its instruction layer rejects any nesting); the bound
/// keeps the recursive [`Node`] shallow enough for recursive code (drop, clone, dump).
pub(crate) const MAX_ONBUILD_NESTING: usize = 64;

/// Upstream's error for an exec-form array with a non-string element.
const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// Parses the exec (JSON) form of an instruction's arguments, as upstream's `parseJSON`.
///
/// Leading whitespace is skipped; the text must then start with `[` and begin with a valid JSON
/// value, which is decoded the way Go's `json.Decoder` does it (text after the array is ignored,
/// so `["a"] b` gives `a`). Returns:
/// * `Ok(Some(elements))` for an array of strings (possibly empty);
/// * `Ok(None)` when the text is not JSON (not starting with `[`, a syntax error, an unterminated
///   array, or a number out of range): the instruction then uses the shell form;
/// * `Err` when it is a JSON array with an element that is not a string (a number, `null`, an
///   object, a nested array...), which upstream rejects (`when using JSON array syntax, arrays
///   must be comprised of strings only`). The error's line is 0.
pub fn parse_json_array(s: &str) -> Result<Option<Vec<String>>, ParseError> {
    let s = s.trim_start_matches(crate::gostr::is_space);
    if !s.starts_with('[') {
        return Ok(None);
    }
    let Some(TopValue::Array(items)) = json::decode_first(s) else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|item| item.ok_or_else(|| ParseError::new(0, NOT_STRING_ARRAY)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The shaped arguments of one instruction.
struct Shaped {
    args: Vec<String>,
    sub: Option<Box<Node>>,
    json: bool,
}

impl Shaped {
    fn args(args: Vec<String>) -> Self {
        Self {
            args,
            sub: None,
            json: false,
        }
    }
}

/// Builds the node for one logical line (`depth` counts enclosing `ONBUILD`s). Errors carry
/// upstream's message; the caller adds the line.
pub(crate) fn node_from_line(line: &str, escape: char, depth: usize) -> Result<Node, String> {
    let trimmed = trim_space(line);
    let (command, after) = split_token_space_once(trimmed);
    let keyword = to_lower(command);
    let (rest, flags) = match after {
        Some(after) => extract_flags(after),
        None => (String::new(), Vec::new()),
    };
    let rest = trim_space(&rest);

    let shaped = match keyword.as_str() {
        "add" | "copy" | "volume" => maybe_json_to_list(rest)?,
        "arg" => Shaped::args(split_words(rest, escape)),
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(rest)?,
        "env" => name_val(rest, "ENV", escape)?,
        "label" => name_val(rest, "LABEL", escape)?,
        "expose" | "from" => Shaped::args(whitespace_delimited(rest)),
        "healthcheck" => health_config(rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => Shaped::args(if rest.is_empty() {
            Vec::new()
        } else {
            vec![rest.to_owned()]
        }),
        "onbuild" => sub_command(rest, escape, depth)?,
        // Unknown instructions keep their keyword and flags; the arguments are dropped.
        _ => Shaped::args(vec![String::new()]),
    };

    Ok(Node {
        keyword,
        flags,
        args: shaped.args,
        sub: shaped.sub,
        json: shaped.json,
        original: line.to_owned(),
        ..Node::default()
    })
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_token_space(rest)
}

/// `parseMaybeJSON`: the exec form, or the whole rest as one argument.
fn maybe_json(rest: &str) -> Result<Shaped, String> {
    if rest.is_empty() {
        return Ok(Shaped::args(Vec::new()));
    }
    match parse_json_array(rest).map_err(|e| e.message)? {
        Some(args) => Ok(Shaped {
            args,
            sub: None,
            json: true,
        }),
        None => Ok(Shaped::args(vec![rest.to_owned()])),
    }
}

/// `parseMaybeJSONToList`: the exec form, or the rest split on whitespace.
fn maybe_json_to_list(rest: &str) -> Result<Shaped, String> {
    match parse_json_array(rest).map_err(|e| e.message)? {
        Some(args) => Ok(Shaped {
            args,
            sub: None,
            json: true,
        }),
        None => Ok(Shaped::args(whitespace_delimited(rest))),
    }
}

/// `parseHealthConfig`: the first word (`CMD`, `NONE`, ...), then the rest as for `CMD`. Like
/// upstream, the first word ends at a byte that Go's `unicode.IsSpace` accepts when read as
/// Latin-1.
fn health_config(rest: &str) -> Result<Shaped, String> {
    let bytes = rest.as_bytes();
    let sep = bytes
        .iter()
        .position(|&b| is_latin1_space(b))
        .unwrap_or(bytes.len());
    if sep == 0 {
        return Ok(Shaped::args(Vec::new()));
    }
    let next = bytes[sep..]
        .iter()
        .position(|&b| !is_latin1_space(b))
        .map_or(bytes.len(), |offset| sep + offset);
    let kind = String::from_utf8_lossy(&bytes[..sep]).into_owned();
    let command = String::from_utf8_lossy(&bytes[next..]);
    let mut shaped = maybe_json(&command)?;
    shaped.args.insert(0, kind);
    Ok(shaped)
}

/// `parseNameVal` for `ENV` and `LABEL`: `key value` (old form) or `key=value ...`.
fn name_val(rest: &str, key: &str, escape: char) -> Result<Shaped, String> {
    let words = split_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Shaped::args(Vec::new()));
    };
    if !first.contains('=') {
        let (name, value) = split_token_space_once(rest);
        let Some(value) = value else {
            return Err(format!("{key} must have two arguments"));
        };
        return Ok(Shaped::args(vec![
            name.to_owned(),
            value.to_owned(),
            String::new(),
        ]));
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                quote(word)
            ));
        };
        args.extend([name.to_owned(), value.to_owned(), "=".to_owned()]);
    }
    Ok(Shaped::args(args))
}

/// `parseSubCommand` for `ONBUILD`: the rest is a whole instruction of its own.
fn sub_command(rest: &str, escape: char, depth: usize) -> Result<Shaped, String> {
    if rest.is_empty() {
        return Ok(Shaped::args(Vec::new()));
    }
    if depth + 1 > MAX_ONBUILD_NESTING {
        return Err(format!(
            "too many nested ONBUILD instructions (more than {MAX_ONBUILD_NESTING})"
        ));
    }
    let sub = node_from_line(rest, escape, depth + 1)?;
    Ok(Shaped {
        args: Vec::new(),
        sub: Some(Box::new(sub)),
        json: false,
    })
}

/// Whether upstream looks for heredocs after this instruction: `RUN`, `COPY` and `ADD` (also
/// as the trigger of an `ONBUILD`), in shell form only.
pub(crate) fn can_contain_heredoc(node: &Node) -> bool {
    let target = match (&node.keyword[..], &node.sub) {
        ("onbuild", Some(sub)) => sub,
        _ => node,
    };
    matches!(target.keyword.as_str(), "add" | "copy" | "run") && !target.json
}
