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
//! What `apache-avro` 0.21's check (`SchemaCompatibility::can_read`) does,
//! and what this module adds:
//!
//! - Field aliases: honoured on the *reader's* side only (as the Avro spec
//!   says): a reader field matches a writer field of its own name or of one
//!   of its aliases. The new version lists a renamed column's earlier names
//!   as aliases, so BACKWARD sees a rename as a rename. FORWARD cannot: the
//!   old reader has no alias for the new name, so it sees its field missing
//!   and needs a default: renaming a NOT NULL column without a default is
//!   FORWARD- (and FULL-) incompatible, renaming a nullable one is not.
//! - Unions (our nullable columns, `["null", T]`): a writer union is
//!   readable when every branch is readable by the reader (a union reader:
//!   by some branch of it). So NOT NULL → nullable is BACKWARD compatible,
//!   nullable → NOT NULL is not (the `null` branch has no reader), and
//!   promotions work inside unions (`["null","int"]` → `["null","long"]`).
//! - Its failure for a field (`Field 'a' … does not match`) hides the cause
//!   in the error's source and, for some causes, names Rust-internal kinds;
//!   [`check`] appends the cause and the two field types as written.
//! - The `decimal` logical type is not resolved at all (two identical
//!   decimal fields are reported incompatible), so decimals are checked as
//!   their underlying `bytes`, plus one rule of our own: a column whose
//!   decimal precision or scale changes (also inside a list, and to or from
//!   another type) is incompatible in every direction (a reader decodes the
//!   unscaled bytes with the scale of its own schema).
//! - Records are matched by name, and a struct column's record name is
//!   derived from its column path; so nested records are renamed alike
//!   before the check ([`Checkable`]) and match by structure: fields added
//!   to a struct (nullable, default null) are compatible both ways, a field
//!   whose type changed is judged by its types. A failure inside a struct
//!   only names its column in `apache-avro`'s error; [`check`] adds the
//!   nested path (`field doc.address.zip written as …, read as …`).

use apache_avro::Schema;
use apache_avro::error::CompatibilityError;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde_json::Value as Json;

use crate::config::Compatibility;
use crate::schema::{ColumnSchema, ColumnType, TableSchema};

/// One version as the check needs it: its table shape and Avro text.
pub type Version<'a> = (&'a TableSchema, &'a str);

/// Checks `new` against `history` (oldest first, version `i + 1` at index
/// `i`) under `mode`; `Err` lists every failure in words, each naming the
/// direction and the version it failed against.
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
    let new_schema = Checkable::parse(new.1).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    for (i, (old_table, old_text)) in against {
        let version = i + 1;
        let old_schema = Checkable::parse(old_text).map_err(|e| vec![e])?;
        for change in decimal_changes(old_table, new.0) {
            problems.push(format!(
                "{change}: readers decode decimals with their own schema's scale (version {version})"
            ));
        }
        if backward {
            if let Err(e) = SchemaCompatibility::can_read(&old_schema.schema, &new_schema.schema) {
                problems.push(format!(
                    "consumers on the new version cannot read data written with version {version}: {}",
                    reason(&e, &old_schema.json, &new_schema.json)
                ));
            }
        }
        if forward {
            if let Err(e) = SchemaCompatibility::can_read(&new_schema.schema, &old_schema.schema) {
                problems.push(format!(
                    "consumers on version {version} cannot read data written with the new version: {}",
                    reason(&e, &new_schema.json, &old_schema.json)
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

/// A schema as `apache-avro` can check it, `decimal` logical types
/// replaced by their `bytes` and nested records renamed alike (see the
/// module doc), with its JSON for messages.
struct Checkable {
    schema: Schema,
    json: Json,
}

impl Checkable {
    fn parse(text: &str) -> Result<Checkable, String> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| format!("a stored schema is not JSON: {e}"))?;
        let schema =
            resolvable(&json, true).map_err(|e| format!("a stored schema is not Avro: {e}"))?;
        Ok(Checkable { schema, json })
    }
}

/// `json` as the schema the check runs on: decimals as plain `bytes`, and
/// every nested record named `struct` (each in a namespace of its own, as
/// Avro wants distinct full names), so records match by structure only. The
/// outermost record keeps its name when `keep_root_name` (the table's
/// record, as before structs existed).
fn resolvable(json: &Json, keep_root_name: bool) -> Result<Schema, apache_avro::Error> {
    fn strip_decimal(map: &mut serde_json::Map<String, Json>) {
        if map.get("logicalType").and_then(Json::as_str) == Some("decimal") {
            map.remove("logicalType");
            map.remove("precision");
            map.remove("scale");
        }
    }
    fn walk(value: &mut Json, records: &mut usize, rename: bool) {
        match value {
            Json::Object(map) => {
                strip_decimal(map);
                let is_record = map.get("type").and_then(Json::as_str) == Some("record");
                if is_record && rename {
                    *records += 1;
                    map.insert("name".into(), "struct".into());
                    map.insert(
                        "namespace".into(),
                        format!("tributary.check.r{records}").into(),
                    );
                }
                // Everything below the outermost value is nested.
                map.values_mut().for_each(|v| walk(v, records, true));
            }
            Json::Array(items) => items.iter_mut().for_each(|v| walk(v, records, rename)),
            _ => {}
        }
    }
    let mut copy = json.clone();
    walk(&mut copy, &mut 0, !keep_root_name);
    Schema::parse_str(&copy.to_string())
}

/// Whether data of Avro type `writer` can be read as `reader` (both field
/// types of our schemas, so self-contained).
fn readable(writer: &Json, reader: &Json) -> bool {
    match (resolvable(writer, false), resolvable(reader, false)) {
        (Ok(w), Ok(r)) => SchemaCompatibility::can_read(&w, &r).is_ok(),
        _ => false,
    }
}

/// `apache-avro`'s reason, with the cause it keeps in the error's source
/// and, for a field, the field's type on each side.
fn reason(error: &CompatibilityError, writer: &Json, reader: &Json) -> String {
    let CompatibilityError::FieldTypeMismatch(field, cause) = error else {
        return error.to_string();
    };
    let cause = match cause.as_ref() {
        // Both carry Rust debug dumps or internal names; say what they mean.
        CompatibilityError::WrongType { .. } => {
            "the writer's and the reader's types are of different kinds".to_string()
        }
        CompatibilityError::Inconclusive(_) => {
            "no Avro resolution rule reads the writer's type as the reader's".to_string()
        }
        other => other.to_string(),
    };
    let mut text = format!("{error}: {cause}");
    if let Some(reader_field) = find_field(reader, field, &[]) {
        let aliases: Vec<&str> = reader_field["aliases"]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        if let Some(writer_field) = find_field(writer, field, &aliases) {
            let mut path = vec![original_name(reader_field)];
            let (written, read) =
                nested_mismatch(&writer_field["type"], &reader_field["type"], &mut path)
                    .unwrap_or((&writer_field["type"], &reader_field["type"]));
            if path.len() == 1 {
                text.push_str(&format!(" (written as {written}, read as {read})"));
            } else {
                text.push_str(&format!(
                    " (field {} written as {written}, read as {read})",
                    path.join(".")
                ));
            }
        }
    }
    text
}

/// The source's name of a field: the column or struct field name the Avro
/// name was sanitised from, else the Avro name.
fn original_name(field: &Json) -> String {
    ["tributary.column", "tributary.field", "name"]
        .iter()
        .find_map(|key| field[*key].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The innermost pair of struct field types that makes `writer` unreadable
/// as `reader`: descends through nullable unions, arrays and records into
/// the first reader field that cannot read its writer field, appending its
/// name to `path`. `None` when no nested field explains the failure (the
/// types themselves differ).
fn nested_mismatch<'a>(
    writer: &'a Json,
    reader: &'a Json,
    path: &mut Vec<String>,
) -> Option<(&'a Json, &'a Json)> {
    let (w, r) = (non_null(writer), non_null(reader));
    if w["type"] == "array" && r["type"] == "array" {
        return nested_mismatch(&w["items"], &r["items"], path);
    }
    if w["type"] != "record" || r["type"] != "record" {
        return None;
    }
    for reader_field in r["fields"].as_array().into_iter().flatten() {
        let Some(writer_field) = reader_field["name"]
            .as_str()
            .and_then(|name| find_field(w, name, &[]))
        else {
            continue;
        };
        let (written, read) = (&writer_field["type"], &reader_field["type"]);
        if !readable(written, read) {
            path.push(original_name(reader_field));
            return Some(nested_mismatch(written, read, path).unwrap_or((written, read)));
        }
    }
    None
}

/// `T` of a nullable union `["null", T]`; anything else as it is.
fn non_null(schema: &Json) -> &Json {
    match schema.as_array().map(Vec::as_slice) {
        Some([null, inner]) if null == "null" => inner,
        _ => schema,
    }
}

/// The field of a record schema named `name` or one of `aliases`.
fn find_field<'a>(record: &'a Json, name: &str, aliases: &[&str]) -> Option<&'a Json> {
    let fields = record["fields"].as_array()?;
    fields.iter().find(|f| f["name"] == name).or_else(|| {
        fields
            .iter()
            .find(|f| f["name"].as_str().is_some_and(|n| aliases.contains(&n)))
    })
}

/// Columns (matched like [`describe_change`]) whose decimal type differs,
/// the decimal anywhere in the type (a list's elements, a struct's fields);
/// a change inside a struct names the field's path.
fn decimal_changes(old: &TableSchema, new: &TableSchema) -> Vec<String> {
    let mut changes = Vec::new();
    for column in &new.columns {
        let Some(before) = old.columns.iter().find(|c| same_column(c, column)) else {
            continue;
        };
        let mut found = Vec::new();
        nested_decimal_changes(
            &column.name,
            &before.data_type,
            &column.data_type,
            &mut found,
        );
        for (path, was, now) in found {
            changes.push(if path == column.name {
                format!(
                    "column {}: {} → {}",
                    column.name, before.data_type, column.data_type
                )
            } else {
                format!("column {}: field {path}: {was} → {now}", column.name)
            });
        }
    }
    changes
}

/// Whether a decimal is anywhere in `data_type`.
fn has_decimal(data_type: &ColumnType) -> bool {
    match data_type {
        ColumnType::Decimal { .. } => true,
        ColumnType::List { element } => has_decimal(element),
        ColumnType::Struct { fields } => fields.iter().any(|f| has_decimal(&f.data_type)),
        _ => false,
    }
}

/// The (path, old type, new type) of every decimal change between `old`
/// and `new` at `path`: lists and structs (fields matched by name) are
/// descended so the innermost changed field is named.
fn nested_decimal_changes<'a>(
    path: &str,
    old: &'a ColumnType,
    new: &'a ColumnType,
    out: &mut Vec<(String, &'a ColumnType, &'a ColumnType)>,
) {
    match (old, new) {
        (ColumnType::List { element: a }, ColumnType::List { element: b }) => {
            nested_decimal_changes(path, a, b, out);
        }
        (ColumnType::Struct { fields: a }, ColumnType::Struct { fields: b }) => {
            for field in b {
                if let Some(was) = a.iter().find(|f| f.name == field.name) {
                    let child = format!("{path}.{}", field.name);
                    nested_decimal_changes(&child, &was.data_type, &field.data_type, out);
                }
            }
        }
        _ if (has_decimal(old) || has_decimal(new)) && old != new => {
            out.push((path.to_string(), old, new));
        }
        _ => {}
    }
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
            let mut nested = Vec::new();
            field_changes(
                &column.name,
                &before.data_type,
                &column.data_type,
                &mut nested,
            );
            // A struct's source type (`object`) rarely changes with its
            // fields: then the field changes alone say what happened.
            if nested.is_empty() || before.source_type != column.source_type {
                changes.push(format!(
                    "column {}: type {} → {}",
                    column.name, before.source_type, column.source_type
                ));
            }
            changes.extend(nested);
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

/// Changes inside the struct fields of a column at `path` (lists are
/// descended, their elements share the list's path): fields dropped, added
/// and retyped, each named by its dotted path. Nothing for a change of a
/// column's own, non-struct type (the caller words that).
fn field_changes(path: &str, old: &ColumnType, new: &ColumnType, out: &mut Vec<String>) {
    match (old, new) {
        (ColumnType::List { element: a }, ColumnType::List { element: b }) => {
            field_changes(path, a, b, out);
        }
        (ColumnType::Struct { fields: a }, ColumnType::Struct { fields: b }) => {
            for field in a {
                if !b.iter().any(|f| f.name == field.name) {
                    out.push(format!("dropped field {path}.{}", field.name));
                }
            }
            for field in b {
                let child = format!("{path}.{}", field.name);
                match a.iter().find(|f| f.name == field.name) {
                    None => out.push(format!(
                        "added field {child} ({}, nullable)",
                        field.data_type
                    )),
                    Some(was) if was.data_type != field.data_type => {
                        let before = out.len();
                        field_changes(&child, &was.data_type, &field.data_type, out);
                        if out.len() == before {
                            out.push(format!(
                                "field {child}: type {} → {}",
                                was.data_type, field.data_type
                            ));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::avro_schema::avro_schema;
    use crate::schema::ColumnType;
    use Compatibility::{
        Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive,
    };

    const NONE: Compatibility = Compatibility::None;

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

    /// `public.t (id int8 primary key, <extra>)`.
    fn table(extra: Vec<ColumnSchema>) -> TableSchema {
        let mut columns = vec![id()];
        columns.extend(extra);
        TableSchema::new("public", "t", columns, vec![0])
    }

    fn int4(name: &str, nullable: bool, id: u32) -> ColumnSchema {
        col(name, ColumnType::Int32, "int4", nullable, id)
    }

    fn int8(name: &str, nullable: bool, id: u32) -> ColumnSchema {
        col(name, ColumnType::Int64, "int8", nullable, id)
    }

    fn text(name: &str, nullable: bool, id: u32) -> ColumnSchema {
        col(name, ColumnType::Text, "text", nullable, id)
    }

    /// Avro schemas of `versions` (each with the earlier ones for aliases,
    /// as the registry derives them).
    fn avro(versions: &[&TableSchema]) -> Vec<String> {
        versions
            .iter()
            .enumerate()
            .map(|(i, t)| avro_schema("ns", t, &versions[..i]).unwrap())
            .collect()
    }

    /// Checks the last of `versions` against the others under `mode`.
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

    /// The modes under which the last of `versions` passes.
    fn passes(versions: &[&TableSchema]) -> Vec<Compatibility> {
        [
            Backward,
            BackwardTransitive,
            Forward,
            ForwardTransitive,
            Full,
            FullTransitive,
            NONE,
        ]
        .into_iter()
        .filter(|&mode| run(mode, versions).is_ok())
        .collect()
    }

    const ALL: [Compatibility; 7] = [
        Backward,
        BackwardTransitive,
        Forward,
        ForwardTransitive,
        Full,
        FullTransitive,
        NONE,
    ];

    #[test]
    fn first_version_and_unchanged_shape_pass_every_mode() {
        let v1 = table(vec![int4("a", false, 2)]);
        let text = avro(&[&v1]).remove(0);
        for mode in ALL {
            assert_eq!(check(mode, (&v1, &text), &[]), Ok(()));
        }
        assert_eq!(passes(&[&v1, &v1]), ALL);
        assert!(describe_change(&v1, &v1).is_empty());
    }

    #[test]
    fn add_nullable_column_is_fully_compatible() {
        let v1 = table(vec![int4("a", true, 2)]);
        let v2 = table(vec![int4("a", true, 2), text("b", true, 3)]);
        assert_eq!(passes(&[&v1, &v2]), ALL);
        assert_eq!(
            describe_change(&v1, &v2),
            vec!["added column b (text, nullable)"]
        );
    }

    #[test]
    fn add_not_null_column_needs_a_constant_default() {
        let v1 = table(vec![int4("a", true, 2)]);
        let mut v2 = table(vec![int4("a", true, 2), text("b", false, 3)]);
        // No default: new readers have nothing to fill `b` with in old data.
        assert_eq!(passes(&[&v1, &v2]), [Forward, ForwardTransitive, NONE]);
        let problems = run(Backward, &[&v1, &v2]).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "consumers on the new version cannot read data written with version 1: Incompatible schemata! Field 'b' in reader schema must have a default value"
            ]
        );
        // A constant default becomes the Avro default.
        v2.columns[2].default = Some("'none'::text".into());
        assert_eq!(passes(&[&v1, &v2]), ALL);
        assert_eq!(
            describe_change(&v1, &v2),
            vec!["added column b (text, NOT NULL, default 'none'::text)"]
        );
        // A volatile default is not a value Avro can hold.
        v2.columns[2] = col("b", ColumnType::TimestampTz, "timestamptz", false, 3);
        v2.columns[2].default = Some("now()".into());
        assert!(run(Backward, &[&v1, &v2]).is_err());
    }

    #[test]
    fn drop_column() {
        let v1 = table(vec![int4("a", true, 2), text("b", true, 3)]);
        let v2 = table(vec![int4("a", true, 2)]);
        // Old readers fill the dropped nullable column with its default null.
        assert_eq!(passes(&[&v1, &v2]), ALL);
        assert_eq!(describe_change(&v1, &v2), vec!["dropped column b"]);
        // A NOT NULL column without default: old readers cannot fill it.
        let strict = table(vec![int4("a", true, 2), text("b", false, 3)]);
        assert_eq!(
            passes(&[&strict, &v2]),
            [Backward, BackwardTransitive, NONE]
        );
        let problems = run(Forward, &[&strict, &v2]).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "consumers on version 1 cannot read data written with the new version: Incompatible schemata! Field 'b' in reader schema must have a default value"
            ]
        );
    }

    #[test]
    fn widening_and_narrowing() {
        let int = table(vec![int4("a", false, 2)]);
        let long = table(vec![int8("a", false, 2)]);
        // int4 → int8: int promotes to long (BACKWARD); long data cannot
        // be read as int (FORWARD).
        assert_eq!(passes(&[&int, &long]), [Backward, BackwardTransitive, NONE]);
        // int8 → int4: the reverse.
        assert_eq!(passes(&[&long, &int]), [Forward, ForwardTransitive, NONE]);
        let problems = run(Backward, &[&long, &int]).unwrap_err();
        assert_eq!(problems.len(), 1);
        let problem = &problems[0];
        assert!(
            problem.starts_with(
                "consumers on the new version cannot read data written with version 1: Incompatible schemata! Field 'a' in reader schema does not match the type in the writer schema: Incompatible schema types! The readers_schema should have been"
            ),
            "{problem}"
        );
        assert!(
            problem.ends_with(r#"(written as "long", read as "int")"#),
            "{problem}"
        );
        assert_eq!(
            describe_change(&long, &int),
            vec!["column a: type int8 → int4"]
        );
        // Promotion works inside the nullable union too.
        let int_null = table(vec![int4("a", true, 2)]);
        let long_null = table(vec![int8("a", true, 2)]);
        assert!(run(Backward, &[&int_null, &long_null]).is_ok());
        assert!(run(Backward, &[&long_null, &int_null]).is_err());
    }

    #[test]
    fn incompatible_type_changes() {
        let txt = table(vec![text("a", false, 2)]);
        let int = table(vec![int4("a", false, 2)]);
        assert_eq!(passes(&[&txt, &int]), [NONE]);
        assert_eq!(passes(&[&int, &txt]), [NONE]);
        let list = table(vec![col(
            "a",
            ColumnType::List {
                element: Box::new(ColumnType::Int32),
            },
            "_int4",
            false,
            2,
        )]);
        let problems = run(Backward, &[&int, &list]).unwrap_err();
        assert!(
            problems[0].ends_with(
                r#"(written as "int", read as {"items":["null","int"],"type":"array"})"#
            ),
            "{problems:?}"
        );
        // timestamp → timestamptz changes meaning: not resolvable.
        let local = table(vec![col("a", ColumnType::Timestamp, "timestamp", true, 2)]);
        let utc = table(vec![col(
            "a",
            ColumnType::TimestampTz,
            "timestamptz",
            true,
            2,
        )]);
        assert_eq!(passes(&[&local, &utc]), [NONE]);
        // text → uuid and back: a uuid is read as a string and vice versa.
        let uuid = table(vec![col("a", ColumnType::Text, "uuid", true, 2)]);
        let txt_null = table(vec![text("a", true, 2)]);
        assert_eq!(passes(&[&txt_null, &uuid]), ALL);
        assert_eq!(
            describe_change(&txt_null, &uuid),
            vec!["column a: type text → uuid"]
        );
    }

    #[test]
    fn decimals() {
        let dec = |p, s| ColumnType::Decimal {
            precision: p,
            scale: s,
        };
        let v1 = table(vec![col("p", dec(10, 2), "numeric(10,2)", true, 2)]);
        // apache-avro alone calls identical decimals incompatible.
        let same = table(vec![
            col("p", dec(10, 2), "numeric(10,2)", true, 2),
            text("q", true, 3),
        ]);
        assert_eq!(passes(&[&v1, &same]), ALL);
        let rescaled = table(vec![col("p", dec(12, 4), "numeric(12,4)", true, 2)]);
        assert_eq!(passes(&[&v1, &rescaled]), [NONE]);
        let problems = run(Backward, &[&v1, &rescaled]).unwrap_err();
        assert_eq!(
            problems,
            vec![
                "column p: decimal(10,2) → decimal(12,4): readers decode decimals with their own schema's scale (version 1)"
            ]
        );
        let list = |s| ColumnType::List {
            element: Box::new(dec(10, s)),
        };
        let l1 = table(vec![col("p", list(2), "_numeric", true, 2)]);
        let l2 = table(vec![col("p", list(3), "_numeric", true, 2)]);
        assert_eq!(passes(&[&l1, &l1]), ALL);
        assert_eq!(passes(&[&l1, &l2]), [NONE]);
        // decimal → text would pass as bytes → string; it is refused.
        let as_text = table(vec![text("p", true, 2)]);
        assert_eq!(passes(&[&v1, &as_text]), [NONE]);
    }

    fn doc(fields: &[(&str, ColumnType)]) -> ColumnType {
        ColumnType::Struct {
            fields: fields
                .iter()
                .map(|(name, data_type)| crate::schema::StructField {
                    name: (*name).into(),
                    data_type: data_type.clone(),
                })
                .collect(),
        }
    }

    fn object(name: &str, ty: ColumnType, nullable: bool, id: u32) -> ColumnSchema {
        col(name, ty, "object", nullable, id)
    }

    #[test]
    fn struct_fields_added_or_dropped() {
        let address = |extra: &[(&str, ColumnType)]| {
            let mut fields = vec![("city", ColumnType::Text)];
            fields.extend_from_slice(extra);
            doc(&[("name", ColumnType::Text), ("address", doc(&fields))])
        };
        for nullable in [true, false] {
            let v1 = table(vec![object("d", address(&[]), nullable, 2)]);
            let v2 = table(vec![object(
                "d",
                address(&[("zip", ColumnType::Int32)]),
                nullable,
                2,
            )]);
            // Struct fields are nullable with default null: readers fill a
            // field they do not find, whichever side added it.
            assert_eq!(passes(&[&v1, &v2]), ALL, "nullable {nullable}");
            assert_eq!(passes(&[&v2, &v1]), ALL, "nullable {nullable}");
            assert_eq!(
                describe_change(&v1, &v2),
                vec!["added field d.address.zip (int32, nullable)"]
            );
            assert_eq!(
                describe_change(&v2, &v1),
                vec!["dropped field d.address.zip"]
            );
        }
        // A struct in a list evolves the same way; a rename of the column
        // (so of its record's derived name) is still a rename.
        let list = |ty| ColumnType::List {
            element: Box::new(ty),
        };
        let l1 = table(vec![object("items", list(address(&[])), true, 2)]);
        let l2 = table(vec![object(
            "lines",
            list(address(&[("zip", ColumnType::Int32)])),
            true,
            2,
        )]);
        assert_eq!(passes(&[&l1, &l2]), ALL);
        assert_eq!(
            describe_change(&l1, &l2),
            vec![
                "renamed column items to lines",
                "added field lines.address.zip (int32, nullable)"
            ]
        );
    }

    #[test]
    fn struct_field_type_changes_name_the_field() {
        let with_zip = |zip: ColumnType| {
            table(vec![object(
                "d",
                doc(&[
                    ("name", ColumnType::Text),
                    ("address", doc(&[("zip", zip)])),
                ]),
                true,
                2,
            )])
        };
        let int = with_zip(ColumnType::Int32);
        let txt = with_zip(ColumnType::Text);
        let long = with_zip(ColumnType::Int64);
        assert_eq!(passes(&[&int, &txt]), [NONE]);
        let problems = run(Backward, &[&int, &txt]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "consumers on the new version cannot read data written with version 1: Incompatible schemata! Field 'd' in reader schema does not match the type in the writer schema"
            ),
            "{problems:?}"
        );
        assert!(
            problems[0].ends_with(
                r#"(field d.address.zip written as ["null","int"], read as ["null","string"])"#
            ),
            "{problems:?}"
        );
        assert_eq!(
            describe_change(&int, &txt),
            vec!["field d.address.zip: type int32 → text"]
        );
        // Promotions resolve inside structs too.
        assert_eq!(passes(&[&int, &long]), [Backward, BackwardTransitive, NONE]);
        let problems = run(Forward, &[&int, &long]).unwrap_err();
        assert!(
            problems[0].ends_with(
                r#"(field d.address.zip written as ["null","long"], read as ["null","int"])"#
            ),
            "{problems:?}"
        );
        // A field that becomes a struct: the field is named, with both types.
        let nested = with_zip(doc(&[("code", ColumnType::Text)]));
        let problems = run(Backward, &[&txt, &nested]).unwrap_err();
        assert!(
            problems[0].contains(
                "(field d.address.zip written as [\"null\",\"string\"], read as [\"null\",{"
            ),
            "{problems:?}"
        );
        // Decimals inside structs keep their own rule, naming the field.
        let dec = |scale| {
            with_zip(ColumnType::Decimal {
                precision: 10,
                scale,
            })
        };
        assert_eq!(passes(&[&dec(2), &dec(2)]), ALL);
        assert_eq!(
            run(Backward, &[&dec(2), &dec(3)]).unwrap_err(),
            vec![
                "column d: field d.address.zip: decimal(10,2) → decimal(10,3): readers decode decimals with their own schema's scale (version 1)"
            ]
        );
        // Struct to scalar and back: the column's own types differ.
        let flat = table(vec![text("d", true, 2)]);
        let problems = run(Backward, &[&int, &flat]).unwrap_err();
        assert!(
            problems[0].contains("(written as [\"null\",{"),
            "{problems:?}"
        );
        assert_eq!(
            describe_change(&int, &flat),
            vec!["column d: type object → text"]
        );
    }

    #[test]
    fn nullability_changes() {
        let nullable = table(vec![int4("a", true, 2)]);
        let required = table(vec![int4("a", false, 2)]);
        // NOT NULL → nullable: the new union reads every old int; old
        // readers cannot read a null.
        assert_eq!(
            passes(&[&required, &nullable]),
            [Backward, BackwardTransitive, NONE]
        );
        assert_eq!(
            describe_change(&required, &nullable),
            vec!["column a: now nullable"]
        );
        // nullable → NOT NULL: the reverse.
        assert_eq!(
            passes(&[&nullable, &required]),
            [Forward, ForwardTransitive, NONE]
        );
        let problems = run(Backward, &[&nullable, &required]).unwrap_err();
        assert!(
            problems[0].ends_with(
                r#"no Avro resolution rule reads the writer's type as the reader's (written as ["null","int"], read as "int")"#
            ),
            "{problems:?}"
        );
        assert_eq!(
            describe_change(&nullable, &required),
            vec!["column a: now NOT NULL"]
        );
    }

    #[test]
    fn rename_of_a_nullable_column() {
        let v1 = table(vec![int4("a", true, 2)]);
        let v2 = table(vec![int4("b", true, 2)]);
        // BACKWARD through the alias; FORWARD because old readers fill the
        // `a` they no longer find with its default null.
        assert_eq!(passes(&[&v1, &v2]), ALL);
        assert_eq!(describe_change(&v1, &v2), vec!["renamed column a to b"]);
    }

    #[test]
    fn rename_of_a_not_null_column() {
        let v1 = table(vec![int4("a", false, 2)]);
        let v2 = table(vec![int4("b", false, 2)]);
        // The new reader's alias `a` finds the old field: BACKWARD. The old
        // reader has no alias for `b` (apache-avro, like the spec, ignores
        // the writer's aliases) and no default for `a`: not FORWARD.
        assert_eq!(passes(&[&v1, &v2]), [Backward, BackwardTransitive, NONE]);
        assert_eq!(
            run(Forward, &[&v1, &v2]).unwrap_err(),
            vec![
                "consumers on version 1 cannot read data written with the new version: Incompatible schemata! Field 'a' in reader schema must have a default value"
            ]
        );
        // Without column ids it is a drop and an add (no alias).
        let mut a = v1.clone();
        a.columns[1].id = None;
        let mut b = v2.clone();
        b.columns[1].id = None;
        assert_eq!(passes(&[&a, &b]), [NONE]);
        assert_eq!(
            describe_change(&a, &b),
            vec!["dropped column a", "added column b (int4, NOT NULL)"]
        );
        // Renamed twice: both earlier names are aliases, so transitive
        // BACKWARD holds against version 1 too.
        let v3 = table(vec![int4("c", false, 2)]);
        assert_eq!(
            passes(&[&v1, &v2, &v3]),
            [Backward, BackwardTransitive, NONE]
        );
    }

    #[test]
    fn transitive_modes_check_every_version() {
        // v1: a int4 NOT NULL; v2: a dropped; v3: a re-added as text
        // (a new column: new attnum, so no alias).
        let v1 = table(vec![int4("a", false, 2)]);
        let v2 = table(vec![]);
        let v3 = table(vec![text("a", false, 3)]);
        assert_eq!(passes(&[&v1, &v2]), [Backward, BackwardTransitive, NONE]);
        // v3 against v2: a NOT NULL column without default was added
        // (not BACKWARD); v2 readers ignore it (FORWARD). Against v1, the
        // v1 reader's `a` is an int and v3 writes a string.
        assert_eq!(passes(&[&v1, &v2, &v3]), [Forward, NONE]);
        let problems = run(FullTransitive, &[&v1, &v2, &v3]).unwrap_err();
        // Both directions against v1, BACKWARD against v2.
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "consumers on the new version cannot read data written with version 1:"
            )
        );
        assert!(problems[0].ends_with(r#"(written as "int", read as "string")"#));
        assert!(
            problems[1].starts_with(
                "consumers on version 1 cannot read data written with the new version:"
            )
        );
        assert!(
            problems[2].starts_with(
                "consumers on the new version cannot read data written with version 2:"
            )
        );
        // Re-added as nullable: fine against v2 in both directions, but
        // neither direction resolves int against string: FULL passes,
        // every transitive mode fails.
        let v3n = table(vec![text("a", true, 3)]);
        assert_eq!(passes(&[&v1, &v2, &v3n]), [Backward, Forward, Full, NONE]);
        let problems = run(BackwardTransitive, &[&v1, &v2, &v3n]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "consumers on the new version cannot read data written with version 1:"
            ),
            "{problems:?}"
        );
        assert!(
            problems[0].ends_with(r#"(written as "int", read as ["null","string"])"#),
            "{problems:?}"
        );
    }

    #[test]
    fn describe_table_level_changes() {
        let v1 = table(vec![int4("a", false, 2), text("k", false, 3)]);
        let mut rekeyed = v1.clone();
        rekeyed.key = vec![0, 2];
        assert_eq!(
            describe_change(&v1, &rekeyed),
            vec!["key changed from (id) to (id, k)"]
        );
        let old = v1.clone().with_source_id(Some(123));
        let recreated = v1.clone().with_source_id(Some(456));
        assert_eq!(
            describe_change(&old, &recreated),
            vec!["table recreated (source id 123 → 456)"]
        );
        let mut renamed = old.clone();
        renamed.name = "t2".into();
        assert_eq!(
            describe_change(&old, &renamed),
            vec!["table renamed from public.t to public.t2"]
        );
        // Several changes at once, in a stable order.
        let mut many = v1.clone();
        many.columns[1] = int8("a2", true, 2);
        many.columns.push(text("c", true, 4));
        many.columns.remove(2);
        many.key = vec![0];
        assert_eq!(
            describe_change(&v1, &many),
            vec![
                "dropped column k",
                "renamed column a to a2",
                "column a2: type int4 → int8",
                "column a2: now nullable",
                "added column c (text, nullable)",
            ]
        );
        // Matched by name when ids are missing.
        let mut no_ids = v1.clone();
        no_ids.columns.iter_mut().for_each(|c| c.id = None);
        let mut no_ids_2 = no_ids.clone();
        no_ids_2.columns[1].data_type = ColumnType::Int64;
        no_ids_2.columns[1].source_type = "int8".into();
        assert_eq!(
            describe_change(&no_ids, &no_ids_2),
            vec!["column a: type int4 → int8"]
        );
    }
}
