//! Build contexts that are tar archives: a tarball piped to `kiln build -`, or one downloaded
//! from an HTTP(S) URL (see [`crate::remote_context`], which fetches it).
//!
//! Upstream, buildx peeks at the first 1024 bytes of stdin (`loadInputs`); if they look like an
//! archive, stdin is uploaded as the context, otherwise it is the Dockerfile. BuildKit's
//! Dockerfile frontend reads the first 1024 bytes of a downloaded context the same way
//! (dockerui `initContext`), and an archive is unpacked into an empty tree by a copy with
//! `AttemptUnpack`, the copy `ADD` uses for local archives. kiln does the same on the client
//! side: the archive is extracted by [`kiln_fileop::copy`] with `attempt_unpack` into a
//! temporary directory, which then serves as an ordinary local context. That extractor keeps
//! every entry inside the directory (`../` and absolute names, symbolic links pointing out and
//! written through, hard links to host files), and the Dockerfile is read from the extracted
//! tree with its symbolic links resolved inside it ([`kiln_fsroot`]), as BuildKit reads files
//! from a snapshot, never from the host.
//!
//! "Looks like an archive" is BuildKit's `isArchive`: a bzip2, gzip or xz magic number, or a
//! valid tar header. kiln also recognises the zstd magic number, since its extractor (like
//! Docker's `DecompressStream`) unpacks zstd-compressed tarballs.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context as _, bail};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// How many bytes of a context are looked at to decide whether it is an archive (buildx peeks
/// twice its `archiveHeaderSize` of 512; BuildKit's frontend reads 1024).
pub const HEADER_PEEK: usize = 1024;

/// The largest Dockerfile read from an archive or downloaded context: BuildKit's frontend
/// refuses larger ones (containerd's default maximum gRPC message size).
pub const MAX_DOCKERFILE_SIZE: u64 = 16 << 20;

/// The name the downloaded or uploaded archive gets next to the extracted context (BuildKit's
/// `llb.Filename("context")`).
pub const ARCHIVE_NAME: &str = "context";

/// Whether `head`, the first bytes of a context, is an archive: a bzip2, gzip, xz or zstd
/// stream (by magic number), or a tar archive whose first header is valid.
pub fn is_archive(head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 4] = [
        b"BZh",
        &[0x1f, 0x8b, 0x08],
        &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    if MAGICS.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    let mut archive = tar::Archive::new(head);
    match archive.entries() {
        Ok(mut entries) => matches!(entries.next(), Some(Ok(_))),
        Err(_) => false,
    }
}

/// Reads up to `n` bytes from `reader`, fewer only at the end of its input.
fn peek(reader: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    reader
        .by_ref()
        .take(u64::try_from(n).unwrap_or(u64::MAX))
        .read_to_end(&mut head)?;
    Ok(head)
}

/// What `kiln build -` found on stdin.
pub enum StdinInput {
    /// A context archive, extracted into this directory.
    Context(tempfile::TempDir),
    /// A Dockerfile (and no context).
    Dockerfile(Vec<u8>),
}

/// Reads stdin (`input`) for `kiln build -` as buildx does: an archive becomes the context;
/// anything else is the Dockerfile, which conflicts with a Dockerfile named by `-f`
/// (`file_given`).
pub fn read_stdin(mut input: impl Read, file_given: bool) -> anyhow::Result<StdinInput> {
    let head = peek(&mut input, HEADER_PEEK).context("failed to peek context header from STDIN")?;
    if !is_archive(&head) {
        if file_given {
            bail!("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles");
        }
        let mut source = head;
        input.read_to_end(&mut source).context("reading stdin")?;
        return Ok(StdinInput::Dockerfile(source));
    }
    let upload = tempfile::Builder::new()
        .prefix("kiln-upload-")
        .tempdir()
        .context("creating a directory for the context from stdin")?;
    let path = upload.path().join(ARCHIVE_NAME);
    let mut file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&head)
        .and_then(|()| io::copy(&mut input, &mut file))
        .and_then(|_| file.flush())
        .context("reading the context from stdin")?;
    drop(file);
    Ok(StdinInput::Context(unpack(upload.path(), ARCHIVE_NAME)?))
}

/// Extracts the archive `name` found directly in `dir` into a new temporary directory, with
/// the copy `ADD` uses for local archives (entries keep their modes, owners and times). A file
/// that turns out not to be a tar archive is copied as it is, as BuildKit's copy does.
pub fn unpack(dir: &Path, name: &str) -> anyhow::Result<tempfile::TempDir> {
    let dest = tempfile::Builder::new()
        .prefix("kiln-context-")
        .tempdir()
        .context("creating a directory for the build context")?;
    let action = kiln_llb::ops::FileActionCopy {
        src: format!("/{name}"),
        dest: "/".to_string(),
        mode: -1,
        timestamp: -1,
        attempt_unpack_docker_compatibility: true,
        ..Default::default()
    };
    kiln_fileop::copy(
        dir,
        dest.path(),
        &action,
        &kiln_fileop::PasswdLookup::new(dir),
    )
    .context("failed to unpack the build context")?;
    Ok(dest)
}

/// Reads the first [`HEADER_PEEK`] bytes of the file at `path`.
pub fn read_head(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    peek(&mut file, HEADER_PEEK).with_context(|| format!("reading {}", path.display()))
}

/// Reads the regular file `path` (`/`-separated, read from the root of the tree) of the tree at
/// `root`, with symbolic links resolved inside the tree; `None` when there is no such file.
/// Files larger than `limit` bytes are refused.
pub fn read_in_root(root: &Path, path: &str, limit: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let root_fd =
        kiln_fsroot::open_root(root).with_context(|| format!("opening {}", root.display()))?;
    let options = kiln_fsroot::Options::continuity();
    let not_found = |e: &kiln_fsroot::Error| {
        matches!(
            e,
            kiln_fsroot::Error::NotFound { .. } | kiln_fsroot::Error::NotADirectory { .. }
        )
    };
    let resolved = match kiln_fsroot::resolve(root_fd.as_fd(), path.as_bytes(), &options) {
        Ok(p) => p,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("open {path}: {e}")),
    };
    let Some(name) = resolved.name() else {
        bail!("read {path}: is a directory");
    };
    let parent = match kiln_fsroot::resolve_dir(
        root_fd.as_fd(),
        &resolved.parent().relative_bytes(),
        &options,
        &mut |_, _, _| Ok(kiln_fsroot::Fill::Absent),
    ) {
        Ok(d) => d,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("open {path}: {e}")),
    };
    let fd = match rustix::fs::openat(
        &parent.fd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => bail!("open {path}: {}", io::Error::from(e)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| anyhow::anyhow!("stat {path}: {e}"))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => bail!("read {path}: is a directory"),
        _ => bail!("read {path}: not a regular file"),
    }
    let too_large = || anyhow::anyhow!("{path} exceeds maximum allowed size of {limit} bytes");
    if u64::try_from(stat.st_size).unwrap_or(0) > limit {
        return Err(too_large());
    }
    let mut data = Vec::new();
    File::from(fd)
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .with_context(|| format!("read {path}"))?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    Ok(Some(data))
}

/// Reads the Dockerfile `name` from the context tree at `root` as BuildKit's frontend does: a
/// missing `Dockerfile` falls back to `dockerfile` in the same directory.
pub fn read_dockerfile(root: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let read = |path: &str| {
        read_in_root(root, path, MAX_DOCKERFILE_SIZE).context("failed to read dockerfile")
    };
    if let Some(data) = read(name)? {
        return Ok(data);
    }
    let lower = match name.rsplit_once('/') {
        Some((dir, "Dockerfile")) => Some(format!("{dir}/dockerfile")),
        None if name == "Dockerfile" => Some("dockerfile".to_string()),
        _ => None,
    };
    if let Some(lower) = lower
        && let Some(data) = read(&lower)?
    {
        return Ok(data);
    }
    Err(anyhow::anyhow!("open {name}: no such file or directory")
        .context("failed to read dockerfile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar archive made by the `tar` crate with one file.
    fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, data)
            .expect("append");
        builder.into_inner().expect("finish")
    }

    #[test]
    fn archive_detection() {
        let tar = tar_with("Dockerfile", b"FROM scratch\n");
        let mut bad_checksum = tar.clone();
        if let Some(b) = bad_checksum.get_mut(148) {
            *b ^= 0x11;
        }
        let long_dockerfile = format!("FROM scratch\n{}", "RUN true\n".repeat(200));
        let cases: [(&str, &[u8], bool); 12] = [
            ("empty", b"", false),
            ("Dockerfile", b"FROM busybox\nRUN echo hi\n", false),
            ("long Dockerfile", long_dockerfile.as_bytes(), false),
            ("tar", &tar, true),
            (
                "tar, first 1024 bytes",
                tar.get(..1024).unwrap_or(&[]),
                true,
            ),
            ("tar with a bad checksum", &bad_checksum, false),
            ("zero blocks", &[0u8; 1024], false),
            ("gzip", &[0x1f, 0x8b, 0x08, 0, 0], true),
            ("bzip2", b"BZh91AY&SY", true),
            ("xz", &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00], true),
            ("zstd", &[0x28, 0xb5, 0x2f, 0xfd, 0x04], true),
            ("gzip magic without deflate", &[0x1f, 0x8b, 0x07], false),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(_, head, want)| {
                is_archive(head.get(..HEADER_PEEK.min(head.len())).unwrap_or(head)) != *want
            })
            .map(|(name, _, want)| format!("{name}: want {want}"))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// What reading `path` from a small tree gives: the content, `None`, or the error.
    fn check_read(root: &Path, path: &str, want: Result<Option<&str>, &str>) -> Option<String> {
        let got = read_in_root(root, path, 64);
        let ok = match (&got, want) {
            (Ok(data), Ok(w)) => data.as_deref() == w.map(str::as_bytes),
            (Err(e), Err(w)) => format!("{e:#}") == w,
            _ => false,
        };
        (!ok).then(|| {
            let got = got
                .map(|d| d.map(|d| String::from_utf8_lossy(&d).into_owned()))
                .map_err(|e| format!("{e:#}"));
            format!("{path}: got {got:?}, want {want:?}")
        })
    }

    #[test]
    fn reads_stay_inside_the_tree() {
        let outside = tempfile::tempdir().expect("outside");
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "host secret").expect("secret");
        let tree = tempfile::tempdir().expect("tree");
        let root = tree.path();
        std::fs::create_dir_all(root.join("sub")).expect("sub");
        std::fs::write(root.join("Dockerfile"), "inside").expect("write");
        std::fs::write(root.join("sub/Dockerfile"), "sub inside").expect("write");
        std::fs::write(root.join("big"), [b'x'; 65]).expect("write");
        std::os::unix::fs::symlink(&secret, root.join("abs-link")).expect("link");
        std::os::unix::fs::symlink("../../../../../../secret", root.join("dotdot-link"))
            .expect("link");
        std::os::unix::fs::symlink("/sub", root.join("dir-link")).expect("link");
        std::fs::create_dir_all(
            root.join(
                secret
                    .parent()
                    .expect("parent")
                    .strip_prefix("/")
                    .expect("relative"),
            ),
        )
        .expect("mirror dir");
        let mirrored = root.join(secret.strip_prefix("/").expect("relative"));
        std::fs::write(&mirrored, "mirrored inside").expect("write");

        let cases: [(&str, Result<Option<&str>, &str>); 10] = [
            ("Dockerfile", Ok(Some("inside"))),
            ("/Dockerfile", Ok(Some("inside"))),
            ("../../Dockerfile", Ok(Some("inside"))),
            ("sub/Dockerfile", Ok(Some("sub inside"))),
            ("dir-link/Dockerfile", Ok(Some("sub inside"))),
            ("abs-link", Ok(Some("mirrored inside"))),
            ("dotdot-link", Ok(None)),
            ("missing", Ok(None)),
            ("Dockerfile/below", Ok(None)),
            ("big", Err("big exceeds maximum allowed size of 64 bytes")),
        ];
        let mut failures: Vec<String> = cases
            .iter()
            .filter_map(|(path, want)| check_read(root, path, *want))
            .collect();
        failures.extend(check_read(root, "sub", Err("read sub: is a directory")));
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn dockerfile_falls_back_to_lower_case() {
        let tree = tempfile::tempdir().expect("tree");
        std::fs::create_dir_all(tree.path().join("sub")).expect("sub");
        std::fs::write(tree.path().join("dockerfile"), "lower").expect("write");
        std::fs::write(tree.path().join("sub/dockerfile"), "sub lower").expect("write");
        let cases = [
            ("Dockerfile", Ok("lower")),
            ("sub/Dockerfile", Ok("sub lower")),
            (
                "Other",
                Err("failed to read dockerfile: open Other: no such file or directory"),
            ),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(name, want)| {
                let got = read_dockerfile(tree.path(), name)
                    .map(|d| String::from_utf8_lossy(&d).into_owned())
                    .map_err(|e| format!("{e:#}"));
                let same = match (&got, want) {
                    (Ok(g), Ok(w)) => g == w,
                    (Err(g), Err(w)) => g == w,
                    _ => false,
                };
                (!same).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn stdin_is_a_dockerfile_or_a_context() {
        let dockerfile = b"FROM scratch\nCOPY . /\n".to_vec();
        match read_stdin(&dockerfile[..], false).expect("read") {
            StdinInput::Dockerfile(d) => assert_eq!(d, dockerfile),
            StdinInput::Context(_) => panic!("a Dockerfile was taken for an archive"),
        }
        let err = read_stdin(&dockerfile[..], true)
            .err()
            .map(|e| format!("{e:#}"));
        assert_eq!(
            err.as_deref(),
            Some("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles")
        );
        let tar = tar_with("dir/file.txt", b"in the archive");
        match read_stdin(&tar[..], true).expect("read") {
            StdinInput::Context(dir) => assert_eq!(
                std::fs::read_to_string(dir.path().join("dir/file.txt")).expect("extracted"),
                "in the archive"
            ),
            StdinInput::Dockerfile(_) => panic!("an archive was taken for a Dockerfile"),
        }
    }
}
