//! The persisted form of one schema version:
//! `<lake root>/_schemas/subjects/<subject>/versions/<version, 8 digits>.json`.
//!
//! Written once, durably, when a version is registered, before any file
//! that names it; never rewritten. The registry directory therefore lists
//! every version any delta file or manifest can refer to.

use serde::{Deserialize, Serialize};

use super::RegistryError;
use crate::config::Compatibility;
use crate::schema::TableSchema;

/// Version of the version-file format.
pub const REGISTRY_FORMAT_VERSION: u32 = 1;

/// Folder of the registry under the lake root.
pub const REGISTRY_DIR: &str = "_schemas";

/// One registered schema version of a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// [`REGISTRY_FORMAT_VERSION`] of the tributary that wrote it.
    pub format_version: u32,
    /// `<source>.<namespace>.<table>-value`.
    pub subject: String,
    /// 1, 2, 3… per subject.
    pub version: u32,
    /// Schema id (the same schema text has the same id under every subject).
    pub id: u32,
    /// Tributary's shape fingerprint ([`TableSchema::fingerprint`]).
    pub fingerprint: String,
    /// Hex Rabin CRC-64 of the Avro Parsing Canonical Form.
    pub avro_fingerprint: String,
    /// The Avro record schema (JSON text).
    pub schema: String,
    /// The table shape it was derived from.
    pub table: TableSchema,
    /// The mode it was checked under.
    pub compatibility: Compatibility,
    /// False when registered by `on_incompatible_schema = "new_version"`
    /// despite failing the check.
    pub compatible: bool,
    /// Why the check failed (empty when compatible).
    #[serde(default)]
    pub problems: Vec<String>,
    /// What changed against the previous version (empty for version 1).
    #[serde(default)]
    pub changes: Vec<String>,
    /// RFC 3339.
    pub registered_at: String,
}

/// Path of a version file relative to the lake root.
pub fn version_path(subject: &str, version: u32) -> String {
    format!("{REGISTRY_DIR}/subjects/{subject}/versions/{version:08}.json")
}

/// Parses a version file read from `path`, refusing newer formats.
pub fn parse_version(bytes: &[u8], path: &str) -> Result<SchemaVersion, RegistryError> {
    #[derive(Deserialize)]
    struct Format {
        format_version: u32,
    }
    let format: Format = serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::Corrupt(format!(
            "schema version file {path} is not a tributary registry file ({e}); restore it from a backup"
        ))
    })?;
    if format.format_version > REGISTRY_FORMAT_VERSION {
        return Err(RegistryError::Corrupt(format!(
            "schema version file {path} has format {}, newer than this tributary understands ({REGISTRY_FORMAT_VERSION}); upgrade tributary",
            format.format_version
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::Corrupt(format!(
            "schema version file {path} is damaged ({e}); restore it from a backup"
        ))
    })
}
