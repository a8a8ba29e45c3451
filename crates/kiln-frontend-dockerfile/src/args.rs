//! Build arguments: the predefined platform arguments, the global (meta) `ARG`s, proxy
//! variables and the other arguments BuildKit gives a meaning to.

use std::collections::BTreeMap;

use kiln_llb::ops::ProxyEnv;
use kiln_oci::Platform;

/// Arguments that are never put into a stage's environment, even when declared.
pub(crate) const NON_ENV_ARGS: &[&str] =
    &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// An ordered list of variables where setting an existing key replaces its value in place.
pub(crate) type EnvVec = Vec<(String, String)>;

/// Sets `key` in `env`: in place when present, appended otherwise.
pub(crate) fn env_set(env: &mut EnvVec, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

/// The value of `key` in `env`.
pub(crate) fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The predefined global arguments (BuildKit's `defaultArgs`), each overridden by a build
/// argument of the same name.
pub(crate) fn default_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
    build_args: &BTreeMap<String, String>,
) -> EnvVec {
    let mut env = vec![
        ("BUILDPLATFORM".to_string(), build.to_string()),
        ("BUILDOS".to_string(), build.os.clone()),
        ("BUILDOSVERSION".to_string(), build.os_version.clone()),
        ("BUILDARCH".to_string(), build.architecture.clone()),
        ("BUILDVARIANT".to_string(), build.variant.clone()),
        ("TARGETPLATFORM".to_string(), target.format_all()),
        ("TARGETOS".to_string(), target.os.clone()),
        ("TARGETOSVERSION".to_string(), target.os_version.clone()),
        ("TARGETARCH".to_string(), target.architecture.clone()),
        ("TARGETVARIANT".to_string(), target.variant.clone()),
        ("TARGETSTAGE".to_string(), target_stage.to_string()),
    ];
    for (k, v) in env.iter_mut() {
        if let Some(value) = build_args.get(k.as_str()) {
            *v = value.clone();
        }
    }
    env
}

/// The proxy variables among the build arguments, which every `RUN` gets without declaring
/// them and which never enter the image or its history. When a variable is given in both
/// cases, the lower-case spelling wins (BuildKit sorts the keys and the last one wins).
pub(crate) fn proxy_env(build_args: &BTreeMap<String, String>) -> Option<ProxyEnv> {
    let mut proxy = ProxyEnv::default();
    let mut any = false;
    // BTreeMap iterates in byte order: upper-case keys come before lower-case ones.
    for (k, v) in build_args {
        let slot = match k.to_ascii_lowercase().as_str() {
            "http_proxy" => &mut proxy.http_proxy,
            "https_proxy" => &mut proxy.https_proxy,
            "ftp_proxy" => &mut proxy.ftp_proxy,
            "no_proxy" => &mut proxy.no_proxy,
            "all_proxy" => &mut proxy.all_proxy,
            _ => continue,
        };
        *slot = v.clone();
        any = true;
    }
    any.then_some(proxy)
}
