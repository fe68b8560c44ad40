//! Table schemas as the lake sees them: column names, lake types, keys, and a
//! fingerprint that identifies one shape of a table.
//!
//! Sources build a [`TableSchema`] from their catalog (PostgreSQL: the
//! Relation message plus `pg_type` lookups) and attach it to every envelope.
//! Sinks turn [`ColumnType`] into Arrow/Parquet types. The fingerprint changes
//! whenever the shape changes, and a delta file never mixes fingerprints.

use std::fmt;

use arrow_schema::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The lake type of a column. Every variant maps to exactly one Arrow type
/// ([`ColumnType::arrow_type`]); the README's type table documents the
/// source-type → lake-type mapping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnType {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact decimal with precision ≤ 38 (Arrow Decimal128).
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// UTF-8 text (also JSON, UUID, intervals, network types, money, enums,
    /// numerics wider than 38 digits, and any type without a richer mapping).
    Text,
    Binary,
    /// Days since the Unix epoch.
    Date,
    /// Microseconds since midnight.
    Time,
    /// Microseconds since the Unix epoch, no time zone.
    Timestamp,
    /// Microseconds since the Unix epoch, UTC.
    TimestampTz,
    /// A one-dimensional array of the element type.
    List {
        element: Box<ColumnType>,
    },
    /// A nested record (a MongoDB subdocument): named fields in a fixed
    /// order, every one nullable (a document may omit any of them).
    Struct {
        fields: Vec<StructField>,
    },
}

/// One field of a [`ColumnType::Struct`]. Always nullable: a source that
/// omits the field writes `Value::Null` in its place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StructField {
    pub name: String,
    pub data_type: ColumnType,
}

impl ColumnType {
    /// The Arrow type this column is written as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int16 => DataType::Int16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Text => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ColumnType::List { element } => DataType::List(std::sync::Arc::new(
                arrow_schema::Field::new("item", element.arrow_type(), true),
            )),
            ColumnType::Struct { fields } => DataType::Struct(
                fields
                    .iter()
                    .map(|f| arrow_schema::Field::new(&f.name, f.data_type.arrow_type(), true))
                    .collect(),
            ),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::List { element } => write!(f, "list<{element}>"),
            ColumnType::Struct { fields } => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}: {}", field.name, field.data_type)?;
                }
                f.write_str(">")
            }
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    /// Lake type.
    pub data_type: ColumnType,
    /// The source's own type name (e.g. `numeric(12,2)`, `jsonb`, `my_enum`).
    pub source_type: String,
    pub nullable: bool,
    /// The source's stable identity of the column (PostgreSQL `attnum`): a
    /// rename keeps it, a dropped and re-added column gets a new one. Readers
    /// match columns across schema versions by it (see the merge rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// The column's default expression in the source's SQL (e.g. `0`,
    /// `'new'::text`, `now()`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// The shape of one table at one point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Namespace (PostgreSQL schema, MySQL database).
    pub namespace: String,
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    /// Indexes into `columns` of the columns that identify a row. Empty when
    /// the table has no usable identity (inserts only; updates/deletes fail).
    pub key: Vec<usize>,
    /// The source's identity of the table (PostgreSQL: the relation OID):
    /// the same name with a new id is a table dropped and recreated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<u32>,
    /// Hex SHA-256 over the canonical JSON of namespace, name, columns, key
    /// and source id.
    pub fingerprint: String,
}

impl TableSchema {
    /// Builds a schema and computes its fingerprint.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        columns: Vec<ColumnSchema>,
        key: Vec<usize>,
    ) -> TableSchema {
        let mut schema = TableSchema {
            namespace: namespace.into(),
            name: name.into(),
            columns,
            key,
            source_id: None,
            fingerprint: String::new(),
        };
        schema.fingerprint = schema.compute_fingerprint();
        schema
    }

    /// The same schema with the source's table identity set.
    pub fn with_source_id(mut self, source_id: Option<u32>) -> TableSchema {
        self.source_id = source_id;
        self.fingerprint = self.compute_fingerprint();
        self
    }

    fn compute_fingerprint(&self) -> String {
        let mut canonical = serde_json::json!({
            "namespace": self.namespace,
            "name": self.name,
            "columns": self.columns,
            "key": self.key,
        });
        if let Some(id) = self.source_id {
            canonical["source_id"] = id.into();
        }
        // Keys sorted at every level whatever the build: a dependency (bson)
        // turns on serde_json's `preserve_order` for the whole workspace,
        // which would otherwise change every fingerprint (and so register a
        // new version of every unchanged table) between builds.
        canonical.sort_all_objects();
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        hex::encode(&digest[..16])
    }

    /// `namespace.name`, the table's name in paths, manifests and messages.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// Whether this is the table `schema.table` (no allocation: hot path).
    pub fn is(&self, qualified: &str) -> bool {
        qualified
            .split_once('.')
            .is_some_and(|(s, t)| self.namespace == s && self.name == t)
    }

    /// Names of the key columns.
    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }
}

/// The schema registry subject of a table of `source`, Debezium/Confluent
/// style: `<source>.<schema>.<table>-value`.
pub fn subject_name(source: &str, qualified_table: &str) -> String {
    format!("{source}.{qualified_table}-value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: ColumnType) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type,
            source_type: "x".into(),
            nullable: true,
            id: None,
            default: None,
        }
    }

    #[test]
    fn fingerprint_changes_with_shape_only() {
        let a = TableSchema::new("public", "t", vec![col("id", ColumnType::Int64)], vec![0]);
        let b = TableSchema::new("public", "t", vec![col("id", ColumnType::Int64)], vec![0]);
        let c = TableSchema::new("public", "t", vec![col("id", ColumnType::Int32)], vec![0]);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        // Pinned: SHA-256 of the key-sorted canonical JSON
        // `{"columns":[{"data_type":{"type":"int64"},"name":"id","nullable":true,"source_type":"x"}],"key":[0],"name":"t","namespace":"public"}`,
        // whatever serde_json features the build has.
        assert_eq!(a.fingerprint, "f0b4d06273588442a4ec271541cdd8d8");
    }

    fn doc(fields: &[(&str, ColumnType)]) -> ColumnType {
        ColumnType::Struct {
            fields: fields
                .iter()
                .map(|(name, data_type)| StructField {
                    name: (*name).into(),
                    data_type: data_type.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn struct_fields_are_part_of_the_shape() {
        let shape = |ty: ColumnType| TableSchema::new("db", "t", vec![col("d", ty)], vec![]);
        let a = shape(doc(&[("x", ColumnType::Int32)]));
        assert_eq!(
            a.fingerprint,
            shape(doc(&[("x", ColumnType::Int32)])).fingerprint
        );
        for other in [
            doc(&[("x", ColumnType::Int64)]),
            doc(&[("y", ColumnType::Int32)]),
            doc(&[("x", ColumnType::Int32), ("y", ColumnType::Text)]),
            doc(&[]),
        ] {
            assert_ne!(a.fingerprint, shape(other).fingerprint);
        }
    }

    #[test]
    fn struct_serde_form_and_old_files() {
        let ty = ColumnType::List {
            element: Box::new(doc(&[
                ("n", ColumnType::Int32),
                ("inner", doc(&[("t", ColumnType::Text)])),
            ])),
        };
        let json = serde_json::to_value(&ty).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "list", "element": {"type": "struct", "fields": [
                {"name": "n", "data_type": {"type": "int32"}},
                {"name": "inner", "data_type": {"type": "struct", "fields": [
                    {"name": "t", "data_type": {"type": "text"}}
                ]}}
            ]}})
        );
        assert_eq!(serde_json::from_value::<ColumnType>(json).unwrap(), ty);
        // Columns written before structs existed read as they did.
        let old: ColumnSchema = serde_json::from_str(
            r#"{"name":"a","data_type":{"type":"list","element":{"type":"decimal","precision":10,"scale":2}},"source_type":"_numeric","nullable":true}"#,
        )
        .unwrap();
        assert_eq!(old.data_type.to_string(), "list<decimal(10,2)>");
        assert_eq!(
            ty.to_string(),
            "list<struct<n: int32, inner: struct<t: text>>>"
        );
    }

    #[test]
    fn struct_arrow_type_has_nullable_children() {
        let ty = doc(&[
            ("n", ColumnType::Int32),
            (
                "l",
                ColumnType::List {
                    element: Box::new(doc(&[("t", ColumnType::Text)])),
                },
            ),
        ]);
        let DataType::Struct(fields) = ty.arrow_type() else {
            panic!("{:?}", ty.arrow_type());
        };
        assert_eq!(fields.len(), 2);
        assert!(fields.iter().all(|f| f.is_nullable()));
        assert_eq!(fields[0].data_type(), &DataType::Int32);
        let DataType::List(item) = fields[1].data_type() else {
            panic!("{:?}", fields[1]);
        };
        assert!(matches!(item.data_type(), DataType::Struct(inner) if inner[0].name() == "t"));
    }
}
