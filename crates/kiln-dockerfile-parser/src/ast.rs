//! The syntax tree produced by the parser.

/// A range of 1-based source lines, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LineRange {
    /// The first line of the range.
    pub start: usize,
    /// The last line of the range (counting blank and comment lines inside continuations).
    pub end: usize,
}

/// One instruction of a Dockerfile (a logical line, plus its heredoc bodies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The keyword, lower-cased (`from`, `run`, ...). Unknown keywords are kept as written,
    /// lower-cased.
    pub keyword: String,
    /// The flags written after the keyword (`--from=a`, `--mount=type=cache,target=/x`),
    /// with quotes removed and escapes processed, in order.
    pub flags: Vec<String>,
    /// The arguments, shaped per keyword as BuildKit's parser shapes them (for example `ENV`
    /// gives key, value, `=` triples; `RUN` in shell form gives one argument).
    pub args: Vec<String>,
    /// For `ONBUILD`: the nested instruction.
    pub sub: Option<Box<Node>>,
    /// True when the arguments were given in JSON (exec) form.
    pub json: bool,
    /// Heredocs attached to this instruction, in order (only `RUN`, `COPY` and `ADD` in shell
    /// form). For `ONBUILD RUN <<EOF` they are attached here, to the `ONBUILD` node, as upstream
    /// does; the sub-instruction in [`Node::sub`] has none.
    pub heredocs: Vec<Heredoc>,
    /// The logical line as written, continuations joined, with the first line's leading
    /// whitespace removed (upstream's `Original`). For an `ONBUILD` sub-instruction, the text
    /// after `ONBUILD` and its flags.
    pub original: String,
    /// The lines the instruction spans, heredoc bodies included (an `ONBUILD` sub-instruction
    /// has its parent's range).
    pub lines: LineRange,
    /// Comment lines directly above the instruction (without the `#`), used for descriptions.
    pub prev_comment: Vec<String>,
}

/// A heredoc body attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// The file descriptor written before `<<` (0 when none; saturates at `u32::MAX`).
    pub file_descriptor: u32,
    /// False when any part of the name was quoted: the body is then not expanded.
    pub expand: bool,
    /// True for the `<<-` form (leading tabs are stripped from the body later).
    pub chomp: bool,
    /// The raw body lines, each with its `\n`, up to but not including the terminator line.
    pub content: String,
}

/// A parser directive (`# syntax=...`, `# escape=...`, `# check=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive name, lower-cased.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The 1-based line the directive is on.
    pub line: usize,
}

/// A warning emitted by the parser itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The build-check rule name, when the warning belongs to one (`NoEmptyContinuation`).
    pub rule: Option<String>,
    /// A one-line summary.
    pub short: String,
    /// Further lines of explanation.
    pub detail: Vec<String>,
    /// A documentation URL, when there is one.
    pub url: Option<String>,
    /// Where the warning applies.
    pub lines: LineRange,
}

/// The result of parsing a whole Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dockerfile {
    /// The instructions, in source order.
    pub children: Vec<Node>,
    /// The lines spanned by all instructions (first instruction's start to last one's end).
    pub lines: LineRange,
    /// The parser directives found at the top of the file.
    pub directives: Vec<Directive>,
    /// The escape character in effect (`\` or `` ` ``).
    pub escape: char,
    /// Warnings from the parser (empty continuation lines, ...).
    pub warnings: Vec<Warning>,
}
