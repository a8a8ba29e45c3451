//! `RUN --mount=type=bind|tmpfs` and named build contexts (`--build-context NAME=DIR`,
//! `docker-image://`), end to end on the embedded builder with a real registry.
//!
//! Each case is a Dockerfile, the context files it needs, extra flags, and the files the
//! build must leave in a local export (exact content) or must not leave there; one `check`
//! runs them all and reports every failing case.

mod common;

use common::{busybox, kiln_build, state_dir};

use std::path::Path;

/// One build and what its local export must (`Some`) or must not (`None`) hold.
struct Case {
    name: &'static str,
    /// The Dockerfile, after `ARG BASE` and `FROM ${BASE}` (`check` prepends both, or only
    /// `ARG BASE` when the case starts with its own `FROM`).
    dockerfile: &'static str,
    /// Files of the context, and of the named context `extra` (`--build-context extra=DIR`).
    context: &'static [(&'static str, &'static str)],
    extra: &'static [(&'static str, &'static str)],
    flags: &'static [&'static str],
    expect: &'static [(&'static str, Option<&'static str>)],
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
    }
}

/// Runs every case; returns a description of each failure.
fn check(base: &str, cases: &[Case]) -> Vec<String> {
    let state = state_dir();
    let mut failures = Vec::new();
    for case in cases {
        let ctx = tempfile::tempdir().expect("context");
        let extra = tempfile::tempdir().expect("extra context");
        let dockerfile = if case.dockerfile.starts_with("FROM") {
            format!("ARG BASE\n{}", case.dockerfile)
        } else {
            format!("ARG BASE\nFROM ${{BASE}}\n{}", case.dockerfile)
        };
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
        write_files(ctx.path(), case.context);
        write_files(extra.path(), case.extra);
        let before = snapshot(ctx.path());
        let out_dir = tempfile::tempdir().expect("out");
        let dest = out_dir.path().join("out");
        let flags: Vec<String> = case
            .flags
            .iter()
            .map(|f| f.replace("{BASE}", base))
            .collect();
        let out = kiln_build(state.path())
            .args(["--progress", "plain", "--build-arg"])
            .arg(format!("BASE={base}"))
            .arg("--build-context")
            .arg(format!("extra={}", extra.path().display()))
            .arg("-o")
            .arg(format!("type=local,dest={}", dest.display()))
            .args(&flags)
            .arg(ctx.path())
            .output()
            .expect("run kiln build");
        if !out.status.success() {
            failures.push(format!(
                "{}: build failed:\n{}",
                case.name,
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        for (path, want) in case.expect {
            let got = std::fs::read_to_string(dest.join(path)).ok();
            if got.as_deref() != *want {
                failures.push(format!("{}: /{path} is {got:?}, want {want:?}", case.name));
            }
        }
        if snapshot(ctx.path()) != before {
            failures.push(format!("{}: the build changed its context", case.name));
        }
    }
    failures
}

/// Every file of a directory with its content, to see that a build left it alone.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let content = std::fs::read(&path).unwrap_or_default();
                out.push((path.display().to_string(), content));
            }
        }
    }
    out.sort();
    out
}

const CASES: &[Case] = &[
    Case {
        name: "bind the context, read-only by default",
        dockerfile: "RUN --mount=type=bind,target=/ctx cat /ctx/a.txt > /a && \
                     (touch /ctx/new 2>/dev/null && echo rw || echo ro) > /mode\n",
        context: &[("a.txt", "A\n")],
        extra: &[],
        flags: &[],
        expect: &[
            ("a", Some("A\n")),
            ("mode", Some("ro\n")),
            ("ctx/a.txt", None),
        ],
    },
    Case {
        name: "bind a source directory of the context",
        dockerfile: "RUN --mount=type=bind,source=sub,target=/s cat /s/b.txt > /b\n",
        context: &[("sub/b.txt", "B\n"), ("a.txt", "A\n")],
        extra: &[],
        flags: &[],
        expect: &[("b", Some("B\n")), ("s/b.txt", None)],
    },
    Case {
        name: "rw bind: writes are seen by the RUN and then discarded",
        dockerfile: "RUN --mount=type=bind,target=/ctx,rw echo changed > /ctx/a.txt && \
                     cat /ctx/a.txt > /seen\n\
                     RUN --mount=type=bind,target=/ctx cat /ctx/a.txt > /after\n",
        context: &[("a.txt", "A\n")],
        extra: &[],
        flags: &[],
        expect: &[
            ("seen", Some("changed\n")),
            ("after", Some("A\n")),
            ("ctx/a.txt", None),
        ],
    },
    Case {
        name: "bind a file from another stage",
        dockerfile: "FROM ${BASE} AS s\nRUN echo from-stage > /s.txt\n\
                     FROM ${BASE}\n\
                     RUN --mount=type=bind,from=s,source=/s.txt,target=/m cat /m > /got\n",
        context: &[],
        extra: &[],
        flags: &[],
        expect: &[("got", Some("from-stage\n")), ("s.txt", None)],
    },
    Case {
        // `from=` takes no variables (BuildKit's rule): the image is named literally, and the
        // name is pointed at the test registry's busybox.
        name: "bind from an image",
        dockerfile: "RUN --mount=type=bind,from=example.invalid/img:1,source=/bin,target=/img \
                     test -x /img/busybox && echo yes > /got\n",
        context: &[],
        extra: &[],
        flags: &[
            "--build-context",
            "example.invalid/img:1=docker-image://{BASE}",
        ],
        expect: &[("got", Some("yes\n"))],
    },
    Case {
        name: "tmpfs with a size, never in the result",
        dockerfile: "RUN --mount=type=tmpfs,target=/t,size=2m \
                     df -k /t | tail -n 1 | awk '{print $2}' > /size && echo x > /t/f && \
                     grep -q ' /t tmpfs ' /proc/mounts && echo tmpfs > /kind\n",
        context: &[],
        extra: &[],
        flags: &[],
        expect: &[
            ("size", Some("2048\n")),
            ("kind", Some("tmpfs\n")),
            ("t/f", None),
        ],
    },
    Case {
        name: "named local context: COPY --from and a bind mount",
        dockerfile: "COPY --from=extra e.txt /e\n\
                     RUN --mount=type=bind,from=extra,target=/x cat /x/sub/f.txt > /f\n",
        context: &[],
        extra: &[("e.txt", "E\n"), ("sub/f.txt", "F\n")],
        flags: &[],
        expect: &[("e", Some("E\n")), ("f", Some("F\n"))],
    },
    Case {
        name: "named image context used by FROM",
        dockerfile: "FROM img\nRUN test -x /bin/busybox && echo ok > /ok\n",
        context: &[],
        extra: &[],
        flags: &["--build-context", "img=docker-image://{BASE}"],
        expect: &[("ok", Some("ok\n"))],
    },
    Case {
        name: "a named context overrides an image name used by FROM",
        dockerfile: "FROM example.invalid/never:pulled\nCOPY e.txt /e\n",
        context: &[("e.txt", "E\n")],
        extra: &[],
        flags: &[
            "--build-context",
            "example.invalid/never:pulled=docker-image://{BASE}",
        ],
        expect: &[("e", Some("E\n"))],
    },
];

#[test]
fn bind_and_tmpfs_mounts_and_named_contexts() {
    let (_registry, base) = busybox();
    let failures = check(&base, CASES);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
