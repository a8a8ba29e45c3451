//! Build contexts that are tarballs, end to end: a tarball (plain or compressed) piped to
//! `kiln build -`, a tarball or a Dockerfile at an HTTP URL served from loopback, a named
//! `--build-context` at an HTTP URL, and archives that try to write outside the directory they
//! are unpacked into. The builds start `FROM scratch`, so no registry is needed.

mod common;

use common::{assert_failure, assert_success, build_to_local, state_dir, step_state};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kiln_testkit::{HttpServer, StaticFile, StaticFiles};

/// `kiln build` with `args` before the context `context`, exporting to `dest`, with `stdin`.
fn build(state: &Path, args: &[&str], context: &str, dest: &Path, stdin: &[u8]) -> Output {
    build_to_local(state, dest)
        .args(args)
        .arg(context)
        .write_stdin(stdin.to_vec())
        .output()
        .expect("run kiln build")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Archives

/// A tarball of `files` (`path`, content) made with tar(1) from a directory, as users make
/// them (`./`-prefixed names, directory entries).
fn tarball(files: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("dir");
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
    }
    let out = Command::new("tar")
        .arg("-cf")
        .arg("-")
        .arg("-C")
        .arg(dir.path())
        .arg(".")
        .output()
        .expect("tar must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `data` compressed by `program -c` (gzip, bzip2, xz, zstd), or as it is for `none`.
fn compress(program: &str, data: &[u8]) -> Vec<u8> {
    if program == "none" {
        return data.to_vec();
    }
    let mut child = Command::new(program)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/prereqs.sh): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("compress");
    writer.join().expect("writer").expect("write");
    assert!(out.status.success(), "{program} failed");
    out.stdout
}

/// One entry of a hand-made archive: names and link targets are written as they are, which
/// tar(1) and the `tar` crate's builder refuse for `..`.
enum Raw<'a> {
    File(&'a str, &'a str),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

/// A tar archive of `entries`, written header by header.
fn raw_tar(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        let (name, data, kind, mode, link) = match entry {
            Raw::File(name, data) => (*name, data.as_bytes(), tar::EntryType::Regular, 0o644, ""),
            Raw::Dir(name) => (*name, &b""[..], tar::EntryType::Directory, 0o755, ""),
            Raw::Symlink(name, target) => {
                (*name, &b""[..], tar::EntryType::Symlink, 0o777, *target)
            }
        };
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append(&header, data).expect("append");
    }
    builder.into_inner().expect("finish")
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The context every archive test uses: a Dockerfile copying the whole context, a second
/// Dockerfile in a subdirectory, and a `.dockerignore` that BuildKit does not apply to archives.
const CONTEXT: &[(&str, &str)] = &[
    ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
    ("data.txt", "data from the archive\n"),
    ("ignored.txt", "listed in .dockerignore\n"),
    (".dockerignore", "ignored.txt\n"),
    ("sub/Dockerfile.alt", "FROM scratch\nCOPY data.txt /alt/\n"),
];

#[test]
fn http_tarball_context_is_cached_and_revalidated() {
    let server = HttpServer::start_static(StaticFiles::new([(
        "/ctx.tar.gz",
        StaticFile::new(compress("gzip", &tarball(CONTEXT))).with_etag("\"v1\""),
    )]))
    .expect("http server");
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let url = server.url("/ctx.tar.gz");

    let dest = out.path().join("a");
    let log = assert_success(&build(state.path(), &[], &url, &dest, b""));
    assert_eq!(
        read(&dest.join("ctx/data.txt")),
        "data from the archive\n",
        "{log}"
    );
    assert_eq!(
        read(&dest.join("ctx/Dockerfile")),
        "FROM scratch\nCOPY . /ctx/\n"
    );
    assert!(
        dest.join("ctx/ignored.txt").is_file(),
        "BuildKit does not apply .dockerignore to a downloaded context"
    );
    assert!(
        !dest.join("ctx/context").exists(),
        "the archive itself is not in the context"
    );

    // The download is revalidated with its ETag, and the unchanged context is cached.
    let log = assert_success(&build(state.path(), &[], &url, &out.path().join("b"), b""));
    assert_eq!(step_state(&log, "COPY . /ctx/"), Some("CACHED"), "{log}");
    assert_eq!(
        server.requests(),
        [
            ("/ctx.tar.gz".to_string(), 200),
            ("/ctx.tar.gz".to_string(), 304)
        ]
    );

    // `-f` names a Dockerfile inside the archive.
    let dest = out.path().join("c");
    let log = assert_success(&build(
        state.path(),
        &["-f", "sub/Dockerfile.alt"],
        &url,
        &dest,
        b"",
    ));
    assert_eq!(
        read(&dest.join("alt/data.txt")),
        "data from the archive\n",
        "{log}"
    );
    assert!(!dest.join("ctx").exists());
}

#[test]
fn http_dockerfile_is_the_dockerfile_and_the_whole_context() {
    let dockerfile = "FROM scratch\nCOPY . /ctx/\n";
    let server = HttpServer::start_static(StaticFiles::new([(
        "/build/Dockerfile",
        StaticFile::new(dockerfile),
    )]))
    .expect("http server");
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let dest = out.path().join("a");
    let log = assert_success(&build(
        state.path(),
        &[],
        &server.url("/build/Dockerfile"),
        &dest,
        b"",
    ));
    // BuildKit downloads the file as `context`; not being an archive, it is the Dockerfile and
    // the context is that one file.
    let names: Vec<String> = std::fs::read_dir(dest.join("ctx"))
        .expect("ctx")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["context"], "{log}");
    assert_eq!(read(&dest.join("ctx/context")), dockerfile);
}

/// Builds the [`CONTEXT`] archive compressed with `compression` from stdin, with `args`, and
/// says what went wrong, if anything.
fn check_stdin_archive(
    state: &Path,
    out: &Path,
    compression: &str,
    args: &[&str],
    expected: &str,
) -> Option<String> {
    let archive = compress(compression, &tarball(CONTEXT));
    let dest = out.join(format!("{compression}{}", args.len()));
    let result = build(state, args, "-", &dest, &archive);
    let stderr = String::from_utf8_lossy(&result.stderr);
    if !result.status.success() {
        return Some(format!("{compression} {args:?}: build failed:\n{stderr}"));
    }
    let got = std::fs::read_to_string(dest.join(expected)).ok();
    (got.as_deref() != Some("data from the archive\n"))
        .then(|| format!("{compression} {args:?}: {expected} is {got:?}"))
}

#[test]
fn stdin_archives_plain_and_compressed() {
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let cases: [(&str, &[&str], &str); 6] = [
        ("none", &[], "ctx/data.txt"),
        ("gzip", &[], "ctx/data.txt"),
        ("bzip2", &[], "ctx/data.txt"),
        ("xz", &[], "ctx/data.txt"),
        ("zstd", &[], "ctx/data.txt"),
        ("gzip", &["-f", "sub/Dockerfile.alt"], "alt/data.txt"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(compression, args, expected)| {
            check_stdin_archive(state.path(), out.path(), compression, args, expected)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The unpacked context is an ordinary one: `.dockerignore` is not applied (as BuildKit for
    // an uploaded archive), and the archive itself is not part of it.
    assert!(out.path().join("none0/ctx/ignored.txt").is_file());
    assert!(!out.path().join("none0/ctx/context").exists());
}

#[test]
fn stdin_dockerfile_still_builds_without_a_context() {
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let dest = out.path().join("a");
    let dockerfile = b"FROM scratch\nCOPY <<EOF /hello.txt\nhello from stdin\nEOF\n";
    let log = assert_success(&build(state.path(), &[], "-", &dest, dockerfile));
    assert_eq!(read(&dest.join("hello.txt")), "hello from stdin\n", "{log}");
}

/// Runs a build that must fail and says what went wrong if it did not fail with a message
/// containing `expected`.
fn check_error(
    state: &Path,
    args: &[&str],
    context: &str,
    stdin: &[u8],
    expected: &str,
) -> Option<String> {
    let out = tempfile::tempdir().expect("out");
    let result = build(state, args, context, &out.path().join("x"), stdin);
    let stderr = String::from_utf8_lossy(&result.stderr);
    let ok = result.status.code() == Some(1) && stderr.contains(expected);
    (!ok).then(|| {
        format!(
            "{args:?} {context}: want exit 1 and {expected:?}, got {:?}:\n{stderr}",
            result.status.code()
        )
    })
}

#[test]
fn context_errors() {
    let server = HttpServer::start_static(StaticFiles::new([(
        "/no-dockerfile.tar",
        StaticFile::new(tarball(&[("data.txt", "data\n")])),
    )]))
    .expect("http server");
    let state = state_dir();
    let dockerfile = b"FROM scratch\n".as_slice();
    let no_dockerfile = tarball(&[("data.txt", "data\n")]);
    let too_big = "#".repeat(16 << 20) + "\nFROM scratch\n";
    let too_big = compress("gzip", &tarball(&[("Dockerfile", too_big.as_str())]));
    let missing = server.url("/missing.tar.gz");
    let no_dockerfile_url = server.url("/no-dockerfile.tar");
    let cases: [(&[&str], &str, &[u8], &str); 7] = [
        (
            &["-f", "-"],
            "-",
            dockerfile,
            "invalid argument: can't use stdin for both build context and dockerfile",
        ),
        (
            &["-f", "Dockerfile"],
            "-",
            dockerfile,
            "ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles",
        ),
        (
            &[],
            "-",
            &no_dockerfile,
            "failed to solve: failed to read dockerfile: open Dockerfile: no such file or directory",
        ),
        (
            &["-f", "sub/Other"],
            "-",
            &no_dockerfile,
            "failed to read dockerfile: open sub/Other: no such file or directory",
        ),
        (
            &[],
            "-",
            &too_big,
            "Dockerfile exceeds maximum allowed size of 16777216 bytes",
        ),
        (
            &[],
            &missing,
            b"",
            "failed to read downloaded context: invalid response status 404",
        ),
        (
            &[],
            &no_dockerfile_url,
            b"",
            "failed to read dockerfile: open Dockerfile: no such file or directory",
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(args, context, stdin, expected)| {
            check_error(state.path(), args, context, stdin, expected)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn archives_cannot_write_or_read_outside_their_directory() {
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let outside = tempfile::tempdir().expect("outside");
    let outside_path = outside.path().display().to_string();
    std::fs::write(
        outside.path().join("Dockerfile"),
        "FROM scratch\nCOPY . /from-the-host/\n",
    )
    .expect("host Dockerfile");

    // `..` climbing out, in a name or through a relative link: the extraction refuses the
    // archive, and nothing is written outside.
    let refused = [
        raw_tar(&[
            Raw::File("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            Raw::File("../escape.txt", "escaped\n"),
        ]),
        raw_tar(&[
            Raw::File("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            Raw::File("../../../../../../../../tmp/escape-kiln.txt", "escaped\n"),
        ]),
        raw_tar(&[
            Raw::File("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            Raw::Dir("dir"),
            Raw::Symlink("dir/up", "../../../../../../tmp"),
            Raw::File("dir/up/escape-kiln.txt", "written through ..\n"),
        ]),
    ];
    let failures: Vec<String> = refused
        .iter()
        .enumerate()
        .filter_map(|(i, archive)| {
            let result = build(state.path(), &[], "-", &out.path().join("refused"), archive);
            let stderr = String::from_utf8_lossy(&result.stderr);
            let ok = result.status.code() == Some(1)
                && stderr.contains("failed to unpack the build context")
                && stderr.contains("outside");
            (!ok).then(|| format!("archive {i}: {:?}\n{stderr}", result.status.code()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!Path::new("/tmp/escape-kiln.txt").exists());
    assert!(!std::env::temp_dir().join("escape.txt").exists());

    // An absolute name lands inside; a symbolic link to a host directory is written through
    // inside the context, not on the host.
    let through = raw_tar(&[
        Raw::File("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
        Raw::File("/abs.txt", "absolute\n"),
        Raw::Symlink("link", &outside_path),
        Raw::File("link/pwned.txt", "written through the link\n"),
    ]);
    let server = HttpServer::start_static(StaticFiles::new([(
        "/evil.tar",
        StaticFile::new(through.clone()),
    )]))
    .expect("http server");
    for (how, context, stdin) in [
        ("stdin", "-".to_string(), through.as_slice()),
        ("http", server.url("/evil.tar"), b"".as_slice()),
    ] {
        let dest = out.path().join(how);
        let log = assert_success(&build(state.path(), &[], &context, &dest, stdin));
        assert!(
            !outside.path().join("pwned.txt").exists(),
            "{how}: wrote outside\n{log}"
        );
        assert_eq!(read(&dest.join("ctx/abs.txt")), "absolute\n", "{how}");
        let inside = dest.join("ctx").join(outside_path.trim_start_matches('/'));
        assert_eq!(
            read(&inside.join("pwned.txt")),
            "written through the link\n",
            "{how}: the link resolves inside the context"
        );
    }

    // A Dockerfile that is a symbolic link to a host file is read inside the context, where it
    // does not exist.
    let host_dockerfile = format!("{outside_path}/Dockerfile");
    let link = raw_tar(&[Raw::Symlink("Dockerfile", &host_dockerfile)]);
    let result = build(state.path(), &[], "-", &out.path().join("b"), &link);
    let stderr = assert_failure(&result);
    assert!(
        stderr.contains("failed to read dockerfile: open Dockerfile: no such file or directory"),
        "{stderr}"
    );
    assert!(!out.path().join("b/from-the-host").exists());
}

#[test]
fn named_http_contexts_are_downloaded_files() {
    let archive = compress("gzip", &tarball(&[("inside.txt", "inside\n")]));
    let server = HttpServer::start_static(StaticFiles::new([
        ("/files/data.txt", StaticFile::new("named context data\n")),
        ("/files/archive.tar.gz", StaticFile::new(archive.clone())),
    ]))
    .expect("http server");
    let state = state_dir();
    let out = tempfile::tempdir().expect("out");
    let context = tempfile::tempdir().expect("context");
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY --from=data /context /got/data.txt\nCOPY --from=arch / /arch/\n",
    )
    .expect("Dockerfile");
    let data = format!("data={}", server.url("/files/data.txt"));
    let arch = format!("arch={}", server.url("/files/archive.tar.gz"));
    let dest = out.path().join("a");
    let log = assert_success(&build(
        state.path(),
        &["--build-context", &data, "--build-context", &arch],
        &context.path().display().to_string(),
        &dest,
        b"",
    ));
    assert_eq!(
        read(&dest.join("got/data.txt")),
        "named context data\n",
        "{log}"
    );
    // A named HTTP context is the downloaded file, named `context`, never unpacked.
    let names: Vec<String> = std::fs::read_dir(dest.join("arch"))
        .expect("arch")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["context"], "{log}");
    assert_eq!(
        std::fs::read(dest.join("arch/context")).expect("archive"),
        archive
    );
}
