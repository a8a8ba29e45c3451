//! `-o type=image,name=REG/x,push=true,registry.insecure=true`, as BuildKit does it: the
//! registry is reached over HTTPS without verifying its certificate, falling back to plain
//! HTTP when it does not speak HTTPS. Pushed images are read back with skopeo.
//!
//! The TLS registry runs on loopback, where a registry without CAs in the certificates
//! directory is plain HTTP by the localhost rule. To make kiln verify its certificate (and
//! fail), the cases "with a wrong CA" install a CA that did not sign it, which makes the
//! registry HTTPS: its own CA is never installed.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{busybox, context_with, kiln_build, state_dir};
use kiln_testkit::{CaPem, TestRegistry, server_certificates};

/// The user and password of the TLS registry.
const USER: &str = "kiln";
const PASSWORD: &str = "s3cret";

/// Which registry a case pushes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The TLS registry with basic authentication.
    Tls,
    /// The plain-HTTP registry on loopback (the one serving busybox).
    PlainHttp,
}

/// What a case expects of each push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Every push succeeds, and skopeo reads back the manifest kiln reported.
    Pushed,
    /// The push fails with one `ERROR:` line containing this text.
    Fails(&'static str),
}

struct Case {
    /// What the case shows.
    name: &'static str,
    target: Target,
    /// Install a CA that did not sign the registry's certificate into the certificates
    /// directory for it.
    wrong_ca: bool,
    /// Add `registry.insecure=true` to the output.
    insecure: bool,
    /// How many times the same push runs (each a new kiln process).
    pushes: usize,
    expect: Expect,
}

/// Runs skopeo; fails the test when it is missing. Returns its stdout, or its stderr as the
/// error.
fn skopeo(args: &[&str]) -> Result<String, String> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("skopeo must be installed (scripts/prereqs.sh): {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "skopeo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Writes a Docker `config.json` with basic credentials for `registry` into `dir`.
fn docker_config(dir: &Path, registry: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = serde_json::json!({ "auths": { registry: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
}

/// The registries and what the cases share.
struct World {
    tls_addr: String,
    plain_addr: String,
    /// A CA that signed neither registry's certificate.
    wrong_ca: CaPem,
    docker: tempfile::TempDir,
    state: tempfile::TempDir,
    context: tempfile::TempDir,
}

/// Runs the case's pushes; returns what went wrong, if anything.
fn check(world: &World, index: usize, case: &Case) -> Result<(), String> {
    let addr = match case.target {
        Target::Tls => &world.tls_addr,
        Target::PlainHttp => &world.plain_addr,
    };
    let certs = tempfile::tempdir().map_err(|e| format!("certs.d: {e}"))?;
    if case.wrong_ca {
        world
            .wrong_ca
            .install(certs.path(), addr)
            .map_err(|e| format!("installing the CA: {e}"))?;
    }
    let tag = format!("{addr}/insecure/case{index}:1");
    let mut output = format!("type=image,name={tag},push=true");
    if case.insecure {
        output.push_str(",registry.insecure=true");
    }
    for push in 1..=case.pushes {
        let meta = tempfile::tempdir().map_err(|e| format!("metadata dir: {e}"))?;
        let meta_file = meta.path().join("meta.json");
        let out: Output = kiln_build(world.state.path())
            .args(["--progress", "plain", "-o", &output, "--metadata-file"])
            .arg(&meta_file)
            .arg(world.context.path())
            .env("KILN_CERTS_D", certs.path())
            .env("DOCKER_CONFIG", world.docker.path())
            .output()
            .map_err(|e| format!("running kiln: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ERROR")).collect();
        match case.expect {
            Expect::Fails(text) => {
                if out.status.code() != Some(1)
                    || errors.len() != 1
                    || !errors.iter().all(|e| e.contains(text))
                {
                    return Err(format!(
                        "push {push}: expected exit code 1 and one ERROR line containing \
                         {text:?}, got {:?} and:\n{stderr}",
                        out.status.code()
                    ));
                }
            }
            Expect::Pushed => {
                if !out.status.success() {
                    return Err(format!(
                        "push {push} failed ({:?}):\n{stderr}",
                        out.status.code()
                    ));
                }
                let meta: serde_json::Value = std::fs::read_to_string(&meta_file)
                    .map_err(|e| e.to_string())
                    .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
                    .map_err(|e| format!("push {push}: metadata file: {e}"))?;
                let mut args = vec!["inspect", "--tls-verify=false"];
                let creds = format!("{USER}:{PASSWORD}");
                if case.target == Target::Tls {
                    args.extend(["--creds", creds.as_str()]);
                }
                let reference = format!("docker://{tag}");
                args.push(&reference);
                let inspect: serde_json::Value = serde_json::from_str(&skopeo(&args)?)
                    .map_err(|e| format!("push {push}: skopeo's output: {e}"))?;
                if inspect["Digest"] != meta["containerimage.digest"]
                    || !inspect["Digest"].is_string()
                {
                    return Err(format!(
                        "push {push}: skopeo reads {} but kiln's metadata says {}",
                        inspect["Digest"], meta["containerimage.digest"]
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn insecure_registries_are_reached_over_unverified_https_or_plain_http() {
    let (plain, base) = busybox();
    let (tls, _its_ca) = TestRegistry::start_secure(USER, PASSWORD).expect("TLS registry");
    let wrong_ca = server_certificates("a CA that signed nothing here")
        .expect("CA")
        .ca;
    let docker = tempfile::tempdir().expect("docker config");
    docker_config(docker.path(), &tls.addr());
    let world = World {
        tls_addr: tls.addr(),
        plain_addr: plain.addr(),
        wrong_ca,
        docker,
        state: state_dir(),
        context: context_with(&[(
            "Dockerfile",
            &format!("FROM {base}\nRUN echo 'pushed insecurely' > /greeting\n"),
        )]),
    };
    let cases = [
        Case {
            name: "TLS registry, CA not installed (a wrong one is), secure: certificate error",
            target: Target::Tls,
            wrong_ca: true,
            insecure: false,
            pushes: 1,
            expect: Expect::Fails("invalid peer certificate: UnknownIssuer"),
        },
        Case {
            name: "TLS registry, CA not installed (a wrong one is), insecure: pushed",
            target: Target::Tls,
            wrong_ca: true,
            insecure: true,
            pushes: 2,
            expect: Expect::Pushed,
        },
        Case {
            name: "TLS registry, no CA at all, insecure: pushed over HTTPS even on loopback",
            target: Target::Tls,
            wrong_ca: false,
            insecure: true,
            pushes: 1,
            expect: Expect::Pushed,
        },
        Case {
            name: "TLS registry, no CA at all, secure: plain HTTP by the localhost rule fails",
            target: Target::Tls,
            wrong_ca: false,
            insecure: false,
            pushes: 1,
            expect: Expect::Fails("HTTP 400 Bad Request to plain HTTP"),
        },
        Case {
            name: "plain-HTTP registry, insecure: HTTPS fails, falls back to plain HTTP",
            target: Target::PlainHttp,
            wrong_ca: false,
            insecure: true,
            pushes: 2,
            expect: Expect::Pushed,
        },
    ];
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        if let Err(problem) = check(&world, index, case) {
            failures.push(format!("{}:\n{problem}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
