//! Just enough of `distribution/reference` to name an image the way `llb.Image` does:
//! `ParseNormalizedNamed` followed by `TagNameOnly` (`busybox` becomes
//! `docker.io/library/busybox:latest`).
//!
//! This is a stop-gap: once `kiln-oci` has its reference parser, the builder should use it.

use crate::error::Error;

/// Normalizes an image reference to its full form, adding `:latest` when it has neither tag nor digest.
pub(crate) fn normalize_image_ref(reference: &str) -> Result<String, Error> {
    let bad = |reason: &str| Error::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    };
    if reference.is_empty() {
        return Err(bad("empty reference"));
    }
    if reference.len() > 255 + 128 + 72 {
        return Err(bad("reference is too long"));
    }
    // Split off the digest, then the tag (a ':' after the last '/').
    let (rest, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if name.is_empty() {
        return Err(bad("empty repository name"));
    }
    // Domain detection as in `splitDockerDomain`.
    let (domain, path) = match name.split_once('/') {
        Some((first, remainder))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), remainder.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("repository name must be lowercase"));
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            return Err(bad("invalid reference format"));
        }
    }
    if !valid_domain(&domain) {
        return Err(bad("invalid reference format"));
    }
    if domain.len() + 1 + path.len() > 255 {
        return Err(bad("repository name must not be more than 255 characters"));
    }
    let mut out = format!("{domain}/{path}");
    if let Some(tag) = tag {
        if !valid_tag(tag) {
            return Err(bad("invalid reference format"));
        }
        out.push(':');
        out.push_str(tag);
    }
    match digest {
        Some(digest) => {
            crate::digest::Digest::parse(digest).map_err(|_| bad("invalid digest"))?;
            out.push('@');
            out.push_str(digest);
        }
        None if tag.is_none() => out.push_str(":latest"),
        None => {}
    }
    Ok(out)
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if host.starts_with('[') {
        return host.ends_with(']') && host.len() > 2;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_tag(t: &str) -> bool {
    // [\w][\w.-]{0,127}
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = t.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_distribution_reference() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases: Vec<(String, Result<String, ()>)> = vec![
            (
                "busybox".into(),
                Ok("docker.io/library/busybox:latest".into()),
            ),
            (
                "busybox:1.36".into(),
                Ok("docker.io/library/busybox:1.36".into()),
            ),
            ("user/app".into(), Ok("docker.io/user/app:latest".into())),
            (
                "docker.io/library/alpine:3".into(),
                Ok("docker.io/library/alpine:3".into()),
            ),
            (
                "index.docker.io/alpine".into(),
                Ok("docker.io/library/alpine:latest".into()),
            ),
            (
                "localhost:5000/app".into(),
                Ok("localhost:5000/app:latest".into()),
            ),
            ("localhost/app:v1".into(), Ok("localhost/app:v1".into())),
            (
                "ghcr.io/owner/repo/sub:tag".into(),
                Ok("ghcr.io/owner/repo/sub:tag".into()),
            ),
            (
                format!("alpine@{digest}"),
                Ok(format!("docker.io/library/alpine@{digest}")),
            ),
            (
                format!("alpine:3@{digest}"),
                Ok(format!("docker.io/library/alpine:3@{digest}")),
            ),
            ("Busybox".into(), Err(())),
            ("busybox:".into(), Err(())),
            ("bad..name".into(), Err(())),
            ("".into(), Err(())),
            ("alpine@sha256:abc".into(), Err(())),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(input, want)| {
                let got = normalize_image_ref(input).map_err(|_| ());
                (got != *want).then(|| format!("{input:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
