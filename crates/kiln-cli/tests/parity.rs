//! Parity with the Docker engine's BuildKit: the same Dockerfile, built FROM the same busybox
//! image on a loopback registry, once by `kiln build` on the embedded builder and once by
//! `DOCKER_BUILDKIT=1 docker build --network host` (Debian's `docker.io`, daemon started by
//! `scripts/dockerd.sh`), exported both as files (`-o type=local`) and as a tarball
//! (`-o type=tar`). The two results must hold the same paths, with the same types, permission
//! bits, owners, contents, symlink targets and hard-link structure.
//!
//! BuildKit is the reference: where kiln differs, kiln is wrong, unless the difference is listed
//! in [`EXCEPTIONS`] with its reason. A Docker engine that does not answer fails the test, in CI
//! and outside it alike.

mod common;

use common::{kiln, state_dir};

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output as ProcessOutput};

use kiln_testkit::{DockerEngine, FileTree, Node, NodeKind, TestRegistry};

/// The Dockerfile both builders run. `@HEREDOC@` stands for one RUN step that kiln gets as a
/// heredoc and the Docker engine as the exec form BuildKit turns that heredoc into
/// ([`heredoc_for`]): the engine's built-in Dockerfile frontend (Docker 20.10) predates
/// heredocs, and a newer frontend would have to come from Docker Hub through `# syntax=`.
const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE} AS build
ARG VERSION=0.0.0
ENV APP_HOME=/opt/app
WORKDIR /opt
WORKDIR app
WORKDIR ./bin
RUN echo "version=$VERSION home=$APP_HOME pwd=$(pwd)" > info.txt
RUN ["/bin/sh", "-c", "mkdir -p $APP_HOME/lib && echo exec-form > $APP_HOME/lib/exec.txt"]
@HEREDOC@
RUN echo doomed > /opt/app/doomed.txt && mkdir -p /opt/app/doomed-dir/sub && echo x > /opt/app/doomed-dir/sub/f
RUN rm /opt/app/doomed.txt && rm -r /opt/app/doomed-dir
RUN mkdir -p /opt/app/empty /opt/app/shared && mkdir -m 0750 /opt/app/private && chmod 1777 /opt/app/shared
RUN cp /bin/busybox /opt/app/suid-tool && chmod 4755 /opt/app/suid-tool && chmod 2755 /opt/app/private
RUN chown -R app:app /opt/app/lib && chown 1234:5678 /opt/app/bin/info.txt

FROM ${BASE}
ARG VERSION
COPY --from=build /opt/app /app
COPY src/ /data/src/
COPY src/*.txt /data/txt/
COPY src/empty /data/empty-copy/
COPY --chown=app:app src/sub /data/owned-by-name/
COPY --chown=1001:1002 tool.sh /data/owned-by-id.sh
COPY --chown=app tool.sh /data/owned-by-user-only.sh
COPY --chmod=0640 tool.sh /data/mode-0640.sh
COPY --chmod=4755 tool.sh /data/setuid.sh
COPY private.txt /data/
ADD archive.tar.gz /data/extracted/
COPY --from=build /opt/app/bin/info.txt /data/info-from-build.txt
USER app
WORKDIR /home/app/work
WORKDIR sub
RUN echo "$(id -u):$(id -g) $(pwd) $VERSION" > whoami.txt && mkdir made-by-app
USER root
RUN rm /data/src/sub/c.txt /bin/vi && rm -r /data/txt && mkdir /data/txt && echo new > /data/txt/new.txt
RUN ln /data/src/a.txt /data/a-hardlink && ln -s ../src/a.txt /data/txt/a-symlink
"#;

/// The script of the heredoc step.
const HEREDOC_SCRIPT: &str = "set -e
mkdir -p /opt/app/links
cd /opt/app/links
echo target > target.txt
ln -s target.txt rel-link
ln -s /opt/app/links/target.txt abs-link
ln -s missing dangling
ln target.txt hard1
ln target.txt hard2
";

/// The heredoc step as each builder gets it: a heredoc for kiln, and for the Docker engine the
/// exec form BuildKit's frontend makes of a RUN whose whole command is one heredoc without a
/// shebang (`[SHELL..., "-c", BODY]`).
fn heredoc_for(builder: Builder) -> String {
    match builder {
        Builder::Kiln => format!("RUN <<EOF\n{HEREDOC_SCRIPT}EOF"),
        Builder::Docker => format!(
            "RUN {}",
            serde_json::json!(["/bin/sh", "-c", HEREDOC_SCRIPT])
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builder {
    Kiln,
    Docker,
}

/// The build context: files owned by a user that exists nowhere (the client sends them as
/// root's), a setuid script, a private file, an empty directory, and a gzipped tarball with its
/// own owners, modes, symlink and hard link. Every path has the same fixed mtime.
fn write_context(dir: &Path) {
    let write = |rel: &str, contents: &str, mode: u32| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{rel}: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write("src/a.txt", "a\n", 0o644);
    write("src/b.md", "b\n", 0o664);
    write("src/sub/c.txt", "c\n", 0o644);
    write("src/sub/deeper/d.txt", "d\n", 0o600);
    write("src/run.sh", "#!/bin/sh\necho run\n", 0o755);
    write("src/sub/suid.sh", "#!/bin/sh\necho suid\n", 0o4755);
    std::fs::create_dir_all(dir.join("src/empty")).expect("empty dir");
    write("tool.sh", "#!/bin/sh\necho tool\n", 0o755);
    write("private.txt", "private\n", 0o600);
    run(Command::new("chown")
        .args(["-R", "4242:4343"])
        .arg(dir.join("src")));
    run(Command::new("chown")
        .arg("4242:4343")
        .arg(dir.join("tool.sh")));
    // chown cleared the setuid bit.
    std::fs::set_permissions(
        dir.join("src/sub/suid.sh"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");

    // The archive ADD extracts: entries with owners, modes, a symlink and a hard link.
    let staging = tempfile::tempdir().expect("staging");
    let root = staging.path().join("pkg");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("share/empty")).expect("mkdir");
    std::fs::write(root.join("bin/hello"), "#!/bin/sh\necho hello\n").expect("write");
    std::fs::set_permissions(
        root.join("bin/hello"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::write(root.join("share/readme"), "readme\n").expect("write");
    std::fs::set_permissions(
        root.join("share/readme"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("../share/readme", root.join("bin/readme-link")).expect("symlink");
    std::fs::hard_link(root.join("bin/hello"), root.join("bin/hello-again")).expect("link");
    run(Command::new("chown").args(["-R", "7:8"]).arg(&root));
    run(Command::new("tar")
        .args([
            "--numeric-owner",
            "--mtime=@1700000000",
            "--sort=name",
            "-czf",
        ])
        .arg(dir.join("archive.tar.gz"))
        .arg("-C")
        .arg(staging.path())
        .arg("pkg"));

    // Fixed times, which COPY keeps: the copies' times compare from run to run.
    run(Command::new("find").arg(dir).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "@1600000000",
        "{}",
        "+",
    ]));
}

fn run(command: &mut Command) -> ProcessOutput {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Extracts a tarball as root with GNU tar (owners, modes, links as the tarball says).
fn extract(tarball: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    run(Command::new("tar")
        .args(["--numeric-owner", "--same-permissions", "-xf"])
        .arg(tarball)
        .arg("-C")
        .arg(dest));
}

/// The two ways a result is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// `-o type=local`: files written by the client.
    Local,
    /// `-o type=tar`: a tarball, extracted here with GNU tar.
    Tar,
}

const BOTH: &[Output] = &[Output::Local, Output::Tar];

/// A difference the test accepts, and why.
struct Exception {
    /// The path, or a directory whose whole subtree is concerned (ending in `/`; `/` is every
    /// path).
    path: &'static str,
    /// The outputs it concerns.
    outputs: &'static [Output],
    /// What may differ.
    what: Allowed,
    /// Why.
    reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// The modification time of a file a RUN step wrote: the time the step ran (the engine
    /// may even take it from its cache of an earlier run).
    Mtime,
    /// The owner.
    Owner,
    /// The permission bits, kiln's and the engine's.
    Mode { kiln: u32, docker: u32 },
    /// The path is only in the engine's result.
    OnlyInDocker,
}

/// Every accepted difference, with its reason. Directory mtimes are never compared: any step
/// that creates or removes an entry sets its directory's mtime to the time the step ran.
/// Except for mtimes, an exception that no difference needs any more fails the test, so that
/// this list stays true.
const EXCEPTIONS: &[Exception] = &[
    Exception {
        path: "/app/",
        outputs: BOTH,
        what: Allowed::Mtime,
        reason: "written by RUN steps of the build stage",
    },
    Exception {
        path: "/home/app/work/",
        outputs: BOTH,
        what: Allowed::Mtime,
        reason: "written by a RUN step",
    },
    Exception {
        path: "/data/txt/",
        outputs: BOTH,
        what: Allowed::Mtime,
        reason: "recreated by a RUN step",
    },
    Exception {
        path: "/data/info-from-build.txt",
        outputs: BOTH,
        what: Allowed::Mtime,
        reason: "copied from a file a RUN step wrote",
    },
    Exception {
        path: "/data/setuid.sh",
        outputs: BOTH,
        what: Allowed::Mode {
            kiln: 0o4755,
            docker: 0o755,
        },
        reason: "COPY --chmod=4755: BuildKit before 0.13 dropped the setuid, setgid and sticky \
                 bits of --chmod (moby/buildkit#3920, fixed by tonistiigi/fsutil#168); Debian's \
                 docker.io 20.10 embeds BuildKit 0.8, and kiln follows current BuildKit",
    },
];

/// The exceptions that accept `what` at `path` in `output`, marked as used.
fn allowed(path: &str, output: Output, what: Allowed, used: &mut BTreeSet<usize>) -> bool {
    let mut found = false;
    for (i, e) in EXCEPTIONS.iter().enumerate() {
        let matches_path = e.path == path || (e.path.ends_with('/') && path.starts_with(e.path));
        if matches_path && e.outputs.contains(&output) && e.what == what {
            used.insert(i);
            found = true;
        }
    }
    found
}

fn describe(node: &Node) -> String {
    let kind = match &node.kind {
        NodeKind::File { size, .. } => format!("file ({size} bytes)"),
        NodeKind::Symlink { target } => format!("symlink -> {target}"),
        other => other.name().to_string(),
    };
    format!("{kind} {:04o} {}:{}", node.mode, node.uid, node.gid)
}

/// A file's contents for a diff: the text when short, else its size.
fn show_contents(root: &Path, path: &str) -> String {
    let full = root.join(path.trim_start_matches('/'));
    match std::fs::read(&full) {
        Ok(bytes) if bytes.len() <= 512 => match String::from_utf8(bytes) {
            Ok(text) => format!("{text:?}"),
            Err(e) => format!("{} binary bytes", e.into_bytes().len()),
        },
        Ok(bytes) => format!("{} bytes", bytes.len()),
        Err(e) => format!("unreadable: {e}"),
    }
}

/// One side of a comparison: where the result is, and its snapshot.
struct Side<'a> {
    root: &'a Path,
    tree: &'a FileTree,
}

/// Every difference between kiln's tree and the Docker engine's that no exception accepts, one
/// line each; the exceptions used are added to `used`.
fn compare(output: Output, kiln: Side, docker: Side, used: &mut BTreeSet<usize>) -> Vec<String> {
    let mut diffs = Vec::new();
    let paths: BTreeSet<&String> = kiln
        .tree
        .nodes
        .keys()
        .chain(docker.tree.nodes.keys())
        .collect();
    for path in paths {
        let (k, d) = match (kiln.tree.nodes.get(path), docker.tree.nodes.get(path)) {
            (Some(k), Some(d)) => (k, d),
            (Some(k), None) => {
                diffs.push(format!("{path}: only in kiln's result ({})", describe(k)));
                continue;
            }
            (None, Some(d)) => {
                if !allowed(path, output, Allowed::OnlyInDocker, used) {
                    diffs.push(format!(
                        "{path}: only in the Docker engine's result ({})",
                        describe(d)
                    ));
                }
                continue;
            }
            (None, None) => continue,
        };
        match (&k.kind, &d.kind) {
            (NodeKind::File { sha256: a, .. }, NodeKind::File { sha256: b, .. }) if a != b => {
                diffs.push(format!(
                    "{path}: contents differ: kiln {}, docker {}",
                    show_contents(kiln.root, path),
                    show_contents(docker.root, path)
                ));
            }
            (NodeKind::File { .. }, NodeKind::File { .. }) => {}
            (a, b) if a != b => {
                diffs.push(format!(
                    "{path}: kiln has {}, docker has {}",
                    describe(k),
                    describe(d)
                ));
                continue;
            }
            _ => {}
        }
        let mode = Allowed::Mode {
            kiln: k.mode,
            docker: d.mode,
        };
        if k.mode != d.mode && !allowed(path, output, mode, used) {
            diffs.push(format!(
                "{path}: mode {:04o} in kiln's result, {:04o} in docker's",
                k.mode, d.mode
            ));
        }
        if (k.uid, k.gid) != (d.uid, d.gid) && !allowed(path, output, Allowed::Owner, used) {
            diffs.push(format!(
                "{path}: owner {}:{} in kiln's result, {}:{} in docker's",
                k.uid, k.gid, d.uid, d.gid
            ));
        }
        if k.hardlink_group != d.hardlink_group {
            let show = |g: &Option<String>| {
                g.as_ref().map_or_else(
                    || "no other link".to_string(),
                    |p| format!("linked with {p}"),
                )
            };
            diffs.push(format!(
                "{path}: hard links: {} in kiln's result, {} in docker's",
                show(&k.hardlink_group),
                show(&d.hardlink_group)
            ));
        }
        if k.kind != NodeKind::Dir
            && k.mtime != d.mtime
            && !allowed(path, output, Allowed::Mtime, used)
        {
            diffs.push(format!(
                "{path}: mtime {} in kiln's result, {} in docker's",
                k.mtime, d.mtime
            ));
        }
    }
    diffs
}

fn check_success(what: &str, out: &ProcessOutput) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn same_files_modes_and_owners_as_docker_buildkit() {
    let docker = DockerEngine::connect().expect("the Docker engine");
    let registry = TestRegistry::start().expect("start registry");
    let base = kiln_testkit::busybox_image(&registry)
        .expect("push busybox")
        .reference;

    // KILN_PARITY_KEEP=1 keeps both builders' results for a look after the test.
    let work = tempfile::Builder::new()
        .prefix("kiln-parity-")
        .disable_cleanup(std::env::var_os("KILN_PARITY_KEEP").is_some())
        .tempdir_in("/var/tmp")
        .expect("work dir");
    let context = work.path().join("context");
    std::fs::create_dir_all(&context).expect("context");
    write_context(&context);
    let dockerfile = |builder: Builder| {
        let path = work.path().join(format!("Dockerfile.{builder:?}"));
        std::fs::write(
            &path,
            DOCKERFILE.replace("@HEREDOC@", &heredoc_for(builder)),
        )
        .expect("Dockerfile");
        path
    };
    let build_args = [
        "--build-arg".to_string(),
        format!("BASE={base}"),
        "--build-arg".to_string(),
        "VERSION=1.2.3".to_string(),
    ];
    let out = |name: &str| work.path().join(name);

    // kiln: both outputs from one build.
    let state = state_dir();
    let kiln_out = kiln()
        .arg("build")
        .arg("--root")
        .arg(state.path())
        .args(["--progress", "plain", "-f"])
        .arg(dockerfile(Builder::Kiln))
        .args(&build_args)
        .arg("-o")
        .arg(format!("type=local,dest={}", out("kiln-local").display()))
        .arg("-o")
        .arg(format!("type=tar,dest={}", out("kiln.tar").display()))
        .arg(&context)
        .output()
        .expect("run kiln build");
    check_success("kiln build", &kiln_out);

    // The Docker engine: one output per build. The first ignores the engine's cache, whose
    // copies of an earlier run's context would carry that run's file times (a cache key
    // ignores times); the second is fully cached, so both outputs hold the same build.
    let docker_file = dockerfile(Builder::Docker);
    for (output, no_cache) in [
        (
            format!("type=local,dest={}", out("docker-local").display()),
            true,
        ),
        (
            format!("type=tar,dest={}", out("docker.tar").display()),
            false,
        ),
    ] {
        let mut args: Vec<&str> = vec!["-f", docker_file.to_str().expect("utf-8 path")];
        args.extend(build_args.iter().map(String::as_str));
        args.extend(["-o", &output]);
        if no_cache {
            args.push("--no-cache");
        }
        let result = docker.build(&context, &args).expect("run docker build");
        check_success(
            &format!("docker build ({})", docker.server_version()),
            &result,
        );
        // BuildKit's plain progress, not the classic builder's "Step 1/N".
        let log = String::from_utf8_lossy(&result.stderr);
        assert!(
            log.contains("[internal] load build definition from"),
            "docker build did not run on BuildKit:\n{log}"
        );
    }

    extract(&out("kiln.tar"), &out("kiln-tar"));
    extract(&out("docker.tar"), &out("docker-tar"));

    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    for (output, kiln_dir, docker_dir) in [
        (Output::Local, "kiln-local", "docker-local"),
        (Output::Tar, "kiln-tar", "docker-tar"),
    ] {
        let kiln_tree = FileTree::read(&out(kiln_dir)).expect("read kiln's tree");
        let docker_tree = FileTree::read(&out(docker_dir)).expect("read docker's tree");
        let diffs = compare(
            output,
            Side {
                root: &out(kiln_dir),
                tree: &kiln_tree,
            },
            Side {
                root: &out(docker_dir),
                tree: &docker_tree,
            },
            &mut used,
        );
        if !diffs.is_empty() {
            failures.push(format!(
                "{output:?} output: {} differences between kiln and the Docker engine's BuildKit:\n  {}",
                diffs.len(),
                diffs.join("\n  ")
            ));
        }
    }
    let stale: Vec<String> = EXCEPTIONS
        .iter()
        .enumerate()
        .filter(|(i, e)| e.what != Allowed::Mtime && !used.contains(i))
        .map(|(_, e)| format!("{} ({:?}): {}", e.path, e.what, e.reason))
        .collect();
    if !stale.is_empty() {
        failures.push(format!(
            "exceptions that no difference needs any more (remove them):\n  {}",
            stale.join("\n  ")
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\n\nkiln's build log:\n{}",
        failures.join("\n\n"),
        String::from_utf8_lossy(&kiln_out.stderr)
    );
}
