//! The canonical byte streams that are hashed. This is the definition of the digests: any
//! change here changes every cache key, so it must come with a new [`VERSION`].
//!
//! Every stream starts with [`VERSION`], a NUL and the name of the record kind, and a NUL.
//! Numbers are big-endian and fixed-width; byte strings are preceded by their length as a
//! `u64`, so that no two different records can produce the same stream.
//!
//! * **Entry** (`entry`): type (tar's type flag byte), permission bits (`mode & 0o7777`:
//!   setuid, setgid and sticky included) as `u32`, uid and gid as `u32`, size (regular files,
//!   else 0) as `u64`, device major and minor (devices, else 0) as `u64`, the symlink target
//!   (empty for anything else), the number of extended attributes as `u64` then each name and
//!   value (sorted by name), and for a regular file the 32-byte sha256 of its content.
//! * **Directory** (`dir`): the 32-byte entry digest of the directory itself (or, for a build
//!   context's root, 32 zero bytes: see [`crate::Hasher::tree_digest`]), the number of
//!   children as `u64`, then for each child in byte order of names: its name and its digest
//!   (the directory digest for a directory, the entry digest for anything else).
//! * **Selection** (`selection`): the number of items as `u64`, then for each, in byte order
//!   of names: its name (its path below the selector's wildcard-free prefix) and its digest.
//!
//! Not covered, on purpose: access, modification and change times, inode and device
//! numbers of the file system, link counts, user and group names.

use sha2::{Digest as _, Sha256};

use crate::meta::{Kind, Meta};

/// The version tag every hashed stream starts with.
pub const VERSION: &str = "kiln.contenthash.v1";

/// A raw sha256 value.
pub(crate) type Sum = [u8; 32];

/// A hasher that writes the canonical encoding.
struct Enc(Sha256);

impl Enc {
    fn new(kind: &str) -> Enc {
        let mut h = Sha256::new();
        h.update(VERSION.as_bytes());
        h.update([0]);
        h.update(kind.as_bytes());
        h.update([0]);
        Enc(h)
    }

    fn u8(&mut self, v: u8) {
        self.0.update([v]);
    }

    fn u32(&mut self, v: u32) {
        self.0.update(v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.update(v.to_be_bytes());
    }

    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.update(v);
    }

    fn sum(&mut self, v: &Sum) {
        self.0.update(v);
    }

    fn finish(self) -> Sum {
        self.0.finalize().into()
    }
}

/// The digest of one entry, from its metadata and (regular files) the sha256 of its content.
pub(crate) fn entry_digest(meta: &Meta, content: Option<&Sum>) -> Sum {
    let mut e = Enc::new("entry");
    e.u8(meta.kind.tag());
    e.u32(meta.perm);
    e.u32(meta.uid);
    e.u32(meta.gid);
    e.u64(meta.size);
    e.u64(meta.dev_major);
    e.u64(meta.dev_minor);
    e.bytes(meta.link.as_deref().unwrap_or_default());
    e.u64(meta.xattrs.len() as u64);
    for (name, value) in &meta.xattrs {
        e.bytes(name);
        e.bytes(value);
    }
    if meta.kind == Kind::File {
        e.sum(content.unwrap_or(&EMPTY_CONTENT));
    }
    e.finish()
}

/// The sha256 of no bytes (the content of an empty file).
pub(crate) const EMPTY_CONTENT: Sum = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The digest of a directory from its own entry digest (`None` for a build context's root)
/// and its children's names and digests, sorted by name.
pub(crate) fn dir_digest<'a>(
    header: Option<&Sum>,
    children: impl ExactSizeIterator<Item = (&'a [u8], &'a Sum)>,
) -> Sum {
    let mut e = Enc::new("dir");
    e.sum(header.unwrap_or(&[0; 32]));
    e.u64(children.len() as u64);
    for (name, digest) in children {
        e.bytes(name);
        e.sum(digest);
    }
    e.finish()
}

/// The digest of several selected items, given as (name, digest) sorted by name.
pub(crate) fn selection_digest(items: &[(String, Sum)]) -> Sum {
    let mut e = Enc::new("selection");
    e.u64(items.len() as u64);
    for (name, digest) in items {
        e.bytes(name.as_bytes());
        e.sum(digest);
    }
    e.finish()
}

/// A raw sum as a [`kiln_oci::Digest`].
pub(crate) fn to_digest(sum: &Sum) -> kiln_oci::Digest {
    // A `sha256:` followed by 64 lower-case hex digits always parses; the fallback is never
    // taken but keeps this function total.
    kiln_oci::Digest::parse(&format!("sha256:{}", hex::encode(sum)))
        .unwrap_or_else(|_| kiln_oci::Digest::of_bytes(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_content_constant() {
        let sum: Sum = Sha256::digest([]).into();
        assert_eq!(sum, EMPTY_CONTENT);
    }
}
