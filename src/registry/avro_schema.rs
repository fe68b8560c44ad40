//! A table shape as an Avro record schema: what the registry stores and
//! serves, and what compatibility is checked on.
//!
//! Sits inside [`super::SchemaRegistry::register`]: a [`TableSchema`] (lake
//! types, source types, nullability, defaults, column ids) becomes one
//! deterministic JSON text, so the same shape always gives the same schema
//! text, id and fingerprints. Mapping:
//!
//! | lake type | Avro |
//! |---|---|
//! | bool | `boolean` |
//! | int16, int32 | `int` |
//! | int64 | `long` |
//! | float32 / float64 | `float` / `double` |
//! | decimal(p,s) | `bytes`, logical `decimal` |
//! | text | `string` (logical `uuid` for source type `uuid`) |
//! | binary | `bytes` |
//! | date | `int`, logical `date` |
//! | time | `long`, logical `time-micros` |
//! | timestamp | `long`, logical `local-timestamp-micros` |
//! | timestamptz | `long`, logical `timestamp-micros` |
//! | list<e> | `array` of `["null", e]` |
//! | struct<f…> | `record` named `<table>_<column>[_<field>…]`, each field `["null", T]` default `null` |
//!
//! A struct's record name is derived from the column path (sanitised, made
//! unique within the schema with `_2`, `_3`… like column names), because
//! Avro requires every named type of a schema to have its own name. Its
//! fields are sanitised like columns, the original kept in
//! `tributary.field`. Record names are only labels here: the compatibility
//! check matches nested records by structure (see [`super::compatibility`]),
//! so renaming a struct column does not make its record incompatible.
//!
//! Nullable columns are `["null", T]` with default `null`. A NOT NULL column
//! whose source default is a constant (`0`, `'x'::text`, `true`) carries it
//! as its Avro default, so adding such a column stays BACKWARD compatible.
//! A column renamed since an earlier version (same column id, another name)
//! lists its earlier names as `aliases`. `apache-avro`'s compatibility check
//! matches a reader field to a writer field through the *reader's* aliases
//! (never the writer's), so a BACKWARD check (new schema reads old data)
//! judges a rename as a rename, while a FORWARD check (old schema reads new
//! data) still sees a drop plus an add (see [`super::compatibility`]).
//! Names that are not valid Avro names are sanitised (`[A-Za-z_][A-Za-z0-9_]*`:
//! other characters become `_`, a leading digit gets a `_` prefix, a name
//! taken by an earlier column gets `_2`, `_3`…), the original kept in
//! `tributary.column`.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};

use super::RegistryError;
use crate::schema::{ColumnSchema, ColumnType, StructField, TableSchema};

/// The Avro schema JSON text of `table` in `namespace`. `previous` are the
/// table's earlier shapes (for rename aliases).
pub fn avro_schema(
    namespace: &str,
    table: &TableSchema,
    previous: &[&TableSchema],
) -> Result<String, RegistryError> {
    let mut used = BTreeSet::new();
    let mut records = RecordNames::new(&table.name);
    let mut fields = Vec::with_capacity(table.columns.len());
    for column in &table.columns {
        let name = unique(avro_name(&column.name), &mut used);
        let mut field = Map::new();
        field.insert("name".into(), json!(name));
        let base = avro_type(column, &mut records);
        if column.nullable {
            field.insert("type".into(), json!(["null", base]));
            field.insert("default".into(), Json::Null);
        } else {
            field.insert("type".into(), base);
            if let Some(default) = column
                .default
                .as_deref()
                .and_then(|d| constant_default(d, &column.data_type))
            {
                field.insert("default".into(), default);
            }
        }
        let aliases = earlier_names(column, previous);
        if !aliases.is_empty() {
            field.insert("aliases".into(), json!(aliases));
        }
        if name != column.name {
            field.insert("tributary.column".into(), json!(column.name));
        }
        field.insert("tributary.source_type".into(), json!(column.source_type));
        if let Some(id) = column.id {
            field.insert("tributary.column_id".into(), json!(id));
        }
        fields.push(Json::Object(field));
    }
    let mut record = Map::new();
    record.insert("type".into(), json!("record"));
    record.insert("name".into(), json!(avro_name(&table.name)));
    record.insert("namespace".into(), json!(avro_namespace(namespace)));
    record.insert("fields".into(), Json::Array(fields));
    record.insert("tributary.key".into(), json!(table.key_names()));
    if let Some(id) = table.source_id {
        record.insert("tributary.source_id".into(), json!(id));
    }
    // Sorted keys, as without serde_json's `preserve_order` (which bson
    // turns on for the whole build): the same shape keeps the same text,
    // and so the same schema id, from one build to the next.
    let mut json = Json::Object(record);
    json.sort_all_objects();
    let text = json.to_string();
    apache_avro::Schema::parse_str(&text).map_err(|e| {
        RegistryError::InvalidSchema(format!(
            "table {}: the derived Avro schema does not parse ({e}): {text}",
            table.qualified_name()
        ))
    })?;
    Ok(text)
}

/// The record names of one schema: every nested record needs a name no
/// other named type of the schema has (the table's record included).
struct RecordNames {
    table: String,
    used: BTreeSet<String>,
}

impl RecordNames {
    fn new(table: &str) -> RecordNames {
        let table = avro_name(table);
        RecordNames {
            used: BTreeSet::from([table.clone()]),
            table,
        }
    }

    /// A fresh record name for the struct at `path` (column, then fields).
    fn claim(&mut self, path: &[&str]) -> String {
        let mut name = self.table.clone();
        for segment in path {
            name.push('_');
            name.push_str(&avro_name(segment));
        }
        unique(name, &mut self.used)
    }
}

fn avro_type(column: &ColumnSchema, records: &mut RecordNames) -> Json {
    field_type(
        &column.data_type,
        &column.source_type,
        &[&column.name],
        records,
    )
}

/// The Avro type of a value of `data_type` found at `path` (column name,
/// then struct field names; list elements share their list's path).
fn field_type(
    data_type: &ColumnType,
    source_type: &str,
    path: &[&str],
    records: &mut RecordNames,
) -> Json {
    match data_type {
        ColumnType::List { element } => json!({
            "type": "array",
            "items": ["null", field_type(element, source_type.trim_start_matches('_'), path, records)]
        }),
        ColumnType::Struct { fields } => struct_record(fields, path, records),
        scalar => scalar_type(scalar, source_type),
    }
}

/// A struct as a named record: every field a `["null", T]` union with
/// default null, because a document may omit any field.
fn struct_record(fields: &[StructField], path: &[&str], records: &mut RecordNames) -> Json {
    let name = records.claim(path);
    let mut used = BTreeSet::new();
    let mut avro_fields = Vec::with_capacity(fields.len());
    for field in fields {
        let field_name = unique(avro_name(&field.name), &mut used);
        let child_path: Vec<&str> = path.iter().copied().chain([field.name.as_str()]).collect();
        let child = field_type(&field.data_type, "", &child_path, records);
        let mut object = Map::new();
        object.insert("name".into(), json!(field_name));
        object.insert("type".into(), json!(["null", child]));
        object.insert("default".into(), Json::Null);
        if field_name != field.name {
            object.insert("tributary.field".into(), json!(field.name));
        }
        avro_fields.push(Json::Object(object));
    }
    json!({"type": "record", "name": name, "fields": avro_fields})
}

/// Avro types of the non-nested lake types (lists and structs go through
/// [`field_type`], which names their records).
fn scalar_type(data_type: &ColumnType, source_type: &str) -> Json {
    match data_type {
        ColumnType::Bool => json!("boolean"),
        ColumnType::Int16 | ColumnType::Int32 => json!("int"),
        ColumnType::Int64 => json!("long"),
        ColumnType::Float32 => json!("float"),
        ColumnType::Float64 => json!("double"),
        ColumnType::Decimal { precision, scale } if *scale >= 0 => json!({
            "type": "bytes", "logicalType": "decimal",
            "precision": precision, "scale": scale
        }),
        ColumnType::Decimal { precision, scale } => json!({
            "type": "bytes", "logicalType": "decimal",
            "precision": precision, "scale": 0, "tributary.scale": scale
        }),
        ColumnType::Text if source_type == "uuid" => {
            json!({"type": "string", "logicalType": "uuid"})
        }
        ColumnType::Text => json!("string"),
        ColumnType::Binary => json!("bytes"),
        ColumnType::Date => json!({"type": "int", "logicalType": "date"}),
        ColumnType::Time => json!({"type": "long", "logicalType": "time-micros"}),
        ColumnType::Timestamp => json!({"type": "long", "logicalType": "local-timestamp-micros"}),
        ColumnType::TimestampTz => json!({"type": "long", "logicalType": "timestamp-micros"}),
        ColumnType::List { .. } | ColumnType::Struct { .. } => {
            unreachable!("nested types are mapped by field_type")
        }
    }
}

/// A source default expression as an Avro default of `data_type`, when it
/// is a constant Avro can hold: numbers, booleans, and quoted strings for
/// string columns, each with an optional `::type` cast.
fn constant_default(expression: &str, data_type: &ColumnType) -> Option<Json> {
    let text = strip_cast(expression.trim());
    let text = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .map(strip_cast)
        .unwrap_or(text);
    match data_type {
        ColumnType::Bool => match text {
            "true" => Some(json!(true)),
            "false" => Some(json!(false)),
            _ => None,
        },
        // PostgreSQL prints negative numbers quoted: `'-3'::integer`.
        ColumnType::Int16 | ColumnType::Int32 => {
            unquote(text).parse::<i32>().ok().map(|v| json!(v))
        }
        ColumnType::Int64 => unquote(text).parse::<i64>().ok().map(|v| json!(v)),
        ColumnType::Float32 | ColumnType::Float64 => unquote(text)
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| json!(v)),
        ColumnType::Text => {
            let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
            if inner.contains('\'') && !inner.contains("''") {
                return None;
            }
            Some(json!(inner.replace("''", "'")))
        }
        _ => None,
    }
}

fn unquote(text: &str) -> &str {
    text.strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(text)
}

/// `'x'::text` → `'x'`; `5::bigint` → `5`.
fn strip_cast(text: &str) -> &str {
    match text.rfind("::") {
        Some(i) if !text[i..].contains('\'') => text[..i].trim(),
        _ => text,
    }
}

/// Names this column (by id) had in earlier shapes, sanitised.
fn earlier_names(column: &ColumnSchema, previous: &[&TableSchema]) -> Vec<String> {
    let Some(id) = column.id else {
        return Vec::new();
    };
    let mut names = BTreeSet::new();
    for table in previous {
        for old in &table.columns {
            if old.id == Some(id) && old.name != column.name {
                names.insert(avro_name(&old.name));
            }
        }
    }
    names.remove(&avro_name(&column.name));
    names.into_iter().collect()
}

/// A valid Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn avro_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A valid Avro namespace: dot-separated Avro names.
fn avro_namespace(namespace: &str) -> String {
    namespace
        .split('.')
        .map(avro_name)
        .collect::<Vec<_>>()
        .join(".")
}

fn unique(name: String, used: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn col(name: &str, ty: ColumnType, nullable: bool, id: u32) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: ty,
            source_type: "int4".into(),
            nullable,
            id: Some(id),
            default: None,
        }
    }

    #[test]
    fn maps_types_and_nullability() {
        let mut price = col(
            "price",
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
            true,
            3,
        );
        price.source_type = "numeric(10,2)".into();
        let mut uid = col("uid", ColumnType::Text, false, 4);
        uid.source_type = "uuid".into();
        let mut n = col("n", ColumnType::Int32, false, 5);
        n.default = Some("7".into());
        let mut s = col("my col", ColumnType::Text, false, 6);
        s.default = Some("'it''s'::text".into());
        let table = TableSchema::new(
            "public",
            "t",
            vec![col("id", ColumnType::Int64, false, 1), price, uid, n, s],
            vec![0],
        );
        let text = avro_schema("tributary.app.public", &table, &[]).unwrap();
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json["name"], "t");
        assert_eq!(json["namespace"], "tributary.app.public");
        let fields = json["fields"].as_array().unwrap();
        assert_eq!(fields[0]["type"], "long");
        assert_eq!(fields[1]["type"][0], "null");
        assert_eq!(fields[1]["type"][1]["logicalType"], "decimal");
        assert_eq!(fields[1]["default"], Json::Null);
        assert_eq!(fields[2]["type"]["logicalType"], "uuid");
        assert_eq!(fields[3]["default"], 7);
        assert_eq!(fields[4]["name"], "my_col");
        assert_eq!(fields[4]["tributary.column"], "my col");
        assert_eq!(fields[4]["default"], "it's");
        assert_eq!(json["tributary.key"], json!(["id"]));
        // Deterministic.
        assert_eq!(
            text,
            avro_schema("tributary.app.public", &table, &[]).unwrap()
        );
    }

    #[test]
    fn renamed_columns_carry_aliases() {
        let v1 = TableSchema::new(
            "public",
            "t",
            vec![col("a", ColumnType::Int32, false, 2)],
            vec![],
        );
        let v2 = TableSchema::new(
            "public",
            "t",
            vec![col("b", ColumnType::Int32, false, 2)],
            vec![],
        );
        let text = avro_schema("ns", &v2, &[&v1]).unwrap();
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json["fields"][0]["aliases"], json!(["a"]));
    }

    #[test]
    fn defaults_only_when_constant() {
        assert_eq!(constant_default("now()", &ColumnType::TimestampTz), None);
        assert_eq!(
            constant_default("nextval('s'::regclass)", &ColumnType::Int64),
            None
        );
        assert_eq!(
            constant_default("'-5'::bigint", &ColumnType::Int64),
            Some(json!(-5))
        );
        assert_eq!(constant_default("'x'::bigint", &ColumnType::Int64), None);
        assert_eq!(
            constant_default("(-3)", &ColumnType::Int32),
            Some(json!(-3))
        );
        assert_eq!(
            constant_default("true", &ColumnType::Bool),
            Some(json!(true))
        );
        assert_eq!(
            constant_default("1.5", &ColumnType::Float64),
            Some(json!(1.5))
        );
        assert_eq!(avro_name("1st col"), "_1st_col");
    }

    #[test]
    fn maps_every_lake_type() {
        let types = [
            (ColumnType::Bool, "bool", json!("boolean")),
            (ColumnType::Int16, "int2", json!("int")),
            (ColumnType::Int32, "int4", json!("int")),
            (ColumnType::Int64, "int8", json!("long")),
            (ColumnType::Float32, "float4", json!("float")),
            (ColumnType::Float64, "float8", json!("double")),
            (
                ColumnType::Decimal {
                    precision: 38,
                    scale: 10,
                },
                "numeric(38,10)",
                json!({"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 10}),
            ),
            (
                ColumnType::Decimal {
                    precision: 5,
                    scale: -2,
                },
                "numeric(5,-2)",
                json!({"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 0, "tributary.scale": -2}),
            ),
            (ColumnType::Text, "jsonb", json!("string")),
            (
                ColumnType::Text,
                "uuid",
                json!({"type": "string", "logicalType": "uuid"}),
            ),
            (ColumnType::Binary, "bytea", json!("bytes")),
            (
                ColumnType::Date,
                "date",
                json!({"type": "int", "logicalType": "date"}),
            ),
            (
                ColumnType::Time,
                "time",
                json!({"type": "long", "logicalType": "time-micros"}),
            ),
            (
                ColumnType::Timestamp,
                "timestamp",
                json!({"type": "long", "logicalType": "local-timestamp-micros"}),
            ),
            (
                ColumnType::TimestampTz,
                "timestamptz",
                json!({"type": "long", "logicalType": "timestamp-micros"}),
            ),
            (
                ColumnType::List {
                    element: Box::new(ColumnType::Text),
                },
                "_uuid",
                json!({"type": "array", "items": ["null", {"type": "string", "logicalType": "uuid"}]}),
            ),
            (
                ColumnType::List {
                    element: Box::new(ColumnType::Int64),
                },
                "_int8",
                json!({"type": "array", "items": ["null", "long"]}),
            ),
        ];
        let columns: Vec<ColumnSchema> = types
            .iter()
            .enumerate()
            .map(|(i, (ty, source, _))| ColumnSchema {
                source_type: source.to_string(),
                ..col(&format!("c{i}"), ty.clone(), false, i as u32 + 1)
            })
            .collect();
        let table =
            TableSchema::new("public", "all_types", columns, vec![0]).with_source_id(Some(16384));
        let text = avro_schema("tributary.pg.public", &table, &[]).unwrap();
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json["tributary.source_id"], 16384);
        assert_eq!(json["tributary.key"], json!(["c0"]));
        for (i, (_, source, avro)) in types.iter().enumerate() {
            let field = &json["fields"][i];
            assert_eq!(&field["type"], avro, "{source}");
            assert_eq!(field["tributary.source_type"], *source);
            assert_eq!(field["tributary.column_id"], i + 1);
            assert!(field.get("tributary.column").is_none());
            assert!(field.get("default").is_none());
        }
    }

    #[test]
    fn sanitises_and_deduplicates_names() {
        let table = TableSchema::new(
            "my-schema",
            "order items",
            vec![
                col("a b", ColumnType::Int32, true, 1),
                col("a_b", ColumnType::Int32, true, 2),
                col("2nd", ColumnType::Int32, true, 3),
                col("ünits", ColumnType::Int32, true, 4),
            ],
            vec![],
        );
        let text = avro_schema("tributary.app.my-schema", &table, &[]).unwrap();
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json["name"], "order_items");
        assert_eq!(json["namespace"], "tributary.app.my_schema");
        let names: Vec<(&str, Option<&str>)> = json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap(), f["tributary.column"].as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("a_b", Some("a b")),
                ("a_b_2", Some("a_b")),
                ("_2nd", Some("2nd")),
                ("_nits", Some("ünits")),
            ]
        );
        // Nullable fields: a union with null first, default null.
        assert_eq!(json["fields"][0]["type"], json!(["null", "int"]));
        assert_eq!(json["fields"][0]["default"], Json::Null);
        assert!(json["tributary.source_id"].is_null());
    }

    fn field(name: &str, data_type: ColumnType) -> StructField {
        StructField {
            name: name.into(),
            data_type,
        }
    }

    #[test]
    fn structs_are_named_records_of_nullable_fields() {
        let point = ColumnType::Struct {
            fields: vec![field("x", ColumnType::Float64)],
        };
        let doc = ColumnType::Struct {
            fields: vec![
                field("zip code", ColumnType::Int32),
                field("point", point.clone()),
                field(
                    "tags",
                    ColumnType::List {
                        element: Box::new(ColumnType::Text),
                    },
                ),
            ],
        };
        let path = ColumnType::List {
            element: Box::new(point),
        };
        let mut required = col("doc", doc, false, 2);
        required.source_type = "object".into();
        let table = TableSchema::new(
            "db",
            "orders",
            vec![
                col("id", ColumnType::Int64, false, 1),
                required,
                col("path", path, true, 3),
                // Would derive the same name as `doc`'s record: made unique.
                col("doc_point", ColumnType::Struct { fields: vec![] }, true, 4),
            ],
            vec![0],
        );
        let text = avro_schema("tributary.mongo.db", &table, &[]).unwrap();
        apache_avro::Schema::parse_str(&text).unwrap();
        let json: Json = serde_json::from_str(&text).unwrap();
        let nullable = |t: Json| json!({"name": "x", "type": ["null", t], "default": null});
        assert_eq!(
            json["fields"][1]["type"],
            json!({"type": "record", "name": "orders_doc", "fields": [
                {"name": "zip_code", "type": ["null", "int"], "default": null, "tributary.field": "zip code"},
                {"name": "point", "type": ["null", {"type": "record", "name": "orders_doc_point", "fields": [
                    nullable(json!("double"))
                ]}], "default": null},
                {"name": "tags", "type": ["null", {"type": "array", "items": ["null", "string"]}], "default": null},
            ]})
        );
        assert_eq!(json["fields"][1]["tributary.source_type"], "object");
        assert!(json["fields"][1].get("default").is_none());
        assert_eq!(
            json["fields"][2]["type"],
            json!(["null", {"type": "array", "items": ["null", {"type": "record", "name": "orders_path", "fields": [
                nullable(json!("double"))
            ]}]}])
        );
        assert_eq!(
            json["fields"][3]["type"],
            json!(["null", {"type": "record", "name": "orders_doc_point_2", "fields": []}])
        );
        assert_eq!(
            text,
            avro_schema("tributary.mongo.db", &table, &[]).unwrap()
        );
    }

    #[test]
    fn constant_defaults_of_not_null_columns() {
        let cases = [
            (ColumnType::Int32, "0", Some(json!(0))),
            (ColumnType::Int64, "42", Some(json!(42))),
            (ColumnType::Int32, "3000000000", None),
            (ColumnType::Text, "'abc'::text", Some(json!("abc"))),
            (
                ColumnType::Text,
                "'a::b'::character varying",
                Some(json!("a::b")),
            ),
            (ColumnType::Text, "''::text", Some(json!(""))),
            (ColumnType::Bool, "true", Some(json!(true))),
            (ColumnType::Float32, "'NaN'::real", None),
            (ColumnType::Date, "'2024-01-01'::date", None),
            (ColumnType::Int64, "nextval('t_id_seq'::regclass)", None),
            (ColumnType::TimestampTz, "now()", None),
            (ColumnType::Text, "('a'::text || 'b'::text)", None),
        ];
        for (ty, default, want) in cases {
            let mut column = col("c", ty, false, 1);
            column.default = Some(default.into());
            let table = TableSchema::new("public", "t", vec![column], vec![]);
            let json: Json =
                serde_json::from_str(&avro_schema("ns", &table, &[]).unwrap()).unwrap();
            assert_eq!(json["fields"][0].get("default"), want.as_ref(), "{default}");
        }
    }
}
