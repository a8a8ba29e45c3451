//! The main loop: physical lines to logical lines to nodes (upstream `Parse`).

use crate::ast::{Directive, Dockerfile, LineRange, Node, Warning};
use crate::directives::{DirectiveParser, MAX_LINE};
use crate::error::ParseError;
use crate::heredoc::heredocs_from_line;
use crate::line_parsers::{can_contain_heredoc, node_from_line};

/// The rule name of the empty-continuation-line warning in BuildKit's build checks.
const EMPTY_CONTINUATION_RULE: &str = "NoEmptyContinuation";
const EMPTY_CONTINUATION_DETAIL: &str =
    "Empty continuation lines will become errors in a future release";
const EMPTY_CONTINUATION_URL: &str =
    "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/";

/// Physical lines, each with its `\n`, as Go's `bufio.Scanner` with upstream's `scanLines`
/// yields them: scanning stops before a line longer than the scanner's limit.
struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
    yielded: usize,
    /// The 1-based number of a line that was too long, once one is met.
    too_long: Option<usize>,
}

impl<'a> Lines<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            yielded: 0,
            too_long: None,
        }
    }

    /// The next physical line, converted to text (invalid UTF-8 becomes U+FFFD).
    fn next_line(&mut self) -> Option<String> {
        self.next_raw()
            .map(|raw| String::from_utf8_lossy(raw).into_owned())
    }

    fn next_raw(&mut self) -> Option<&'a [u8]> {
        if self.too_long.is_some() {
            return None;
        }
        let rest = self.data.get(self.pos..).filter(|rest| !rest.is_empty())?;
        let (line, content_len) = match rest.iter().position(|&b| b == b'\n') {
            Some(newline) => (&rest[..=newline], newline),
            None => (rest, rest.len()),
        };
        if content_len > MAX_LINE {
            self.too_long = Some(self.yielded + 1);
            return None;
        }
        self.pos += line.len();
        self.yielded += 1;
        Some(line)
    }
}

/// Upstream's `trimNewline`: drops every trailing `\r` and `\n`.
fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Upstream's `isComment`: the first non-whitespace character is `#`.
fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Upstream's `trimContinuationCharacter`: when the line ends with the escape character (and
/// optional blanks) not itself escaped, returns the line without it and `false` (the logical
/// line goes on); otherwise the line unchanged and `true`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before, false);
    }
    (line, true)
}

/// The parser's state that directives change.
struct State {
    escape: char,
    directive_parser: DirectiveParser,
    directives: Vec<Directive>,
}

impl State {
    /// Upstream's `possibleParserDirective`: feeds the line to the directive parser and applies
    /// an `escape` directive. Returns whether the line was a directive.
    fn possible_directive(&mut self, line: &str) -> Result<bool, String> {
        let Some(directive) = self.directive_parser.parse_line(line)? else {
            return Ok(false);
        };
        if directive.name == "escape" {
            self.escape = match directive.value.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(format!(
                        "invalid escape token '{other}' does not match ` or \\"
                    ));
                }
            };
        }
        self.directives.push(directive);
        Ok(true)
    }
}

/// Parses a whole Dockerfile (upstream `parser.Parse`). See the crate documentation for the
/// rules.
///
/// Invalid UTF-8 is replaced with U+FFFD, line by line. The errors, with upstream's messages:
/// `file with no instructions` (an empty file, or only comments and blank lines), a duplicate or
/// invalid directive (`only one escape parser directive can be used`, ``invalid escape token 'x'
/// does not match ` or \``), an instruction whose arguments cannot be shaped (`ENV must have two
/// arguments`, `when using JSON array syntax, arrays must be comprised of strings only`, ...),
/// `unterminated heredoc`, and `dockerfile line greater than max allowed size of 65535`. The
/// error's line is the first line of the failing instruction, the directive's line, the
/// too-long line, or for `file with no instructions` the number of lines read (0 when empty).
///
/// ```
/// let df = kiln_dockerfile_parser::parse(b"FROM alpine\nRUN <<EOF\necho hi\nEOF\n")?;
/// assert_eq!(kiln_dockerfile_parser::dump(&df), "(from \"alpine\")\n(run \"<<EOF\")\n");
/// assert_eq!(df.children[1].heredocs[0].content, "echo hi\n");
/// assert_eq!((df.children[1].lines.start, df.children[1].lines.end), (2, 4));
/// # Ok::<(), kiln_dockerfile_parser::ParseError>(())
/// ```
pub fn parse(input: &[u8]) -> Result<Dockerfile, ParseError> {
    let mut lines = Lines::new(input);
    let mut state = State {
        escape: '\\',
        directive_parser: DirectiveParser::new("#", 0),
        directives: Vec::new(),
    };
    let mut current_line = 0usize;
    let mut children: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while let Some(raw) = lines.next_raw() {
        let raw = if current_line == 0 {
            raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw)
        } else {
            raw
        };
        let text = String::from_utf8_lossy(raw);
        if is_comment(&text) {
            // Upstream drops the first byte, which is the `#` unless the line is indented.
            let comment = String::from_utf8_lossy(raw.get(1..).unwrap_or_default());
            let comment = comment.trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_owned());
            }
        }
        let token = trim_newline(&text).trim_start();
        let is_directive = state
            .possible_directive(token)
            .map_err(|message| ParseError::new(current_line + 1, message))?;
        if is_directive {
            comments.pop();
        }
        let processed = if is_comment(token) { "" } else { token };
        current_line += 1;

        let start_line = current_line;
        let (first, mut end_of_line) = trim_continuation(processed, state.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_owned();
        let mut has_empty_continuation = false;
        while !end_of_line {
            let Some(text) = lines.next_line() else {
                break;
            };
            let token = trim_newline(&text);
            state
                .possible_directive(token)
                .map_err(|message| ParseError::new(current_line + 1, message))?;
            current_line += 1;
            if is_comment(&text) {
                continue;
            }
            if token.trim_start().is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(token, state.escape);
            end_of_line = eol;
            line.push_str(part);
        }

        if has_empty_continuation {
            warnings.push(Warning {
                rule: Some(EMPTY_CONTINUATION_RULE.to_owned()),
                short: format!("Empty continuation line found in: {line}"),
                detail: vec![EMPTY_CONTINUATION_DETAIL.to_owned()],
                url: Some(EMPTY_CONTINUATION_URL.to_owned()),
                lines: LineRange {
                    start: current_line,
                    end: current_line,
                },
            });
        }

        let mut node = node_from_line(&line, state.escape, 0)
            .map_err(|message| ParseError::new(start_line, message))?;
        node.prev_comment = std::mem::take(&mut comments);

        if can_contain_heredoc(&node) && line.contains("<<") {
            let heredocs =
                heredocs_from_line(&line).map_err(|e| ParseError::new(start_line, e.message))?;
            for mut heredoc in heredocs {
                let mut terminated = false;
                while let Some(text) = lines.next_line() {
                    current_line += 1;
                    let mut candidate = trim_newline(&text);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(&text);
                }
                if !terminated {
                    return Err(ParseError::new(start_line, "unterminated heredoc"));
                }
                node.heredocs.push(heredoc);
            }
        }

        let range = LineRange {
            start: start_line,
            end: current_line,
        };
        set_lines(&mut node, range);
        children.push(node);
    }

    let (Some(first), Some(last)) = (children.first(), children.last()) else {
        return Err(ParseError::new(current_line, "file with no instructions"));
    };
    let lines_range = LineRange {
        start: first.lines.start,
        end: last.lines.end,
    };
    if let Some(line) = lines.too_long {
        return Err(ParseError::new(
            line,
            format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
        ));
    }
    Ok(Dockerfile {
        children,
        lines: lines_range,
        directives: state.directives,
        escape: state.escape,
        warnings,
    })
}

/// Gives a node and its `ONBUILD` sub-instructions the same line range.
fn set_lines(node: &mut Node, range: LineRange) {
    let mut current = Some(node);
    while let Some(node) = current {
        node.lines = range;
        current = node.sub.as_deref_mut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation() {
        let cases = [
            ("a \\", ("a ", false)),
            ("a \\  \t", ("a ", false)),
            ("\\", ("", false)),
            ("\\ ", ("", false)),
            ("a \\\\", ("a \\\\", true)),
            ("\\\\", ("\\\\", true)),
            ("a", ("a", true)),
        ];
        for (input, want) in cases {
            assert_eq!(trim_continuation(input, '\\'), want, "{input:?}");
        }
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }
}
