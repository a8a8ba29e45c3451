//! Platforms (`os/arch[/variant]`), as containerd's `platforms` package understands them.

/// A target platform, always held normalized (`linux/arm64`, not `linux/aarch64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    /// The operating system (`linux`, `windows`, ...).
    pub os: String,
    /// The CPU architecture in Go's spelling (`amd64`, `arm64`, `arm`, `386`, ...).
    pub architecture: String,
    /// The CPU variant (`v7`, `v8`), empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// The OS version (Windows only), empty when none.
    #[serde(default, rename = "os.version", skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// Required OS features, empty when none.
    #[serde(default, rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
}
