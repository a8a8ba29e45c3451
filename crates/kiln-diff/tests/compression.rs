//! Compression: detection from magic bytes, both digests from one pass, and layers compressed
//! by other tools.

mod common;

use std::ffi::OsStr;
use std::io::Write;

use common::{build_tree, compare, data, run, snapshot, tmpdir};
use kiln_diff::{
    Compression, CompressionKind, DiffOpts, Error, WhiteoutMode, apply_layer, compress,
    detect_compression, write_diff_dirs,
};
use kiln_oci::Digest;
use serde_json::Value;

/// A layer with a bit of everything (the `basic` reference case) and the tree it came from.
fn layer() -> (tempfile::TempDir, Vec<u8>) {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(data("gotar/cases.json")).unwrap()).unwrap();
    let basic = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "basic")
        .unwrap();
    let dir = tmpdir();
    build_tree(dir.path(), basic["entries"].as_array().unwrap());
    let mut tar = Vec::new();
    write_diff_dirs(None, dir.path(), &mut tar, DiffOpts::default()).unwrap();
    (dir, tar)
}

/// Compresses, checks both digests, applies the blob and compares the tree.
fn check(compression: Compression, src: &std::path::Path, tar: &[u8]) -> Vec<String> {
    let label = format!("{compression:?}");
    let mut failures = Vec::new();
    let mut blob = Vec::new();
    let c = compress(tar, &mut blob, compression).unwrap();
    if c.digest != Digest::of_bytes(&blob) || c.size != blob.len() as u64 {
        failures.push(format!("{label}: blob digest or size wrong: {c:?}"));
    }
    if c.diff_id != Digest::of_bytes(tar) || c.uncompressed_size != tar.len() as u64 {
        failures.push(format!(
            "{label}: diff_id or uncompressed size wrong: {c:?}"
        ));
    }
    if compression == Compression::Uncompressed && blob != tar {
        failures.push(format!("{label}: uncompressed blob is not the tar"));
    }
    let mut again = Vec::new();
    compress(tar, &mut again, compression).unwrap();
    if again != blob {
        failures.push(format!("{label}: compressing twice gives different bytes"));
    }
    let dest = tmpdir();
    let applied = apply_layer(&blob[..], dest.path(), WhiteoutMode::Delete).unwrap();
    if applied.diff_id != c.diff_id || applied.compression != compression.kind() {
        failures.push(format!("{label}: applied {applied:?}"));
    }
    for line in compare(&snapshot(src), &snapshot(dest.path())) {
        failures.push(format!("{label}: {line}"));
    }
    failures
}

#[test]
fn compressed_layers_round_trip_with_both_digests() {
    let (src, tar) = layer();
    let failures: Vec<String> = [
        Compression::Uncompressed,
        Compression::Gzip { level: 6 },
        Compression::Gzip { level: 1 },
        Compression::Zstd { level: 3 },
        Compression::Zstd { level: 19 },
    ]
    .into_iter()
    .flat_map(|c| check(c, src.path(), &tar))
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compresses `data` with a command-line tool.
fn external(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let dir = tmpdir();
    let input = dir.path().join("in");
    std::fs::write(&input, data).unwrap();
    let mut argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    argv.push(OsStr::new("-c"));
    argv.push(input.as_os_str());
    let out = std::process::Command::new(tool)
        .args(&argv)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (scripts/prereqs.sh installs it): {e}"));
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

#[test]
fn compression_is_detected_from_magic_bytes() {
    let tar = layer().1;
    let gzip_member = |d: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let (first, second) = tar.split_at(tar.len() / 2);
    let multi_gzip = [gzip_member(first), gzip_member(second)].concat();
    let multi_zstd = [
        zstd::encode_all(first, 3).unwrap(),
        zstd::encode_all(second, 3).unwrap(),
    ]
    .concat();
    let skippable = [
        vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4],
        zstd::encode_all(&tar[..], 3).unwrap(),
    ]
    .concat();

    // (label, blob, expected kind or the name of the refused format)
    let cases: Vec<(&str, Vec<u8>, Result<CompressionKind, &str>)> = vec![
        ("tar", tar.clone(), Ok(CompressionKind::Uncompressed)),
        (
            "gzip(1)",
            external("gzip", &["-9"], &tar),
            Ok(CompressionKind::Gzip),
        ),
        ("two gzip members", multi_gzip, Ok(CompressionKind::Gzip)),
        (
            "zstd(1)",
            external("zstd", &["-q"], &tar),
            Ok(CompressionKind::Zstd),
        ),
        ("two zstd frames", multi_zstd, Ok(CompressionKind::Zstd)),
        (
            "zstd after a skippable frame",
            skippable,
            Ok(CompressionKind::Zstd),
        ),
        ("bzip2", external("bzip2", &[], &tar), Err("bzip2")),
        ("xz", external("xz", &[], &tar), Err("xz")),
    ];
    let expected_diff_id = Digest::of_bytes(&tar);
    let mut failures = Vec::new();
    for (label, blob, expected) in cases {
        let head = &blob[..blob.len().min(16)];
        match (detect_compression(head), expected) {
            (Ok(kind), Ok(want)) if kind == want => {}
            (Err(Error::UnsupportedCompression(name)), Err(want)) if name == want => {}
            (got, want) => failures.push(format!("{label}: detected {got:?}, expected {want:?}")),
        }
        let dest = tmpdir();
        match (
            apply_layer(&blob[..], dest.path(), WhiteoutMode::Delete),
            expected,
        ) {
            (Ok(applied), Ok(_)) if applied.diff_id == expected_diff_id => {}
            (Err(Error::UnsupportedCompression(name)), Err(want)) if name == want => {}
            (got, want) => failures.push(format!("{label}: applied {got:?}, expected {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `diff_id` covers the whole uncompressed stream, including what follows the
/// end-of-archive marker (GNU tar pads archives to 10 KiB records).
#[test]
fn diff_id_includes_trailing_padding() {
    let dir = tmpdir();
    std::fs::write(dir.path().join("f"), "x").unwrap();
    let archive = dir.path().join("a.tar");
    run(
        "tar",
        &[
            OsStr::new("-C"),
            dir.path().as_os_str(),
            OsStr::new("-cf"),
            archive.as_os_str(),
            OsStr::new("f"),
        ],
    );
    let bytes = std::fs::read(&archive).unwrap();
    assert_eq!(bytes.len() % 10240, 0);
    let dest = tmpdir();
    let applied = apply_layer(&bytes[..], dest.path(), WhiteoutMode::Delete).unwrap();
    assert_eq!(applied.diff_id, Digest::of_bytes(&bytes));
    assert_eq!(applied.size, bytes.len() as u64);
}

/// Corrupt and truncated blobs are errors, not panics, and name the problem.
#[test]
fn corrupt_blobs_are_errors() {
    let tar = layer().1;
    let mut gz = Vec::new();
    compress(&tar[..], &mut gz, Compression::Gzip { level: 6 }).unwrap();
    let mut zst = Vec::new();
    compress(&tar[..], &mut zst, Compression::Zstd { level: 3 }).unwrap();
    let mut flipped = gz.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let mut bad_checksum = tar.clone();
    bad_checksum[148] = b'9';
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("corrupt gzip", flipped),
        ("truncated zstd", zst[..zst.len() / 2].to_vec()),
        ("truncated tar", tar[..700].to_vec()),
        ("bad header checksum", bad_checksum),
    ];
    let mut failures = Vec::new();
    for (label, blob) in cases {
        let dest = tmpdir();
        match apply_layer(&blob[..], dest.path(), WhiteoutMode::Delete) {
            Err(Error::Tar(_) | Error::Read(_)) => {}
            other => failures.push(format!("{label}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
