//! The one error type of the crate.

use kiln_oci::{Digest, DigestError};

/// Everything that can go wrong while building, encoding, decoding or dumping LLB.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A string is not a valid `algorithm:hex` digest. Decoding reports it inside an
    /// [`Error::InvalidMessage`] naming the field that held it.
    #[error("invalid digest {value:?}: {reason}")]
    InvalidDigest {
        /// The rejected text.
        value: String,
        /// Why it was rejected (go-digest's message).
        reason: DigestError,
    },
    /// Protobuf bytes could not be decoded.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What was being decoded (`definition`, `op 3`, ...).
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// A protobuf message is well-formed but misses a field kiln requires or holds a bad value.
    #[error("invalid {what}: {message}")]
    InvalidMessage {
        /// The message or field concerned.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A definition holds no op at all.
    #[error("invalid empty definition")]
    EmptyDefinition,
    /// The last op of a definition (the terminal op) has no input.
    #[error("invalid definition: the terminal op {digest} has no input")]
    TerminalWithoutInput {
        /// The digest of the terminal op.
        digest: Digest,
    },
    /// The last op of a definition is a real op rather than a bare pointer to the result.
    #[error("invalid definition: the terminal op {digest} is not a bare input pointer")]
    TerminalNotBare {
        /// The digest of the terminal op.
        digest: Digest,
    },
    /// An op refers to an input digest that is not in the definition.
    #[error("invalid definition: op {op} refers to unknown input {input}")]
    UnknownInput {
        /// The op holding the reference (the terminal op included).
        op: Digest,
        /// The missing digest.
        input: Digest,
    },
    /// An op refers to an output index that its input op does not have.
    #[error(
        "invalid definition: op {op} uses output {index} of {input}, which has {outputs} outputs"
    )]
    BadOutputIndex {
        /// The op holding the reference.
        op: Digest,
        /// The referenced op.
        input: Digest,
        /// The requested output index.
        index: i64,
        /// How many outputs the referenced op has.
        outputs: usize,
    },
    /// An op refers to one of its own inputs (or file actions) by an index it does not have.
    #[error("invalid op {op}: {message}")]
    BadIndex {
        /// The op concerned.
        op: Digest,
        /// Which index is out of range and why.
        message: String,
    },
    /// The ops reference each other in a cycle, so the definition is not a DAG.
    #[error("invalid definition: the ops are not a DAG, {digest} depends on itself")]
    Cycle {
        /// One op on the cycle.
        digest: Digest,
    },
    /// The metadata map holds an entry for a digest that is not an op of the definition.
    #[error("invalid definition: metadata for unknown op {digest}")]
    UnknownMetadata {
        /// The digest of the metadata entry.
        digest: Digest,
    },
    /// The builder was asked for something LLB cannot express.
    #[error("{0}")]
    Build(String),
    /// An image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    pub(crate) fn build(message: impl Into<String>) -> Self {
        Error::Build(message.into())
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidMessage {
            what: what.into(),
            message: message.into(),
        }
    }
}
