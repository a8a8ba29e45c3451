//! `RUN` containers and what the client lends them, end to end on the embedded builder:
//! secrets (`--secret`, `RUN --mount=type=secret`), SSH agent forwarding (`--ssh`), entitlements
//! (`--allow`), and `--add-host`, `--shm-size`, `--ulimit`.

mod common;

use common::{
    assert_success, build_with, busybox, contains, context_with, files_containing, sha256_hex,
    state_dir, unique_value,
};

use std::process::Output;

/// A context holding `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    context_with(&[("Dockerfile", dockerfile)])
}

const SECRET_DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
RUN --mount=type=secret,id=tok,uid=1000,gid=1000,mode=0440 stat -c '%a %u %g %s' /run/secrets/tok > /secret-stat && sha256sum /run/secrets/tok | cut -d' ' -f1 > /secret-sum
RUN --mount=type=secret,id=fromenv,env=TOKEN,target=/etc/tok printf %s "$TOKEN" | sha256sum | cut -d' ' -f1 > /env-sum && sha256sum /etc/tok | cut -d' ' -f1 > /file-sum
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /absent
"#;

#[test]
fn secret_values_never_leave_the_run() {
    let (_registry, base) = busybox();
    let state = state_dir();
    let ctx = context(SECRET_DOCKERFILE);
    let secret = unique_value("s3cr3t");
    let secret_file = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret_file.path(), &secret).expect("write secret");
    let out_dir = tempfile::tempdir().expect("out");
    let dest = out_dir.path().join("local");
    let tar = out_dir.path().join("fs.tar");
    let base_arg = format!("BASE={base}");
    let secret_arg = format!("id=tok,src={}", secret_file.path().display());
    let env = [("KILN_TEST_SECRET", secret.as_str())];
    let mut logs = Vec::new();

    // Plain progress, local files.
    let flags = |progress: &str, output: String| -> Vec<String> {
        [
            "--progress",
            progress,
            "--build-arg",
            &base_arg,
            "--secret",
            &secret_arg,
            "--secret",
            "id=fromenv,env=KILN_TEST_SECRET",
            "-o",
            &output,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let plain = flags("plain", format!("type=local,dest={}", dest.display()));
    let out = build_with(
        state.path(),
        ctx.path(),
        &plain.iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
    );
    assert_success(&out);
    logs.push(("plain progress", out.stderr.clone(), out.stdout.clone()));

    let sum = sha256_hex(secret.as_bytes());
    let read = |name: &str| {
        std::fs::read_to_string(dest.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .to_string()
    };
    assert_eq!(
        read("secret-stat"),
        format!("440 1000 1000 {}", secret.len()),
        "the secret file has the mount's mode and owner"
    );
    assert_eq!(read("secret-sum"), sum, "the secret file holds the secret");
    assert_eq!(
        read("env-sum"),
        sum,
        "env= exposes the secret as a variable"
    );
    assert_eq!(read("file-sum"), sum, "target= places the file");
    assert_eq!(
        read("absent"),
        "skipped",
        "a missing optional secret is skipped"
    );
    assert!(
        !dest.join("run/secrets").exists() && !dest.join("etc/tok").exists(),
        "the secret mount points are not left in the layer"
    );

    // Rawjson progress, a tarball, every step run again.
    let raw = flags("rawjson", format!("type=tar,dest={}", tar.display()));
    let mut raw: Vec<&str> = raw.iter().map(String::as_str).collect();
    raw.push("--no-cache");
    let out = build_with(state.path(), ctx.path(), &raw, &env);
    assert_success(&out);
    logs.push(("rawjson progress", out.stderr.clone(), out.stdout.clone()));

    let needle = secret.as_bytes();
    let mut leaks = Vec::new();
    for (what, stderr, stdout) in &logs {
        if contains(stderr, needle) || contains(stdout, needle) {
            leaks.push(what.to_string());
        }
    }
    for root in [dest.as_path(), tar.as_path(), state.path()] {
        leaks.extend(
            files_containing(root, &[needle])
                .into_iter()
                .map(|p| p.display().to_string()),
        );
    }
    assert!(
        std::fs::metadata(&tar).map(|m| m.len()).unwrap_or(0) > 0,
        "the tarball was written"
    );
    assert!(leaks.is_empty(), "the secret leaked into: {leaks:#?}");
    // Nothing is left in the session directory once the build is over.
    let session = state.path().join("session");
    let left: Vec<_> = std::fs::read_dir(&session)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", session.display());
}

/// Builds `dockerfile` (with `BASE`) and returns its output.
fn run_build(base: &str, dockerfile: &str, flags: &[&str]) -> (Output, tempfile::TempDir) {
    let state = state_dir();
    let ctx = context(dockerfile);
    let out_dir = tempfile::tempdir().expect("out");
    let dest = format!("type=local,dest={}", out_dir.path().join("out").display());
    let base_arg = format!("BASE={base}");
    let mut args = vec!["--progress", "plain", "--build-arg", &base_arg, "-o", &dest];
    args.extend_from_slice(flags);
    let out = build_with(state.path(), ctx.path(), &args, &[]);
    (out, out_dir)
}

/// Checks that each case fails with exit code 1 and a message containing the expected text, or
/// succeeds when none is expected.
#[test]
fn errors_and_entitlements_follow_buildkit() {
    let (_registry, base) = busybox();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        (
            "RUN --mount=type=secret,id=nope,required true",
            &[],
            Some("secret nope: not found"),
        ),
        (
            "RUN --mount=type=secret,id=nope,env=NOPE,required true",
            &[],
            Some("secret nope: not found"),
        ),
        (
            "RUN --security=insecure true",
            &[],
            Some("security.insecure is not allowed"),
        ),
        (
            "RUN --security=insecure true",
            &["--allow", "security.insecure"],
            None,
        ),
        (
            "RUN --network=host true",
            &[],
            Some("network.host is not allowed"),
        ),
        (
            "RUN --network=host true",
            &["--allow", "network.host"],
            None,
        ),
        ("RUN --network=none true", &[], None),
        (
            "RUN --mount=type=ssh,required true",
            &[],
            Some("no SSH key \"\" forwarded from the client"),
        ),
        (
            "RUN --mount=type=ssh test ! -e /run/buildkit/ssh_agent.0",
            &[],
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (run, flags, expected) in cases {
        let dockerfile = format!("ARG BASE\nFROM ${{BASE}}\n{run}\n");
        let (out, _dir) = run_build(&base, &dockerfile, flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = match expected {
            None => out.status.success(),
            Some(text) => out.status.code() == Some(1) && stderr.contains(text),
        };
        if !ok {
            failures.push(format!(
                "{run} {flags:?}: exit {:?}, want {expected:?}\n{stderr}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn add_host_shm_size_and_ulimit_reach_the_container() {
    let (_registry, base) = busybox();
    let dockerfile = "ARG BASE\nFROM ${BASE}\nRUN cat /etc/hosts > /hosts && df -k /dev/shm | tail -n 1 > /shm && ulimit -n > /nofile && ulimit -Hn > /nofile-hard\n";
    let (out, dir) = run_build(
        &base,
        dockerfile,
        &[
            "--add-host",
            "db.internal:10.1.2.3",
            "--add-host",
            "v6.internal=[fd00::1]",
            "--shm-size",
            "32m",
            "--ulimit",
            "nofile=1234:2345",
        ],
    );
    assert_success(&out);
    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join("out").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let hosts = read("hosts");
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["10.1.2.3", "db.internal"]),
        "{hosts}"
    );
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["fd00::1", "v6.internal"]),
        "{hosts}"
    );
    let shm = read("shm");
    assert_eq!(
        shm.split_whitespace().nth(1),
        Some("32768"),
        "/dev/shm is 32 MiB: {shm}"
    );
    assert_eq!(read("nofile").trim(), "1234");
    assert_eq!(read("nofile-hard").trim(), "2345");
}

#[test]
fn bad_flag_values_are_rejected() {
    let dir = context("FROM scratch\n");
    let state = state_dir();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--ulimit", "nofile=2:1"],
            2,
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1",
        ),
        (&["--shm-size", "12x"], 2, "invalid size: '12x'"),
        (&["--add-host", "db"], 1, "invalid host db"),
        (&["--allow", "nope"], 1, "unknown entitlement nope"),
        (
            &["--secret", "id=a,type=npm"],
            1,
            "unsupported secret type \"npm\"",
        ),
        (
            &["--secret", "id=a,src=/nonexistent/secret"],
            1,
            "failed to stat /nonexistent/secret",
        ),
    ];
    let mut failures = Vec::new();
    for (flags, code, text) in cases {
        let out = build_with(state.path(), dir.path(), flags, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(*code) || !stderr.contains(text) {
            failures.push(format!("{flags:?}: exit {:?}: {stderr}", out.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ssh_agent_socket_is_forwarded() {
    let (_registry, base) = busybox();
    let agent_dir = tempfile::tempdir().expect("agent dir");
    let agent = agent_dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).expect("bind agent");
    let dockerfile = "ARG BASE\nFROM ${BASE}\nRUN --mount=type=ssh,uid=1000,gid=1001,mode=0660 test -S \"$SSH_AUTH_SOCK\" && stat -c '%a %u %g' \"$SSH_AUTH_SOCK\" > /ssh && echo \"$SSH_AUTH_SOCK\" >> /ssh\nRUN --mount=type=ssh,id=other,target=/other.sock test -S /other.sock\n";
    let other = format!("other={}", agent.display());
    let state = state_dir();
    let ctx = context(dockerfile);
    let out_dir = tempfile::tempdir().expect("out");
    let dest = format!("type=local,dest={}", out_dir.path().join("out").display());
    let base_arg = format!("BASE={base}");
    let agent_path = agent.display().to_string();
    let out = build_with(
        state.path(),
        ctx.path(),
        &[
            "--progress",
            "plain",
            "--build-arg",
            &base_arg,
            "-o",
            &dest,
            "--ssh",
            "default",
            "--ssh",
            &other,
        ],
        &[("SSH_AUTH_SOCK", agent_path.as_str())],
    );
    assert_success(&out);
    let ssh = std::fs::read_to_string(out_dir.path().join("out/ssh")).expect("ssh");
    assert_eq!(ssh, "660 1000 1001\n/run/buildkit/ssh_agent.0\n");
    assert!(
        !out_dir.path().join("out/run/buildkit").exists(),
        "the socket's mount point is not left in the layer"
    );
}
