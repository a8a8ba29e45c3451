//! Docker engines over SSH (`DOCKER_HOST=ssh://[USER@]HOST[:PORT]`), reached as the Docker CLI
//! reaches them: `ssh -o ConnectTimeout=30 -T [-l USER] [-p PORT] -- HOST docker system
//! dial-stdio`, one `ssh` process per connection, the engine's API spoken over its standard
//! input and output. `ssh` is the user's own, with their configuration, keys and agent; its
//! messages (a refused key, an unknown host) are kept and shown when the connection fails.

use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The most of `ssh`'s messages kept for an error.
const MAX_STDERR: usize = 8 << 10;

/// Where an `ssh://` engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The user to log in as, when given.
    pub user: Option<String>,
    /// The host.
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
}

/// Parses what follows `ssh://` in `DOCKER_HOST`: `[USER@]HOST[:PORT]`, without a path, as the
/// Docker CLI's SSH helper accepts it.
pub fn parse(rest: &str) -> Result<SshTarget, String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') || rest.contains('?') {
        return Err("an ssh:// address has no path (expected ssh://[USER@]HOST[:PORT])".into());
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((user, hostport)) if !user.is_empty() => (Some(user.to_string()), hostport),
        Some(_) => return Err("the user before @ is empty".into()),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "an IPv6 address lacks its closing ]".to_string())?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| format!("invalid port {p:?}")))
        .transpose()?;
    Ok(SshTarget {
        user,
        host: host.to_string(),
        port,
    })
}

/// The arguments of the `ssh` command for `target`, as the Docker CLI builds them.
pub fn ssh_args(target: &SshTarget) -> Vec<String> {
    let mut args = vec!["-o".into(), "ConnectTimeout=30".into(), "-T".into()];
    if let Some(user) = &target.user {
        args.extend(["-l".into(), user.clone()]);
    }
    if let Some(port) = target.port {
        args.extend(["-p".into(), port.to_string()]);
    }
    args.extend([
        "--".into(),
        target.host.clone(),
        "docker".into(),
        "system".into(),
        "dial-stdio".into(),
    ]);
    args
}

/// One connection: the `ssh` process, spoken to through its standard input and output, and
/// killed when the connection is dropped.
pub struct SshStream {
    stdout: ChildStdout,
    stdin: ChildStdin,
    _child: Child,
}

/// `ssh`'s messages, collected while the connection lives.
pub struct SshMessages(tokio::task::JoinHandle<String>);

impl SshMessages {
    /// What `ssh` wrote to its standard error, once it ended (or after a short wait).
    pub async fn text(self) -> String {
        tokio::time::timeout(Duration::from_millis(500), self.0)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

/// Starts `ssh` for `target`.
pub fn connect(target: &SshTarget) -> std::io::Result<(SshStream, SshMessages)> {
    let mut child = tokio::process::Command::new("ssh")
        .args(ssh_args(target))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("ssh started without its pipes"));
    };
    let messages = tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let room = MAX_STDERR.saturating_sub(kept.len());
            kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
        }
        String::from_utf8_lossy(&kept).into_owned()
    });
    Ok((
        SshStream {
            stdout,
            stdin,
            _child: child,
        },
        SshMessages(messages),
    ))
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_addresses_and_builds_the_command() {
        let check = |rest: &str, want: Result<&str, &str>| {
            let got = parse(rest).map(|t| ssh_args(&t).join(" "));
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{rest}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{rest}: {g}"),
                _ => panic!("{rest}: got {got:?}, want {want:?}"),
            }
        };
        let tail = "docker system dial-stdio";
        check(
            "me@host",
            Ok(&format!("-o ConnectTimeout=30 -T -l me -- host {tail}")),
        );
        check(
            "me@host:2222",
            Ok(&format!(
                "-o ConnectTimeout=30 -T -l me -p 2222 -- host {tail}"
            )),
        );
        check(
            "host",
            Ok(&format!("-o ConnectTimeout=30 -T -- host {tail}")),
        );
        check(
            "root@[::1]:22",
            Ok(&format!(
                "-o ConnectTimeout=30 -T -l root -p 22 -- ::1 {tail}"
            )),
        );
        check("me@host/path", Err("has no path"));
        check("@host", Err("the user before @ is empty"));
        check("me@", Err("the host is empty"));
        check("me@host:ssh", Err("invalid port \"ssh\""));
    }
}
