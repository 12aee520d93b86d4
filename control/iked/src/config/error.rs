//! Configuration errors: every one names the file, the key and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when the TOML parser knows it.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `connections.home.children.net.esp_proposals`.
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key` in `file`.
    pub fn at(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line: None, key: Some(key.into()), reason: reason.into() }
    }

    /// An error about the file as a whole (unreadable, not TOML).
    pub fn file(file: &Path, reason: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line: None, key: None, reason: reason.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Builds key paths as `a.b.c`.
pub(crate) fn key(parts: &[&str]) -> String {
    parts.join(".")
}
