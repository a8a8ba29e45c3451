//! eStargz blobs: the whole blob is one gzip stream holding the input tar and the TOC entry,
//! the footer points at the TOC member, every TOC offset starts a gzip member holding that
//! file's (chunk's) bytes with matching digests, and the output is deterministic.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use common::tmpdir;
use kiln_diff::{
    DiffOpts, Error, EstargzOptions, FOOTER_SIZE, NO_PREFETCH_LANDMARK, TOC_DIGEST_ANNOTATION,
    TOC_TAR_NAME, UNCOMPRESSED_SIZE_ANNOTATION, compress_estargz, write_diff_dirs,
};
use kiln_oci::Digest;
use serde_json::Value;

/// One entry of a test archive.
enum Spec {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    Fifo(&'static str),
    Char(&'static str, u32, u32),
    /// A PAX extended header for the next entry.
    Pax(Vec<(&'static str, &'static [u8])>),
}

/// Deterministic, moderately compressible bytes.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 3 == 0 {
                b'a' + (x % 26) as u8
            } else {
                (x >> 8) as u8
            }
        })
        .collect()
}

/// A GNU-format tar (long names become `L`/`K` entries) with owners, names and times.
fn gnu_tar(specs: &[Spec]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for spec in specs {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_566_297_043);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_username("alice").unwrap();
        h.set_groupname("staff").unwrap();
        h.set_mode(0o644);
        h.set_size(0);
        match spec {
            Spec::Dir(name) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            Spec::File(name, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, &data[..]).unwrap();
            }
            Spec::Symlink(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, name, target).unwrap();
            }
            Spec::Hardlink(name, target) => {
                h.set_entry_type(tar::EntryType::Link);
                b.append_link(&mut h, name, target).unwrap();
            }
            Spec::Fifo(name) => {
                h.set_entry_type(tar::EntryType::Fifo);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            Spec::Char(name, major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            Spec::Pax(records) => b.append_pax_extensions(records.iter().copied()).unwrap(),
        }
    }
    b.into_inner().unwrap()
}

/// A layer tar written by kiln's own (Go-style, PAX) diff writer from a tree on disk.
fn diff_tar() -> Vec<u8> {
    let dir = tmpdir();
    let root = dir.path();
    let long_dir = "d".repeat(120);
    std::fs::create_dir_all(root.join(&long_dir)).unwrap();
    std::fs::write(root.join(&long_dir).join("f".repeat(120)), bytes(700, 3)).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    std::fs::hard_link(root.join("hello.txt"), root.join("hard")).unwrap();
    let mut tar = Vec::new();
    write_diff_dirs(None, root, &mut tar, DiffOpts::default()).unwrap();
    tar
}

/// An entry of a tar listing: name, type flag, data.
type Listed = (Vec<u8>, u8, Vec<u8>);

/// Lists a tar stream; `past_zeros` reads on past end-of-archive blocks (to reach the TOC).
fn list(tar: &[u8], past_zeros: bool) -> Vec<Listed> {
    let mut archive = tar::Archive::new(tar);
    archive.set_ignore_zeros(past_zeros);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type().as_byte();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push((name, kind, data));
    }
    out
}

/// The gzip members of a blob: start offset and decompressed bytes of each.
fn members(blob: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        let start = (blob.len() - rest.len()) as u64;
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let mut data = Vec::new();
        decoder
            .read_to_end(&mut data)
            .map_err(|e| format!("gzip member at {start}: {e}"))?;
        rest = decoder.into_inner();
        out.push((start, data));
    }
    Ok(out)
}

fn sha(data: &[u8]) -> String {
    Digest::of_bytes(data).as_str().to_string()
}

/// Compresses `tar` with `options` and checks everything the format promises. Returns the
/// failures and the TOC JSON.
fn check(tar: &[u8], options: EstargzOptions) -> (Vec<String>, Value) {
    let mut fail = Vec::new();
    let mut blob = Vec::new();
    let r = match compress_estargz(tar, &mut blob, &options) {
        Ok(r) => r,
        Err(e) => return (vec![format!("compress_estargz failed: {e}")], Value::Null),
    };

    // Blob identity.
    if r.digest != Digest::of_bytes(&blob) || r.size != blob.len() as u64 {
        fail.push("blob digest or size does not match the bytes written".into());
    }

    // (d) Determinism, whatever the number of compression threads.
    for workers in [options.workers, 1, 3] {
        let mut again = Vec::new();
        compress_estargz(tar, &mut again, &EstargzOptions { workers, ..options }).unwrap();
        if again != blob {
            fail.push(format!("a run with {workers} workers gave different bytes"));
        }
    }

    // (a) The whole blob is one gzip stream: [landmark] + input tar + TOC entry.
    let mut whole = Vec::new();
    if let Err(e) = flate2::read::MultiGzDecoder::new(&blob[..]).read_to_end(&mut whole) {
        return (vec![format!("blob does not decompress: {e}")], Value::Null);
    }
    // (e) diff_id and uncompressed size are those of the decompressed blob.
    if r.diff_id != Digest::of_bytes(&whole) || r.uncompressed_size != whole.len() as u64 {
        fail.push("diff_id or uncompressed size does not match the decompressed blob".into());
    }
    let body = if options.landmark {
        let landmark = list(&whole, false);
        match landmark.first() {
            Some((name, b'0', data)) if name == NO_PREFETCH_LANDMARK.as_bytes() => {
                if data != &[0x0f] {
                    fail.push("landmark content is not 0x0f".into());
                }
            }
            other => fail.push(format!("first entry is not the landmark: {other:?}")),
        }
        &whole[1024.min(whole.len())..]
    } else {
        &whole[..]
    };
    if !body.starts_with(tar) {
        fail.push("decompressed blob does not start with the input tar verbatim".into());
    }
    let original = list(tar, false);
    let listed = list(&whole, true);
    let mut expected: Vec<&[u8]> = Vec::new();
    if options.landmark {
        expected.push(NO_PREFETCH_LANDMARK.as_bytes());
    }
    expected.extend(original.iter().map(|(n, _, _)| n.as_slice()));
    expected.push(TOC_TAR_NAME.as_bytes());
    let names: Vec<&[u8]> = listed.iter().map(|(n, _, _)| n.as_slice()).collect();
    if names != expected {
        fail.push(format!(
            "entries {:?}, expected {:?}",
            names
                .iter()
                .map(|n| String::from_utf8_lossy(n))
                .collect::<Vec<_>>(),
            expected
                .iter()
                .map(|n| String::from_utf8_lossy(n))
                .collect::<Vec<_>>()
        ));
    }
    let skip = usize::from(options.landmark);
    for (orig, got) in original.iter().zip(listed.iter().skip(skip)) {
        if orig != got {
            fail.push(format!(
                "entry {:?} differs after the round trip",
                String::from_utf8_lossy(&orig.0)
            ));
        }
    }

    // (b) The footer points at the TOC member.
    let Some(footer) = blob.get(blob.len().saturating_sub(FOOTER_SIZE)..) else {
        return (vec!["blob shorter than a footer".into()], Value::Null);
    };
    let fixed = [
        0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 26, 0, b'S', b'G', 22, 0,
    ];
    if footer[..16] != fixed || &footer[32..38] != b"STARGZ" {
        fail.push(format!("footer header is {:?}", &footer[..16]));
    }
    let hex = std::str::from_utf8(&footer[16..32]).unwrap_or("");
    let toc_offset = u64::from_str_radix(hex, 16).unwrap_or(u64::MAX);
    if toc_offset != r.toc_offset {
        fail.push(format!(
            "footer says TOC at {toc_offset}, result says {}",
            r.toc_offset
        ));
    }
    let members = match members(&blob) {
        Ok(m) => m,
        Err(e) => return (vec![e], Value::Null),
    };
    let concat: Vec<u8> = members.iter().flat_map(|(_, d)| d.clone()).collect();
    if concat != whole {
        fail.push("members do not concatenate to the whole stream".into());
    }
    let footer_start = (blob.len() - FOOTER_SIZE) as u64;
    match members.last() {
        Some((start, data)) if *start == footer_start && data.is_empty() => {}
        other => fail.push(format!("last member is not an empty footer: {other:?}")),
    }
    let Some((_, toc_member)) = members.iter().find(|(s, _)| *s == toc_offset) else {
        fail.push(format!(
            "no gzip member starts at the TOC offset {toc_offset}"
        ));
        return (fail, Value::Null);
    };
    let toc_entries = list(toc_member, false);
    let [(toc_name, b'0', json)] = toc_entries.as_slice() else {
        fail.push(format!("TOC member holds {} entries", toc_entries.len()));
        return (fail, Value::Null);
    };
    if toc_name != TOC_TAR_NAME.as_bytes() {
        fail.push("TOC member entry has the wrong name".into());
    }
    if toc_member.len() % 512 != 0 || !toc_member.ends_with(&[0u8; 1024]) {
        fail.push("TOC member does not end the tar with two zero blocks".into());
    }
    // (e) The TOC digest is the digest of the JSON.
    if r.toc_digest.as_str() != sha(json) {
        fail.push("TOC digest does not match the JSON".into());
    }
    let annotations = r.annotations();
    if annotations.get(TOC_DIGEST_ANNOTATION) != Some(&r.toc_digest.as_str().to_string())
        || annotations.get(UNCOMPRESSED_SIZE_ANNOTATION) != Some(&whole.len().to_string())
    {
        fail.push(format!("annotations {annotations:?}"));
    }
    let toc: Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            fail.push(format!("TOC is not JSON: {e}"));
            return (fail, Value::Null);
        }
    };
    if toc["version"] != 1 {
        fail.push("TOC version is not 1".into());
    }

    // (c) Every reg/chunk offset starts a member holding that chunk.
    let contents: BTreeMap<Vec<u8>, Vec<u8>> = listed
        .iter()
        .filter(|(_, kind, _)| *kind == b'0')
        .map(|(n, _, d)| (n.clone(), d.clone()))
        .collect();
    let starts: Vec<u64> = members.iter().map(|(s, _)| *s).collect();
    let mut expected_starts = vec![toc_offset, footer_start];
    let entries = toc["entries"].as_array().cloned().unwrap_or_default();
    let toc_names: Vec<Vec<u8>> = entries
        .iter()
        .filter(|e| e["type"] != "chunk")
        .map(|e| e["name"].as_str().unwrap_or("").as_bytes().to_vec())
        .collect();
    if toc_names.iter().map(Vec::as_slice).collect::<Vec<_>>() != expected[..expected.len() - 1] {
        fail.push("TOC entries are not the archive's entries in order".into());
    }
    let mut current = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let kind = e["type"].as_str().unwrap_or("");
        let name = e["name"].as_str().unwrap_or("").as_bytes().to_vec();
        if kind == "reg" {
            current = contents.get(&name).cloned().unwrap_or_default();
            if e["digest"] != sha(&current) {
                fail.push(format!(
                    "digest of {} is wrong",
                    String::from_utf8_lossy(&name)
                ));
            }
            if e["size"].as_u64().unwrap_or(0) != current.len() as u64 {
                fail.push(format!(
                    "size of {} is wrong",
                    String::from_utf8_lossy(&name)
                ));
            }
        }
        if kind != "reg" && kind != "chunk" || current.is_empty() {
            if e.get("offset").is_some() || e.get("chunkDigest").is_some() {
                fail.push(format!(
                    "{} has an offset or chunk digest",
                    String::from_utf8_lossy(&name)
                ));
            }
            continue;
        }
        let offset = e["offset"].as_u64().unwrap_or(0);
        expected_starts.push(offset);
        let chunk_offset = e["chunkOffset"].as_u64().unwrap_or(0) as usize;
        let last = entries.get(i + 1).is_none_or(|n| n["type"] != "chunk");
        let chunk_size = match e["chunkSize"].as_u64() {
            Some(n) => n as usize,
            None if last => current.len() - chunk_offset,
            None => {
                fail.push(format!(
                    "chunk of {} without chunkSize",
                    String::from_utf8_lossy(&name)
                ));
                continue;
            }
        };
        let Some(want) = current.get(chunk_offset..chunk_offset + chunk_size) else {
            fail.push(format!(
                "chunk of {} out of range",
                String::from_utf8_lossy(&name)
            ));
            continue;
        };
        if e["chunkDigest"] != sha(want) {
            fail.push(format!(
                "chunkDigest of {} at {chunk_offset} is wrong",
                String::from_utf8_lossy(&name)
            ));
        }
        match members.iter().find(|(s, _)| *s == offset) {
            Some((_, data)) if data.starts_with(want) && (last || data.len() == want.len()) => {}
            Some(_) => fail.push(format!(
                "member at {offset} does not hold chunk {chunk_offset} of {}",
                String::from_utf8_lossy(&name)
            )),
            None => fail.push(format!("no member starts at offset {offset}")),
        }
    }
    if starts.first().is_some_and(|s| *s == 0) {
        expected_starts.push(0);
    }
    expected_starts.sort_unstable();
    expected_starts.dedup();
    if starts != expected_starts {
        fail.push(format!(
            "members start at {starts:?}, expected {expected_starts:?}"
        ));
    }
    (fail, toc)
}

fn opts(level: u32, chunk_size: u64, landmark: bool) -> EstargzOptions {
    EstargzOptions {
        level,
        chunk_size,
        landmark,
        workers: 2,
    }
}

/// The archive with a bit of everything (GNU long names, PAX xattrs, devices, owners).
fn mixed() -> Vec<u8> {
    let long = "l".repeat(150);
    let long_name: &'static str = Box::leak(format!("dir/{long}").into_boxed_str());
    gnu_tar(&[
        Spec::Dir("dir/"),
        Spec::File("dir/hello.txt", b"hello, world\n".to_vec()),
        Spec::File("dir/empty", Vec::new()),
        Spec::Pax(vec![
            ("SCHILY.xattr.user.test", b"value"),
            ("mtime", b"1566297043.6"),
        ]),
        Spec::File("dir/xattr", b"<tagged & escaped>".to_vec()),
        Spec::Symlink("dir/link", "hello.txt"),
        Spec::Hardlink("dir/hard", "dir/hello.txt"),
        Spec::Fifo("dir/fifo"),
        Spec::Char("dir/null", 1, 3),
        Spec::File(long_name, bytes(1500, 1)),
        Spec::Symlink("dir/longlink", long_name),
        Spec::File("dir/exact", bytes(2048, 2)),
        Spec::File("dir/big", bytes(2500, 4)),
    ])
}

#[test]
fn blobs_hold_the_input_the_toc_and_the_footer() {
    let cases: Vec<(&str, Vec<u8>, EstargzOptions)> = vec![
        (
            "mixed, level 6, 1 KiB chunks",
            mixed(),
            opts(6, 1024, false),
        ),
        ("mixed, level 0, default chunks", mixed(), opts(0, 0, false)),
        ("mixed, level 9, landmark", mixed(), opts(9, 1000, true)),
        (
            "kiln diff tar (PAX long names)",
            diff_tar(),
            opts(6, 512, false),
        ),
        ("kiln diff tar with landmark", diff_tar(), opts(1, 0, true)),
        (
            "one file over the default chunk size",
            gnu_tar(&[Spec::File("big", bytes((4 << 20) + 100, 5))]),
            EstargzOptions::default(),
        ),
        (
            "file of exactly two chunks",
            gnu_tar(&[Spec::File("two", bytes(1024, 6))]),
            opts(6, 512, false),
        ),
        ("empty archive", gnu_tar(&[]), EstargzOptions::default()),
        (
            "empty archive with landmark",
            gnu_tar(&[]),
            opts(6, 0, true),
        ),
        ("no bytes at all", Vec::new(), EstargzOptions::default()),
    ];
    let mut failures = Vec::new();
    for (name, tar, options) in &cases {
        let (fail, _) = check(tar, *options);
        failures.extend(fail.into_iter().map(|f| format!("{name}: {f}")));
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn toc_json_is_upstreams() {
    // Level 0 keeps member sizes (and so offsets) independent of the deflate implementation.
    let tar = mixed();
    let options = opts(0, 1024, false);
    let (fail, _) = check(&tar, options);
    assert!(fail.is_empty(), "{fail:#?}");
    // The exact bytes of the JSON (Go's tab indentation and escapes), not a re-serialization.
    let mut blob = Vec::new();
    let r = compress_estargz(&tar[..], &mut blob, &options).unwrap();
    let mut member = Vec::new();
    flate2::read::GzDecoder::new(&blob[r.toc_offset as usize..])
        .read_to_end(&mut member)
        .unwrap();
    let [(_, _, json)] = list(&member, false).try_into().unwrap();
    insta::assert_snapshot!(String::from_utf8(json).unwrap());
}

/// The `type`, `chunkOffset` and `chunkSize` of a TOC entry.
type ChunkFields = (&'static str, u64, u64);

#[test]
fn toc_chunk_fields_follow_upstream() {
    // (file size, chunk size) -> the (type, chunkOffset, chunkSize) of each TOC entry.
    let cases: &[(usize, u64, &[ChunkFields])] = &[
        (100, 512, &[("reg", 0, 0)]),
        (512, 512, &[("reg", 0, 512)]),
        (1000, 512, &[("reg", 0, 512), ("chunk", 512, 0)]),
        (1024, 512, &[("reg", 0, 512), ("chunk", 512, 512)]),
        (
            1300,
            512,
            &[("reg", 0, 512), ("chunk", 512, 512), ("chunk", 1024, 0)],
        ),
    ];
    let mut failures = Vec::new();
    for (size, chunk, want) in cases {
        let tar = gnu_tar(&[Spec::File("f", bytes(*size, 7))]);
        let (fail, toc) = check(&tar, opts(6, *chunk, false));
        failures.extend(fail.into_iter().map(|f| format!("{size}/{chunk}: {f}")));
        let got: Vec<(String, u64, u64)> = toc["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_string(),
                    e["chunkOffset"].as_u64().unwrap_or(0),
                    e["chunkSize"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let want: Vec<(String, u64, u64)> = want
            .iter()
            .map(|(t, o, s)| (t.to_string(), *o, *s))
            .collect();
        if got != want {
            failures.push(format!(
                "{size}/{chunk}: entries {got:?}, expected {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

/// A raw header block with a valid checksum.
fn raw_header(name: &str, typeflag: u8, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.as_mut_bytes()[156] = typeflag;
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[test]
fn bad_inputs_are_refused() {
    let mut bad_checksum = gnu_tar(&[Spec::File("f", b"x".to_vec())]);
    bad_checksum[0] = b'g';
    let truncated = gnu_tar(&[Spec::File("f", bytes(3000, 8))])[..1500].to_vec();
    let toc = gnu_tar(&[Spec::File("./stargz.index.json", b"{}".to_vec())]);
    let global = [raw_header("pax_global_header", b'g', 0), vec![0; 1024]].concat();
    let sparse = [raw_header("sparse", b'S', 0), vec![0; 1024]].concat();
    let gnu_sparse_pax = gnu_tar(&[
        Spec::Pax(vec![("GNU.sparse.size", b"10")]),
        Spec::File("s", b"x".to_vec()),
    ]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad checksum", bad_checksum, "malformed tar stream"),
        ("truncated data", truncated, "malformed tar stream"),
        ("existing TOC", toc, "malformed tar stream"),
        (
            "PAX global header",
            global,
            "unsupported tar entry type 'g'",
        ),
        ("GNU sparse", sparse, "unsupported tar entry type 'S'"),
        (
            "PAX sparse",
            gnu_sparse_pax,
            "unsupported tar entry type 'S'",
        ),
        ("half a header", vec![b'a'; 100], "malformed tar stream"),
    ];
    let mut failures = Vec::new();
    for (name, tar, want) in cases {
        match compress_estargz(&tar[..], std::io::sink(), &EstargzOptions::default()) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e @ (Error::Tar(_) | Error::UnsupportedEntry { .. })) => {
                if !e.to_string().contains(want) {
                    failures.push(format!("{name}: {e}, expected {want}"));
                }
            }
            Err(e) => failures.push(format!("{name}: unexpected error {e}")),
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn landmark_mode_drops_input_landmarks_and_tocs() {
    let tar = gnu_tar(&[
        Spec::File(".no.prefetch.landmark", vec![0x0f]),
        Spec::File("a", b"a".to_vec()),
        Spec::File("stargz.index.json", b"{}".to_vec()),
        Spec::File("./.prefetch.landmark", vec![0x0f]),
        Spec::File("b", b"b".to_vec()),
    ]);
    let mut blob = Vec::new();
    compress_estargz(&tar[..], &mut blob, &opts(6, 0, true)).unwrap();
    let mut whole = Vec::new();
    flate2::read::MultiGzDecoder::new(&blob[..])
        .read_to_end(&mut whole)
        .unwrap();
    let names: Vec<String> = list(&whole, true)
        .into_iter()
        .map(|(n, _, _)| String::from_utf8_lossy(&n).into_owned())
        .collect();
    assert_eq!(names, [NO_PREFETCH_LANDMARK, "a", "b", TOC_TAR_NAME]);
}

#[test]
fn output_errors_are_write_errors() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let tar = gnu_tar(&[Spec::File("f", bytes(100_000, 9))]);
    let err = compress_estargz(&tar[..], Full, &EstargzOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Write(_)), "{err}");
}
