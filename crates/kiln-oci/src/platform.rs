//! Platforms (`os/arch[/variant]`), as containerd's `platforms` package understands them.
//!
//! The specifier syntax is `<os>|<arch>|<os>/<arch>[/<variant>]`, where the OS part may carry
//! options: `windows(10.0.17763)` sets the OS version and `linux(+gpu+simd)` the OS features
//! (both at once: `windows(10.0.17763+win32k)`; `%`, `+`, `(`, `)` and `/` in a value are
//! percent-encoded). A lone word is looked up as an operating system first (the architecture is
//! then the host's) and as an architecture second (the OS is then `linux`).
//!
//! [`Platform::parse`] is containerd's `Parse` followed by `Normalize`, which is what BuildKit and
//! Buildx do with every `--platform` value, so a parsed [`Platform`] is always in canonical form:
//!
//! | input | normalized |
//! |---|---|
//! | `aarch64`, `arm64/v8`, `arm64/8`, `arm64/v8.0` | `arm64` (no variant) |
//! | `arm64/9`, `arm64/9.0`, `arm64/v9.0` | `arm64/v9` |
//! | `x86_64`, `x86-64`, `amd64/v1` | `amd64` (no variant) |
//! | `arm`, `armhf`, `arm/7` | `arm/v7` |
//! | `armel`, `arm/6` | `arm/v6` |
//! | `i386` | `386` |
//! | `macos` (as OS) | `darwin` |
//!
//! Case is folded for the OS, the architecture and the variant.

use std::fmt;
use std::str::FromStr;

use kiln_gostd::path;
use kiln_gostd::strconv::quote;

/// A target platform, always held normalized (`linux/arm64`, not `linux/aarch64`).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Platform {
    /// The operating system (`linux`, `windows`, ...).
    pub os: String,
    /// The CPU architecture in Go's spelling (`amd64`, `arm64`, `arm`, `386`, ...).
    pub architecture: String,
    /// The CPU variant (`v7`, `v8`), empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// The OS version (Windows only), empty when none.
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// Required OS features, empty when none.
    #[serde(default, rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
}

/// The pattern containerd requires of the OS component, quoted in its error message.
const OS_PATTERN: &str = r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$";

/// The pattern containerd requires of the architecture and variant components.
const COMPONENT_PATTERN: &str = r"^[A-Za-z0-9_.-]+$";

/// The OS given to a specifier that names only an architecture.
///
/// containerd uses the OS of the machine it runs on; kiln builds Linux images from any host, so
/// `arm64` always means `linux/arm64`.
const DEFAULT_OS: &str = "linux";

/// Why a platform specifier was rejected; the messages are containerd's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The specifier contains `*`.
    #[error("{}: wildcards not yet supported: invalid argument", quote(.specifier))]
    Wildcard {
        /// The whole specifier.
        specifier: String,
    },
    /// The first component is not `<os>[(<version>[+<feature>]*)]`.
    #[error(
        "{} is an invalid OS component of {}: OSAndVersion specifier component must match {}: invalid argument",
        quote(.component),
        quote(.specifier),
        quote(OS_PATTERN)
    )]
    InvalidOsComponent {
        /// The offending component.
        component: String,
        /// The whole specifier.
        specifier: String,
    },
    /// The OS version has a malformed percent escape.
    #[error("{} has an invalid OS version {}: {reason}", quote(.specifier), quote(.version))]
    InvalidOsVersion {
        /// The whole specifier.
        specifier: String,
        /// The OS version as written.
        version: String,
        /// Why it could not be decoded (Go's `url.EscapeError` text).
        reason: String,
    },
    /// An OS feature has a malformed percent escape.
    #[error("{} has an invalid OS feature {}: {reason}", quote(.specifier), quote(.feature))]
    InvalidOsFeature {
        /// The whole specifier.
        specifier: String,
        /// The OS feature as written.
        feature: String,
        /// Why it could not be decoded (Go's `url.EscapeError` text).
        reason: String,
    },
    /// An architecture or variant component is empty or has a character outside `[A-Za-z0-9_.-]`.
    #[error(
        "{} is an invalid component of {}: platform specifier component must match {}: invalid argument",
        quote(.component),
        quote(.specifier),
        quote(COMPONENT_PATTERN)
    )]
    InvalidComponent {
        /// The offending component.
        component: String,
        /// The whole specifier.
        specifier: String,
    },
    /// A single word that is neither a known operating system nor a known architecture.
    #[error("{}: unknown operating system or architecture: invalid argument", quote(.specifier))]
    Unknown {
        /// The whole specifier.
        specifier: String,
    },
    /// More than three `/`-separated components.
    #[error("{}: cannot parse platform specifier: invalid argument", quote(.specifier))]
    TooManyComponents {
        /// The whole specifier.
        specifier: String,
    },
}

impl Platform {
    /// A platform from its parts, taken as given (not normalized).
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
            ..Platform::default()
        }
    }

    /// Parses a platform specifier and normalizes it (containerd's `Normalize(Parse(s))`).
    ///
    /// `local` is not a platform here; the CLI maps it to [`Platform::host`] before calling this.
    pub fn parse(specifier: &str) -> Result<Platform, PlatformError> {
        Platform::parse_unnormalized(specifier).map(|p| p.normalize())
    }

    /// Parses a comma-separated list of specifiers (`linux/amd64,linux/arm64`), as Buildx splits
    /// `--platform` values. Items are not trimmed and duplicates are kept.
    pub fn parse_list(specifiers: &str) -> Result<Vec<Platform>, PlatformError> {
        specifiers.split(',').map(Platform::parse).collect()
    }

    /// Parses a specifier exactly as containerd's `Parse` does, without the normalization step.
    ///
    /// The differences from [`Platform::parse`] are containerd's own: `linux/arm64/v8` keeps its
    /// `v8`, `linux/arm` has no variant, OS features keep the order they were written in. Most
    /// callers want [`Platform::parse`]; this exists so containerd's test tables can be checked
    /// as they are written.
    pub fn parse_unnormalized(specifier: &str) -> Result<Platform, PlatformError> {
        if specifier.contains('*') {
            return Err(PlatformError::Wildcard {
                specifier: specifier.to_owned(),
            });
        }
        let parts: Vec<&str> = specifier.splitn(4, '/').collect();
        let mut platform = Platform::default();
        for (index, part) in parts.iter().enumerate() {
            if index == 0 {
                let options =
                    split_os_component(part).ok_or_else(|| PlatformError::InvalidOsComponent {
                        component: (*part).to_owned(),
                        specifier: specifier.to_owned(),
                    })?;
                platform.os = normalize_os(options.name);
                platform.os_version = decode_os_option(options.version).map_err(|reason| {
                    PlatformError::InvalidOsVersion {
                        specifier: specifier.to_owned(),
                        version: options.version.to_owned(),
                        reason,
                    }
                })?;
                if let Some(features) = options.features {
                    platform.os_features = features
                        .split('+')
                        .map(|feature| {
                            decode_os_option(feature).map_err(|reason| {
                                PlatformError::InvalidOsFeature {
                                    specifier: specifier.to_owned(),
                                    feature: feature.to_owned(),
                                    reason,
                                }
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
            } else if !is_component(part) {
                return Err(PlatformError::InvalidComponent {
                    component: (*part).to_owned(),
                    specifier: specifier.to_owned(),
                });
            }
        }

        match parts.as_slice() {
            [word] => {
                if is_known_os(&platform.os) {
                    let host = Platform::host();
                    platform.architecture = host.architecture;
                    if platform.architecture == "arm" && host.variant != "v7" {
                        platform.variant = host.variant;
                    }
                    return Ok(platform);
                }
                let (architecture, variant) = normalize_arch(word, "");
                if is_known_arch(&architecture) {
                    platform.os = DEFAULT_OS.to_owned();
                    platform.variant = if architecture == "arm" && variant == "v7" {
                        String::new()
                    } else {
                        variant
                    };
                    platform.architecture = architecture;
                    return Ok(platform);
                }
                Err(PlatformError::Unknown {
                    specifier: specifier.to_owned(),
                })
            }
            [_, arch] => {
                let (architecture, variant) = normalize_arch(arch, "");
                platform.variant = if architecture == "arm" && variant == "v7" {
                    String::new()
                } else {
                    variant
                };
                platform.architecture = architecture;
                Ok(platform)
            }
            [_, arch, variant] => {
                let (architecture, variant) = normalize_arch(arch, variant);
                platform.variant = if architecture == "arm64" && variant.is_empty() {
                    "v8".to_owned()
                } else {
                    variant
                };
                platform.architecture = architecture;
                Ok(platform)
            }
            _ => Err(PlatformError::TooManyComponents {
                specifier: specifier.to_owned(),
            }),
        }
    }

    /// The canonical form of this platform (containerd's `Normalize`).
    ///
    /// The OS is lower-cased (`macos` becomes `darwin`, an empty OS becomes the host's), the
    /// architecture and variant are normalized as the module documentation shows, and the OS
    /// features are sorted with duplicates removed.
    pub fn normalize(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, &self.variant);
        let mut os_features = self.os_features.clone();
        os_features.sort();
        os_features.dedup();
        Platform {
            os: normalize_os(&self.os),
            architecture,
            variant,
            os_version: self.os_version.clone(),
            os_features,
        }
    }

    /// The platform of the machine kiln runs on, from the target it was compiled for.
    ///
    /// containerd reads `/proc/cpuinfo` to find a 32-bit ARM host's variant; kiln does no I/O
    /// here and reports `arm/v7`, the variant normalization assumes anyway.
    pub fn host() -> Platform {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        let little = cfg!(target_endian = "little");
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "x86" => ("386", ""),
            "aarch64" => ("arm64", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" if little => ("ppc64le", ""),
            "powerpc64" => ("ppc64", ""),
            "powerpc" => ("ppc", ""),
            "mips" if little => ("mipsle", ""),
            "mips64" if little => ("mips64le", ""),
            "loongarch64" => ("loong64", ""),
            "wasm32" => ("wasm", ""),
            other => (other, ""),
        };
        Platform::new(os, architecture, variant)
    }

    /// Whether `other` is this platform, as containerd's `NewMatcher(self).Match(other)` decides.
    ///
    /// Both sides are normalized, then OS, architecture and variant must be equal. For a Windows
    /// platform with an OS version, `other`'s version must be one a host of this version can run
    /// (same major and minor; the same build before Windows Server 2022, any build from 20348 up
    /// to the host's after it). `other`'s OS features must all be among this platform's.
    ///
    /// This is a strict match: `linux/arm64` does not match `linux/arm/v7`. [`Matcher::only`]
    /// is the one that also accepts platforms this one can run.
    pub fn matches(&self, other: &Platform) -> bool {
        ExactMatcher::new(self).matches(other)
    }

    /// The specifier with the OS version and features (containerd's `FormatAll`):
    /// `windows(10.0.17763+win32k)/amd64`. Without either it equals the `Display` form.
    pub fn format_all(&self) -> String {
        if self.os.is_empty() {
            return "unknown".to_owned();
        }
        let mut options = encode_os_option(&self.os_version);
        let mut features: Vec<&String> = self.os_features.iter().collect();
        features.sort();
        for feature in features.into_iter().filter(|f| !f.is_empty()) {
            options.push('+');
            options.push_str(&encode_os_option(feature));
        }
        if options.is_empty() {
            return self.to_string();
        }
        path::join(&[
            &format!("{}({options})", self.os),
            &self.architecture,
            &self.variant,
        ])
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]` (containerd's `Format`); `unknown` when the OS is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.os.is_empty() {
            return f.write_str("unknown");
        }
        f.write_str(&path::join(&[&self.os, &self.architecture, &self.variant]))
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// Same as [`Platform::parse`].
    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        Platform::parse(s)
    }
}

/// Which platforms to accept, and in which order of preference, when choosing from an index.
///
/// Built by [`Matcher::only`] (the usual choice, what BuildKit uses to pull an image for a
/// platform), [`Matcher::only_strict`], [`Matcher::ordered`], [`Matcher::any`] or
/// [`Matcher::all`]. Every candidate is compared with [`Platform::matches`] against each
/// platform the matcher holds; the earlier a matching platform is in the matcher's list, the
/// better the candidate.
#[derive(Debug, Clone)]
pub struct Matcher {
    kind: MatcherKind,
}

#[derive(Debug, Clone)]
enum MatcherKind {
    /// Accepts what any entry matches; earlier entries are preferred.
    Ordered(Vec<ExactMatcher>),
    /// Accepts what any entry matches, with no preference among them.
    Any(Vec<ExactMatcher>),
    /// Accepts everything.
    All,
}

impl Matcher {
    /// The platform and the platforms it can also run, best first (containerd's `Only`).
    ///
    /// The wanted platform is normalized, then:
    /// - `amd64/vN` also accepts `amd64/vN-1` down to `amd64` (v1), then `386`;
    /// - `arm/vN` (N > 5) also accepts `arm/vN-1` down to `arm/v5`;
    /// - `arm64/v8.x` also accepts `arm64/v8.x-1` down to `arm64` (v8); `arm64/v9.x` accepts
    ///   `arm64/v9.x-1` down to `arm64/v9`, then `arm64/v8.x+5` (at most `v8.9`) down to `arm64`
    ///   (v9.0 branched from v8.5); every `arm64` then accepts `arm/v8`, `arm/v7`, `arm/v6` and
    ///   `arm/v5` (an `arm64/vN` with no minor version accepts `arm/vN` down to `arm/v5`);
    /// - every other platform accepts only itself.
    ///
    /// The OS, OS version and OS features always have to match as [`Platform::matches`] says.
    pub fn only(platform: &Platform) -> Matcher {
        Matcher::ordered(platform_vector(&platform.normalize()))
    }

    /// The platform alone, after normalization (containerd's `OnlyStrict`).
    pub fn only_strict(platform: &Platform) -> Matcher {
        Matcher::ordered([platform.normalize()])
    }

    /// Any of the platforms, preferring earlier ones (containerd's `Ordered`).
    pub fn ordered(platforms: impl IntoIterator<Item = Platform>) -> Matcher {
        Matcher {
            kind: MatcherKind::Ordered(
                platforms
                    .into_iter()
                    .map(|p| ExactMatcher::new(&p))
                    .collect(),
            ),
        }
    }

    /// Any of the platforms, without preference (containerd's `Any`).
    pub fn any(platforms: impl IntoIterator<Item = Platform>) -> Matcher {
        Matcher {
            kind: MatcherKind::Any(
                platforms
                    .into_iter()
                    .map(|p| ExactMatcher::new(&p))
                    .collect(),
            ),
        }
    }

    /// Every platform (containerd's `All`).
    pub fn all() -> Matcher {
        Matcher {
            kind: MatcherKind::All,
        }
    }

    /// Whether the matcher accepts `platform`.
    pub fn matches(&self, platform: &Platform) -> bool {
        self.rank(platform).is_some()
    }

    /// Which of the matcher's platforms `platform` matches first: `None` when none does.
    /// Lower is better; [`Matcher::less`] also breaks ties by OS features.
    pub fn rank(&self, platform: &Platform) -> Option<usize> {
        match &self.kind {
            MatcherKind::Ordered(matchers) => matchers.iter().position(|m| m.matches(platform)),
            MatcherKind::Any(matchers) => matchers.iter().any(|m| m.matches(platform)).then_some(0),
            MatcherKind::All => Some(0),
        }
    }

    /// Whether `a` is a better candidate than `b` (containerd's `Less`).
    ///
    /// An accepted platform beats one that is not; between two accepted platforms the one with
    /// the lower [`Matcher::rank`] wins, then the one with more OS features. When neither is
    /// accepted, they are compared again with their OS features left out.
    pub fn less(&self, a: &Platform, b: &Platform) -> bool {
        if matches!(self.kind, MatcherKind::All) {
            return false;
        }
        match (self.rank(a), self.rank(b)) {
            (Some(rank_a), Some(rank_b)) if rank_a == rank_b => {
                a.os_features.len() > b.os_features.len()
            }
            (Some(rank_a), Some(rank_b)) => rank_a < rank_b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => {
                if a.os_features.is_empty() && b.os_features.is_empty() {
                    return false;
                }
                let strip = |p: &Platform| Platform {
                    os_features: Vec::new(),
                    ..p.clone()
                };
                self.less(&strip(a), &strip(b))
            }
        }
    }

    /// Picks the best entry of an image index, as containerd's `images.Manifest` does: of the
    /// accepted platforms, the first one that no other is [`Matcher::less`] than.
    ///
    /// An entry without a platform (`None`) is accepted but comes after every entry with one.
    pub fn select<'a>(
        &self,
        candidates: impl IntoIterator<Item = Option<&'a Platform>>,
    ) -> Option<usize> {
        let mut best: Option<(usize, Option<&'a Platform>)> = None;
        for (index, candidate) in candidates.into_iter().enumerate() {
            if candidate.is_some_and(|platform| !self.matches(platform)) {
                continue;
            }
            let better = match (best, candidate) {
                (None, _) => true,
                (Some((_, None)), Some(_)) => true,
                (Some((_, Some(current))), Some(platform)) => self.less(platform, current),
                (Some(_), None) => false,
            };
            if better {
                best = Some((index, candidate));
            }
        }
        best.map(|(index, _)| index)
    }
}

/// containerd's basic matcher: normalized equality, the Windows version rule and OS features.
#[derive(Debug, Clone)]
struct ExactMatcher {
    platform: Platform,
    windows_version: Option<WindowsVersion>,
}

impl ExactMatcher {
    fn new(platform: &Platform) -> ExactMatcher {
        // containerd looks at the OS as given, before normalization.
        let windows_version =
            (platform.os == "windows").then(|| WindowsVersion::parse(&platform.os_version));
        ExactMatcher {
            platform: platform.normalize(),
            windows_version,
        }
    }

    fn matches(&self, candidate: &Platform) -> bool {
        let normalized = candidate.normalize();
        if self.platform.os != normalized.os
            || self.platform.architecture != normalized.architecture
            || self.platform.variant != normalized.variant
        {
            return false;
        }
        if let Some(version) = &self.windows_version
            && !version.accepts(&candidate.os_version)
        {
            return false;
        }
        // Both lists are sorted and free of duplicates after normalization.
        normalized
            .os_features
            .iter()
            .all(|feature| self.platform.os_features.binary_search(feature).is_ok())
    }
}

/// The `major.minor.build` of a Windows OS version; all zero when it does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WindowsVersion {
    major: u8,
    minor: u8,
    build: u16,
}

/// Windows Server 2022 (`ltsc2022`): from this build on, hosts run older container builds too.
const WINDOWS_SERVER_2022: u16 = 20348;

impl WindowsVersion {
    const ZERO: WindowsVersion = WindowsVersion {
        major: 0,
        minor: 0,
        build: 0,
    };

    fn parse(version: &str) -> WindowsVersion {
        let mut parts = version.split('.');
        let (Some(major), Some(minor), Some(build)) = (parts.next(), parts.next(), parts.next())
        else {
            return WindowsVersion::ZERO;
        };
        match (
            parse_go_uint::<u8>(major),
            parse_go_uint::<u8>(minor),
            parse_go_uint::<u16>(build),
        ) {
            (Some(major), Some(minor), Some(build)) => WindowsVersion {
                major,
                minor,
                build,
            },
            _ => WindowsVersion::ZERO,
        }
    }

    /// Whether a host of this version runs a container image of version `candidate`.
    fn accepts(&self, candidate: &str) -> bool {
        if *self == WindowsVersion::ZERO || candidate.is_empty() {
            return true;
        }
        let container = WindowsVersion::parse(candidate);
        if self.major != container.major || self.minor != container.minor {
            return false;
        }
        if self.build < WINDOWS_SERVER_2022 {
            return self.build == container.build;
        }
        container.build >= WINDOWS_SERVER_2022 && container.build <= self.build
    }
}

/// Go's `strconv.ParseUint(s, 10, bits)`: ASCII digits only, no sign, no overflow.
fn parse_go_uint<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.Atoi`: an optional sign, then decimal digits.
fn go_atoi(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// How many lesser variants one step of [`platform_vector`] lists at most. Real variants need
/// a handful; the cap keeps a specifier like `amd64/v999999999` from allocating without bound.
const MAX_VARIANT_STEPS: i64 = 1024;

/// containerd's `platformVector`: the platform, then the ones it can also run, best first.
fn platform_vector(platform: &Platform) -> Vec<Platform> {
    let with_variant = |architecture: &str, variant: String| Platform {
        architecture: architecture.to_owned(),
        variant,
        ..platform.clone()
    };
    let mut vector = vec![platform.clone()];
    match platform.architecture.as_str() {
        "amd64" => {
            if let Some(version) = go_atoi(
                platform
                    .variant
                    .strip_prefix('v')
                    .unwrap_or(&platform.variant),
            ) && version > 1
            {
                let lowest = (version - MAX_VARIANT_STEPS).max(1);
                for v in (lowest..version).rev() {
                    vector.push(with_variant("amd64", format!("v{v}")));
                }
            }
            vector.push(with_variant("386", String::new()));
        }
        "arm" => {
            if let Some(version) = go_atoi(
                platform
                    .variant
                    .strip_prefix('v')
                    .unwrap_or(&platform.variant),
            ) && version > 5
            {
                let lowest = (version - MAX_VARIANT_STEPS).max(5);
                for v in (lowest..version).rev() {
                    vector.push(with_variant("arm", format!("v{v}")));
                }
            }
        }
        "arm64" => {
            let mut variant = if platform.variant.is_empty() {
                "v8".to_owned()
            } else {
                platform.variant.clone()
            };
            let (major_part, minor_part) = match variant.split_once('.') {
                Some((major, minor)) => (major, Some(minor)),
                None => (variant.as_str(), None),
            };
            if let Some(mut major) = go_atoi(major_part.strip_prefix('v').unwrap_or(major_part))
                && major >= 8
            {
                let mut minor = 0;
                // containerd only reads a one-digit minor version (`v8.1`, not `v8.10`).
                if variant.len() == 4
                    && let Some(m) = minor_part.and_then(go_atoi)
                {
                    minor = m;
                }
                let name = |major: i64, minor: i64| {
                    if minor == 0 {
                        format!("v{major}")
                    } else {
                        format!("v{major}.{minor}")
                    }
                };
                if major == 9 {
                    for m in (0..minor).rev() {
                        vector.push(with_variant("arm64", name(9, m)));
                    }
                    // v9.0 branched from v8.5: v9.x runs v8.x+5, up to v8.9.
                    minor = (minor + 5).min(9);
                    major = 8;
                    vector.push(with_variant("arm64", format!("v8.{minor}")));
                }
                for m in (0..minor).rev() {
                    vector.push(with_variant("arm64", name(major, m)));
                }
            }
            if variant.starts_with("v8.") || variant.starts_with("v9.") {
                variant = "v8".to_owned();
            }
            vector.extend(platform_vector(&with_variant("arm", variant)));
        }
        _ => {}
    }
    vector
}

/// The parts of an OS component `<os>[(<version>[+<feature>]*)]`.
struct OsComponent<'a> {
    name: &'a str,
    version: &'a str,
    /// The features, `+`-separated, without the leading `+`; `None` when there are none.
    features: Option<&'a str>,
}

/// Splits an OS component as containerd's OS pattern does; `None` when it does not match.
fn split_os_component(component: &str) -> Option<OsComponent<'_>> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let is_option = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '%' | '-');
    let (name, options) = match component.split_once('(') {
        Some((name, rest)) => (name, Some(rest.strip_suffix(')')?)),
        None => (component, None),
    };
    if name.is_empty() || !name.chars().all(is_name) {
        return None;
    }
    let Some(options) = options else {
        return Some(OsComponent {
            name,
            version: "",
            features: None,
        });
    };
    let (version, features) = match options.split_once('+') {
        Some((version, features)) => (version, Some(features)),
        None => (options, None),
    };
    if !version.chars().all(is_option) {
        return None;
    }
    if let Some(features) = features
        && features
            .split('+')
            .any(|f| f.is_empty() || !f.chars().all(is_option))
    {
        return None;
    }
    Some(OsComponent {
        name,
        version,
        features,
    })
}

/// Whether an architecture or variant component matches `^[A-Za-z0-9_.-]+$`.
fn is_component(component: &str) -> bool {
    !component.is_empty()
        && component
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Decodes `%XX` escapes in an OS version or feature (Go's `url.PathUnescape`).
///
/// Errors carry Go's `url.EscapeError` text: `invalid URL escape "%zz"`.
fn decode_os_option(value: &str) -> Result<String, String> {
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |offset: usize| {
                bytes
                    .get(i + offset)
                    .and_then(|&h| char::from(h).to_digit(16))
            };
            match (hex(1), hex(2)) {
                (Some(high), Some(low)) => {
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 3;
                }
                _ => {
                    let rest = value.get(i..).unwrap_or("");
                    let shown: String = rest.chars().take(3).collect();
                    return Err(format!("invalid URL escape {}", quote(&shown)));
                }
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Percent-encodes the characters that would be ambiguous in an OS option.
fn encode_os_option(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

fn normalize_os(os: &str) -> String {
    if os.is_empty() {
        return Platform::host().os;
    }
    let os = os.to_lowercase();
    if os == "macos" {
        "darwin".to_owned()
    } else {
        os
    }
}

/// containerd's `normalizeArch`.
fn normalize_arch(architecture: &str, variant: &str) -> (String, String) {
    let architecture = architecture.to_lowercase();
    let variant = variant.to_lowercase();
    match architecture.as_str() {
        "i386" => ("386".to_owned(), String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64".to_owned(),
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "aarch64" | "arm64" => {
            let variant = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_owned(),
                _ => variant,
            };
            ("arm64".to_owned(), variant)
        }
        "armhf" => ("arm".to_owned(), "v7".to_owned()),
        "armel" => ("arm".to_owned(), "v6".to_owned()),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".to_owned(), variant)
        }
        _ => (architecture, variant),
    }
}

/// The operating systems Go knows (`GOOS` values).
fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
    )
}

/// The architectures Go knows (`GOARCH` values).
fn is_known_arch(architecture: &str) -> bool {
    matches!(
        architecture,
        "386"
            | "amd64"
            | "amd64p32"
            | "arm"
            | "armbe"
            | "arm64"
            | "arm64be"
            | "ppc64"
            | "ppc64le"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "mips64p32"
            | "mips64p32le"
            | "ppc"
            | "riscv"
            | "riscv64"
            | "s390"
            | "s390x"
            | "sparc"
            | "sparc64"
            | "wasm"
    )
}
