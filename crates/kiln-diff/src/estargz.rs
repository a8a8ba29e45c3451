//! eStargz layer blobs: a gzip layer that can also be read lazily, file by file.
//!
//! The format is the one `containerd/stargz-snapshotter` specifies in `docs/estargz.md` and
//! writes in its `estargz` package, as BuildKit drives it for `compression=estargz`
//! (`estargz.NewWriterLevel` plus `AppendTarLossLess`):
//!
//! * The input tar is copied **losslessly**: every header, data and padding byte, and the end of
//!   archive blocks, appear unchanged in the decompressed blob. Only the gzip member boundaries
//!   are chosen: a new member starts at the top of the blob, at the first byte of every
//!   non-empty regular file's data, every `chunk_size` bytes inside a large file, at the table
//!   of contents and at the footer. Headers and padding ride in whichever member is open (the
//!   previous file's data member, as upstream does).
//! * After the input comes the table of contents: a tar entry `stargz.index.json` (a USTAR
//!   header as Go writes it, the JSON, padding and two zero blocks) in its own member. The JSON
//!   is encoded as Go's `json.MarshalIndent(toc, "", "\t")` would, so that the TOC digest is
//!   the digest of the same bytes upstream would hash for the same entries.
//! * Last comes the 51-byte footer: an empty stored gzip member whose extra field (`SG`,
//!   length 22) holds `%016xSTARGZ` with the offset of the TOC member.
//!
//! With [`EstargzOptions::landmark`] the blob also starts with the `.no.prefetch.landmark`
//! entry that `estargz.Build` (and so `ctr-remote` and nerdctl) adds; BuildKit does not add it.
//!
//! Every gzip member has no name, a zero modification time and the "unknown" OS byte, so the
//! same input and options always give the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use base64::Engine as _;
use kiln_oci::Digest;

use crate::error::{Error, Result, show};
use crate::gotar::{self, flag};
use crate::hash::HashingWriter;
use crate::pool::OrderedPool;

/// The layer descriptor annotation holding the digest of the TOC JSON.
pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";

/// The layer descriptor annotation holding the size of the decompressed blob, in decimal.
pub const UNCOMPRESSED_SIZE_ANNOTATION: &str = "io.containers.estargz.uncompressed-size";

/// The name of the tar entry holding the table of contents.
pub const TOC_TAR_NAME: &str = "stargz.index.json";

/// The landmark entry that tells a lazy puller not to prefetch anything.
pub const NO_PREFETCH_LANDMARK: &str = ".no.prefetch.landmark";

/// The landmark entry that ends the prioritized files (which kiln never writes).
pub const PREFETCH_LANDMARK: &str = ".prefetch.landmark";

/// The size of the footer in bytes.
pub const FOOTER_SIZE: usize = 51;

/// The default largest chunk of a regular file in one gzip member (upstream's 4 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;

/// The default gzip level: BuildKit's, Go's `gzip.DefaultCompression`.
pub const DEFAULT_LEVEL: u32 = 6;

/// The content of a landmark file: one byte, `0x0f`.
const LANDMARK_CONTENTS: u8 = 0x0f;

/// The size of a tar block.
const BLOCK: usize = 512;

/// Go's `maxSpecialFileSize`: the largest PAX or GNU long-name data accepted.
const MAX_SPECIAL_FILE_SIZE: i64 = 1 << 20;

/// How to write an eStargz blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstargzOptions {
    /// The gzip level, 0 (store) to 9 (best); larger values are clamped to 9.
    pub level: u32,
    /// The largest number of bytes of a regular file in one gzip member; 0 means
    /// [`DEFAULT_CHUNK_SIZE`].
    pub chunk_size: u64,
    /// Whether to start the blob with the [`NO_PREFETCH_LANDMARK`] entry, as `estargz.Build`
    /// does. BuildKit does not (its blobs decompress to exactly the input tar plus the TOC).
    /// With a landmark, landmark entries of the input are dropped and an input
    /// `stargz.index.json` is skipped, as `estargz.Build` does; without, an input
    /// `stargz.index.json` is an error, as in BuildKit.
    pub landmark: bool,
    /// How many threads compress members at once (0 is taken as 1). The blob's bytes do not
    /// depend on it: each member is compressed on its own.
    pub workers: u32,
}

impl Default for EstargzOptions {
    /// BuildKit's defaults: level 6, 4 MiB chunks, no landmark; as many workers as
    /// [`crate::compression_workers`] gives.
    fn default() -> Self {
        EstargzOptions {
            level: DEFAULT_LEVEL,
            chunk_size: DEFAULT_CHUNK_SIZE,
            landmark: false,
            workers: crate::compression_workers(),
        }
    }
}

/// The result of [`compress_estargz`]: the identities of the blob, of the tar inside it and of
/// its table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estargz {
    /// The digest of the blob (what a manifest's layer descriptor names).
    pub digest: Digest,
    /// The size of the blob in bytes.
    pub size: u64,
    /// The digest of the whole decompressed blob: the input tar, the TOC entry and the
    /// landmark if any (the image config's `rootfs.diff_ids` entry, as BuildKit reports it).
    pub diff_id: Digest,
    /// The size of the whole decompressed blob in bytes.
    pub uncompressed_size: u64,
    /// The digest of the TOC JSON (the [`TOC_DIGEST_ANNOTATION`] value).
    pub toc_digest: Digest,
    /// The offset of the TOC gzip member in the blob (what the footer records).
    pub toc_offset: u64,
}

impl Estargz {
    /// The layer descriptor annotations BuildKit sets for an eStargz layer:
    /// [`TOC_DIGEST_ANNOTATION`] and [`UNCOMPRESSED_SIZE_ANNOTATION`].
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                TOC_DIGEST_ANNOTATION.to_string(),
                self.toc_digest.as_str().to_string(),
            ),
            (
                UNCOMPRESSED_SIZE_ANNOTATION.to_string(),
                self.uncompressed_size.to_string(),
            ),
        ])
    }
}

/// Writes the layer tar read from `reader` to `writer` as an eStargz blob, returning the blob
/// digest and size, the `diff_id` and size of the decompressed blob and the TOC digest, all
/// computed in the same pass.
///
/// The input is read once, in order; file contents are streamed through a 64 KiB buffer and
/// only the table of contents is held in memory. Input entries of a type eStargz cannot record
/// (GNU sparse files, PAX global headers, volume headers) are refused, as upstream refuses them.
pub fn compress_estargz<R: Read, W: Write>(
    reader: R,
    writer: W,
    options: &EstargzOptions,
) -> Result<Estargz> {
    let chunk_size = if options.chunk_size == 0 {
        DEFAULT_CHUNK_SIZE
    } else {
        options.chunk_size
    };
    let mut builder = Builder {
        sink: Sink::new(writer, options.level, options.workers),
        toc: Vec::new(),
        chunk_size,
        last_uname: BTreeMap::new(),
        last_gname: BTreeMap::new(),
        buf: vec![0u8; 64 * 1024],
    };
    let mut input = Input { inner: reader };

    if options.landmark {
        builder.landmark()?;
    }
    loop {
        match next_entry(&mut input)? {
            Next::End(raw) => {
                builder.sink.write(&raw)?;
                builder.copy_rest(&mut input)?;
                break;
            }
            Next::Entry(entry) => {
                let clean = clean_name(&entry.name);
                if clean == TOC_TAR_NAME.as_bytes() {
                    if options.landmark {
                        builder.skip(&mut input, &entry)?;
                        continue;
                    }
                    return Err(Error::Tar(invalid(format!(
                        "entry {:?} is reserved for the estargz table of contents",
                        show(&entry.name)
                    ))));
                }
                if options.landmark
                    && (clean == NO_PREFETCH_LANDMARK.as_bytes()
                        || clean == PREFETCH_LANDMARK.as_bytes())
                {
                    builder.skip(&mut input, &entry)?;
                    continue;
                }
                builder.append(&mut input, &entry)?;
            }
        }
    }
    builder.finish()
}

/// The output: gzip members written one after the other, with the digest of the blob and of
/// the uncompressed stream computed on the way.
///
/// Members are compressed on worker threads ([`OrderedPool`]), several small ones to a job,
/// and written in order. So the blob offset where a member starts is known only once the
/// members before it are written: [`Sink::close`] gives the member's number, and
/// [`Sink::offset_of`] its offset after [`Sink::drain`].
struct Sink<W: Write> {
    out: HashingWriter<W>,
    /// The digest and size of everything written into members (the `diff_id`).
    diff: HashingWriter<io::Sink>,
    /// The open member's bytes, uncompressed; `None` between members.
    open: Option<Vec<u8>>,
    /// Closed members not yet handed to the pool.
    batch: Vec<Vec<u8>>,
    batch_bytes: usize,
    /// Members closed so far: the number of the next member.
    members: usize,
    /// The blob offset where each written member starts, by number.
    starts: Vec<u64>,
    pool: OrderedPool<Vec<Vec<u8>>, Vec<Vec<u8>>>,
}

/// How many uncompressed bytes of closed members are gathered into one job: small files are
/// members of their own, and one job each would cost more in hand-offs than in compression.
const BATCH_BYTES: usize = 1 << 20;

/// Compresses each member of a job into a gzip member of its own.
fn compress_members(members: Vec<Vec<u8>>, level: flate2::Compression) -> Result<Vec<Vec<u8>>> {
    members
        .into_iter()
        .map(|data| {
            let mut encoder = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(Vec::with_capacity(data.len() / 2 + 64), level);
            encoder.write_all(&data).map_err(Error::Write)?;
            encoder.finish().map_err(Error::Write)
        })
        .collect()
}

impl<W: Write> Sink<W> {
    fn new(writer: W, level: u32, workers: u32) -> Self {
        let level = flate2::Compression::new(level.min(9));
        Sink {
            out: HashingWriter::new(writer),
            diff: HashingWriter::new(io::sink()),
            open: None,
            batch: Vec::new(),
            batch_bytes: 0,
            members: 0,
            starts: Vec::new(),
            pool: OrderedPool::new(
                usize::try_from(workers.max(1)).unwrap_or(1),
                move |members: Vec<Vec<u8>>| {
                    compress_members(members, level).map_err(|e| e.to_string())
                },
            ),
        }
    }

    /// Writes uncompressed bytes into the current member, opening one if none is open.
    fn write(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.open
            .get_or_insert_with(Vec::new)
            .extend_from_slice(data);
        self.diff.write_all(data).map_err(Error::Write)
    }

    /// Ends the current member, if any, and returns the number of the member that starts
    /// next.
    fn close(&mut self) -> Result<usize> {
        if let Some(member) = self.open.take() {
            self.batch_bytes += member.len();
            self.batch.push(member);
            self.members += 1;
            if self.batch_bytes >= BATCH_BYTES {
                self.submit()?;
            }
        }
        Ok(self.members)
    }

    /// Hands the gathered members to the pool.
    fn submit(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let Sink {
            pool, out, starts, ..
        } = self;
        pool.submit(batch, &mut |done| write_members(out, starts, done))
    }

    /// Ends the current member and waits until every member is written.
    fn drain(&mut self) -> Result<()> {
        self.close()?;
        self.submit()?;
        let Sink {
            pool, out, starts, ..
        } = self;
        pool.drain(&mut |done| write_members(out, starts, done))
    }

    /// The blob offset where member `number` starts (after [`Sink::drain`]); the number of
    /// the member that starts next is the blob's size so far.
    fn offset_of(&self, number: usize) -> u64 {
        self.starts.get(number).copied().unwrap_or(self.out.count())
    }

    /// Ends the current member, waits for every member, and writes `bytes` as they are (the
    /// footer).
    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.drain()?;
        self.out.write_all(bytes).map_err(Error::Write)
    }

    /// Flushes the output and returns the blob's and the uncompressed stream's digests and
    /// sizes.
    fn finish(mut self) -> Result<(Digest, u64, Digest, u64)> {
        self.drain()?;
        let Sink { out, diff, .. } = self;
        let mut out = out;
        out.flush().map_err(Error::Write)?;
        let (_, digest, size) = out.finish();
        let (_, diff_id, uncompressed_size) = diff.finish();
        Ok((digest, size, diff_id, uncompressed_size))
    }
}

/// Writes compressed members in order, noting where each starts.
fn write_members<W: Write>(
    out: &mut HashingWriter<W>,
    starts: &mut Vec<u64>,
    members: Vec<Vec<u8>>,
) -> Result<()> {
    for member in members {
        starts.push(out.count());
        out.write_all(&member).map_err(Error::Write)?;
    }
    Ok(())
}

/// An `InvalidData` error with `message`.
fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The input tar stream.
struct Input<R> {
    inner: R,
}

impl<R: Read> Input<R> {
    /// Reads until `buf` is full or the input ends; returns the number of bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let rest = buf.get_mut(filled..).unwrap_or_default();
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Read(e)),
            }
        }
        Ok(filled)
    }
}

/// One entry's header as Go's `archive/tar` reader reports it, with the raw bytes it was read
/// from.
#[derive(Debug, Default)]
struct TarEntry {
    /// Every byte of the header blocks, PAX and GNU long-name entries included.
    raw: Vec<u8>,
    name: Vec<u8>,
    typeflag: u8,
    linkname: Vec<u8>,
    /// The number of data bytes that follow the header (zero for header-only types).
    data_size: u64,
    /// The `size` field (what the TOC records for regular files).
    size: i64,
    mode: i64,
    uid: i64,
    gid: i64,
    uname: Vec<u8>,
    gname: Vec<u8>,
    /// Modification time: seconds and nanoseconds since the epoch.
    mtime: (i64, u32),
    devmajor: i64,
    devminor: i64,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// What the next header of the input is.
enum Next {
    /// An entry.
    Entry(Box<TarEntry>),
    /// The end of the archive, with the bytes read to find it (a zero block, or nothing).
    End(Vec<u8>),
}

/// Returns `block[range]`, or nothing if out of range (never for a full block).
fn field(block: &[u8], range: std::ops::Range<usize>) -> &[u8] {
    block.get(range).unwrap_or_default()
}

/// Go's `parseString`: the bytes up to the first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => b.get(..n).unwrap_or_default(),
        None => b,
    }
}

/// A numeric tar header field, as Go reads it (`crate::gotar::parse_numeric`), or an error
/// naming the field.
fn parse_numeric(b: &[u8], what: &str) -> Result<i64> {
    crate::gotar::parse_numeric(b).ok_or_else(|| {
        Error::Tar(invalid(format!(
            "invalid {what} field {:?} in a tar header",
            show(b)
        )))
    })
}

/// Checks a header block's checksum (unsigned or signed sum, as Go accepts).
fn verify_checksum(block: &[u8]) -> Result<()> {
    let stored = parse_numeric(field(block, 148..156), "checksum")?;
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored != signed {
        return Err(Error::Tar(invalid(format!(
            "invalid tar header checksum for {:?}",
            show(cstr(field(block, 0..100)))
        ))));
    }
    Ok(())
}

/// The tar formats Go tells apart by their magic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Star,
    Gnu,
}

fn format_of(block: &[u8]) -> Format {
    let magic = field(block, 257..263);
    let version = field(block, 263..265);
    if magic == b"ustar\0" && version == b"00" {
        if field(block, 508..512) == b"tar\0" {
            Format::Star
        } else {
            Format::Ustar
        }
    } else if magic == b"ustar " && version == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    }
}

/// Reads `size` bytes of an extended header's data plus its padding into `raw`, returning the
/// data.
fn read_special<R: Read>(input: &mut Input<R>, size: i64, raw: &mut Vec<u8>) -> Result<Vec<u8>> {
    if !(0..=MAX_SPECIAL_FILE_SIZE).contains(&size) {
        return Err(Error::Tar(invalid(format!(
            "extended tar header of {size} bytes is larger than 1 MiB"
        ))));
    }
    let size = size as usize;
    let padded = size.div_ceil(BLOCK) * BLOCK;
    let mut data = vec![0u8; padded];
    if input.fill(&mut data)? != padded {
        return Err(Error::Tar(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tar stream ends inside an extended header",
        )));
    }
    raw.extend_from_slice(&data);
    data.truncate(size);
    Ok(data)
}

/// Parses PAX records (`"%d %s=%s\n"`), as Go's `parsePAX` does.
fn parse_pax(mut data: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let bad = || Error::Tar(invalid("invalid PAX record in a tar header".to_string()));
    let mut records = BTreeMap::new();
    while !data.is_empty() {
        let sp = data.iter().position(|&c| c == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(data.get(..sp).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > data.len() {
            return Err(bad());
        }
        let record = data.get(sp + 1..len).unwrap_or_default();
        data = data.get(len..).unwrap_or_default();
        let Some((b'\n', record)) = record.split_last() else {
            return Err(bad());
        };
        let eq = record.iter().position(|&c| c == b'=').ok_or_else(bad)?;
        let key = record.get(..eq).unwrap_or_default();
        let value = record.get(eq + 1..).unwrap_or_default();
        if key.is_empty() {
            return Err(bad());
        }
        records.insert(key.to_vec(), value.to_vec());
    }
    Ok(records)
}

/// Parses a decimal PAX number.
fn pax_int(value: &[u8], key: &str) -> Result<i64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Error::Tar(invalid(format!(
                "invalid PAX {key} record {:?}",
                show(value)
            )))
        })
}

/// Parses a PAX time (`%d[.%d]`) into seconds and nanoseconds, as Go's `parsePAXTime`.
fn pax_time(value: &[u8]) -> Result<(i64, u32)> {
    let bad = || {
        Error::Tar(invalid(format!(
            "invalid PAX mtime record {:?}",
            show(value)
        )))
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().map_err(|_| bad())?;
    if negative && nanos != 0 {
        // -1.5 is 1.5 seconds before the epoch: -2 seconds plus 0.5.
        return Ok((secs.saturating_sub(1), 1_000_000_000 - nanos));
    }
    Ok((secs, nanos))
}

/// Reads the next entry's headers (PAX and GNU long names included), as Go's reader does.
fn next_entry<R: Read>(input: &mut Input<R>) -> Result<Next> {
    let mut raw = Vec::new();
    let mut pax: Option<BTreeMap<Vec<u8>, Vec<u8>>> = None;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    loop {
        let mut block = [0u8; BLOCK];
        let n = input.fill(&mut block)?;
        if n == 0 && raw.is_empty() {
            return Ok(Next::End(raw));
        }
        if n < BLOCK {
            return Err(Error::Tar(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar stream ends inside a header",
            )));
        }
        let pending = !raw.is_empty();
        raw.extend_from_slice(&block);
        if block.iter().all(|&c| c == 0) {
            if pending {
                return Err(Error::Tar(invalid(
                    "tar stream ends after an extended header".to_string(),
                )));
            }
            return Ok(Next::End(raw));
        }
        verify_checksum(&block)?;
        let typeflag = block[156];
        match typeflag {
            b'x' | b'L' | b'K' => {
                let size = parse_numeric(field(&block, 124..136), "size")?;
                let data = read_special(input, size, &mut raw)?;
                match typeflag {
                    b'x' => pax = Some(parse_pax(&data)?),
                    b'L' => long_name = Some(cstr(&data).to_vec()),
                    _ => long_link = Some(cstr(&data).to_vec()),
                }
            }
            _ => {
                let mut entry = parse_header(&block)?;
                entry.raw = raw;
                if let Some(records) = pax {
                    merge_pax(&mut entry, records)?;
                }
                if let Some(name) = long_name {
                    entry.name = name;
                }
                if let Some(link) = long_link {
                    entry.linkname = link;
                }
                if entry.typeflag == 0 {
                    // Go's reader reports the old `\0` type as a file, or a directory when the
                    // name ends with a slash.
                    entry.typeflag = if entry.name.ends_with(b"/") {
                        flag::DIR
                    } else {
                        flag::REG
                    };
                }
                if entry.size < 0 {
                    return Err(Error::Tar(invalid(format!(
                        "negative size for tar entry {:?}",
                        show(&entry.name)
                    ))));
                }
                entry.data_size = if is_header_only(entry.typeflag) {
                    0
                } else {
                    entry.size as u64
                };
                return Ok(Next::Entry(Box::new(entry)));
            }
        }
    }
}

/// Whether Go's reader gives an entry type no data.
fn is_header_only(typeflag: u8) -> bool {
    matches!(
        typeflag,
        flag::LINK | flag::SYMLINK | flag::CHAR | flag::BLOCK | flag::DIR | flag::FIFO
    )
}

/// Decodes the fields of one header block.
fn parse_header(block: &[u8]) -> Result<TarEntry> {
    let format = format_of(block);
    let mut entry = TarEntry {
        name: cstr(field(block, 0..100)).to_vec(),
        mode: parse_numeric(field(block, 100..108), "mode")?,
        uid: parse_numeric(field(block, 108..116), "uid")?,
        gid: parse_numeric(field(block, 116..124), "gid")?,
        size: parse_numeric(field(block, 124..136), "size")?,
        mtime: (parse_numeric(field(block, 136..148), "mtime")?, 0),
        typeflag: block.get(156).copied().unwrap_or_default(),
        linkname: cstr(field(block, 157..257)).to_vec(),
        ..TarEntry::default()
    };
    if format != Format::V7 {
        entry.uname = cstr(field(block, 265..297)).to_vec();
        entry.gname = cstr(field(block, 297..329)).to_vec();
        if matches!(entry.typeflag, flag::CHAR | flag::BLOCK) {
            entry.devmajor = parse_numeric(field(block, 329..337), "devmajor")?;
            entry.devminor = parse_numeric(field(block, 337..345), "devminor")?;
        }
        let prefix = match format {
            Format::Ustar => cstr(field(block, 345..500)),
            Format::Star => cstr(field(block, 345..476)),
            _ => &[],
        };
        if !prefix.is_empty() {
            let mut name = prefix.to_vec();
            name.push(b'/');
            name.extend_from_slice(&entry.name);
            entry.name = name;
        }
    }
    Ok(entry)
}

/// Applies PAX records to an entry, as Go's `mergePAX` does.
fn merge_pax(entry: &mut TarEntry, records: BTreeMap<Vec<u8>, Vec<u8>>) -> Result<()> {
    for (key, value) in records {
        match key.as_slice() {
            b"path" => entry.name = value,
            b"linkpath" => entry.linkname = value,
            b"uname" => entry.uname = value,
            b"gname" => entry.gname = value,
            b"uid" => entry.uid = pax_int(&value, "uid")?,
            b"gid" => entry.gid = pax_int(&value, "gid")?,
            b"size" => entry.size = pax_int(&value, "size")?,
            b"mtime" => entry.mtime = pax_time(&value)?,
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    entry.xattrs.insert(name.to_vec(), value);
                } else if key.starts_with(b"GNU.sparse.") {
                    return Err(Error::UnsupportedEntry {
                        kind: 'S',
                        entry: show(&entry.name),
                    });
                }
            }
        }
    }
    Ok(())
}

/// `path.Clean("/" + name)` without the leading slash, as upstream compares names.
fn clean_name(name: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&c| c == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join(&b'/')
}

/// One TOC entry, with upstream's JSON field names and `omitempty` rules.
#[derive(Debug, Default)]
struct TocEntry {
    name: Vec<u8>,
    kind: &'static str,
    size: i64,
    modtime: String,
    link_name: Vec<u8>,
    mode: i64,
    uid: i64,
    gid: i64,
    user_name: Vec<u8>,
    group_name: Vec<u8>,
    offset: u64,
    /// The number of the gzip member holding this entry's data (a regular file's first chunk,
    /// or a chunk); its `offset` is filled in once the members are written.
    member: Option<usize>,
    dev_major: i64,
    dev_minor: i64,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    digest: String,
    chunk_offset: u64,
    chunk_size: u64,
    chunk_digest: String,
}

/// The writer state: the output, the TOC so far and upstream's user and group name memory.
struct Builder<W: Write> {
    sink: Sink<W>,
    toc: Vec<TocEntry>,
    chunk_size: u64,
    last_uname: BTreeMap<i64, Vec<u8>>,
    last_gname: BTreeMap<i64, Vec<u8>>,
    buf: Vec<u8>,
}

/// Upstream's `nameIfChanged`: a user or group name is recorded only when it differs from the
/// last one recorded for the same id.
fn name_if_changed(memory: &mut BTreeMap<i64, Vec<u8>>, id: i64, name: &[u8]) -> Vec<u8> {
    if name.is_empty() || memory.get(&id).is_some_and(|last| last == name) {
        return Vec::new();
    }
    memory.insert(id, name.to_vec());
    name.to_vec()
}

impl<W: Write> Builder<W> {
    /// Writes the no-prefetch landmark entry, as `estargz.Build` writes it first.
    fn landmark(&mut self) -> Result<()> {
        let header = gotar::Header {
            name: NO_PREFETCH_LANDMARK.as_bytes().to_vec(),
            typeflag: flag::REG,
            size: 1,
            ..gotar::Header::default()
        };
        let raw = gotar::encode_header(&header).map_err(|e| Error::Header {
            entry: NO_PREFETCH_LANDMARK.to_string(),
            why: e.why(),
        })?;
        let entry = TarEntry {
            raw,
            name: header.name,
            typeflag: flag::REG,
            data_size: 1,
            size: 1,
            ..TarEntry::default()
        };
        // The content byte followed by the padding of its block.
        let mut block = [0u8; BLOCK];
        block[0] = LANDMARK_CONTENTS;
        self.append(&mut &block[..], &entry)
    }

    /// Skips an input entry: its headers, data and padding are not written.
    fn skip<R: Read>(&mut self, input: &mut Input<R>, entry: &TarEntry) -> Result<()> {
        let mut left = entry.data_size + padding(entry.data_size);
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let buf = self.buf.get_mut(..want).unwrap_or_default();
            let n = input.fill(buf)?;
            if n == 0 {
                break;
            }
            left -= n as u64;
        }
        Ok(())
    }

    /// Writes one entry (headers, data in chunks, padding) and records it in the TOC.
    fn append<R: Read>(&mut self, input: &mut R, entry: &TarEntry) -> Result<()> {
        let kind = match entry.typeflag {
            flag::LINK => "hardlink",
            flag::SYMLINK => "symlink",
            flag::DIR => "dir",
            flag::REG => "reg",
            flag::CHAR => "char",
            flag::BLOCK => "block",
            flag::FIFO => "fifo",
            other => {
                return Err(Error::UnsupportedEntry {
                    kind: char::from(other),
                    entry: show(&entry.name),
                });
            }
        };
        let mut toc = TocEntry {
            name: entry.name.clone(),
            kind,
            modtime: format_modtime(entry.mtime),
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            user_name: name_if_changed(&mut self.last_uname, entry.uid, &entry.uname),
            group_name: name_if_changed(&mut self.last_gname, entry.gid, &entry.gname),
            xattrs: entry.xattrs.clone(),
            ..TocEntry::default()
        };
        match entry.typeflag {
            flag::LINK | flag::SYMLINK => toc.link_name = entry.linkname.clone(),
            flag::REG => toc.size = entry.size,
            flag::CHAR | flag::BLOCK => {
                toc.dev_major = entry.devmajor;
                toc.dev_minor = entry.devminor;
            }
            _ => {}
        }

        self.sink.write(&entry.raw)?;

        if entry.typeflag != flag::REG {
            self.toc.push(toc);
            return self.copy_padding(input, entry);
        }

        let reg_index = self.toc.len();
        let mut file_digest = HashingWriter::new(io::sink());
        let total = entry.data_size;
        let mut written = 0u64;
        while written < total {
            let remain = total - written;
            let chunk = if remain < self.chunk_size {
                remain
            } else {
                // Upstream records the chunk size whenever a full chunk is written, the last
                // one included when the size is a multiple of the chunk size.
                toc.chunk_size = self.chunk_size;
                self.chunk_size
            };
            toc.member = Some(self.sink.close()?);
            toc.chunk_offset = written;
            let mut chunk_digest = HashingWriter::new(io::sink());
            let mut left = chunk;
            while left > 0 {
                let want = left.min(self.buf.len() as u64) as usize;
                let buf = self.buf.get_mut(..want).unwrap_or_default();
                let n = read_some(input, buf)?;
                if n == 0 {
                    return Err(Error::Tar(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("tar stream ends inside the data of {:?}", show(&entry.name)),
                    )));
                }
                let data = buf.get(..n).unwrap_or_default();
                self.sink.write(data)?;
                chunk_digest.write_all(data).map_err(Error::Write)?;
                file_digest.write_all(data).map_err(Error::Write)?;
                left -= n as u64;
            }
            toc.chunk_digest = chunk_digest.digest().as_str().to_string();
            self.toc.push(toc);
            written += chunk;
            toc = TocEntry {
                name: entry.name.clone(),
                kind: "chunk",
                ..TocEntry::default()
            };
        }
        if total == 0 {
            self.toc.push(toc);
        }
        if let Some(reg) = self.toc.get_mut(reg_index) {
            reg.digest = file_digest.digest().as_str().to_string();
        }
        self.copy_padding(input, entry)
    }

    /// Copies the padding after an entry's data into the current member. A stream that ends
    /// inside the padding simply ends there, as upstream's reader allows.
    fn copy_padding<R: Read>(&mut self, input: &mut R, entry: &TarEntry) -> Result<()> {
        let pad = padding(entry.data_size) as usize;
        let mut block = [0u8; BLOCK];
        let buf = block.get_mut(..pad).unwrap_or_default();
        let mut filled = 0;
        while filled < pad {
            let rest = buf.get_mut(filled..).unwrap_or_default();
            let n = read_some(input, rest)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        self.sink.write(buf.get(..filled).unwrap_or_default())
    }

    /// Copies everything after the end-of-archive marker as it is.
    fn copy_rest<R: Read>(&mut self, input: &mut Input<R>) -> Result<()> {
        loop {
            let n = read_some(&mut input.inner, &mut self.buf)?;
            if n == 0 {
                return Ok(());
            }
            let data = self.buf.get(..n).unwrap_or_default();
            self.sink.write(data)?;
        }
    }

    /// Writes the TOC entry and the footer and returns the identities of the blob.
    fn finish(mut self) -> Result<Estargz> {
        self.sink.drain()?;
        for entry in &mut self.toc {
            if let Some(member) = entry.member {
                entry.offset = self.sink.offset_of(member);
            }
        }
        let json = toc_json(&self.toc);
        let toc_member = self.sink.close()?;
        let toc_offset = self.sink.offset_of(toc_member);
        let header = gotar::Header {
            name: TOC_TAR_NAME.as_bytes().to_vec(),
            typeflag: flag::REG,
            size: json.len() as u64,
            ..gotar::Header::default()
        };
        let raw = gotar::encode_header(&header).map_err(|e| Error::Header {
            entry: TOC_TAR_NAME.to_string(),
            why: e.why(),
        })?;
        self.sink.write(&raw)?;
        self.sink.write(&json)?;
        let pad = vec![0u8; padding(json.len() as u64) as usize + 2 * BLOCK];
        self.sink.write(&pad)?;
        self.sink.write_raw(&footer(toc_offset))?;
        let (digest, size, diff_id, uncompressed_size) = self.sink.finish()?;
        Ok(Estargz {
            digest,
            size,
            diff_id,
            uncompressed_size,
            toc_digest: Digest::of_bytes(&json),
            toc_offset,
        })
    }
}

/// Reads once, retrying on interruption; read errors are errors of the layer stream.
fn read_some<R: Read + ?Sized>(input: &mut R, buf: &mut [u8]) -> Result<usize> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Read(e)),
        }
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// The zero bytes that pad `size` bytes of data to a block boundary.
fn padding(size: u64) -> u64 {
    let rem = size % BLOCK as u64;
    if rem == 0 { 0 } else { BLOCK as u64 - rem }
}

/// The 51-byte footer: an empty stored gzip member whose extra field is `SG`, 22, and
/// `%016xSTARGZ` with the TOC offset.
fn footer(toc_offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FOOTER_SIZE);
    // ID1, ID2, CM = deflate, FLG = FEXTRA, MTIME = 0, XFL = 0, OS = unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255]);
    out.extend_from_slice(&26u16.to_le_bytes());
    out.extend_from_slice(b"SG");
    out.extend_from_slice(&22u16.to_le_bytes());
    out.extend_from_slice(format!("{toc_offset:016x}STARGZ").as_bytes());
    // A final stored block of length 0, then CRC-32 and size of nothing.
    out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    out.extend_from_slice(&[0; 8]);
    out
}

/// Go's `formatModtime`: empty for the zero time and the epoch, otherwise UTC RFC 3339 rounded
/// to the second.
fn format_modtime((secs, nanos): (i64, u32)) -> String {
    /// The Unix time of Go's zero `time.Time` (January 1, year 1).
    const GO_ZERO: i64 = -62_135_596_800;
    if secs == 0 || (secs == GO_ZERO && nanos == 0) {
        return String::new();
    }
    let secs = if nanos >= 500_000_000 {
        secs.saturating_add(1)
    } else {
        secs
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let year = if year < 0 {
        format!("-{:04}", year.unsigned_abs())
    } else {
        format!("{year:04}")
    };
    format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era.
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (i64::try_from(year).unwrap_or(i64::MAX), month, day)
}

/// Encodes the TOC as Go's `json.MarshalIndent(toc, "", "\t")` does.
fn toc_json(entries: &[TocEntry]) -> Vec<u8> {
    let mut out = String::from("{\n\t\"version\": 1,\n\t\"entries\": ");
    if entries.is_empty() {
        // Go marshals the nil slice of an empty TOC as null.
        out.push_str("null");
    } else {
        out.push_str("[\n");
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            entry_json(&mut out, entry);
        }
        out.push_str("\n\t]");
    }
    out.push_str("\n}");
    out.into_bytes()
}

/// Encodes one TOC entry at the indentation of an element of `entries`.
fn entry_json(out: &mut String, e: &TocEntry) {
    let mut fields: Vec<(&str, String)> = vec![
        ("name", json_string(&e.name)),
        ("type", json_string(e.kind.as_bytes())),
    ];
    let int = |key: &'static str, value: i128, fields: &mut Vec<(&str, String)>| {
        if value != 0 {
            fields.push((key, value.to_string()));
        }
    };
    int("size", i128::from(e.size), &mut fields);
    if !e.modtime.is_empty() {
        fields.push(("modtime", json_string(e.modtime.as_bytes())));
    }
    if !e.link_name.is_empty() {
        fields.push(("linkName", json_string(&e.link_name)));
    }
    int("mode", i128::from(e.mode), &mut fields);
    int("uid", i128::from(e.uid), &mut fields);
    int("gid", i128::from(e.gid), &mut fields);
    if !e.user_name.is_empty() {
        fields.push(("userName", json_string(&e.user_name)));
    }
    if !e.group_name.is_empty() {
        fields.push(("groupName", json_string(&e.group_name)));
    }
    int("offset", i128::from(e.offset), &mut fields);
    int("devMajor", i128::from(e.dev_major), &mut fields);
    int("devMinor", i128::from(e.dev_minor), &mut fields);
    if !e.xattrs.is_empty() {
        let mut map = String::from("{\n");
        for (i, (key, value)) in e.xattrs.iter().enumerate() {
            if i > 0 {
                map.push_str(",\n");
            }
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            map.push_str(&format!(
                "\t\t\t\t{}: {}",
                json_string(key),
                json_string(encoded.as_bytes())
            ));
        }
        map.push_str("\n\t\t\t}");
        fields.push(("xattrs", map));
    }
    if !e.digest.is_empty() {
        fields.push(("digest", json_string(e.digest.as_bytes())));
    }
    int("chunkOffset", i128::from(e.chunk_offset), &mut fields);
    int("chunkSize", i128::from(e.chunk_size), &mut fields);
    if !e.chunk_digest.is_empty() {
        fields.push(("chunkDigest", json_string(e.chunk_digest.as_bytes())));
    }
    out.push_str("\t\t{\n");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str(&format!("\t\t\t\"{key}\": {value}"));
    }
    out.push_str("\n\t\t}");
}

/// Encodes bytes as a JSON string the way Go's `encoding/json` does: HTML-safe escapes for
/// `<`, `>` and `&`, `\u2028` and `\u2029` escaped, and each byte of invalid UTF-8 replaced
/// by `\ufffd`.
fn json_string(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                    let b = c as u32 as usize;
                    out.push_str("\\u00");
                    out.push(char::from(HEX.get(b >> 4).copied().unwrap_or(b'0')));
                    out.push(char::from(HEX.get(b & 0xf).copied().unwrap_or(b'0')));
                }
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                _ => out.push(c),
            }
        }
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modtime_follows_go() {
        assert_eq!(format_modtime((0, 0)), "");
        assert_eq!(format_modtime((0, 700_000_000)), "");
        assert_eq!(format_modtime((1_566_297_043, 0)), "2019-08-20T10:30:43Z");
        assert_eq!(
            format_modtime((1_566_297_043, 500_000_000)),
            "2019-08-20T10:30:44Z"
        );
        assert_eq!(format_modtime((951_782_400, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(format_modtime((-1, 0)), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn json_strings_follow_go() {
        assert_eq!(
            json_string(b"a<b>&\"\\\n\x01"),
            r#""a\u003cb\u003e\u0026\"\\\n\u0001""#
        );
        assert_eq!(json_string(b"\xff\xfeok"), r#""\ufffd\ufffdok""#);
        assert_eq!(json_string("é\u{2028}".as_bytes()), "\"é\\u2028\"");
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"12.5").unwrap(), (12, 500_000_000));
        assert_eq!(pax_time(b"-1.5").unwrap(), (-2, 500_000_000));
        assert_eq!(pax_time(b"7").unwrap(), (7, 0));
        assert!(pax_time(b"x").is_err());
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_numeric(b"0000644\0", "mode").unwrap(), 0o644);
        assert_eq!(parse_numeric(b"  \0\0", "mode").unwrap(), 0);
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 1, 0], "uid").unwrap(),
            256
        );
        assert_eq!(parse_numeric(&[0xff; 8], "uid").unwrap(), -1);
        assert!(parse_numeric(b"12x", "mode").is_err());
    }

    #[test]
    fn footer_is_51_bytes() {
        let f = footer(0x1234);
        assert_eq!(f.len(), FOOTER_SIZE);
        assert_eq!(&f[16..38], b"0000000000001234STARGZ");
    }

    #[test]
    fn clean_names() {
        assert_eq!(clean_name(b"./stargz.index.json"), b"stargz.index.json");
        assert_eq!(clean_name(b"/a/../b/"), b"b");
    }
}
