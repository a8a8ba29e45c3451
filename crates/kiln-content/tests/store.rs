//! Behaviour of the content store: ingest, verification, crash leftovers, concurrency.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use kiln_content::{ContentStore, Error, IngestCleanup};
use kiln_oci::Digest;
use proptest::prelude::*;

/// A fresh store in a temporary directory (kept alive by the returned guard).
fn new_store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::Builder::new()
        .prefix("kiln-content-")
        .tempdir_in("/var/tmp")
        .expect("temporary directory");
    let store = ContentStore::open(dir.path()).expect("open store");
    (dir, store)
}

/// The names of the files in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes `data` in chunks of `chunk` bytes (with an optional expectation), commits, reads the
/// blob back and checks everything the store says about it.
fn check_round_trip(
    store: &ContentStore,
    data: &[u8],
    chunk: usize,
    expect: bool,
) -> Result<(), String> {
    let digest = Digest::of_bytes(data);
    let expected = expect.then(|| (digest.clone(), data.len() as u64));
    let mut writer = store.writer(expected).map_err(|e| e.to_string())?;
    for part in data.chunks(chunk.max(1)) {
        writer.write_all(part).map_err(|e| e.to_string())?;
    }
    if writer.written() != data.len() as u64 || writer.digest() != digest {
        return Err(format!(
            "writer saw {} bytes, {}",
            writer.written(),
            writer.digest()
        ));
    }
    let (got, size) = writer.commit().map_err(|e| e.to_string())?;
    if got != digest || size != data.len() as u64 {
        return Err(format!("committed {got} ({size} bytes), want {digest}"));
    }
    let mut back = Vec::new();
    store
        .open_blob(&digest)
        .and_then(|mut f| {
            f.read_to_end(&mut back).map_err(|e| Error::Io {
                action: "read",
                path: store.path(&digest),
                source: e,
            })
        })
        .map_err(|e| e.to_string())?;
    if back != data {
        return Err(format!("read back {} bytes that differ", back.len()));
    }
    let mut verified = Vec::new();
    store
        .read_verified(&digest)
        .map_err(|e| e.to_string())?
        .read_to_end(&mut verified)
        .map_err(|e| e.to_string())?;
    if verified != data {
        return Err("verified read differs".to_owned());
    }
    let facts = (
        store.exists(&digest).map_err(|e| e.to_string())?,
        store.size(&digest).map_err(|e| e.to_string())?,
        store.verify(&digest).map_err(|e| e.to_string())?,
    );
    if facts != (true, data.len() as u64, data.len() as u64) {
        return Err(format!("exists/size/verify said {facts:?}"));
    }
    let path = store.path(&digest);
    let want_path = store.root().join("blobs/sha256").join(digest.encoded());
    let mode = fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    if path != want_path || mode != 0o444 {
        return Err(format!("blob at {} with mode {mode:o}", path.display()));
    }
    if !names(&store.root().join("ingest")).is_empty() {
        return Err("ingest files left behind".to_owned());
    }
    Ok(())
}

#[test]
fn round_trip() {
    let (_dir, store) = new_store();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let cases: Vec<(&str, Vec<u8>, usize, bool)> = vec![
        ("empty, expected", Vec::new(), 1, true),
        ("empty, unexpected", Vec::new(), 1, false),
        ("small in one write", b"hello world".to_vec(), 64, true),
        ("small byte by byte", b"byte by byte".to_vec(), 1, false),
        ("3 MB in odd chunks", big.clone(), 65_537, true),
        ("same 3 MB again (already present)", big, 1_000_000, true),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, data, chunk, expect)| {
            check_round_trip(&store, data, *chunk, *expect)
                .err()
                .map(|e| format!("{name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    let mut want: Vec<(Digest, u64)> = cases
        .iter()
        .map(|(_, data, _, _)| (Digest::of_bytes(data), data.len() as u64))
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(store.list().expect("list"), want);
    let total: u64 = want.iter().map(|(_, size)| size).sum();
    assert_eq!(store.usage().expect("usage"), total);
}

/// What a commit with a wrong expectation must give.
#[derive(Debug, PartialEq)]
enum Refusal {
    Digest,
    Size,
    /// The write itself fails, because it goes past the expected size.
    WriteTooLong,
}

fn check_refusal(
    store: &ContentStore,
    data: &[u8],
    expected: (Digest, u64),
    want: Refusal,
) -> Result<(), String> {
    let mut writer = store.writer(Some(expected)).map_err(|e| e.to_string())?;
    let got = match writer.write_all(data) {
        Err(e) => {
            drop(writer);
            let inner = e
                .into_inner()
                .and_then(|inner| inner.downcast::<Error>().ok());
            match inner.as_deref() {
                Some(Error::SizeMismatch { .. }) => Refusal::WriteTooLong,
                other => return Err(format!("write failed with {other:?}")),
            }
        }
        Ok(()) => match writer.commit() {
            Err(Error::DigestMismatch { .. }) => Refusal::Digest,
            Err(Error::SizeMismatch { .. }) => Refusal::Size,
            other => return Err(format!("commit gave {other:?}")),
        },
    };
    if got != want {
        return Err(format!("got {got:?}, want {want:?}"));
    }
    let blobs = store.list().map_err(|e| e.to_string())?;
    let ingest = names(&store.root().join("ingest"));
    if !blobs.is_empty() || !ingest.is_empty() {
        return Err(format!("left blobs {blobs:?} and ingest files {ingest:?}"));
    }
    Ok(())
}

#[test]
fn wrong_digest_or_size_commits_nothing() {
    let (_dir, store) = new_store();
    let data = b"the content";
    let right = Digest::of_bytes(data);
    let other = Digest::of_bytes(b"other content");
    let len = data.len() as u64;
    let cases = [
        ("wrong digest", (other.clone(), len), Refusal::Digest),
        ("short of the size", (right.clone(), len + 5), Refusal::Size),
        ("past the size", (right, len - 1), Refusal::WriteTooLong),
        ("wrong digest and size", (other, len + 1), Refusal::Size),
    ];
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, expected, want)| {
            check_refusal(&store, data, expected, want)
                .err()
                .map(|e| format!("{name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn typed_errors_name_the_digest() {
    let (_dir, store) = new_store();
    let missing = Digest::of_bytes(b"missing");
    let sha512 = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).expect("sha512 digest");
    let cases: Vec<(&str, Result<(), Error>, String)> = vec![
        (
            "open",
            store.open_blob(&missing).map(drop),
            format!("blob {missing} not found"),
        ),
        (
            "size",
            store.size(&missing).map(drop),
            format!("blob {missing} not found"),
        ),
        (
            "delete",
            store.delete(&missing),
            format!("blob {missing} not found"),
        ),
        (
            "writer for sha512",
            store.writer(Some((sha512.clone(), 1))).map(drop),
            format!(
                "unsupported digest algorithm \"sha512\" in {sha512}: the content store ingests sha256 only"
            ),
        ),
    ];
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, got, want)| match got {
            Err(e) if e.to_string() == want => None,
            other => Some(format!("{name}: got {other:?}, want error {want:?}")),
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(!store.exists(&missing).expect("exists"));
}

#[test]
fn delete_and_corruption() {
    let (_dir, store) = new_store();
    let (digest, _) = store.put(b"precious").expect("put");
    // Corrupt the blob behind the store's back.
    let path = store.path(&digest);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(&path, b"tampered").expect("tamper");
    match store.verify(&digest) {
        Err(Error::Corrupt { digest: d, actual }) => {
            assert_eq!(d, digest);
            assert_eq!(actual, Digest::of_bytes(b"tampered"));
        }
        other => panic!("verify of a tampered blob gave {other:?}"),
    }
    store.delete(&digest).expect("delete");
    assert!(!store.exists(&digest).expect("exists"));
    assert!(store.list().expect("list").is_empty());
}

/// A crash leaves ingest files behind: a writer that never ran its destructor, the files of a
/// process that is gone, and a stray temporary file. None of them is ever a visible blob; a
/// reopen removes those of dead processes (and, when told, all of them).
#[test]
fn crash_leftovers_are_invisible_and_cleaned() {
    let (dir, store) = new_store();
    let ingest = dir.path().join("ingest");

    // This process "crashes" in the middle of a write: no destructor runs.
    let mut writer = store.writer(None).expect("writer");
    writer.write_all(&[7u8; 200_000]).expect("write");
    writer.flush().expect("flush");
    std::mem::forget(writer);

    // A process that is gone (this pid, but another start time) left a half-written ingest.
    let own_prefix = names(&ingest)
        .first()
        .and_then(|n| n.split('-').next().map(str::to_owned))
        .expect("an ingest file of this process");
    let dead = format!("{own_prefix}-1-dead.part");
    fs::write(ingest.join(&dead), b"half a layer").expect("dead ingest");
    // A stray temporary file that does not follow the naming rule, and a directory.
    fs::write(ingest.join(".tmp-stray"), b"junk").expect("stray");
    fs::create_dir_all(ingest.join("old-dir/sub")).expect("stray dir");
    // The ingest of a live process (pid 1, with its real start time) must survive.
    let init_start = fs::read_to_string("/proc/1/stat")
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_owned()))
        .and_then(|rest| rest.split_whitespace().nth(19).map(str::to_owned))
        .expect("start time of pid 1");
    let live = format!("1-{init_start}-live.part");
    fs::write(ingest.join(&live), b"in progress").expect("live ingest");

    assert!(
        store.list().expect("list").is_empty(),
        "a half-written blob is visible"
    );

    let reopened = ContentStore::open(dir.path()).expect("reopen");
    let left = names(&ingest);
    assert!(reopened.list().expect("list").is_empty());
    assert_eq!(left.len(), 2, "after a stale cleanup: {left:?}");
    assert!(
        left.contains(&live),
        "the live ingest was removed: {left:?}"
    );
    assert!(!left.contains(&dead) && !left.contains(&".tmp-stray".to_owned()));

    ContentStore::open_with(dir.path(), IngestCleanup::All).expect("reopen, cleaning all");
    assert_eq!(names(&ingest), Vec::<String>::new());
}

#[test]
fn concurrent_writers_of_one_blob() {
    let (_dir, store) = new_store();
    let store = Arc::new(store);
    let data: Arc<Vec<u8>> = Arc::new((0..1_500_000u32).map(|i| (i * 7 % 256) as u8).collect());
    let digest = Digest::of_bytes(&data);
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let (store, data, digest) = (store.clone(), data.clone(), digest.clone());
            std::thread::spawn(move || {
                let mut writer = store.writer(Some((digest, data.len() as u64)))?;
                for part in data.chunks(10_000 + i * 999) {
                    writer.write_all(part).map_err(|e| Error::Io {
                        action: "write",
                        path: store.root().to_owned(),
                        source: e,
                    })?;
                }
                writer.commit()
            })
        })
        .collect();
    let results: Vec<String> = threads
        .into_iter()
        .map(|t| match t.join() {
            Ok(Ok((d, size))) if d == digest && size == data.len() as u64 => String::new(),
            other => format!("{other:?}"),
        })
        .filter(|r| !r.is_empty())
        .collect();
    assert!(results.is_empty(), "{results:#?}");
    assert_eq!(
        store.list().expect("list"),
        vec![(digest.clone(), data.len() as u64)]
    );
    assert_eq!(store.verify(&digest).expect("verify"), data.len() as u64);
    assert!(names(&store.root().join("ingest")).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the content and however it is split into writes, a commit with the right
    /// expectation stores exactly that content, and a commit expecting one byte more refuses.
    #[test]
    fn any_content_round_trips(data in proptest::collection::vec(any::<u8>(), 0..20_000), chunk in 1usize..5_000) {
        let (_dir, store) = new_store();
        prop_assert_eq!(check_round_trip(&store, &data, chunk, true), Ok(()));
        let digest = Digest::of_bytes(&data);
        let (_other_dir, other) = new_store();
        let refusal = check_refusal(&other, &data, (digest, data.len() as u64 + 1), Refusal::Size);
        prop_assert_eq!(refusal, Ok(()));
    }
}
