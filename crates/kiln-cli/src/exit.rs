//! The one place where errors become messages and exit codes.
//!
//! Exit codes follow buildx: 0 on success, 1 when the build (or the command) fails, 2 on a usage
//! error (clap exits with 2 by itself before we get here).

use std::io::Write;
use std::process::ExitCode;

/// An error already rendered for the user: printed as is, without the `error:` prefix.
#[derive(Debug)]
pub struct Rendered(pub String);

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Rendered {}

/// A usage error found after argument parsing (a bad `--output` value, conflicting flags):
/// exit code 2, as clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Runs the command and maps its outcome to an exit code.
pub fn run(f: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match f() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let mut stderr = std::io::stderr().lock();
            if let Some(rendered) = err.downcast_ref::<Rendered>() {
                let _ = write!(stderr, "{rendered}");
            } else if let Some(usage) = err.downcast_ref::<UsageError>() {
                let _ = writeln!(stderr, "ERROR: {usage}");
                return ExitCode::from(2);
            } else {
                let _ = writeln!(stderr, "ERROR: {}", message(&err));
            }
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes, `: `-separated, leaving out what the message already says: a
/// cause whose text the message ends with (library errors often print their source
/// themselves), and the start of a cause that repeats the message's last parts (`a: b` then
/// `b: c` gives `a: b: c`).
fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        // The longest tail of the message, from a `: ` boundary, that the cause starts with.
        let repeated = out
            .match_indices(": ")
            .map(|(i, sep)| i + sep.len())
            .chain(std::iter::once(0))
            .filter_map(|start| out.get(start..))
            .filter(|tail| {
                !tail.is_empty()
                    && text
                        .strip_prefix(tail)
                        .is_some_and(|rest| rest.starts_with(": "))
            })
            .map(str::len)
            .max()
            .unwrap_or(0);
        match text.get(repeated..) {
            Some(rest) if repeated > 0 => out.push_str(rest),
            _ => {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&text);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "creating /x: {}", self.0)
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = anyhow::Error::new(Wrapper(io)).context("locking /x");
        assert_eq!(
            super::message(&err),
            "locking /x: creating /x: No such file or directory"
        );
        // A cause that starts with what the message ends with (hyper's errors print their
        // kind, and their source adds the detail).
        let err = anyhow::anyhow!("operation was canceled: connection error: alert")
            .context("operation was canceled")
            .context("ping on the engine");
        assert_eq!(
            super::message(&err),
            "ping on the engine: operation was canceled: connection error: alert"
        );
        // Only whole parts count: `foo` is not the start of `foobar`.
        let err = anyhow::anyhow!("foobar: y").context("x: foo");
        assert_eq!(super::message(&err), "x: foo: foobar: y");
    }
}
