//! Compatibility of a new schema version with the earlier ones, in
//! Confluent Schema Registry's terms, checked with `apache-avro`'s schema
//! resolution rules; and a description in words of what changed.
//!
//! Sits inside [`super::SchemaRegistry::register`], before anything is
//! written: BACKWARD — a reader on the new schema can read data written
//! with the previous one (`can_read(previous, new)`); FORWARD — a reader on
//! the previous schema can read data written with the new one; FULL — both;
//! the TRANSITIVE forms check every earlier version instead of the latest;
//! NONE checks nothing.
//!
//! `apache-avro` 0.21 does not resolve the `decimal` logical type (two
//! identical decimal fields are reported incompatible), so decimals are
//! checked as their underlying `bytes`, plus one rule of our own: a column
//! whose precision or scale changes is incompatible in every direction
//! (a reader decodes the unscaled bytes with the scale of its own schema).

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde_json::Value as Json;

use crate::config::Compatibility;
use crate::schema::{ColumnSchema, ColumnType, TableSchema};

/// One version as the check needs it: its table shape and Avro text.
pub type Version<'a> = (&'a TableSchema, &'a str);

/// Checks `new` against `history` (oldest first, version `i + 1` at index
/// `i`) under `mode`; `Err` lists every failure in words.
pub fn check(mode: Compatibility, new: Version, history: &[Version]) -> Result<(), Vec<String>> {
    let (backward, forward, transitive) = match mode {
        Compatibility::None => return Ok(()),
        Compatibility::Backward => (true, false, false),
        Compatibility::BackwardTransitive => (true, false, true),
        Compatibility::Forward => (false, true, false),
        Compatibility::ForwardTransitive => (false, true, true),
        Compatibility::Full => (true, true, false),
        Compatibility::FullTransitive => (true, true, true),
    };
    let against: Vec<(usize, &Version)> = if transitive {
        history.iter().enumerate().collect()
    } else {
        history.iter().enumerate().next_back().into_iter().collect()
    };
    let new_schema = checkable(new.1).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    for (i, (old_table, old_text)) in against {
        let version = i + 1;
        let old_schema = checkable(old_text).map_err(|e| vec![e])?;
        for change in decimal_changes(old_table, new.0) {
            problems.push(format!(
                "{change}: readers decode decimals with their own schema's scale (version {version})"
            ));
        }
        if backward {
            if let Err(e) = SchemaCompatibility::can_read(&old_schema, &new_schema) {
                problems.push(format!(
                    "consumers on the new version cannot read data written with version {version}: {e}"
                ));
            }
        }
        if forward {
            if let Err(e) = SchemaCompatibility::can_read(&new_schema, &old_schema) {
                problems.push(format!(
                    "consumers on version {version} cannot read data written with the new version: {e}"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The schema as `apache-avro` can check it: `decimal` logical types
/// replaced by their `bytes` (see the module doc).
fn checkable(text: &str) -> Result<Schema, String> {
    fn strip(value: &mut Json) {
        match value {
            Json::Object(map) => {
                if map.get("logicalType").and_then(Json::as_str) == Some("decimal") {
                    map.remove("logicalType");
                    map.remove("precision");
                    map.remove("scale");
                }
                map.values_mut().for_each(strip);
            }
            Json::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut json: Json =
        serde_json::from_str(text).map_err(|e| format!("a stored schema is not JSON: {e}"))?;
    strip(&mut json);
    Schema::parse_str(&json.to_string()).map_err(|e| format!("a stored schema is not Avro: {e}"))
}

/// Columns (matched like [`describe_change`]) whose decimal precision or
/// scale differs.
fn decimal_changes(old: &TableSchema, new: &TableSchema) -> Vec<String> {
    let mut changes = Vec::new();
    for column in &new.columns {
        let Some(before) = old.columns.iter().find(|c| same_column(c, column)) else {
            continue;
        };
        if let (ColumnType::Decimal { .. }, ColumnType::Decimal { .. })
        | (ColumnType::Decimal { .. }, _)
        | (_, ColumnType::Decimal { .. }) = (&before.data_type, &column.data_type)
        {
            if before.data_type != column.data_type {
                changes.push(format!(
                    "column {}: {} → {}",
                    column.name, before.data_type, column.data_type
                ));
            }
        }
    }
    changes
}

fn same_column(a: &ColumnSchema, b: &ColumnSchema) -> bool {
    match (a.id, b.id) {
        (Some(x), Some(y)) => x == y,
        _ => a.name == b.name,
    }
}

/// What changed from `old` to `new`, in words; columns are matched by id
/// where both have one, else by name.
pub fn describe_change(old: &TableSchema, new: &TableSchema) -> Vec<String> {
    let mut changes = Vec::new();
    if old.qualified_name() != new.qualified_name() {
        changes.push(format!(
            "table renamed from {} to {}",
            old.qualified_name(),
            new.qualified_name()
        ));
    }
    if let (Some(a), Some(b)) = (old.source_id, new.source_id) {
        if a != b {
            changes.push(format!("table recreated (source id {a} → {b})"));
        }
    }
    let same = same_column;
    for column in &old.columns {
        if !new.columns.iter().any(|c| same(column, c)) {
            changes.push(format!("dropped column {}", column.name));
        }
    }
    for column in &new.columns {
        let Some(before) = old.columns.iter().find(|c| same(c, column)) else {
            let default = column
                .default
                .as_deref()
                .map(|d| format!(", default {d}"))
                .unwrap_or_default();
            changes.push(format!(
                "added column {} ({}, {}{default})",
                column.name,
                column.source_type,
                if column.nullable {
                    "nullable"
                } else {
                    "NOT NULL"
                }
            ));
            continue;
        };
        if before.name != column.name {
            changes.push(format!("renamed column {} to {}", before.name, column.name));
        }
        if before.source_type != column.source_type || before.data_type != column.data_type {
            changes.push(format!(
                "column {}: type {} → {}",
                column.name, before.source_type, column.source_type
            ));
        }
        if before.nullable != column.nullable {
            changes.push(format!(
                "column {}: now {}",
                column.name,
                if column.nullable {
                    "nullable"
                } else {
                    "NOT NULL"
                }
            ));
        }
        if before.default != column.default {
            changes.push(format!(
                "column {}: default {} → {}",
                column.name,
                before.default.as_deref().unwrap_or("none"),
                column.default.as_deref().unwrap_or("none")
            ));
        }
    }
    let (old_key, new_key) = (old.key_names(), new.key_names());
    if old_key != new_key {
        changes.push(format!(
            "key changed from ({}) to ({})",
            old_key.join(", "),
            new_key.join(", ")
        ));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::avro_schema::avro_schema;
    use crate::schema::ColumnType;

    fn col(name: &str, ty: ColumnType, source: &str, nullable: bool, id: u32) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: ty,
            source_type: source.into(),
            nullable,
            id: Some(id),
            default: None,
        }
    }

    fn id() -> ColumnSchema {
        col("id", ColumnType::Int64, "int8", false, 1)
    }

    fn table(columns: Vec<ColumnSchema>) -> TableSchema {
        TableSchema::new("public", "t", columns, vec![0])
    }

    /// Avro schemas of `versions` (each with the earlier ones for aliases).
    fn avro(versions: &[&TableSchema]) -> Vec<String> {
        versions
            .iter()
            .enumerate()
            .map(|(i, t)| avro_schema("ns", t, &versions[..i]).unwrap())
            .collect()
    }

    fn run(mode: Compatibility, versions: &[&TableSchema]) -> Result<(), Vec<String>> {
        let texts = avro(versions);
        let all: Vec<Version> = versions
            .iter()
            .copied()
            .zip(texts.iter().map(String::as_str))
            .collect();
        let (new, history) = all.split_last().unwrap();
        check(mode, *new, history)
    }

    /// Whether the last of `versions` passes `mode` against the others.
    fn ok(mode: Compatibility, versions: &[&TableSchema]) -> bool {
        run(mode, versions).is_ok()
    }

    #[test]
    fn adding_and_dropping_columns() {
        let v1 = table(vec![id(), col("a", ColumnType::Int32, "int4", true, 2)]);
        let added = table(vec![
            id(),
            col("a", ColumnType::Int32, "int4", true, 2),
            col("b", ColumnType::Text, "text", true, 3),
        ]);
        assert!(ok(Compatibility::Backward, &[&v1, &added]));
        assert!(ok(Compatibility::Forward, &[&v1, &added]));
        assert!(ok(Compatibility::Full, &[&v1, &added]));
        let mut required = added.clone();
        required.columns[2].nullable = false;
        assert!(!ok(Compatibility::Backward, &[&v1, &required]));
        assert!(ok(Compatibility::Forward, &[&v1, &required]));
        required.columns[2].default = Some("'x'::text".into());
        assert!(ok(Compatibility::Backward, &[&v1, &required]));
        let dropped = table(vec![id()]);
        assert!(ok(Compatibility::Backward, &[&v1, &dropped]));
        // Old readers need a default for the nullable column they lose.
        assert!(ok(Compatibility::Forward, &[&v1, &dropped]));
        let mut strict = v1.clone();
        strict.columns[1].nullable = false;
        let v1_strict = strict.clone();
        assert!(!ok(Compatibility::Forward, &[&v1_strict, &dropped]));
        assert!(ok(Compatibility::None, &[&v1_strict, &dropped]));
        assert_eq!(
            describe_change(&v1, &added),
            vec!["added column b (text, nullable)"]
        );
        assert_eq!(describe_change(&v1, &dropped), vec!["dropped column a"]);
    }

    #[test]
    fn type_changes() {
        let int = table(vec![id(), col("a", ColumnType::Int32, "int4", false, 2)]);
        let long = table(vec![id(), col("a", ColumnType::Int64, "int8", false, 2)]);
        let text = table(vec![id(), col("a", ColumnType::Text, "text", false, 2)]);
        assert!(
            ok(Compatibility::Backward, &[&int, &long]),
            "int → long widens"
        );
        assert!(!ok(Compatibility::Forward, &[&int, &long]));
        assert!(
            !ok(Compatibility::Backward, &[&long, &int]),
            "long → int narrows"
        );
        assert!(!ok(Compatibility::Backward, &[&text, &int]));
        let problems = run(Compatibility::Backward, &[&long, &int]).unwrap_err();
        assert!(problems[0].contains("version 1"), "{problems:?}");
        assert_eq!(
            describe_change(&long, &int),
            vec!["column a: type int8 → int4"]
        );
    }

    #[test]
    fn decimals() {
        let dec = |p, s| ColumnType::Decimal {
            precision: p,
            scale: s,
        };
        let v1 = table(vec![id(), col("p", dec(10, 2), "numeric(10,2)", true, 2)]);
        let same = table(vec![
            id(),
            col("p", dec(10, 2), "numeric(10,2)", true, 2),
            col("q", ColumnType::Text, "text", true, 3),
        ]);
        assert!(ok(Compatibility::Full, &[&v1, &same]));
        let rescaled = table(vec![id(), col("p", dec(12, 4), "numeric(12,4)", true, 2)]);
        let problems = run(Compatibility::Backward, &[&v1, &rescaled]).unwrap_err();
        assert!(
            problems[0].contains("decimal(10,2) → decimal(12,4)"),
            "{problems:?}"
        );
    }

    #[test]
    fn nullability_changes() {
        let nullable = table(vec![id(), col("a", ColumnType::Int32, "int4", true, 2)]);
        let required = table(vec![id(), col("a", ColumnType::Int32, "int4", false, 2)]);
        assert!(ok(Compatibility::Backward, &[&required, &nullable]));
        assert!(!ok(Compatibility::Backward, &[&nullable, &required]));
        assert_eq!(
            describe_change(&required, &nullable),
            vec!["column a: now nullable"]
        );
    }

    #[test]
    fn renames_resolve_through_aliases() {
        let v1 = table(vec![id(), col("a", ColumnType::Int32, "int4", false, 2)]);
        let v2 = table(vec![id(), col("b", ColumnType::Int32, "int4", false, 2)]);
        // The NOT NULL column has no default: only the alias makes this pass.
        assert!(ok(Compatibility::Backward, &[&v1, &v2]));
        assert_eq!(describe_change(&v1, &v2), vec!["renamed column a to b"]);
        // Without ids it is a drop and an add.
        let mut a = v1.clone();
        a.columns[1].id = None;
        let mut b = v2.clone();
        b.columns[1].id = None;
        assert!(!ok(Compatibility::Backward, &[&a, &b]));
    }

    #[test]
    fn transitive_checks_every_version() {
        let v1 = table(vec![id(), col("a", ColumnType::Int32, "int4", false, 2)]);
        let v2 = table(vec![id()]);
        let v3 = table(vec![id(), col("a", ColumnType::Text, "text", false, 3)]);
        // v3 vs v2: a NOT NULL column without default is added → not backward.
        assert!(!ok(Compatibility::Backward, &[&v1, &v2, &v3]));
        let mut v3n = v3.clone();
        v3n.columns[1].nullable = true;
        // Nullable: fine against v2, but v1 wrote `a` as int, which the
        // string field of v3 cannot read.
        assert!(ok(Compatibility::Backward, &[&v1, &v2, &v3n]));
        assert!(!ok(Compatibility::BackwardTransitive, &[&v1, &v2, &v3n]));
        assert!(!ok(Compatibility::FullTransitive, &[&v1, &v2, &v3n]));
    }
}
