//! The dump format of upstream's parser test files (`Node.Dump`).

use crate::ast::{Dockerfile, Node};
use crate::gostr::{quote, to_lower};

/// Renders the instructions in the format of BuildKit's parser test files (`result` files),
/// one line per instruction, each ended by `\n`.
///
/// Each line is `(keyword ["flag" ...] "arg" ...)`: the lower-cased keyword, the flags (only when
/// there are some) as a Go-quoted list, then every argument quoted with Go's `strconv.Quote`,
/// or the `ONBUILD` sub-instruction in parentheses. The exec form is not marked, and comments,
/// directives and heredoc bodies are not printed.
pub fn dump(df: &Dockerfile) -> String {
    let mut out = String::new();
    for node in &df.children {
        out.push('(');
        out.push_str(&dump_node(node));
        out.push_str(")\n");
    }
    out
}

fn dump_node(node: &Node) -> String {
    let mut s = to_lower(&node.keyword);
    if !node.flags.is_empty() {
        let flags: Vec<String> = node.flags.iter().map(|f| quote(f)).collect();
        s.push_str(" [");
        s.push_str(&flags.join(" "));
        s.push(']');
    }
    for arg in &node.args {
        s.push(' ');
        s.push_str(&quote(arg));
    }
    if let Some(sub) = &node.sub {
        s.push_str(" (");
        s.push_str(&dump_node(sub));
        s.push(')');
    }
    // Upstream trims each rendering with `strings.TrimSpace`; it only matters for an empty keyword.
    s.trim().to_owned()
}
