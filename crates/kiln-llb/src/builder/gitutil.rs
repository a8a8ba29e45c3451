//! Git remote parsing as BuildKit's `gitutil.ParseURL` does it, reduced to what `llb.Git` needs
//! to build the source identifier: scheme, host, path and the remote without fragment.

use super::paths;

/// A parsed git remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitUrl {
    /// `http`, `https`, `ssh` or `git`.
    pub scheme: String,
    /// The host, with port when given.
    pub host: String,
    /// The path on the host.
    pub path: String,
    /// The remote to hand to git: the input without its fragment.
    pub remote: String,
}

/// Why a remote could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GitUrlError {
    /// No scheme and not an SCP-like `user@host:path`: BuildKit retries with `https://`.
    UnknownProtocol,
    /// A scheme other than http, https, ssh and git, or a malformed URL.
    Invalid,
}

const PROTOCOLS: [&str; 4] = ["http", "https", "ssh", "git"];

pub(crate) fn parse_url(remote: &str) -> Result<GitUrl, GitUrlError> {
    if let Some((proto, rest)) = explicit_protocol(remote) {
        let proto = proto.to_ascii_lowercase();
        if !PROTOCOLS.contains(&proto.as_str()) {
            return Err(GitUrlError::Invalid);
        }
        let without_fragment = remote.split('#').next().unwrap_or(remote);
        let rest = rest.split('#').next().unwrap_or(rest);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let path = rest[end..].split('?').next().unwrap_or("");
        return Ok(GitUrl {
            scheme: proto,
            host: host.to_string(),
            path: path.to_string(),
            remote: without_fragment.to_string(),
        });
    }
    if let Some(url) = parse_scp(remote) {
        return Ok(url);
    }
    Err(GitUrlError::UnknownProtocol)
}

/// `^[a-zA-Z0-9]+://`
fn explicit_protocol(s: &str) -> Option<(&str, &str)> {
    let (proto, rest) = s.split_once("://")?;
    (!proto.is_empty() && proto.bytes().all(|b| b.is_ascii_alphanumeric())).then_some((proto, rest))
}

/// Whether Go's `url.Parse` would see a scheme followed by a path (which rules out SCP syntax).
fn has_go_scheme_with_path(s: &str) -> bool {
    let Some(first) = s.bytes().next() else {
        return false;
    };
    if !first.is_ascii_alphabetic() {
        return false;
    }
    for (i, b) in s.bytes().enumerate() {
        if b == b':' {
            return i > 0 && s[i + 1..].starts_with('/');
        }
        if !(b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') {
            return false;
        }
    }
    false
}

/// `^(?:([a-zA-Z0-9-_]+)@)?([a-zA-Z0-9-.]+):(.*?)(?:#(.*))?$`
fn parse_scp(s: &str) -> Option<GitUrl> {
    if has_go_scheme_with_path(s) {
        return None;
    }
    let (user, rest) = match s.split_once('@') {
        Some((u, r))
            if !u.is_empty()
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            (Some(u), r)
        }
        _ => (None, s),
    };
    let (host, path_and_fragment) = rest.split_once(':')?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    let path = path_and_fragment.split('#').next().unwrap_or("");
    let mut remote = format!("{host}:{path}");
    if let Some(user) = user {
        remote = format!("{user}@{remote}");
    }
    Some(GitUrl {
        scheme: "ssh".to_string(),
        host: host.to_string(),
        path: path.to_string(),
        remote,
    })
}

/// The identifier body `host/path[#ref[:subdir]]` BuildKit builds so that https and ssh remotes
/// of the same repository share an identity.
pub(crate) fn identifier(url: &GitUrl, git_ref: &str, subdir: &str) -> String {
    let mut id = format!("{}{}", url.host, paths::join(&["/", &url.path]));
    if !git_ref.is_empty() || !subdir.is_empty() {
        id.push('#');
        id.push_str(git_ref);
        if !subdir.is_empty() {
            id.push(':');
            id.push_str(subdir);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_remotes() {
        let u = parse_url("https://github.com/moby/buildkit.git#main").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.path.as_str()),
            ("https", "github.com", "/moby/buildkit.git")
        );
        assert_eq!(u.remote, "https://github.com/moby/buildkit.git");
        let u = parse_url("git@github.com:moby/buildkit.git").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.path.as_str()),
            ("ssh", "github.com", "moby/buildkit.git")
        );
        assert_eq!(u.remote, "git@github.com:moby/buildkit.git");
        assert_eq!(
            parse_url("github.com/foo/bar.git"),
            Err(GitUrlError::UnknownProtocol)
        );
        assert_eq!(parse_url("file:///tmp/repo"), Err(GitUrlError::Invalid));
        let u = parse_url("ssh://git@example.com:2222/repo.git").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("example.com:2222", "/repo.git")
        );
    }
}
