//! MongoDB documents → lake rows: a collection's inferred shape
//! (`tributary_mongodb::CollectionShape`) as a [`TableSchema`], and each
//! document as a row of it.
//!
//! Sits between the MongoDB source's events/snapshot scans and the
//! envelope. Columns, in order:
//!
//! | column | lake type | holds |
//! |---|---|---|
//! | `_id` (key) | text | the `_id` as canonical Extended JSON (`{"$oid":"…"}`, `{"$numberInt":"7"}`): one stable key text whatever type the `_id`s have |
//! | one per field seen | by type (below) | the field, converted to the type the shape gave it; `null` when absent |
//! | `_doc` | text | the whole document as canonical Extended JSON: nothing is lost to inference |
//!
//! | BSON (inferred) | lake |
//! |---|---|
//! | bool, int32, int64, double | bool, int32, int64, float64 |
//! | decimal128 | text (its canonical string: 34 digits and an exponent exceed decimal(38)) |
//! | string, ObjectId (hex), UUID (binary subtype 4, `8-4-4-4-12`) | text |
//! | date | timestamptz (ms → µs) |
//! | timestamp | int64 (`seconds << 32 | increment`) |
//! | binary | binary |
//! | embedded document | struct of its fields |
//! | array | list of the widened element type |
//! | mixed types, regex, MinKey/MaxKey, JavaScript… | text (Extended JSON) |
//!
//! Each column's `source_type` records the inferred BSON type (JSON of
//! `FieldType`), so a restarted source rebuilds the shape from the registry
//! instead of re-deriving it from scratch.

use std::sync::Arc;

use tributary_mongodb::bson::{Bson, Document, spec::BinarySubtype};
use tributary_mongodb::{CollectionShape, FieldType, extended_json, extended_json_value};

use crate::envelope::{Row, Value};
use crate::schema::{ColumnSchema, ColumnType, StructField, TableSchema};

/// The key column.
pub const ID_COLUMN: &str = "_id";
/// The whole-document column.
pub const DOC_COLUMN: &str = "_doc";

/// The lake type of an inferred field type.
pub fn column_type(field: &FieldType) -> ColumnType {
    match field {
        FieldType::Bool => ColumnType::Bool,
        FieldType::Int32 => ColumnType::Int32,
        FieldType::Int64 | FieldType::Timestamp => ColumnType::Int64,
        FieldType::Double => ColumnType::Float64,
        FieldType::DateTime => ColumnType::TimestampTz,
        FieldType::Binary => ColumnType::Binary,
        FieldType::Document(fields) => ColumnType::Struct {
            fields: fields
                .iter()
                .map(|(name, ty)| StructField {
                    name: name.clone(),
                    data_type: column_type(ty),
                })
                .collect(),
        },
        FieldType::Array(item) => ColumnType::List {
            element: Box::new(column_type(item)),
        },
        FieldType::Null
        | FieldType::Decimal128
        | FieldType::String
        | FieldType::ObjectId
        | FieldType::Uuid
        | FieldType::Json => ColumnType::Text,
    }
}

/// Column ids of a collection's fields. A field keeps its id while its
/// inferred type stays; when the type changes (widening), the column gets a
/// new id, so the bronze merge (columns by id) treats it as a new column:
/// rows written before the change show `null` in it until they change
/// again, and never a value of the old type under the new one. `_doc`
/// always holds every value.
#[derive(Debug, Clone, Default)]
pub struct ColumnIds {
    ids: std::collections::HashMap<String, (u32, FieldType)>,
    next: u32,
}

impl ColumnIds {
    /// The ids a registered table used (to continue after a restart).
    pub fn of(table: &TableSchema) -> ColumnIds {
        let mut ids = ColumnIds::default();
        for column in &table.columns {
            if let (Some(id), Ok(ty)) = (
                column.id,
                serde_json::from_str::<FieldType>(&column.source_type),
            ) {
                ids.ids.insert(column.name.clone(), (id, ty));
            }
            ids.next = ids.next.max(column.id.unwrap_or(0));
        }
        ids
    }

    fn id(&mut self, name: &str, ty: &FieldType) -> u32 {
        // 1 and 2 are `_id` and `_doc`.
        self.next = self.next.max(2);
        match self.ids.get(name) {
            Some((id, known)) if known == ty => *id,
            _ => {
                self.next += 1;
                self.ids.insert(name.to_string(), (self.next, ty.clone()));
                self.next
            }
        }
    }
}

/// The table of a collection with `shape`.
pub fn table_schema(
    database: &str,
    collection: &str,
    shape: &CollectionShape,
    ids: &mut ColumnIds,
) -> TableSchema {
    let mut columns = vec![ColumnSchema {
        name: ID_COLUMN.to_string(),
        data_type: ColumnType::Text,
        source_type: "\"id_extended_json\"".to_string(),
        nullable: false,
        id: Some(1),
        default: None,
    }];
    for (name, ty) in &shape.fields {
        if name == ID_COLUMN || name == DOC_COLUMN {
            continue;
        }
        columns.push(ColumnSchema {
            name: name.clone(),
            data_type: column_type(ty),
            source_type: serde_json::to_string(ty).expect("field types serialize"),
            nullable: true,
            id: Some(ids.id(name, ty)),
            default: None,
        });
    }
    columns.push(ColumnSchema {
        name: DOC_COLUMN.to_string(),
        data_type: ColumnType::Text,
        source_type: "\"document_extended_json\"".to_string(),
        nullable: true,
        id: Some(2),
        default: None,
    });
    TableSchema::new(database, collection, columns, vec![0])
}

/// The shape a registered table was written with (its columns'
/// `source_type`s), to continue from after a restart.
pub fn shape_of(table: &TableSchema) -> CollectionShape {
    let mut shape = CollectionShape::new();
    shape.fields = table
        .columns
        .iter()
        .filter(|c| c.name != ID_COLUMN && c.name != DOC_COLUMN)
        .filter_map(|c| {
            let ty: FieldType = serde_json::from_str(&c.source_type).ok()?;
            Some((c.name.clone(), ty))
        })
        .collect();
    shape
}

/// `document` as a row of `table` (built from a shape that has observed
/// it). `None` when a value does not fit its column's type.
pub fn document_row(
    table: &Arc<TableSchema>,
    shape: &CollectionShape,
    document: &Document,
) -> Option<Row> {
    let mut row = Vec::with_capacity(table.columns.len());
    for column in &table.columns {
        let value = match column.name.as_str() {
            ID_COLUMN => Value::Text(extended_json_value(document.get(ID_COLUMN)?)),
            DOC_COLUMN => Value::Text(extended_json(document)),
            name => {
                let ty = shape.field(name)?;
                bson_value(ty, &shape.value(document, name)?)?
            }
        };
        row.push(value);
    }
    Some(row)
}

/// A row holding only the key (a delete without a pre-image).
pub fn key_row(table: &TableSchema, id: &Bson) -> Row {
    table
        .columns
        .iter()
        .map(|c| {
            if c.name == ID_COLUMN {
                Value::Text(extended_json_value(id))
            } else {
                Value::Null
            }
        })
        .collect()
}

/// A value already converted to `ty` (see `FieldType::convert`) as a lake value.
pub fn bson_value(ty: &FieldType, value: &Bson) -> Option<Value> {
    Some(match (ty, value) {
        (_, Bson::Null | Bson::Undefined) => Value::Null,
        (FieldType::Bool, Bson::Boolean(b)) => Value::Bool(*b),
        (FieldType::Int32, Bson::Int32(n)) => Value::Int32(*n),
        (FieldType::Int64, Bson::Int64(n)) => Value::Int64(*n),
        (FieldType::Double, Bson::Double(f)) => Value::Float64(*f),
        (FieldType::Decimal128, Bson::Decimal128(d)) => Value::Text(d.to_string()),
        (FieldType::String | FieldType::Json, Bson::String(s)) => Value::Text(s.clone()),
        (FieldType::ObjectId, Bson::ObjectId(id)) => Value::Text(id.to_hex()),
        (FieldType::DateTime, Bson::DateTime(at)) => {
            Value::Timestamp(at.timestamp_millis().checked_mul(1000)?)
        }
        (FieldType::Timestamp, Bson::Timestamp(ts)) => {
            Value::Int64(((u64::from(ts.time) << 32) | u64::from(ts.increment)) as i64)
        }
        (FieldType::Binary, Bson::Binary(bin)) => Value::Bytes(bin.bytes.clone()),
        (FieldType::Uuid, Bson::Binary(bin)) if bin.subtype == BinarySubtype::Uuid => {
            Value::Text(uuid_text(&bin.bytes)?)
        }
        (FieldType::Document(fields), Bson::Document(doc)) => Value::Struct(
            fields
                .iter()
                .map(|(name, ty)| match doc.get(name) {
                    Some(v) => bson_value(ty, v),
                    None => Some(Value::Null),
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        (FieldType::Array(item), Bson::Array(items)) => Value::List(
            items
                .iter()
                .map(|v| bson_value(item, v))
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

/// A value back from its canonical Extended JSON text (cursors, resume
/// tokens).
pub fn bson_from_extended_json(text: &str) -> Option<Bson> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    Bson::try_from(json).ok()
}

/// 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_mongodb::bson::{
        Binary, DateTime, Decimal128, Regex, Timestamp, doc, oid::ObjectId,
    };

    fn row_of(document: &Document) -> (TableSchema, Row) {
        let mut shape = CollectionShape::new();
        assert!(shape.observe(document));
        let table = Arc::new(table_schema(
            "shop",
            "things",
            &shape,
            &mut ColumnIds::default(),
        ));
        let row = document_row(&table, &shape, document).expect("fits its own shape");
        ((*table).clone(), row)
    }

    #[test]
    fn every_bson_type_lands_in_a_typed_column() {
        let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        let uuid = Binary {
            subtype: BinarySubtype::Uuid,
            bytes: (0u8..16).collect(),
        };
        let document = doc! {
            "_id": oid,
            "flag": true,
            "small": 7i32,
            "big": 1i64 << 40,
            "ratio": 0.25f64,
            "price": "12.50".parse::<Decimal128>().unwrap(),
            "name": "é",
            "ref": oid,
            "at": DateTime::from_millis(1_700_000_000_123),
            "ts": Timestamp { time: 5, increment: 2 },
            "blob": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 255] },
            "uuid": uuid,
            "re": Regex { pattern: "^a".into(), options: "i".into() },
            "min": Bson::MinKey,
            "nested": { "x": 1i32, "tags": ["a", "b"] },
            "list": [1i32, 2i32],
            "nothing": Bson::Null,
        };
        let (table, row) = row_of(&document);
        let value = |name: &str| {
            let at = table.columns.iter().position(|c| c.name == name).unwrap();
            (table.columns[at].data_type.clone(), row[at].clone())
        };
        assert_eq!(
            value("_id").1,
            Value::Text(r#"{"$oid":"65a1b2c3d4e5f60718293a4b"}"#.into())
        );
        assert_eq!(value("flag"), (ColumnType::Bool, Value::Bool(true)));
        assert_eq!(value("small"), (ColumnType::Int32, Value::Int32(7)));
        assert_eq!(value("big"), (ColumnType::Int64, Value::Int64(1 << 40)));
        assert_eq!(value("ratio"), (ColumnType::Float64, Value::Float64(0.25)));
        assert_eq!(
            value("price"),
            (ColumnType::Text, Value::Text("12.50".into()))
        );
        assert_eq!(value("name").1, Value::Text("é".into()));
        assert_eq!(
            value("ref").1,
            Value::Text("65a1b2c3d4e5f60718293a4b".into())
        );
        assert_eq!(
            value("at"),
            (
                ColumnType::TimestampTz,
                Value::Timestamp(1_700_000_000_123_000)
            )
        );
        assert_eq!(value("ts").1, Value::Int64((5 << 32) | 2));
        assert_eq!(
            value("blob"),
            (ColumnType::Binary, Value::Bytes(vec![0, 255]))
        );
        assert_eq!(
            value("uuid").1,
            Value::Text("00010203-0405-0607-0809-0a0b0c0d0e0f".into())
        );
        assert_eq!(value("re").0, ColumnType::Text);
        assert!(matches!(value("re").1, Value::Text(t) if t.contains("$regularExpression")));
        assert!(matches!(value("min").1, Value::Text(t) if t.contains("$minKey")));
        assert_eq!(
            value("nested").1,
            Value::Struct(vec![
                Value::Int32(1),
                Value::List(vec![Value::Text("a".into()), Value::Text("b".into())])
            ])
        );
        assert!(matches!(value("nested").0, ColumnType::Struct { .. }));
        assert_eq!(
            value("list").1,
            Value::List(vec![Value::Int32(1), Value::Int32(2)])
        );
        assert_eq!(value("nothing").1, Value::Null);
        let doc_text = match value("_doc").1 {
            Value::Text(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(doc_text, extended_json(&document));
        // The shape comes back from the registered table.
        let mut shape = CollectionShape::new();
        shape.observe(&document);
        let mut fields = shape.fields.clone();
        fields.retain(|(n, _)| n != "_id");
        assert_eq!(shape_of(&table).fields, fields);
    }

    #[test]
    fn widened_shapes_convert_earlier_kinds_of_values() {
        let mut shape = CollectionShape::new();
        let a = doc! { "_id": 1i32, "n": 1i32, "v": "text" };
        let b = doc! { "_id": 2i32, "n": 2.5f64, "v": 3i32, "extra": { "k": 1i32 } };
        let mut ids = ColumnIds::default();
        shape.observe(&a);
        let first = table_schema("shop", "mixed", &shape, &mut ids);
        shape.observe(&b);
        let table = Arc::new(table_schema("shop", "mixed", &shape, &mut ids));
        let id_of = |t: &TableSchema, name: &str| {
            t.columns.iter().find(|c| c.name == name).and_then(|c| c.id)
        };
        // `n` and `v` changed type: new ids; after a restart the same ids.
        assert_ne!(id_of(&first, "n"), id_of(&table, "n"));
        assert_eq!(id_of(&first, "_id"), id_of(&table, "_id"));
        let mut again = ColumnIds::of(&table);
        assert_eq!(table_schema("shop", "mixed", &shape, &mut again), *table);
        let row = document_row(&table, &shape, &a).unwrap();
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "n", "v", "extra", "_doc"]);
        assert_eq!(row[1], Value::Float64(1.0));
        assert_eq!(row[2], Value::Text("\"text\"".into()));
        assert_eq!(row[3], Value::Null);
        assert_eq!(
            key_row(&table, &Bson::Int32(2))[0],
            Value::Text(r#"{"$numberInt":"2"}"#.into())
        );
    }
}
