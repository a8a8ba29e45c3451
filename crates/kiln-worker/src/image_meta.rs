//! What an image export adds to the image beyond its layers and the frontend's config:
//! `SOURCE_DATE_EPOCH` times, manifest annotations and the `moby.buildkit.buildinfo.v0`
//! record.
//!
//! With an epoch, BuildKit's image writer (`patchImageConfig`) keeps the base image's history
//! entries as they are, and sets every later entry created after the epoch (or without a time)
//! to the epoch; the config's `created` becomes the epoch when it is later. With
//! `rewrite-timestamp=true` the layers the build made (not the base image's) are also written
//! with every file time after the epoch clamped to it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use kiln_oci::{History, Image};
use serde::Serialize;

use crate::error::{Error, Result};

/// The config key BuildKit 0.10 and 0.11 wrote the build information under.
pub const BUILDINFO_KEY: &str = "moby.buildkit.buildinfo.v0";

/// Extra content of an exported image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMeta {
    /// `SOURCE_DATE_EPOCH`, in seconds.
    pub epoch: Option<i64>,
    /// `rewrite-timestamp=true`: clamp the file times of the build's own layers to the epoch.
    pub rewrite_timestamp: bool,
    /// How many leading history entries of the config are the base image's (left as they
    /// are with an epoch).
    pub base_history: usize,
    /// The manifest's `annotations`.
    pub manifest_annotations: BTreeMap<String, String>,
    /// The value of `moby.buildkit.buildinfo.v0` in the config (see [`buildinfo`]), if any.
    pub buildinfo: Option<String>,
}

impl ImageMeta {
    /// The epoch the build's own layers are clamped to, when they are.
    pub fn layer_epoch(&self) -> Option<i64> {
        self.epoch.filter(|_| self.rewrite_timestamp)
    }
}

/// A source of the build, as BuildKit's build information lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BuildSource {
    /// `docker-image`, `git` or `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The reference (`docker.io/library/busybox:latest`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The resolved digest.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pin: String,
}

/// The base64 JSON BuildKit 0.10 put under `moby.buildkit.buildinfo.v0`: the frontend, the
/// build arguments when `attrs` is given (`buildinfo-attrs=true`), and the sources (sorted).
pub fn buildinfo(
    frontend: &str,
    attrs: Option<&BTreeMap<String, String>>,
    sources: &[BuildSource],
) -> Result<String> {
    #[derive(Serialize)]
    struct Doc<'a> {
        frontend: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        attrs: Option<BTreeMap<String, &'a str>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        sources: Vec<BuildSource>,
    }
    let mut sorted = sources.to_vec();
    sorted.sort();
    sorted.dedup();
    let doc = Doc {
        frontend,
        attrs: attrs.filter(|a| !a.is_empty()).map(|a| {
            a.iter()
                .map(|(k, v)| (format!("build-arg:{k}"), v.as_str()))
                .collect()
        }),
        sources: sorted,
    };
    let json = kiln_gostd::json::marshal(&doc)
        .map_err(|e| Error::Invalid(format!("serializing the build information: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}

/// Applies the epoch to the history and the config's `created` (BuildKit's
/// `patchImageConfig`), after the history was matched to the layers. `original` is the
/// history before that matching: a base-image entry that the matching changed (it had no time,
/// and got its layer's) no longer counts as the base image's, and gets the epoch like the
/// build's own entries, as BuildKit compares the matched history with the base image's.
pub(crate) fn apply_epoch(image: &mut Image, meta: &ImageMeta, original: &[History]) {
    let Some(epoch) = meta.epoch else {
        return;
    };
    let stamp = epoch_string(epoch);
    let base = base_history_len(&image.history, original).min(meta.base_history);
    for h in image.history.iter_mut().skip(base) {
        if h.created.as_deref().is_none_or(|c| after(c, epoch)) {
            h.created = Some(stamp.clone());
        }
    }
    match &image.created {
        Some(c) if after(c, epoch) => image.created = Some(stamp),
        Some(_) => {}
        None => image.created = image.history.iter().rev().find_map(|h| h.created.clone()),
    }
}

/// The epoch as Go marshals a UTC `time.Time`.
pub fn epoch_string(epoch: i64) -> String {
    kiln_export::format_time(epoch_time(epoch), true)
}

/// The epoch as a time (times before 1970 are 1970).
pub fn epoch_time(epoch: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(epoch).unwrap_or(0))
}

/// Whether an RFC 3339 time is after the epoch; a time that does not parse counts as after.
fn after(time: &str, epoch: i64) -> bool {
    match parse_rfc3339(time) {
        Some((secs, nanos)) => secs > epoch || (secs == epoch && nanos > 0),
        None => true,
    }
}

/// Seconds and nanoseconds since 1970 of an RFC 3339 time (`2006-01-02T15:04:05.999Z`,
/// `...+07:00`).
fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || s.get(13..14)? != ":" {
        return None;
    }
    if !matches!(s.get(10..11)?, "T" | "t" | " ") || s.get(16..17)? != ":" {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = frac.get(..digits)?;
        let padded = format!("{:0<9}", f.get(..digits.min(9))?);
        nanos = padded.parse().ok()?;
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The config document: the image, with the build information in its sorted place when there
/// is one (BuildKit marshals the patched config as a map, so its keys are sorted).
pub(crate) fn config_json(image: &Image, meta: &ImageMeta) -> Result<Vec<u8>> {
    let err = |e: serde_json::Error| Error::Invalid(format!("serializing the image config: {e}"));
    let Some(info) = &meta.buildinfo else {
        return kiln_gostd::json::marshal(image).map_err(err);
    };
    let serde_json::Value::Object(map) = serde_json::to_value(image).map_err(err)? else {
        return Err(Error::Invalid(
            "serializing the image config: not an object".to_string(),
        ));
    };
    let mut sorted: BTreeMap<String, serde_json::Value> = map.into_iter().collect();
    sorted.insert(
        BUILDINFO_KEY.to_string(),
        serde_json::Value::String(info.clone()),
    );
    kiln_gostd::json::marshal(&sorted).map_err(err)
}

/// The number of leading entries of `history` that are `base`'s history (BuildKit compares
/// them one by one until the first difference).
pub fn base_history_len(history: &[History], base: &[History]) -> usize {
    history.iter().zip(base).take_while(|(a, b)| a == b).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(by: &str, created: Option<&str>) -> History {
        History {
            created: created.map(str::to_string),
            created_by: by.to_string(),
            ..History::default()
        }
    }

    #[test]
    fn parses_times() {
        let check = |s: &str, want: Option<(i64, u32)>| assert_eq!(parse_rfc3339(s), want, "{s}");
        check("1970-01-01T00:00:00Z", Some((0, 0)));
        check("2023-11-14T22:13:20Z", Some((1_700_000_000, 0)));
        check(
            "2023-11-14T22:13:20.12Z",
            Some((1_700_000_000, 120_000_000)),
        );
        check("2023-11-15T00:13:20+02:00", Some((1_700_000_000, 0)));
        check(
            "2023-11-14T21:13:20.000000001-01:00",
            Some((1_700_000_000, 1)),
        );
        check("2023-11-14", None);
        check("2023-11-14T22:13:20", None);
        check("yesterday", None);
    }

    /// A base entry that got its layer's time while the history was matched to the layers
    /// is not the base image's any more: it gets the epoch.
    #[test]
    fn a_base_entry_changed_by_matching_gets_the_epoch() {
        let e = "2023-11-14T22:13:20Z";
        let original = vec![
            entry("kept", Some("2020-01-01T00:00:00Z")),
            entry("filled", None),
            entry("own", None),
        ];
        let mut image = Image {
            history: vec![
                entry("kept", Some("2020-01-01T00:00:00Z")),
                entry("filled", Some("2026-11-27T06:00:00Z")),
                entry("own", Some("2026-11-27T06:00:01Z")),
            ],
            ..Image::default()
        };
        let meta = ImageMeta {
            epoch: Some(1_700_000_000),
            base_history: 2,
            ..ImageMeta::default()
        };
        apply_epoch(&mut image, &meta, &original);
        assert_eq!(
            image.history,
            vec![
                entry("kept", Some("2020-01-01T00:00:00Z")),
                entry("filled", Some(e)),
                entry("own", Some(e)),
            ]
        );
    }

    #[test]
    fn applies_the_epoch() {
        let check = |history: Vec<History>,
                     created: Option<&str>,
                     base: usize,
                     want: Vec<History>,
                     want_created: Option<&str>| {
            let mut image = Image {
                history,
                created: created.map(str::to_string),
                ..Image::default()
            };
            let meta = ImageMeta {
                epoch: Some(1_700_000_000),
                base_history: base,
                ..ImageMeta::default()
            };
            let original = image.history.clone();
            apply_epoch(&mut image, &meta, &original);
            assert_eq!(image.history, want);
            assert_eq!(image.created.as_deref(), want_created);
        };
        let e = "2023-11-14T22:13:20Z";
        // Base entries stay; later ones after the epoch or without a time get it.
        check(
            vec![
                entry("base", Some("2024-05-01T00:00:00Z")),
                entry("old", Some("2020-01-01T00:00:00Z")),
                entry("new", Some("2025-01-01T00:00:00.5Z")),
                entry("none", None),
            ],
            Some("2025-01-01T00:00:00Z"),
            1,
            vec![
                entry("base", Some("2024-05-01T00:00:00Z")),
                entry("old", Some("2020-01-01T00:00:00Z")),
                entry("new", Some(e)),
                entry("none", Some(e)),
            ],
            Some(e),
        );
        // A config time before the epoch stays; a missing one is the last history time.
        check(
            vec![entry("a", None)],
            Some("2001-01-01T00:00:00Z"),
            0,
            vec![entry("a", Some(e))],
            Some("2001-01-01T00:00:00Z"),
        );
        check(
            vec![entry("a", None)],
            None,
            0,
            vec![entry("a", Some(e))],
            Some(e),
        );
    }

    #[test]
    fn counts_the_base_history() {
        let base = vec![entry("a", Some("T")), entry("b", None)];
        let check = |history: Vec<History>, want: usize| {
            assert_eq!(base_history_len(&history, &base), want);
        };
        check(
            vec![entry("a", Some("T")), entry("b", None), entry("c", None)],
            2,
        );
        check(vec![entry("a", Some("T")), entry("x", None)], 1);
        check(vec![entry("a", Some("U"))], 0);
        check(Vec::new(), 0);
    }

    #[test]
    fn encodes_build_information() {
        let sources = vec![
            BuildSource {
                kind: "docker-image".to_string(),
                reference: "docker.io/library/busybox:latest".to_string(),
                pin: "sha256:aa".to_string(),
            },
            BuildSource {
                kind: "docker-image".to_string(),
                reference: "docker.io/library/alpine:3".to_string(),
                pin: "sha256:bb".to_string(),
            },
        ];
        let decode = |s: String| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .expect("base64"),
            )
            .expect("utf-8")
        };
        let check = |attrs: Option<&BTreeMap<String, String>>, want: &str| {
            let got = decode(buildinfo("dockerfile.v0", attrs, &sources).expect("buildinfo"));
            assert_eq!(got, want);
        };
        check(
            None,
            r#"{"frontend":"dockerfile.v0","sources":[{"type":"docker-image","ref":"docker.io/library/alpine:3","pin":"sha256:bb"},{"type":"docker-image","ref":"docker.io/library/busybox:latest","pin":"sha256:aa"}]}"#,
        );
        let attrs: BTreeMap<String, String> = [("B", "2"), ("A", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(
            decode(buildinfo("dockerfile.v0", Some(&attrs), &[]).expect("buildinfo"))
                == r#"{"frontend":"dockerfile.v0","attrs":{"build-arg:A":"1","build-arg:B":"2"}}"#
        );
    }

    #[test]
    fn puts_build_information_in_key_order() {
        let image = Image {
            architecture: "amd64".to_string(),
            os: "linux".to_string(),
            ..Image::default()
        };
        let check = |buildinfo: Option<&str>, want: &str| {
            let meta = ImageMeta {
                buildinfo: buildinfo.map(str::to_string),
                ..ImageMeta::default()
            };
            let got =
                String::from_utf8(config_json(&image, &meta).expect("config")).expect("utf-8");
            assert_eq!(got, want);
        };
        check(
            None,
            r#"{"architecture":"amd64","config":{},"os":"linux","rootfs":{"type":"","diff_ids":[]}}"#,
        );
        check(
            Some("e30="),
            r#"{"architecture":"amd64","config":{},"moby.buildkit.buildinfo.v0":"e30=","os":"linux","rootfs":{"type":"","diff_ids":[]}}"#,
        );
    }
}
