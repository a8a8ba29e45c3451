//! Content digests (`sha256:<hex>`), the identity of every LLB vertex.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A content digest in the OCI form `algorithm:encoded`, always validated.
///
/// LLB only ever produces `sha256` digests, but other registered algorithms (`sha384`, `sha512`)
/// are accepted when parsing, as `go-digest` accepts them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// The sha256 digest of `bytes`: the identity BuildKit gives a marshalled op.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        let sum = Sha256::digest(bytes);
        Digest(format!("sha256:{}", hex::encode(sum)))
    }

    /// Parses and validates `algorithm:hex` (lower-case hex of the algorithm's length).
    pub fn parse(value: &str) -> Result<Digest, Error> {
        let bad = |reason| Error::InvalidDigest {
            value: value.to_string(),
            reason,
        };
        let (algorithm, encoded) = value.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        let len = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            "" => return Err(bad("empty algorithm")),
            _ => return Err(bad("unsupported algorithm")),
        };
        if encoded.len() != len {
            return Err(bad("wrong length for the algorithm"));
        }
        if !encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("not lower-case hex"));
        }
        Ok(Digest(value.to_string()))
    }

    /// The algorithm part (`sha256`).
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or_default()
    }

    /// The hex part, without the algorithm.
    pub fn encoded(&self) -> &str {
        self.0.split_once(':').map(|(_, e)| e).unwrap_or_default()
    }

    /// The whole digest as text (`sha256:...`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}
