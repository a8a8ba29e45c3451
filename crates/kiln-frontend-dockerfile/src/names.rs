//! Progress names (`[build 2/5] RUN make`) and the Go formatting BuildKit uses in history
//! entries (`%q` and `%v` of string slices; Go durations come from `kiln_gostd::time`).

use kiln_oci::Platform;

use crate::args::env_get;
use crate::stage::StageState;

/// Numbers a command for progress output, as BuildKit's `prefixCommand`:
/// `[<platform><arrow> ][<stage> ]<i>/<n>] <command>`, the index right-aligned to the width of
/// the total. Commands of stages without numbered commands keep their plain name.
pub(crate) fn prefix_command(
    ds: &mut StageState,
    command: &str,
    multi_platform: bool,
    platform: Option<&Platform>,
    env: &[(String, String)],
) -> String {
    if ds.cmd_total == 0 {
        return command.to_string();
    }
    ds.cmd_index += 1;
    let mut out = String::from("[");
    if multi_platform && let Some(p) = platform {
        out.push_str(&p.format_all());
        out.push_str(&platform_arrow(p, env));
        out.push(' ');
    }
    if !ds.stage_name.is_empty() {
        out.push_str(&ds.stage_name);
        out.push(' ');
    }
    let width = ds.cmd_total.to_string().len();
    out.push_str(&format!("{:>width$}/{}] ", ds.cmd_index, ds.cmd_total));
    if ds.cmd_is_on_build {
        out.push_str("ONBUILD ");
    }
    out.push_str(command);
    out
}

/// The `->arm64` part of a progress name (BuildKit's `formatTargetPlatform` of
/// `platformFromEnv`): where the stage runs (its platform) differs from the target the stage
/// builds for, as its declared `TARGETPLATFORM` or `TARGETOS`/`TARGETARCH`/`TARGETVARIANT`
/// say. Missing parts of the target are taken from the platform; only the OS and the
/// architecture are compared.
fn platform_arrow(platform: &Platform, env: &[(String, String)]) -> String {
    let target = match env_get(env, "TARGETPLATFORM").and_then(|v| Platform::parse(v).ok()) {
        Some(p) => p,
        None => {
            let (os, arch, variant) = (
                env_get(env, "TARGETOS"),
                env_get(env, "TARGETARCH"),
                env_get(env, "TARGETVARIANT"),
            );
            if os.is_none() && arch.is_none() && variant.is_none() {
                return String::new();
            }
            Platform::new(os.unwrap_or(""), arch.unwrap_or(""), variant.unwrap_or(""))
        }
    };
    let mut target = target;
    if target.os.is_empty() {
        target.os.clone_from(&platform.os);
    }
    if target.architecture.is_empty() {
        target.architecture.clone_from(&platform.architecture);
    }
    let target = target.normalize();
    if target.os == platform.os && target.architecture != platform.architecture {
        return if target.variant.is_empty() {
            format!("->{}", target.architecture)
        } else {
            format!("->{}/{}", target.architecture, target.variant)
        };
    }
    if target.os != platform.os {
        return format!("->{}", target.format_all());
    }
    String::new()
}

/// The summary of a heredoc shown in progress names (BuildKit's `summarizeHeredoc`): the first
/// line of the trimmed body, with `...` when more lines follow.
pub(crate) fn summarize_heredoc(doc: &str) -> String {
    let doc = kiln_gostd::strings::trim_space(doc).replace("\r\n", "\n");
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or_default().to_string();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

/// Upper-cases the first word of a command (`copy a b` → `COPY a b`), as BuildKit shows it.
pub(crate) fn uppercase_command(command: &str) -> String {
    match command.split_once(' ') {
        Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
        None => command.to_uppercase(),
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_quoted_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| kiln_dockerfile::go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
pub(crate) fn go_plain_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_slices() {
        let v = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "echo \"hi\"".to_string(),
        ];
        assert_eq!(go_quoted_slice(&v), r#"["/bin/sh" "-c" "echo \"hi\""]"#);
        assert_eq!(go_plain_slice(&v), r#"[/bin/sh -c echo "hi"]"#);
    }

    #[test]
    fn uppercases_first_word() {
        assert_eq!(uppercase_command("copy a b"), "COPY a b");
        assert_eq!(uppercase_command("run"), "RUN");
    }
}
