//! Cache keys: what they are made of and how they are encoded.
//!
//! A cache key is the SHA-256 of a canonical, versioned, length-prefixed encoding of
//! everything a vertex's result depends on: the op's own key material and, for each input in
//! order, either the input's cache key (and which output of it is used) or the digest of the
//! input's content (and the selector that says which part of the content was digested).
//!
//! The encoding is written out byte by byte here, never derived from `Debug`, `Hash` or serde
//! output, so that it cannot change by accident: golden tests pin a few keys.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// The domain-separation tag that opens every encoded key. Changing the encoding means
/// changing this tag, which invalidates every stored key at once instead of silently mixing
/// two encodings.
const KEY_TAG: &[u8] = b"kiln.cachekey.v1";

/// The op's own part of a cache key: canonical bytes built by the op, plus a version tag
/// the op bumps whenever the meaning of those bytes changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKeyInput {
    /// The version of the op's key encoding (`"exec.v1"`).
    pub version: String,
    /// The op's canonical key bytes.
    pub bytes: Vec<u8>,
}

impl CacheKeyInput {
    /// A key input from a version tag and canonical bytes.
    pub fn new(version: impl Into<String>, bytes: impl Into<Vec<u8>>) -> CacheKeyInput {
        CacheKeyInput {
            version: version.into(),
            bytes: bytes.into(),
        }
    }
}

/// Which part of an input's content a content-based key covers (for a `COPY`, the copied
/// paths and options), as canonical bytes built by the op.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector(Vec<u8>);

impl Selector {
    /// A selector from canonical bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Selector {
        Selector(bytes.into())
    }

    /// The selector's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The digest of (part of) an input's content, computed by the op (`sha256:...`). The solver
/// treats it as opaque text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentDigest(String);

impl ContentDigest {
    /// A content digest from its text.
    pub fn new(digest: impl Into<String>) -> ContentDigest {
        ContentDigest(digest.into())
    }

    /// The digest's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How one input contributes to a vertex's cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InputKey {
    /// Through the cache key of the input vertex and the index of the output used.
    Key {
        /// The input vertex's cache key.
        key: CacheKey,
        /// The output of the input vertex that is used.
        output: usize,
    },
    /// Through the digest of the input's content.
    Content {
        /// The digest of the selected content.
        digest: ContentDigest,
        /// What part of the content was digested.
        selector: Selector,
    },
}

/// A cache key: a SHA-256 digest, written `sha256:<64 hex digits>`.
///
/// The digest is taken over this encoding, where `field(b)` is the length of `b` as a
/// big-endian `u64` followed by `b`, and `num(n)` is `n` as a big-endian `u64`:
///
/// ```text
/// field("kiln.cachekey.v1") field(op.version) field(op.bytes) num(number of inputs)
/// then, for input i:   num(i) field("key") field(input key, 32 raw bytes) num(output index)
///                  or: num(i) field("content") field(content digest text) field(selector)
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

/// A string that is not a cache key (`sha256:` followed by 64 lower-case hex digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cache key {0:?}")]
pub struct InvalidCacheKey(pub String);

impl CacheKey {
    /// The cache key of an op with the given key input and inputs (in input order).
    pub fn compute(op: &CacheKeyInput, inputs: &[InputKey]) -> CacheKey {
        let mut enc = Encoder::default();
        enc.field(KEY_TAG);
        enc.field(op.version.as_bytes());
        enc.field(&op.bytes);
        enc.number(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            enc.number(index);
            match input {
                InputKey::Key { key, output } => {
                    enc.field(b"key");
                    enc.field(&key.0);
                    enc.number(*output);
                }
                InputKey::Content { digest, selector } => {
                    enc.field(b"content");
                    enc.field(digest.as_str().as_bytes());
                    enc.field(selector.as_bytes());
                }
            }
        }
        CacheKey(enc.hasher.finalize().into())
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits of the digest, without the algorithm prefix.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }

    /// Parses `sha256:<64 lower-case hex digits>`.
    pub fn parse(text: &str) -> Result<CacheKey, InvalidCacheKey> {
        let invalid = || InvalidCacheKey(text.to_owned());
        let hex = text.strip_prefix("sha256:").ok_or_else(invalid)?;
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(high), Some(low)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                return Err(invalid());
            };
            *byte = (high << 4) | low;
        }
        Ok(CacheKey(out))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey(sha256:{})", self.hex())
    }
}

impl std::str::FromStr for CacheKey {
    type Err = InvalidCacheKey;

    fn from_str(text: &str) -> Result<CacheKey, InvalidCacheKey> {
        CacheKey::parse(text)
    }
}

/// The canonical encoding: every variable-length field is its length as a big-endian `u64`
/// followed by its bytes; every number is a big-endian `u64`.
#[derive(Default)]
struct Encoder {
    hasher: Sha256,
}

impl Encoder {
    fn field(&mut self, bytes: &[u8]) {
        self.number(bytes.len());
        self.hasher.update(bytes);
    }

    fn number(&mut self, n: usize) {
        // usize is at most 64 bits on every supported target, so this never saturates.
        self.hasher
            .update(u64::try_from(n).unwrap_or(u64::MAX).to_be_bytes());
    }
}
