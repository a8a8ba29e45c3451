//! Image references (`[domain/]path[:tag][@digest]`), as `distribution/reference` parses them.
//!
//! The grammar, from upstream:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain "/"] path
//! domain           := host [":" port-number]
//! host             := domain-name | "[" IPv6address "]"
//! domain-name      := domain-component ["." domain-component]*
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! port-number      := /[0-9]+/
//! path             := path-component ["/" path-component]*
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := /[a-z0-9]+/
//! separator        := /[_.]|__|[-]+/
//! tag              := /[\w][\w.-]{0,127}/
//! digest           := algorithm ":" /[0-9a-fA-F]{32,}/, then validated as a [`Digest`]
//! ```
//!
//! Because a domain cannot contain `/`, a path cannot contain `:` or `@`, and a tag cannot
//! contain `@`, every part is found by splitting at the first separator; the grammar is then
//! checked part by part, which gives the same answers as upstream's regular expression.
//!
//! [`Reference::parse`] normalizes as Docker does (`ParseNormalizedNamed`): a name without a
//! domain is on Docker Hub (`docker.io`), a single-component Docker Hub path is an official
//! image under `library/`, and `index.docker.io` is spelled `docker.io`. The first component is a
//! domain only when it contains `.` or `:`, is `localhost`, or has upper-case letters.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical domain.
const DEFAULT_DOMAIN: &str = "docker.io";

/// Docker Hub's legacy domain, accepted as an alias of [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";

/// The namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";

/// The tag a reference without tag or digest gets.
const DEFAULT_TAG: &str = "latest";

/// The longest repository path upstream accepts.
const PATH_MAX_LEN: usize = 255;

/// A parsed image reference: a repository name, and optionally a tag and a digest.
///
/// `Display` gives the full form (`docker.io/library/busybox:latest`); [`Reference::familiar`]
/// gives the short form Docker shows (`busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a reference was rejected; the messages are `distribution/reference`'s (and go-digest's for
/// digests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is empty.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// The input does not follow the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The input would follow the grammar if it were lower-case.
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// The repository path is longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// The repository (domain left out) has upper-case letters; raised by the normalizing parsers.
    #[error("invalid reference format: repository name ({remote}) must be lowercase")]
    UppercaseRepository {
        /// The repository path as normalized so far (`library/Busybox`).
        remote: String,
    },
    /// The input is 64 hex digits, which would be ambiguous with an image ID.
    #[error("invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier {
        /// The input.
        name: String,
    },
    /// A tag given to [`Reference::with_tag`] does not follow the tag grammar.
    #[error("invalid tag format")]
    InvalidTag,
    /// The digest follows the grammar but is not a valid digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

impl Reference {
    /// Parses a reference and normalizes it to its full form (upstream `ParseNormalizedNamed`).
    ///
    /// `busybox` becomes `docker.io/library/busybox`; a tag and a digest may both be present.
    /// No default tag is added: see [`Reference::with_default_tag`] and
    /// [`Reference::parse_docker_ref`].
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if is_identifier(s) {
            return Err(ReferenceError::HexIdentifier { name: s.to_owned() });
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder
            .split_once(':')
            .map_or(remainder.as_str(), |(remote, _)| remote);
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::UppercaseRepository {
                remote: remote.to_owned(),
            });
        }
        Reference::parse_raw(&format!("{domain}/{remainder}"))
    }

    /// Parses and normalizes a reference, then keeps exactly one of tag and digest (upstream
    /// `ParseDockerRef`): the digest when both are given, `latest` when neither is.
    pub fn parse_docker_ref(s: &str) -> Result<Reference, ReferenceError> {
        let reference = Reference::parse(s)?;
        if reference.digest.is_some() {
            Ok(Reference {
                tag: None,
                ..reference
            })
        } else {
            Ok(reference.with_default_tag())
        }
    }

    /// Parses a reference without normalizing it (upstream `Parse`).
    ///
    /// The domain is empty when the input has none, and `busybox` stays `busybox`. The
    /// normalizing [`Reference::parse`] is what image names on the command line and in `FROM`
    /// need; this one exists for inputs that must already be in full form.
    pub fn parse_raw(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        let Some(parts) = split_reference(s) else {
            let lower = s.to_lowercase();
            if lower != s && split_reference(&lower).is_some() {
                return Err(ReferenceError::NameContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        if parts.path.len() > PATH_MAX_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        let digest = parts.digest.map(Digest::parse).transpose()?;
        Ok(Reference {
            domain: parts.domain.to_owned(),
            path: parts.path.to_owned(),
            tag: parts.tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry host, with its port if any (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The repository name: `domain/path`, or only the path when there is no domain.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The name as Docker shows it (upstream `FamiliarName`): `docker.io/` is left out, and so is
    /// `library/` for an official image (`docker.io/library/busybox` is `busybox`).
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_owned(),
            _ => self.path.clone(),
        }
    }

    /// The reference as Docker shows it (upstream `FamiliarString`): `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.push_tag_and_digest(&mut out);
        out
    }

    /// Adds the tag `latest` when the reference has neither tag nor digest (upstream
    /// `TagNameOnly`).
    pub fn with_default_tag(self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            Reference {
                tag: Some(DEFAULT_TAG.to_owned()),
                ..self
            }
        } else {
            self
        }
    }

    /// Replaces the tag, keeping any digest (upstream `WithTag`).
    pub fn with_tag(self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag);
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            ..self
        })
    }

    /// Replaces the digest, keeping any tag (upstream `WithDigest`).
    pub fn with_digest(self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self
        }
    }

    /// The repository name alone, without tag or digest (upstream `TrimNamed`).
    pub fn without_tag_or_digest(self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self
        }
    }

    fn push_tag_and_digest(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_str());
        }
    }
}

impl fmt::Display for Reference {
    /// The full form, `name[:tag][@digest]` (upstream `String`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_tag_and_digest(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Same as [`Reference::parse`].
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    /// Reads a string with [`Reference::parse`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reference, D::Error> {
        let text = String::deserialize(deserializer)?;
        Reference::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The pieces of a reference that follows the grammar, not yet validated as a digest.
struct Parts<'a> {
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Splits `s` by the reference grammar; `None` when it does not follow it.
///
/// Like upstream's regular expression, a leading `component/` is taken as the domain whenever it
/// is a valid domain and the rest is a valid path, and as part of the path otherwise.
fn split_reference(s: &str) -> Option<Parts<'_>> {
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((left, digest)) => (left, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !is_digest_syntax(d)) {
        return None;
    }
    if let Some((domain, rest)) = name_and_tag.split_once('/')
        && is_domain(domain)
        && let Some((path, tag)) = split_path_and_tag(rest)
    {
        return Some(Parts {
            domain,
            path,
            tag,
            digest,
        });
    }
    let (path, tag) = split_path_and_tag(name_and_tag)?;
    Some(Parts {
        domain: "",
        path,
        tag,
        digest,
    })
}

/// Splits `path[:tag]`, checking both.
fn split_path_and_tag(s: &str) -> Option<(&str, Option<&str>)> {
    let (path, tag) = match s.split_once(':') {
        Some((path, tag)) => (path, Some(tag)),
        None => (s, None),
    };
    (path.split('/').all(is_path_component) && tag.is_none_or(is_tag)).then_some((path, tag))
}

/// `alpha-numeric [separator alpha-numeric]*`, separators being `.`, `_`, `__` or `-`+.
fn is_path_component(component: &str) -> bool {
    let is_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component.chars().next().is_some_and(is_alnum)
        || !component.chars().next_back().is_some_and(is_alnum)
    {
        return false;
    }
    component
        .split(is_alnum)
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, "." | "_" | "__") || separator.chars().all(|c| c == '-')
        })
}

/// `host [":" port]`, the host a domain name or a bracketed IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (host_ok, port) = if let Some(bracketed) = domain.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return false;
        };
        let address_ok =
            !address.is_empty() && address.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
        let port = if after.is_empty() {
            None
        } else {
            match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            }
        };
        (address_ok, port)
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        (host.split('.').all(is_domain_component), port)
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(component: &str) -> bool {
    let first_last_ok = component
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && component
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    first_last_ok
        && component
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `[\w][\w.-]{0,127}`, with Go's ASCII-only `\w`.
fn is_tag(tag: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    tag.len() <= 128
        && tag.chars().next().is_some_and(is_word)
        && tag.chars().all(|c| is_word(c) || c == '.' || c == '-')
}

/// The digest as the reference grammar allows it, before go-digest validates it:
/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}`.
fn is_digest_syntax(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && part.chars().all(|c| c.is_ascii_alphanumeric())
    });
    algorithm_ok && encoded.len() >= 32 && encoded.chars().all(|c| c.is_ascii_hexdigit())
}

/// 64 lower-case hex digits: an image ID, which a repository name must not look like.
fn is_identifier(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits a name into Docker's domain and the rest (upstream `splitDockerDomain`).
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.to_owned(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        );
    };
    let (domain, remote) = if maybe_domain == "localhost"
        || maybe_domain.contains(['.', ':'])
        || maybe_domain.to_lowercase() != maybe_domain
    {
        if maybe_domain == LEGACY_DEFAULT_DOMAIN {
            (DEFAULT_DOMAIN, maybe_remote)
        } else {
            (maybe_domain, maybe_remote)
        }
    } else {
        (DEFAULT_DOMAIN, name)
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        return (domain.to_owned(), format!("{OFFICIAL_REPO_PREFIX}{remote}"));
    }
    (domain.to_owned(), remote.to_owned())
}
