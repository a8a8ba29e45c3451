//! Digest verification while streaming.

use kiln_oci::Digest;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// Hashes content as it streams by, with the algorithm of the digest it must have.
pub struct Verifier {
    algorithm: String,
    expected: String,
    hasher: Hasher,
}

enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Verifier {
    /// A verifier for content that must have `expected` as its digest. [`Digest`] accepts
    /// only sha256, sha384 and sha512, so the algorithm is always one of those.
    pub fn new(expected: &Digest) -> Verifier {
        let hasher = match expected.algorithm() {
            "sha384" => Hasher::Sha384(Sha384::new()),
            "sha512" => Hasher::Sha512(Sha512::new()),
            _ => Hasher::Sha256(Sha256::new()),
        };
        Verifier {
            algorithm: expected.algorithm().to_owned(),
            expected: expected.as_str().to_owned(),
            hasher,
        }
    }

    /// The digest of `bytes` with `like`'s algorithm, as text.
    pub fn digest_of(like: &Digest, bytes: &[u8]) -> String {
        let mut verifier = Verifier::new(like);
        verifier.update(bytes);
        verifier.finish()
    }

    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// Whether the bytes so far have the expected digest.
    pub fn matches(&self) -> bool {
        self.current() == self.expected
    }

    /// The digest of the bytes so far, as text (`sha256:...`).
    pub fn finish(&self) -> String {
        self.current()
    }

    fn current(&self) -> String {
        let hex = match &self.hasher {
            Hasher::Sha256(h) => hex::encode(h.clone().finalize()),
            Hasher::Sha384(h) => hex::encode(h.clone().finalize()),
            Hasher::Sha512(h) => hex::encode(h.clone().finalize()),
        };
        format!("{}:{hex}", self.algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: &str, chunks: &[&str], matches: bool) {
        let digest = Digest::parse(expected).unwrap_or_else(|e| panic!("{expected}: {e}"));
        let mut verifier = Verifier::new(&digest);
        for chunk in chunks {
            verifier.update(chunk.as_bytes());
        }
        assert_eq!(verifier.matches(), matches, "{expected} over {chunks:?}");
        assert_eq!(verifier.finish() == expected, matches);
    }

    #[test]
    fn algorithms() {
        let cases: &[(&str, &[&str], bool)] = &[
            (
                "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                &["hel", "lo"],
                true,
            ),
            (
                "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                &["hello", "!"],
                false,
            ),
            (
                "sha384:59e1748777448c69de6b800d7a33bbfb9ff1b463e44354c3553bcdb9c666fa90125a3c79f90397bdf5f6a13de828684f",
                &["he", "llo"],
                true,
            ),
            (
                "sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043",
                &["hello"],
                true,
            ),
        ];
        for (expected, chunks, matches) in cases {
            check(expected, chunks, *matches);
        }
    }
}
