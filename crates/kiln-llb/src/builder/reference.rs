//! Image names as `llb.Image` writes them: `distribution/reference`'s `ParseNormalizedNamed`
//! followed by `TagNameOnly` (`busybox` becomes `docker.io/library/busybox:latest`), through
//! [`kiln_oci::Reference`].

use kiln_oci::Reference;

use crate::error::Error;

/// Normalizes an image reference to its full form, adding `:latest` when it has neither tag
/// nor digest. The error carries `distribution/reference`'s message.
pub(crate) fn normalize_image_ref(reference: &str) -> Result<String, Error> {
    Reference::parse(reference)
        .map(|parsed| parsed.with_default_tag().to_string())
        .map_err(|e| Error::InvalidReference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::normalize_image_ref;

    fn check(input: &str, expected: Result<&str, &str>) -> Option<String> {
        let got = normalize_image_ref(input);
        let got = match &got {
            Ok(name) => Ok(name.as_str()),
            Err(crate::Error::InvalidReference { reason, .. }) => Err(reason.as_str()),
            Err(other) => return Some(format!("{input:?}: unexpected error {other:?}")),
        };
        (got != expected).then(|| format!("{input:?}: got {got:?}, want {expected:?}"))
    }

    #[test]
    fn normalizes_like_llb_image() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let with_digest = format!("alpine@{digest}");
        let with_digest_full = format!("docker.io/library/alpine@{digest}");
        let tag_and_digest = format!("alpine:3@{digest}");
        let tag_and_digest_full = format!("docker.io/library/alpine:3@{digest}");
        let cases: Vec<(&str, Result<&str, &str>)> = vec![
            ("busybox", Ok("docker.io/library/busybox:latest")),
            ("busybox:1.36", Ok("docker.io/library/busybox:1.36")),
            ("user/app", Ok("docker.io/user/app:latest")),
            (
                "docker.io/library/alpine:3",
                Ok("docker.io/library/alpine:3"),
            ),
            (
                "index.docker.io/alpine",
                Ok("docker.io/library/alpine:latest"),
            ),
            ("localhost:5000/app", Ok("localhost:5000/app:latest")),
            ("localhost/app:v1", Ok("localhost/app:v1")),
            (
                "ghcr.io/owner/repo/sub:tag",
                Ok("ghcr.io/owner/repo/sub:tag"),
            ),
            (&with_digest, Ok(&with_digest_full)),
            (&tag_and_digest, Ok(&tag_and_digest_full)),
            (
                "Busybox",
                Err(
                    "invalid reference format: repository name (library/Busybox) must be lowercase",
                ),
            ),
            ("busybox:", Err("invalid reference format")),
            ("bad..name", Err("invalid reference format")),
            ("", Err("invalid reference format")),
            ("alpine@sha256:abc", Err("invalid reference format")),
        ];
        let failures: Vec<String> = cases
            .into_iter()
            .filter_map(|(input, expected)| check(input, expected))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
