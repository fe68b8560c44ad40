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

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::config::Compatibility;
use crate::schema::{ColumnSchema, TableSchema};

/// Checks `new` against `history` (oldest first, version `i + 1` at index
/// `i`) under `mode`; `Err` lists every failure in words.
pub fn check(mode: Compatibility, new: &Schema, history: &[Schema]) -> Result<(), Vec<String>> {
    let (backward, forward, transitive) = match mode {
        Compatibility::None => return Ok(()),
        Compatibility::Backward => (true, false, false),
        Compatibility::BackwardTransitive => (true, false, true),
        Compatibility::Forward => (false, true, false),
        Compatibility::ForwardTransitive => (false, true, true),
        Compatibility::Full => (true, true, false),
        Compatibility::FullTransitive => (true, true, true),
    };
    let against: Vec<(usize, &Schema)> = if transitive {
        history.iter().enumerate().collect()
    } else {
        history.iter().enumerate().next_back().into_iter().collect()
    };
    let mut problems = Vec::new();
    for (i, old) in against {
        let version = i + 1;
        if backward {
            if let Err(e) = SchemaCompatibility::can_read(old, new) {
                problems.push(format!(
                    "consumers on the new version cannot read data written with version {version}: {e}"
                ));
            }
        }
        if forward {
            if let Err(e) = SchemaCompatibility::can_read(new, old) {
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
    let same = |a: &ColumnSchema, b: &ColumnSchema| match (a.id, b.id) {
        (Some(x), Some(y)) => x == y,
        _ => a.name == b.name,
    };
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
    fn avro(versions: &[&TableSchema]) -> Vec<Schema> {
        versions
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let text = avro_schema("ns", t, &versions[..i]).unwrap();
                Schema::parse_str(&text).unwrap()
            })
            .collect()
    }

    /// Whether the last of `versions` passes `mode` against the others.
    fn ok(mode: Compatibility, versions: &[&TableSchema]) -> bool {
        let schemas = avro(versions);
        let (new, history) = schemas.split_last().unwrap();
        check(mode, new, history).is_ok()
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
        let schemas = avro(&[&long, &int]);
        let problems = check(Compatibility::Backward, &schemas[1], &schemas[..1]).unwrap_err();
        assert!(problems[0].contains("version 1"), "{problems:?}");
        assert_eq!(
            describe_change(&long, &int),
            vec!["column a: type int8 → int4"]
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
