//! The image config JSON (`application/vnd.oci.image.config.v1+json`), with Docker's extensions,
//! as BuildKit reads and writes it (`dockerspec.DockerOCIImage`).
//!
//! Field names are Docker's exactly (`Env`, `Cmd`, `Healthcheck`, `rootfs`, `diff_ids`, ...).
//! Empty values are left out when writing, as Go's `omitempty` does, except `architecture`,
//! `os`, `config` and `rootfs`, which are always written. When reading, `null` is taken as the
//! empty value and unknown fields are ignored, as Go's `encoding/json` does; unlike Go, field
//! names must match exactly (Go also accepts them in any letter case).
//!
//! The top-level keys are written in alphabetical order, as BuildKit's image exporter does when it
//! patches a config (`architecture`, `author`, `config`, `created`, `history`, `os`, ...); the
//! keys inside `config` and `history` keep the order of Go's structs.
//!
//! Timestamps (`created`) are RFC 3339 strings. They are checked when read and kept as written.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::platform::Platform;

/// The `PATH` BuildKit gives every non-Windows image built `FROM scratch`.
pub const DEFAULT_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image config: the platform, the runtime defaults, the layers' diff IDs and the history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Image {
    /// The CPU architecture (`amd64`); always written.
    #[serde(default, deserialize_with = "nullable")]
    pub architecture: String,
    /// Who made the image.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub author: String,
    /// The defaults for containers run from the image; always written.
    #[serde(default, deserialize_with = "nullable")]
    pub config: ImageConfig,
    /// When the image was made, RFC 3339.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "timestamp"
    )]
    pub created: Option<String>,
    /// One entry per build step, including those that made no layer.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub history: Vec<History>,
    /// The operating system (`linux`); always written.
    #[serde(default, deserialize_with = "nullable")]
    pub os: String,
    /// Required OS features.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub os_features: Vec<String>,
    /// The OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub os_version: String,
    /// The layers' uncompressed digests; always written.
    #[serde(default, deserialize_with = "nullable")]
    pub rootfs: RootFs,
    /// The CPU variant (`v7`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub variant: String,
}

/// The defaults for containers run from an image (the `config` object).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The user (and group) to run as: `name`, `uid`, `name:group`, `uid:gid`.
    #[serde(
        rename = "User",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub user: String,
    /// The exposed ports, `port/protocol` (`80/tcp`).
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// The environment, `KEY=VALUE` strings in order.
    #[serde(
        rename = "Env",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub env: Vec<String>,
    /// The entrypoint; `None` when not set. An empty list is not written either.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "is_none_or_empty"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// The default command or entrypoint arguments; `None` when not set. An empty list is not
    /// written either.
    #[serde(rename = "Cmd", default, skip_serializing_if = "is_none_or_empty")]
    pub cmd: Option<Vec<String>>,
    /// The volume mount points.
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub volumes: BTreeMap<String, EmptyObject>,
    /// The working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub working_dir: String,
    /// The labels.
    #[serde(
        rename = "Labels",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub labels: BTreeMap<String, String>,
    /// The signal that stops the container (`SIGTERM`, `9`).
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub stop_signal: String,
    /// Whether `Cmd`/`Entrypoint` hold one pre-escaped Windows command line.
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "nullable"
    )]
    pub args_escaped: bool,
    /// How to check that the container is healthy.
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<HealthConfig>,
    /// The `ONBUILD` instructions, as written in the Dockerfile.
    #[serde(
        rename = "OnBuild",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub on_build: Vec<String>,
    /// The shell for the shell form of `RUN`, `CMD` and `ENTRYPOINT`.
    #[serde(
        rename = "Shell",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub shell: Vec<String>,
}

/// The `HEALTHCHECK` settings. Durations are in nanoseconds; zero means "inherit".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `[]` inherits, `["NONE"]` disables, `["CMD", args...]` or `["CMD-SHELL", command]` runs.
    #[serde(
        rename = "Test",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub test: Vec<String>,
    /// The time between checks, in nanoseconds.
    #[serde(
        rename = "Interval",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub interval: i64,
    /// The time after which a check counts as failed, in nanoseconds.
    #[serde(
        rename = "Timeout",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub timeout: i64,
    /// The start-up time during which failures do not count, in nanoseconds.
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub start_period: i64,
    /// The time between checks during the start period, in nanoseconds.
    #[serde(
        rename = "StartInterval",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub start_interval: i64,
    /// How many consecutive failures make the container unhealthy.
    #[serde(
        rename = "Retries",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub retries: i64,
}

/// The `rootfs` object: the layers' uncompressed digests, bottom first.
///
/// The default value is empty, as Go's zero value is; [`RootFs::layers`] is what images hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// `layers` in every image.
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub kind: String,
    /// The diff IDs (`sha256:...`), as written: like Go, they are not validated here. An empty
    /// list is written as `[]` (Go writes `null` for a nil list, e.g. an image with no layers).
    #[serde(default, deserialize_with = "nullable")]
    pub diff_ids: Vec<String>,
}

impl RootFs {
    /// A `rootfs` of type `layers` with the given diff IDs, bottom first.
    pub fn layers(diff_ids: Vec<String>) -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids,
        }
    }
}

/// One `history` entry: a build step and whether it made a layer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// When the step ran, RFC 3339.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "timestamp"
    )]
    pub created: Option<String>,
    /// The instruction (`RUN /bin/sh -c make # buildkit`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub created_by: String,
    /// Who ran the step.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub author: String,
    /// A free-form comment (`buildkit.dockerfile.v0`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub comment: String,
    /// True when the step made no layer.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "nullable"
    )]
    pub empty_layer: bool,
}

/// The value of a JSON set (`ExposedPorts`, `Volumes`): always `{}`.
///
/// Reading accepts any object (its contents are ignored) or `null`, as Go's `struct{}` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EmptyObject;

impl Image {
    /// The config BuildKit starts from for `FROM scratch` (`emptyImage` in the Dockerfile
    /// frontend): the platform's OS, architecture, variant, OS version and features, `rootfs`
    /// of type `layers` with no layers, `WorkingDir` `/`, and, unless the OS is Windows,
    /// `Env` = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`.
    pub fn empty_for(platform: &Platform) -> Image {
        let mut config = ImageConfig {
            working_dir: "/".to_owned(),
            ..ImageConfig::default()
        };
        if platform.os != "windows" {
            config.env.push(format!("PATH={DEFAULT_PATH_ENV}"));
        }
        Image {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            os_version: platform.os_version.clone(),
            os_features: platform.os_features.clone(),
            variant: platform.variant.clone(),
            config,
            rootfs: RootFs::layers(Vec::new()),
            ..Image::default()
        }
    }

    /// The platform the image is for, as the config states it.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
        }
    }
}

impl ImageConfig {
    /// The value of `key` in `Env`: the last `KEY=VALUE` entry with that key wins. An entry
    /// without `=` has the empty value.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find_map(|entry| {
            let (k, v) = split_env(entry);
            (k == key).then_some(v)
        })
    }

    /// Sets `key` to `value` in `Env`: the first entry with that key is replaced in place, or a
    /// new entry is appended (BuildKit's `addEnv`). Keys are compared case-sensitively, as on
    /// Linux.
    pub fn env_set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.env.iter_mut().find(|e| split_env(e).0 == key) {
            Some(existing) => *existing = entry,
            None => self.env.push(entry),
        }
    }
}

/// Splits `KEY=VALUE` at the first `=`; without `=` the whole entry is the key.
fn split_env(entry: &str) -> (&str, &str) {
    entry.split_once('=').unwrap_or((entry, ""))
}

impl Serialize for EmptyObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        serializer.serialize_map(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for EmptyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EmptyObject, D::Error> {
        struct EmptyObjectVisitor;

        impl<'de> Visitor<'de> for EmptyObjectVisitor {
            type Value = EmptyObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EmptyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(EmptyObject)
            }

            fn visit_unit<E: de::Error>(self) -> Result<EmptyObject, E> {
                Ok(EmptyObject)
            }

            fn visit_none<E: de::Error>(self) -> Result<EmptyObject, E> {
                Ok(EmptyObject)
            }
        }

        deserializer.deserialize_any(EmptyObjectVisitor)
    }
}

/// Reads `null` as the default value, as Go does for every field.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads an optional RFC 3339 timestamp, keeping its text.
fn timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    if let Some(text) = &value
        && !is_rfc3339(text)
    {
        return Err(de::Error::custom(format_args!(
            "invalid timestamp {}: not an RFC 3339 date and time",
            kiln_gostd::strconv::quote(text)
        )));
    }
    Ok(value)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, with the ranges Go's parser checks.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        number(0..4),
        number(5..7),
        number(8..10),
        number(11..13),
        number(14..16),
        number(17..19),
    ) else {
        return false;
    };
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    let mut rest = b.get(19..).unwrap_or_default();
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = fraction.get(digits..).unwrap_or_default();
    }
    match rest {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let all_digits = [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit());
            all_digits && (h1 - b'0') * 10 + (h2 - b'0') < 24 && (m1 - b'0') * 10 + (m2 - b'0') < 60
        }
        _ => false,
    }
}

fn is_none_or_empty(value: &Option<Vec<String>>) -> bool {
    value.as_ref().is_none_or(Vec::is_empty)
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::{ImageConfig, is_rfc3339};

    #[test]
    fn rfc3339_timestamps() {
        let cases = [
            ("2024-01-02T03:04:05Z", true),
            ("2024-01-02T03:04:05.123456789Z", true),
            ("2024-01-02T03:04:05+01:00", true),
            ("2024-02-29T00:00:00-12:30", true),
            ("2023-02-29T00:00:00Z", false),
            ("2024-13-01T00:00:00Z", false),
            ("2024-01-02 03:04:05Z", false),
            ("2024-01-02T03:04:05", false),
            ("2024-01-02T03:04:05.Z", false),
            ("2024-01-02T24:00:00Z", false),
            ("2024-01-02T03:04:05+24:00", false),
            ("", false),
            ("2024-01-02T03:04:05Zjunk", false),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(text, want)| is_rfc3339(text) != *want)
            .map(|(text, want)| format!("{text:?}: want {want}"))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn env_get_and_set() {
        let mut config = ImageConfig {
            env: vec!["A=1".into(), "B=x=y".into(), "A=2".into(), "EMPTY".into()],
            ..ImageConfig::default()
        };
        let gets = [
            ("A", Some("2")),
            ("B", Some("x=y")),
            ("EMPTY", Some("")),
            ("C", None),
        ];
        let failures: Vec<String> = gets
            .iter()
            .filter(|(key, want)| config.env_get(key) != *want)
            .map(|(key, want)| format!("{key}: got {:?}, want {want:?}", config.env_get(key)))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");

        config.env_set("A", "3");
        config.env_set("C", "new");
        config.env_set("EMPTY", "full");
        assert_eq!(config.env, ["A=3", "B=x=y", "A=2", "EMPTY=full", "C=new"]);
    }
}
