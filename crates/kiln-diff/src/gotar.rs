//! A tar writer whose headers are byte-for-byte those of Go's `archive/tar`, as containerd's
//! change writer (and so BuildKit) drives it.
//!
//! containerd sets `Format = FormatPAX` on every file header, truncates the modification time
//! to whole seconds and clears the access and change times. With those inputs Go writes:
//!
//! * a USTAR header when every field fits (long ASCII names split into prefix and name);
//! * otherwise a PAX extended header (`PaxHeaders.0/<name>`, records sorted by key) followed by
//!   a header whose fields hold what fits: an ASCII-only, truncated name and zero for numbers
//!   that do not fit in octal;
//! * never a GNU header, because every field that can overflow has a PAX record.
//!
//! Numbers are zero-padded octal with a NUL terminator, the user and group names are empty,
//! the device numbers are written (as zero) for every entry type, and the archive ends with
//! exactly two zero blocks. The `tar` crate's `Builder` differs on several of these points
//! (GNU long names, no device fields), which is why headers are encoded here.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// The size of a tar block.
const BLOCK: usize = 512;

/// Go's `maxSpecialFileSize`: the largest PAX extended header it writes.
const MAX_SPECIAL_FILE_SIZE: usize = 1 << 20;

/// Tar type flags used by layers.
pub(crate) mod flag {
    /// Regular file.
    pub const REG: u8 = b'0';
    /// Hard link.
    pub const LINK: u8 = b'1';
    /// Symbolic link.
    pub const SYMLINK: u8 = b'2';
    /// Character device.
    pub const CHAR: u8 = b'3';
    /// Block device.
    pub const BLOCK: u8 = b'4';
    /// Directory.
    pub const DIR: u8 = b'5';
    /// FIFO.
    pub const FIFO: u8 = b'6';
    /// PAX extended header for the next entry.
    pub const XHEADER: u8 = b'x';
}

/// One entry's header, in Go's `tar.Header` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// The entry name (directories end with `/`).
    pub name: Vec<u8>,
    /// The type flag.
    pub typeflag: u8,
    /// The link target of a symbolic or hard link.
    pub linkname: Vec<u8>,
    /// The data size (zero for everything but regular files).
    pub size: u64,
    /// Permission bits plus setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time in whole seconds since the epoch.
    pub mtime: i64,
    /// Device major number (character and block devices).
    pub devmajor: u64,
    /// Device minor number (character and block devices).
    pub devminor: u64,
    /// Extra PAX records (the `SCHILY.xattr.*` ones), keyed by their full key.
    pub pax: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Why a header cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// A field that has no PAX record (mode, device numbers) is too large for octal.
    FieldTooLarge,
    /// A PAX key contains a NUL byte.
    InvalidRecord,
    /// The PAX extended header would be larger than 1 MiB.
    PaxTooLarge,
}

impl HeaderError {
    /// A description for error messages.
    pub(crate) fn why(self) -> &'static str {
        match self {
            HeaderError::FieldTooLarge => "mode or device number too large for a tar header",
            HeaderError::InvalidRecord => "PAX record key contains a NUL byte",
            HeaderError::PaxTooLarge => "PAX extended header larger than 1 MiB",
        }
    }
}

/// Go's `isASCII`: only bytes 1..=127.
fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|&b| b != 0 && b < 0x80)
}

/// Go's `toASCII`: drops every byte that is NUL or part of a non-ASCII character.
fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&b| b != 0 && b < 0x80).collect()
}

/// Go's `fitsInOctal`: `x` fits in an `n`-byte field with a NUL terminator.
fn fits_in_octal(n: usize, x: i64) -> bool {
    let bits = (n as u32 - 1) * 3;
    x >= 0 && (n >= 22 || x < (1i64 << bits))
}

/// The field lengths Go checks against.
const NAME_SIZE: usize = 100;
const PREFIX_SIZE: usize = 155;

/// Go's `splitUSTARPath`: splits a long ASCII name into a prefix (at most 155 bytes) and a
/// name (at most 100 bytes) at a slash.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME_SIZE || !is_ascii(name) {
        return None;
    } else if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if name.get(length - 1) == Some(&b'/') {
        length -= 1;
    }
    let i = name.get(..length)?.iter().rposition(|&b| b == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > NAME_SIZE || nlen == 0 || i > PREFIX_SIZE {
        return None;
    }
    Some((name.get(..i)?, name.get(i + 1..)?))
}

/// Go's `formatString`: copies `s` into `b`, NUL-terminated if there is room, and never
/// leaves a truncated name ending in a slash.
fn format_string(b: &mut [u8], s: &[u8]) {
    let n = s.len().min(b.len());
    if let (Some(dst), Some(src)) = (b.get_mut(..n), s.get(..n)) {
        dst.copy_from_slice(src);
    }
    if s.len() < b.len() {
        if let Some(slot) = b.get_mut(s.len()) {
            *slot = 0;
        }
    } else if s.len() > b.len() && b.last() == Some(&b'/') {
        let keep = s
            .get(..b.len().saturating_sub(1))
            .map(|t| t.len() - t.iter().rev().take_while(|&&c| c == b'/').count())
            .unwrap_or(0);
        if let Some(slot) = b.get_mut(keep) {
            *slot = 0;
        }
    }
}

/// Go's `formatOctal`: zero-padded octal with room for a NUL; zero when `x` does not fit.
fn format_octal(b: &mut [u8], x: i64) {
    let x = if fits_in_octal(b.len(), x) { x } else { 0 };
    let digits = format!("{x:o}");
    let pad = b.len().saturating_sub(digits.len() + 1);
    let mut s = vec![b'0'; pad];
    s.extend_from_slice(digits.as_bytes());
    format_string(b, &s);
}

/// Go's `formatPAXRecord`: `"<len> <key>=<value>\n"`, where `<len>` counts itself.
fn format_pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    const PADDING: usize = 3; // ' ', '=' and '\n'
    let mut size = key.len() + value.len() + PADDING;
    size += size.to_string().len();
    let build = |size: usize| {
        let mut rec = Vec::with_capacity(size);
        rec.extend_from_slice(size.to_string().as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(key);
        rec.push(b'=');
        rec.extend_from_slice(value);
        rec.push(b'\n');
        rec
    };
    let rec = build(size);
    if rec.len() != size {
        return build(rec.len());
    }
    rec
}

/// Byte offsets of the header fields.
mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..263;
    pub const VERSION: Range<usize> = 263..265;
    pub const UNAME: Range<usize> = 265..297;
    pub const GNAME: Range<usize> = 297..329;
    pub const DEVMAJOR: Range<usize> = 329..337;
    pub const DEVMINOR: Range<usize> = 337..345;
    pub const PREFIX: Range<usize> = 345..500;
}

/// A 512-byte header block under construction.
struct Block([u8; BLOCK]);

impl Block {
    fn new() -> Self {
        Block([0; BLOCK])
    }

    fn string(&mut self, range: std::ops::Range<usize>, s: &[u8]) {
        if let Some(b) = self.0.get_mut(range) {
            format_string(b, s);
        }
    }

    fn octal(&mut self, range: std::ops::Range<usize>, x: i64) {
        if let Some(b) = self.0.get_mut(range) {
            format_octal(b, x);
        }
    }

    /// Go's `setFormat` for USTAR and PAX: the `ustar\0` magic, version `00`, and the
    /// checksum (six octal digits, NUL, space).
    fn finish(mut self) -> [u8; BLOCK] {
        if let Some(b) = self.0.get_mut(field::MAGIC) {
            b.copy_from_slice(b"ustar\0");
        }
        if let Some(b) = self.0.get_mut(field::VERSION) {
            b.copy_from_slice(b"00");
        }
        let sum: i64 = self
            .0
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if field::CHKSUM.contains(&i) {
                    32
                } else {
                    i64::from(b)
                }
            })
            .sum();
        if let Some(b) = self.0.get_mut(field::CHKSUM.start..field::CHKSUM.start + 7) {
            format_octal(b, sum);
        }
        if let Some(b) = self.0.get_mut(field::CHKSUM.end - 1) {
            *b = b' ';
        }
        self.0
    }
}

/// Whether an entry type never carries data.
fn is_header_only(typeflag: u8) -> bool {
    matches!(
        typeflag,
        flag::LINK | flag::SYMLINK | flag::CHAR | flag::BLOCK | flag::DIR | flag::FIFO
    )
}

/// Encodes `h` as Go does: either one USTAR block, or a PAX extended header (block plus
/// padded records) and one header block. Returns the bytes to write before the entry's data.
pub(crate) fn encode_header(h: &Header) -> Result<Vec<u8>, HeaderError> {
    let mut ustar_ok = true;
    let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();

    // Name and link name (Go's verifyString): non-ASCII or too long needs PAX; the name alone
    // may still fit USTAR by splitting.
    if !is_ascii(&h.name) || h.name.len() > NAME_SIZE {
        if split_ustar_path(&h.name).is_none() {
            ustar_ok = false;
        }
        pax.insert(b"path".to_vec(), h.name.clone());
    }
    if !is_ascii(&h.linkname) || h.linkname.len() > NAME_SIZE {
        ustar_ok = false;
        pax.insert(b"linkpath".to_vec(), h.linkname.clone());
    }

    // Numbers (Go's verifyNumeric): mode and device numbers have no PAX record.
    let as_i64 = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    if !fits_in_octal(8, i64::from(h.mode))
        || !fits_in_octal(8, as_i64(h.devmajor))
        || !fits_in_octal(8, as_i64(h.devminor))
    {
        return Err(HeaderError::FieldTooLarge);
    }
    for (key, value, len) in [
        (&b"uid"[..], h.uid, 8),
        (&b"gid"[..], h.gid, 8),
        (&b"size"[..], h.size, 12),
    ] {
        if !fits_in_octal(len, as_i64(value)) {
            ustar_ok = false;
            pax.insert(key.to_vec(), value.to_string().into_bytes());
        }
    }

    // Modification time (Go's verifyTime): whole seconds, so only the range matters.
    if !fits_in_octal(12, h.mtime) {
        ustar_ok = false;
        pax.insert(b"mtime".to_vec(), h.mtime.to_string().into_bytes());
    }

    // Extra records force PAX.
    if !h.pax.is_empty() {
        ustar_ok = false;
        for (k, v) in &h.pax {
            pax.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if pax.keys().any(|k| k.contains(&0))
        || [&b"path"[..], b"linkpath"]
            .iter()
            .any(|k| pax.get(*k).is_some_and(|v| v.contains(&0)))
    {
        return Err(HeaderError::InvalidRecord);
    }

    let mut out = Vec::with_capacity(BLOCK * 3);
    if ustar_ok {
        let (prefix, name) = split_ustar_path(&h.name).unwrap_or((&[], &h.name));
        let mut blk = template(h, name);
        blk.string(field::PREFIX, prefix);
        out.extend_from_slice(&blk.finish());
        return Ok(out);
    }

    // The PAX extended header.
    let mut data = Vec::new();
    for (k, v) in &pax {
        data.extend_from_slice(&format_pax_record(k, v));
    }
    if data.len() > MAX_SPECIAL_FILE_SIZE {
        return Err(HeaderError::PaxTooLarge);
    }
    let mut xname = pax_header_name(&h.name);
    xname = to_ascii(&xname);
    xname.truncate(NAME_SIZE);
    while xname.last() == Some(&b'/') {
        xname.pop();
    }
    let mut xblk = Block::new();
    xblk.0[field::TYPEFLAG] = flag::XHEADER;
    xblk.string(field::NAME, &xname);
    xblk.octal(field::MODE, 0);
    xblk.octal(field::UID, 0);
    xblk.octal(field::GID, 0);
    xblk.octal(field::SIZE, data.len() as i64);
    xblk.octal(field::MTIME, 0);
    out.extend_from_slice(&xblk.finish());
    out.extend_from_slice(&data);
    out.resize(out.len() + padding(data.len() as u64), 0);

    // The real header, with what fits.
    let name = to_ascii(&h.name);
    let mut blk = template_ascii(h, &name);
    // Go's PAX path never uses the prefix field.
    blk.string(field::PREFIX, &[]);
    out.extend_from_slice(&blk.finish());
    Ok(out)
}

/// Go's `templateV7Plus` for a USTAR header.
fn template(h: &Header, name: &[u8]) -> Block {
    let mut blk = Block::new();
    blk.0[field::TYPEFLAG] = h.typeflag;
    blk.string(field::NAME, name);
    blk.string(field::LINKNAME, &h.linkname);
    numbers(&mut blk, h);
    blk
}

/// Go's `templateV7Plus` for the header after a PAX extended header (strings made ASCII).
fn template_ascii(h: &Header, name: &[u8]) -> Block {
    let mut blk = Block::new();
    blk.0[field::TYPEFLAG] = h.typeflag;
    blk.string(field::NAME, name);
    blk.string(field::LINKNAME, &to_ascii(&h.linkname));
    numbers(&mut blk, h);
    blk
}

/// The numeric fields and the (empty) owner names.
fn numbers(blk: &mut Block, h: &Header) {
    let as_i64 = |x: u64| i64::try_from(x).unwrap_or(-1);
    blk.octal(field::MODE, i64::from(h.mode));
    blk.octal(field::UID, as_i64(h.uid));
    blk.octal(field::GID, as_i64(h.gid));
    blk.octal(field::SIZE, as_i64(h.size));
    blk.octal(field::MTIME, h.mtime);
    blk.string(field::UNAME, &[]);
    blk.string(field::GNAME, &[]);
    blk.octal(field::DEVMAJOR, as_i64(h.devmajor));
    blk.octal(field::DEVMINOR, as_i64(h.devminor));
}

/// Go's `path.Join(dir, "PaxHeaders.0", file)` for an already clean name.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let split = name.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let (dir, file) = name.split_at(split);
    let mut out = Vec::with_capacity(name.len() + 14);
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        out.push(b'/');
        out.extend_from_slice(file);
    }
    out
}

/// The zero bytes that pad `size` bytes of data to a block boundary.
fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

/// A tar stream writer producing Go's bytes.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    /// Data bytes still expected for the current entry.
    remaining: u64,
    /// Padding owed after the current entry's data.
    pad: usize,
}

impl<W: Write> TarWriter<W> {
    /// Starts a tar stream on `out`.
    pub(crate) fn new(out: W) -> Self {
        TarWriter {
            out,
            remaining: 0,
            pad: 0,
        }
    }

    /// Writes the padding of the previous entry.
    fn flush_entry(&mut self) -> io::Result<()> {
        if self.remaining != 0 {
            return Err(io::Error::other("previous tar entry is incomplete"));
        }
        if self.pad > 0 {
            self.out.write_all(&[0u8; BLOCK][..self.pad])?;
            self.pad = 0;
        }
        Ok(())
    }

    /// Writes the header bytes from [`encode_header`] for an entry of `size` data bytes
    /// (header-only types get none).
    pub(crate) fn write_header(
        &mut self,
        encoded: &[u8],
        typeflag: u8,
        size: u64,
    ) -> io::Result<()> {
        self.flush_entry()?;
        self.out.write_all(encoded)?;
        let size = if is_header_only(typeflag) { 0 } else { size };
        self.remaining = size;
        self.pad = padding(size);
        Ok(())
    }

    /// Writes data of the current entry; more than announced is an error.
    pub(crate) fn write_data(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.len() as u64 > self.remaining {
            return Err(io::Error::other(
                "tar entry data longer than its header says",
            ));
        }
        self.out.write_all(buf)?;
        self.remaining -= buf.len() as u64;
        Ok(())
    }

    /// Writes the two zero blocks that end the archive and returns the output.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.flush_entry()?;
        self.out.write_all(&[0u8; BLOCK * 2])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Go's `parseNumeric`: base-256 when the high bit of the first byte is set, otherwise octal
/// with leading and trailing NULs and spaces ignored (an empty field is 0).
pub(crate) fn parse_numeric(b: &[u8]) -> Option<i64> {
    if let Some(&first) = b.first()
        && first & 0x80 != 0
    {
        let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in b.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = (x << 8) | u64::from(c);
        }
        if x >> 63 > 0 {
            return None;
        }
        let x = x as i64;
        return Some(if inv == 0xff { !x } else { x });
    }
    let is_pad = |c: &u8| *c == 0 || *c == b' ';
    let start = b.iter().position(|c| !is_pad(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_pad(c)).map_or(start, |e| e + 1);
    let trimmed = b.get(start..end).unwrap_or_default();
    let digits = trimmed.split(|&c| c == 0).next().unwrap_or_default();
    if digits.is_empty() {
        return Some(0);
    }
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 8)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(format_pax_record(b"path", b"a"), b"9 path=a\n");
        // 96 bytes of payload push the length from two to three digits.
        let value = vec![b'x'; 92];
        let rec = format_pax_record(b"path", &value);
        assert!(rec.starts_with(b"102 path="));
        assert_eq!(rec.len(), 102);
    }

    #[test]
    fn ustar_split_follows_go() {
        let long = [vec![b'd'; 60], b"/".to_vec(), vec![b'f'; 60]].concat();
        let (prefix, name) = split_ustar_path(&long).unwrap();
        assert_eq!(prefix.len(), 60);
        assert_eq!(name.len(), 60);
        assert!(split_ustar_path(&[b'f'; 101]).is_none());
        assert!(split_ustar_path(b"short").is_none());
    }

    #[test]
    fn pax_header_names() {
        assert_eq!(pax_header_name(b"file"), b"PaxHeaders.0/file");
        assert_eq!(pax_header_name(b"a/b/file"), b"a/b/PaxHeaders.0/file");
        assert_eq!(pax_header_name(b"a/b/"), b"a/b/PaxHeaders.0");
    }

    #[test]
    fn octal_fields() {
        let mut b = [0u8; 8];
        format_octal(&mut b, 0o644);
        assert_eq!(&b, b"0000644\0");
        format_octal(&mut b, -1);
        assert_eq!(&b, b"0000000\0");
        let mut b = [0u8; 12];
        format_octal(&mut b, 1);
        assert_eq!(&b, b"00000000001\0");
    }
}
