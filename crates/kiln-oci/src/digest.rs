//! Content digests (`algorithm:encoded`), validated as `opencontainers/go-digest` v1 does.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A validated content digest such as `sha256:` followed by 64 lower-case hex digits.
///
/// Only the algorithms go-digest registers are accepted: `sha256`, `sha384` and `sha512`, each
/// with exactly as many lower-case hex digits as the hash has nibbles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    /// Where the `:` between algorithm and encoded value is.
    colon: usize,
}

/// Why a digest was rejected; the messages are go-digest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `algorithm:encoded`, or the encoded part has characters the algorithm does not allow.
    #[error("invalid checksum digest format")]
    InvalidFormat,
    /// The encoded part is not as long as the algorithm's hash.
    #[error("invalid checksum digest length")]
    InvalidLength,
    /// Well-formed, but not `sha256`, `sha384` or `sha512`.
    #[error("unsupported digest algorithm")]
    Unsupported,
}

impl Digest {
    /// The `sha256` digest of `bytes` (go-digest's `FromBytes` with the canonical algorithm):
    /// the identity of a blob, and the identity BuildKit gives a marshalled LLB op.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        let algorithm = "sha256";
        Digest {
            text: format!("{algorithm}:{:x}", Sha256::digest(bytes)),
            colon: algorithm.len(),
        }
    }

    /// Parses and validates `algorithm:encoded` (go-digest's `Parse`).
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let colon = match s.find(':') {
            Some(i) if i > 0 && i + 1 < s.len() => i,
            _ => return Err(DigestError::InvalidFormat),
        };
        let (algorithm, encoded) = (&s[..colon], &s[colon + 1..]);
        let Some(hex_len) = hex_length(algorithm) else {
            return Err(if is_well_formed(algorithm, encoded) {
                DigestError::Unsupported
            } else {
                DigestError::InvalidFormat
            });
        };
        if encoded.len() != hex_len {
            return Err(DigestError::InvalidLength);
        }
        if !encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::InvalidFormat);
        }
        Ok(Digest {
            text: s.to_owned(),
            colon,
        })
    }

    /// The algorithm (`sha256`).
    pub fn algorithm(&self) -> &str {
        self.text.get(..self.colon).unwrap_or_default()
    }

    /// The encoded hash (the hex digits after the `:`).
    pub fn encoded(&self) -> &str {
        self.text.get(self.colon + 1..).unwrap_or_default()
    }

    /// The whole digest as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The number of hex digits of each algorithm go-digest registers.
fn hex_length(algorithm: &str) -> Option<usize> {
    match algorithm {
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    }
}

/// go-digest's `DigestRegexp`: `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn is_well_formed(algorithm: &str, encoded: &str) -> bool {
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let algorithm_ok = algorithm
        .split(['.', '+', '_', '-'])
        .all(|part| !part.is_empty() && part.chars().all(lower_alnum));
    let encoded_ok = !encoded.is_empty()
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'));
    algorithm_ok && encoded_ok
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::{Digest, DigestError};

    /// The algorithm and encoded parts of a valid digest, or why it is invalid.
    type Outcome<'a> = Result<(&'a str, &'a str), DigestError>;

    fn check(input: &str, expected: Outcome<'_>) -> Option<String> {
        let got = Digest::parse(input);
        let got_parts = got
            .as_ref()
            .map(|d| (d.algorithm(), d.encoded()))
            .map_err(|e| *e);
        (got_parts != expected).then(|| format!("{input:?}: got {got_parts:?}, want {expected:?}"))
    }

    #[test]
    fn validates_like_go_digest() {
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let upper = sha.to_uppercase();
        let cases: Vec<(String, Outcome<'_>)> = vec![
            (format!("sha256:{sha}"), Ok(("sha256", sha))),
            (format!("sha256:{upper}"), Err(DigestError::InvalidFormat)),
            ("sha256:abcd".to_owned(), Err(DigestError::InvalidLength)),
            (format!("sha384:{sha}"), Err(DigestError::InvalidLength)),
            (format!("md5:{sha}"), Err(DigestError::Unsupported)),
            (format!("MD5:{sha}"), Err(DigestError::InvalidFormat)),
            (format!("foo+bar:{sha}"), Err(DigestError::Unsupported)),
            (format!(":{sha}"), Err(DigestError::InvalidFormat)),
            ("sha256:".to_owned(), Err(DigestError::InvalidFormat)),
            ("sha256".to_owned(), Err(DigestError::InvalidFormat)),
            (String::new(), Err(DigestError::InvalidFormat)),
            (
                format!("sha256:{}", "ff".repeat(32)),
                Ok((
                    "sha256",
                    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                )),
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(input, want)| check(input, *want))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Known sha256 sums: the empty input and `abc` (FIPS 180-2, appendix B.1).
    #[test]
    fn digests_bytes_with_sha256() {
        let cases: [(&[u8], &str); 2] = [
            (
                b"",
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(bytes, want)| {
                let got = Digest::of_bytes(bytes);
                let reparsed = Digest::parse(got.as_str());
                (got.as_str() != *want || reparsed.as_ref() != Ok(&got))
                    .then(|| format!("{bytes:?}: got {got} (reparsed {reparsed:?}), want {want}"))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
