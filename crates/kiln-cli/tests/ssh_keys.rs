//! `--ssh ID=KEYFILE`, end to end: the keys are loaded into kiln's own agent, which answers on
//! the socket of `RUN --mount=type=ssh`. The `RUN` uses OpenSSH's own tools (the host's `ssh-add`
//! and `ssh-keygen` with their libraries, copied into the image) to list the identities and to
//! sign through the agent, and the host verifies those signatures with `ssh-keygen`; so the
//! protocol is exercised by a real client inside the container.

mod common;

use common::{assert_success, busybox, keygen, kiln_build, state_dir};

use std::path::Path;
use std::process::{Command, Output};

/// Copies `programs` and the shared libraries `ldd` says they load into `root`, at the same
/// paths, so that `COPY root/ /` makes them runnable in a busybox image.
fn copy_with_libraries(programs: &[&str], root: &Path) {
    let copy = |from: &Path| {
        let to = root.join(from.strip_prefix("/").expect("absolute path"));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    for program in programs {
        copy(Path::new(program));
        let out = Command::new("ldd").arg(program).output().expect("ldd");
        assert!(out.status.success(), "ldd {program}");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // `libc.so.6 => /lib/…/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                copy(Path::new(path));
            }
        }
    }
}

/// Runs `kiln build` with `extra` flags on `context`.
fn build(state: &Path, context: &Path, extra: &[&str]) -> Output {
    kiln_build(state)
        .args(["--progress", "plain"])
        .args(extra)
        .arg(context)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("run kiln build")
}

const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
COPY root/ /
RUN ssh-add -L; echo $? > /without-mount
RUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" \
 && ssh-add -L > /listed \
 && { ssh-add -D; echo $? > /remove-all; } \
 && echo "signed inside a RUN" > /message \
 && for k in /keys/*.pub; do ssh-keygen -Y sign -n kiln -f "$k" /message && mv /message.sig "$k.sig" || exit 1; done
"#;

#[test]
fn key_files_are_served_by_kiln_agent() {
    let (_registry, base) = busybox();
    let keys = tempfile::tempdir().expect("keys");
    let ed25519 = keygen(keys.path(), "id_ed25519", &["-t", "ed25519", "-N", ""]);
    let rsa = keygen(
        keys.path(),
        "id_rsa",
        &["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", ""],
    );
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    let root = ctx.path().join("root");
    copy_with_libraries(&["/usr/bin/ssh-add", "/usr/bin/ssh-keygen"], &root);
    std::fs::create_dir_all(root.join("keys")).expect("mkdir");
    let publics: Vec<String> = [&ed25519, &rsa]
        .iter()
        .map(|k| {
            let name = format!(
                "{}.pub",
                k.file_name().and_then(|n| n.to_str()).unwrap_or("")
            );
            let text = std::fs::read_to_string(keys.path().join(&name)).expect("public key");
            std::fs::write(root.join("keys").join(&name), &text).expect("copy public key");
            text
        })
        .collect();

    let state = state_dir();
    let out_dir = tempfile::tempdir().expect("out");
    let dest = out_dir.path().join("out");
    let ssh = format!("default={},{}", ed25519.display(), rsa.display());
    let out = build(
        state.path(),
        ctx.path(),
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "--ssh",
            &ssh,
            "-o",
            &format!("type=local,dest={}", dest.display()),
        ],
    );
    assert_success(&out);
    let read = |name: &str| {
        std::fs::read_to_string(dest.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };

    // Without the mount there is no agent (ssh-add: 2, cannot connect); with it, the agent
    // lists the keys in the order given, and refuses to remove them (ssh-add: 1).
    assert_eq!(read("without-mount").trim(), "2");
    let key_part = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let listed: Vec<String> = read("listed").lines().map(key_part).collect();
    let want: Vec<String> = publics.iter().map(|p| key_part(p)).collect();
    assert_eq!(listed, want, "ssh-add -L inside the RUN");
    assert_eq!(read("remove-all").trim(), "1", "the agent is read-only");

    // The signatures made inside the RUN verify on the host.
    let message = dest.join("message");
    let mut failures = Vec::new();
    for public in ["id_ed25519.pub", "id_rsa.pub"] {
        let key = dest.join("keys").join(public);
        let signature = dest.join("keys").join(format!("{public}.sig"));
        let checked = Command::new("ssh-keygen")
            .args(["-Y", "check-novalidate", "-n", "kiln", "-f"])
            .arg(&key)
            .arg("-s")
            .arg(&signature)
            .stdin(std::fs::File::open(&message).expect("message"))
            .output()
            .expect("ssh-keygen");
        if !checked.status.success() {
            failures.push(format!(
                "{public}: {}",
                String::from_utf8_lossy(&checked.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unusable_key_files_are_refused_before_the_build() {
    let keys = tempfile::tempdir().expect("keys");
    let encrypted = keygen(
        keys.path(),
        "id_encrypted",
        &["-t", "ed25519", "-N", "correct horse"],
    );
    let not_a_key = keys.path().join("notes.txt");
    std::fs::write(&not_a_key, "not a key").expect("write");
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nRUN --mount=type=ssh true\n",
    )
    .expect("Dockerfile");
    let state = state_dir();
    let cases = [
        (
            format!("default={}", encrypted.display()),
            format!(
                "failed to parse {}: this private key is passphrase protected, and kiln cannot \
                 ask for the passphrase: add the key to an ssh-agent (ssh-add) and pass the \
                 agent's socket instead",
                encrypted.display()
            ),
        ),
        (
            format!("k={}", not_a_key.display()),
            format!(
                "failed to parse {}: not an ssh private key (OpenSSH or PEM format)",
                not_a_key.display()
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (flag, want) in cases {
        let out = build(state.path(), ctx.path(), &["--ssh", &flag]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains(&want) {
            failures.push(format!(
                "--ssh {flag}: exit {:?}, want {want:?}:\n{stderr}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
