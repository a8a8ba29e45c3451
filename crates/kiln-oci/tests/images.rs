//! Image configs: round trips of realistic configs (`tests/data/images/`), Go-style reading of
//! odd input, and the `FROM scratch` config (insta snapshots).

use std::fmt::Write;

use kiln_oci::{Image, ImageConfig, Platform};

const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images");

/// Reads a fixture, then checks that writing the parsed config gives the same bytes as the
/// fixture in compact form (same keys, same order, same omissions).
fn check_round_trip(name: &str) -> Result<Image, String> {
    let path = format!("{IMAGES}/{name}");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let image: Image =
        serde_json::from_str(&text).map_err(|e| format!("{name}: does not parse: {e}"))?;
    // The compact form of the fixture, keys in file order.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
    let want = serde_json::to_string(&value).map_err(|e| format!("{name}: {e}"))?;
    let got = serde_json::to_string(&image).map_err(|e| format!("{name}: {e}"))?;
    if got != want {
        return Err(format!(
            "{name}: round trip differs\n got: {got}\nwant: {want}"
        ));
    }
    Ok(image)
}

#[test]
fn fixtures_round_trip() {
    let failures: Vec<String> = ["busybox.json", "webapp-arm.json", "windows-features.json"]
        .iter()
        .filter_map(|name| check_round_trip(name).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixture_fields() {
    let image = check_round_trip("webapp-arm.json").expect("fixture round-trips");
    let config = &image.config;
    let health = config.healthcheck.as_ref().expect("has a healthcheck");
    let checks = [
        (image.platform().to_string(), "linux/arm/v7"),
        (config.user.clone(), "app:app"),
        (
            config
                .exposed_ports
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            "443/tcp 80/tcp 9000/udp",
        ),
        (
            config.env_get("GREETING").unwrap_or_default().to_owned(),
            "hello world",
        ),
        (
            format!("{:?}", config.entrypoint),
            r#"Some(["/usr/local/bin/docker-entrypoint.sh"])"#,
        ),
        (
            format!("{:?}", config.cmd),
            r#"Some(["serve", "--port", "80"])"#,
        ),
        (
            config.volumes.keys().cloned().collect::<Vec<_>>().join(" "),
            "/srv/app/data /var/log/app",
        ),
        (config.stop_signal.clone(), "SIGQUIT"),
        (format!("{}", health.interval), "30000000000"),
        (format!("{}", health.start_interval), "2000000000"),
        (format!("{}", health.retries), "3"),
        (
            config.on_build.join(" | "),
            "COPY . /srv/app/src | RUN make -C /srv/app/src install",
        ),
        (config.shell.join(" "), "/bin/ash -eo pipefail -c"),
        (
            image
                .history
                .iter()
                .filter(|h| !h.empty_layer)
                .count()
                .to_string(),
            "2",
        ),
        (image.rootfs.diff_ids.len().to_string(), "2"),
    ];
    let failures: Vec<String> = checks
        .iter()
        .filter(|(got, want)| got != want)
        .map(|(got, want)| format!("got {got:?}, want {want:?}"))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    let windows = check_round_trip("windows-features.json").expect("fixture round-trips");
    let platform = windows.platform();
    assert_eq!(
        platform.format_all(),
        "windows(10.0.20348.2849+win32k)/amd64"
    );
    assert!(windows.config.args_escaped);
}

/// How `Image` reads each input, as Go's `encoding/json` would: the value written back, or the
/// error.
#[test]
fn lenient_reading() {
    let inputs = [
        // Nulls everywhere are the empty value.
        r#"{"architecture":null,"os":"linux","config":null,"rootfs":null,"history":null,"created":null}"#,
        r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":null,"Entrypoint":null,"Labels":null,"ExposedPorts":null,"Healthcheck":null},"rootfs":{"type":"layers","diff_ids":null}}"#,
        // Empty lists are kept apart from absent ones in memory, and both are left out when written.
        r#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":[],"Cmd":[""]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        // Unknown fields (Docker's container_config, docker_version, Hostname...) are dropped.
        r#"{"architecture":"amd64","os":"linux","container":"abc","docker_version":"20.10.7","container_config":{"Hostname":"abc"},"config":{"Hostname":"","Domainname":"","AttachStdin":false,"Image":"sha256:0","Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        // Set values: any object (or null) stands for the empty object.
        r#"{"architecture":"amd64","os":"linux","config":{"ExposedPorts":{"80/tcp":{"x":1},"53/udp":null}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        r#"{"architecture":"amd64","os":"linux","config":{"ExposedPorts":{"80/tcp":1}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        // Zero durations and zero retries are "inherit" and are not written.
        r#"{"architecture":"amd64","os":"linux","config":{"Healthcheck":{"Test":["NONE"],"Interval":0,"Retries":0}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        r#"{"architecture":"amd64","os":"linux","config":{"Healthcheck":{}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        // Timestamps must be RFC 3339.
        r#"{"architecture":"amd64","os":"linux","created":"2024-01-02 03:04:05","rootfs":{"type":"layers","diff_ids":[]}}"#,
        r#"{"architecture":"amd64","os":"linux","history":[{"created":"yesterday"}],"rootfs":{"type":"layers","diff_ids":[]}}"#,
        r#"{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05.000000000+00:00","rootfs":{"type":"layers","diff_ids":[]}}"#,
        // Missing required fields are empty, and written back.
        r#"{}"#,
        // Wrong types are errors.
        r#"{"architecture":"amd64","os":"linux","config":{"Cmd":"sh"}}"#,
        r#"{"architecture":"amd64","os":"linux","config":{"ArgsEscaped":"yes"}}"#,
    ];
    let mut out = String::new();
    for input in inputs {
        let result = match serde_json::from_str::<Image>(input) {
            Ok(image) => {
                serde_json::to_string(&image).unwrap_or_else(|e| format!("cannot write: {e}"))
            }
            Err(err) => format!("error: {err}"),
        };
        let _ = writeln!(out, "{input}\n  => {result}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn empty_images() {
    let mut out = String::new();
    for specifier in [
        "linux/amd64",
        "linux/arm/v7",
        "windows(10.0.20348+win32k)/amd64",
    ] {
        let platform = Platform::parse(specifier).expect("parses");
        let image = Image::empty_for(&platform);
        let json = serde_json::to_string_pretty(&image).unwrap_or_default();
        let _ = writeln!(out, "{specifier}:\n{json}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn entrypoint_presence_is_kept_in_memory() {
    let absent: ImageConfig = serde_json::from_str("{}").expect("parses");
    let null: ImageConfig = serde_json::from_str(r#"{"Entrypoint":null}"#).expect("parses");
    let empty: ImageConfig = serde_json::from_str(r#"{"Entrypoint":[]}"#).expect("parses");
    assert_eq!(absent.entrypoint, None);
    assert_eq!(null.entrypoint, None);
    assert_eq!(empty.entrypoint, Some(Vec::new()));
    assert_eq!(serde_json::to_string(&empty).ok().as_deref(), Some("{}"));
}
