//! The bronze merge rule, implemented in Rust: deltas + manifests → the
//! current rows of every table.
//!
//! Sits downstream of the lake, beside any warehouse reader: it reads only
//! what the manifests list, exactly as `scripts/lake_merge.py` (DuckDB) and
//! the SQL in the README do, and applies [`crate::sink::MergeRule`]:
//!
//! 1. order every change of a table by `_pos`; the same `_pos` twice (a
//!    replayed flush) is one change, the same `_pos` with different content
//!    is corruption and an error;
//! 2. `t` removes every row of the table with a smaller `_pos`;
//! 3. `d` removes the key;
//! 4. `c`, `u`, `r` set the key's row to the row image, except that a column
//!    named in `_unchanged` keeps the value it had (the latest earlier value
//!    of the same key, after its last `d`/`t`, that was not unchanged; NULL if
//!    there is none);
//! 5. a table without key columns is append-only (each change its own key);
//! 6. columns are matched across schema versions by id ([`current_name`]):
//!    a renamed column keeps its values, a dropped one leaves the table, a
//!    column missing from older files is NULL in their rows.
//!
//! It is the reference the truth tests compare DuckDB against, and what a
//! `tributary lake show` command prints. It loads whole tables into memory:
//! a tool for tests and inspection, not for production-size tables.

use std::collections::{BTreeMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatchReader, StructArray};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::envelope::{Op, Row, Value};
use crate::schema::{ColumnSchema, ColumnType};
use crate::sink::delta_writer::METADATA_COLUMNS;
use crate::sink::{LakeStore, ManifestWriter, SinkError};

/// The merged state of every table of one source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedLake {
    /// Keyed by `namespace.name`.
    pub tables: BTreeMap<String, MergedTable>,
}

impl MergedLake {
    pub fn table(&self, qualified_name: &str) -> Option<&MergedTable> {
        self.tables.get(qualified_name)
    }
}

/// The current rows of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedTable {
    /// Columns of the latest schema seen in the manifests.
    pub columns: Vec<ColumnSchema>,
    pub key_columns: Vec<String>,
    /// One [`Row`] per live key, values in `columns` order (a column absent
    /// from older files is NULL), ordered by the `_pos` of each row's latest
    /// change.
    pub rows: Vec<Row>,
}

impl MergedTable {
    /// Index of column `name` in `columns` (and in each row).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Reads a lake through its manifests and applies the merge rule.
#[derive(Debug, Clone, Copy)]
pub struct BronzeMerge;

/// One change as read back from a delta file.
#[derive(Debug)]
struct Change {
    op: Op,
    values: BTreeMap<String, Value>,
    unchanged: Vec<String>,
    file: String,
}

impl Change {
    fn same_content(&self, other: &Change) -> bool {
        // Debug text compares NaN equal to NaN, which is what we want here.
        self.op == other.op
            && self.unchanged == other.unchanged
            && format!("{:?}", self.values) == format!("{:?}", other.values)
    }
}

/// What the manifests say about one table.
#[derive(Debug, Default)]
struct TableSource {
    columns: Vec<ColumnSchema>,
    key_columns: Vec<String>,
    /// Every file, with the columns of the manifest entry listing it.
    files: Vec<(String, Vec<ColumnSchema>)>,
    /// `last_pos` of the entry `columns` came from.
    last_pos: String,
}

impl BronzeMerge {
    /// Reads every manifest of `source` in sequence order and every file they
    /// list, and merges each table.
    pub async fn load(store: &LakeStore, source: &str) -> Result<MergedLake, SinkError> {
        let manifests = ManifestWriter::new(store.clone(), source);
        let mut tables: BTreeMap<String, TableSource> = BTreeMap::new();
        for (i, seq) in manifests.list().await?.into_iter().enumerate() {
            if seq != i as u64 + 1 {
                return Err(SinkError::corrupt(format!(
                    "manifest log of {source} in {} has a gap: manifest {} is missing; restore it from a backup",
                    store.root_display(),
                    i + 1
                )));
            }
            let manifest = manifests.read(seq).await?;
            for entry in manifest.tables {
                let table = tables.entry(entry.table).or_default();
                // The latest schema is that of the newest changes (one flush
                // may hold several shapes of a table, listed by fingerprint).
                if entry.last_pos >= table.last_pos {
                    table.columns = entry.columns.clone();
                    table.key_columns = entry.key_columns;
                    table.last_pos = entry.last_pos;
                }
                for file in entry.files {
                    if !table.files.iter().any(|(path, _)| *path == file.path) {
                        table.files.push((file.path, entry.columns.clone()));
                    }
                }
            }
        }
        let mut merged = MergedLake::default();
        for (name, table) in tables {
            let changes = read_changes(store, &name, &table.files, &table.columns).await?;
            merged.tables.insert(name, merge_table(table, changes));
        }
        Ok(merged)
    }
}

/// The name a column written with `written` has in the table's latest
/// columns: matched by id when both sides have ids (a rename keeps the id; a
/// dropped and re-added column has a new one), else by name. `None`: the
/// column was dropped since.
pub fn current_name<'a>(written: &ColumnSchema, latest: &'a [ColumnSchema]) -> Option<&'a str> {
    current_column(written, latest).map(|c| c.name.as_str())
}

/// The column of the table's latest columns that a column written with
/// `written` is now (see [`current_name`]).
fn current_column<'a>(
    written: &ColumnSchema,
    latest: &'a [ColumnSchema],
) -> Option<&'a ColumnSchema> {
    let by_id = written.id.is_some() && latest.iter().any(|c| c.id.is_some());
    latest.iter().find(|c| {
        if by_id {
            c.id == written.id
        } else {
            c.name == written.name
        }
    })
}

/// A value written as type `written` in the shape of the column's latest
/// type `latest`: struct fields are matched by name (a field added since is
/// NULL in older rows, a dropped one leaves), through lists too, so rows
/// of every file of a table have the same struct shape — as DuckDB's merge
/// does when it casts a struct by name. Anything else is kept as written.
fn conform(value: Value, written: &ColumnType, latest: &ColumnType) -> Value {
    if written == latest {
        return value;
    }
    match (value, written, latest) {
        (Value::List(items), ColumnType::List { element: w }, ColumnType::List { element: l }) => {
            Value::List(items.into_iter().map(|v| conform(v, w, l)).collect())
        }
        (
            Value::Struct(mut values),
            ColumnType::Struct { fields: w },
            ColumnType::Struct { fields: l },
        ) => Value::Struct(
            l.iter()
                .map(|field| match w.iter().position(|f| f.name == field.name) {
                    Some(j) if j < values.len() => {
                        let v = std::mem::replace(&mut values[j], Value::Null);
                        conform(v, &w[j].data_type, &field.data_type)
                    }
                    _ => Value::Null,
                })
                .collect(),
        ),
        (value, ..) => value,
    }
}

/// Every change of one table, deduplicated by `_pos`, with values keyed by
/// the table's latest column names.
async fn read_changes(
    store: &LakeStore,
    table: &str,
    files: &[(String, Vec<ColumnSchema>)],
    latest: &[ColumnSchema],
) -> Result<BTreeMap<String, Change>, SinkError> {
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    let metadata: HashSet<&str> = METADATA_COLUMNS.into_iter().collect();
    for (path, written) in files {
        // File column name → latest column (dropped columns map to nothing).
        let renames: BTreeMap<&str, &ColumnSchema> = written
            .iter()
            .filter_map(|c| current_column(c, latest).map(|now| (c.name.as_str(), now)))
            .collect();
        let written_types: BTreeMap<&str, &ColumnType> = written
            .iter()
            .map(|c| (c.name.as_str(), &c.data_type))
            .collect();
        let bytes = store.get(path).await?.ok_or_else(|| {
            SinkError::corrupt(format!(
                "delta file {path} listed in a manifest of {table} is missing from {}; restore it from a backup",
                store.root_display()
            ))
        })?;
        let bad =
            |what: String| SinkError::corrupt(format!("delta file {path} of {table}: {what}"));
        let (names, rows) = read_parquet_rows(bytes).map_err(|e| bad(e.to_string()))?;
        let find = |name: &str| {
            names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| bad(format!("has no {name} column; not a tributary delta file")))
        };
        let (op_i, pos_i, unchanged_i) = (find("_op")?, find("_pos")?, find("_unchanged")?);
        for row in rows {
            let (Value::Text(op), Value::Text(pos)) = (&row[op_i], &row[pos_i]) else {
                return Err(bad("a row has a NULL _op or _pos".into()));
            };
            let op = Op::from_code(op).ok_or_else(|| bad(format!("unknown _op {op:?}")))?;
            let unchanged = match &row[unchanged_i] {
                Value::List(items) => items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Text(name) => renames.get(name.as_str()).map(|c| c.name.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let change = Change {
                op,
                values: names
                    .iter()
                    .zip(&row)
                    .filter(|(n, _)| !metadata.contains(n.as_str()))
                    .filter_map(|(n, v)| {
                        let now = renames.get(n.as_str())?;
                        let value = match written_types.get(n.as_str()) {
                            Some(was) => conform(v.clone(), was, &now.data_type),
                            None => v.clone(),
                        };
                        Some((now.name.clone(), value))
                    })
                    .collect(),
                unchanged,
                file: path.clone(),
            };
            match changes.get(pos.as_str()) {
                Some(seen) if !seen.same_content(&change) => {
                    return Err(SinkError::corrupt(format!(
                        "table {table}: position {pos} appears in {} and {} with different content; the lake is corrupt — remove the source's lake directory and re-snapshot",
                        seen.file, change.file
                    )));
                }
                Some(_) => {}
                None => {
                    changes.insert(pos.clone(), change);
                }
            }
        }
    }
    Ok(changes)
}

/// Applies the merge rule to changes already in `_pos` order.
fn merge_table(table: TableSource, changes: BTreeMap<String, Change>) -> MergedTable {
    // key text → (pos of latest change, merged values)
    let mut live: BTreeMap<String, (String, BTreeMap<String, Value>)> = BTreeMap::new();
    for (pos, change) in changes {
        let key = if table.key_columns.is_empty() {
            pos.clone()
        } else {
            let values: Vec<&Value> = table
                .key_columns
                .iter()
                .map(|k| change.values.get(k).unwrap_or(&Value::Null))
                .collect();
            format!("{values:?}")
        };
        match change.op {
            Op::Truncate => live.clear(),
            Op::Delete => {
                live.remove(&key);
            }
            Op::Create | Op::Update | Op::Read => {
                let mut values = change.values;
                let previous = live.remove(&key).map(|(_, v)| v);
                for column in &change.unchanged {
                    let kept = previous.as_ref().and_then(|p| p.get(column)).cloned();
                    values.insert(column.clone(), kept.unwrap_or(Value::Null));
                }
                live.insert(key, (pos, values));
            }
        }
    }
    let mut rows: Vec<(String, Row)> = live
        .into_values()
        .map(|(pos, values)| {
            let row = table
                .columns
                .iter()
                .map(|c| values.get(&c.name).cloned().unwrap_or(Value::Null))
                .collect();
            (pos, row)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    MergedTable {
        columns: table.columns,
        key_columns: table.key_columns,
        rows: rows.into_iter().map(|(_, row)| row).collect(),
    }
}

/// Reads a Parquet file into column names and rows of [`Value`]s. Accepts
/// the Arrow types tributary writes and the variants other writers (DuckDB)
/// use for the same data: any integer width, Decimal32/64/128/256,
/// Utf8/LargeUtf8/Utf8View, Binary/LargeBinary/BinaryView/FixedSizeBinary,
/// Date32/Date64, Time32/Time64, Timestamp of any unit and zone (→ µs),
/// List/LargeList/FixedSizeList, Struct, Boolean.
pub fn read_parquet_rows(bytes: Bytes) -> Result<(Vec<String>, Vec<Vec<Value>>), SinkError> {
    let corrupt =
        |e: &dyn std::fmt::Display| SinkError::corrupt(format!("unreadable Parquet: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| corrupt(&e))?
        .build()
        .map_err(|e| corrupt(&e))?;
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(&e))?;
        let columns: &[ArrayRef] = batch.columns();
        for i in 0..batch.num_rows() {
            let row = columns
                .iter()
                .zip(&names)
                .map(|(array, name)| {
                    value_at(array.as_ref(), i).map_err(|e| corrupt(&format!("column {name}: {e}")))
                })
                .collect::<Result<Vec<Value>, SinkError>>()?;
            rows.push(row);
        }
    }
    Ok((names, rows))
}

/// The value at row `i` of `array`.
fn value_at(array: &dyn Array, i: usize) -> Result<Value, String> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    let micros = |v: i64, unit: &TimeUnit| match unit {
        TimeUnit::Second => v * 1_000_000,
        TimeUnit::Millisecond => v * 1_000,
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    };
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => Value::Int16(i16::from(array.as_primitive::<Int8Type>().value(i))),
        DataType::Int16 => Value::Int16(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::Int16(i16::from(array.as_primitive::<UInt8Type>().value(i))),
        DataType::UInt16 => Value::Int32(i32::from(array.as_primitive::<UInt16Type>().value(i))),
        DataType::UInt32 => Value::Int64(i64::from(array.as_primitive::<UInt32Type>().value(i))),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(i);
            Value::Int64(
                i64::try_from(v).map_err(|_| format!("unsigned value {v} does not fit int64"))?,
            )
        }
        DataType::Float32 => Value::Float32(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal32(..) => {
            Value::Decimal(i128::from(array.as_primitive::<Decimal32Type>().value(i)))
        }
        DataType::Decimal64(..) => {
            Value::Decimal(i128::from(array.as_primitive::<Decimal64Type>().value(i)))
        }
        DataType::Decimal128(..) => Value::Decimal(array.as_primitive::<Decimal128Type>().value(i)),
        DataType::Decimal256(..) => {
            let v = array.as_primitive::<Decimal256Type>().value(i);
            Value::Decimal(
                v.to_i128()
                    .ok_or_else(|| format!("decimal {v} exceeds 38 digits"))?,
            )
        }
        DataType::Utf8 => Value::Text(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::Text(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::Text(array.as_string_view().value(i).to_string()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => Value::Bytes(array.as_binary_view().value(i).to_vec()),
        DataType::FixedSizeBinary(_) => {
            Value::Bytes(array.as_fixed_size_binary().value(i).to_vec())
        }
        DataType::Date32 => Value::Date(array.as_primitive::<Date32Type>().value(i)),
        DataType::Date64 => {
            let days = array
                .as_primitive::<Date64Type>()
                .value(i)
                .div_euclid(86_400_000);
            Value::Date(
                i32::try_from(days).map_err(|_| format!("date {days} days is out of range"))?,
            )
        }
        DataType::Time32(TimeUnit::Second) => {
            Value::Time(i64::from(array.as_primitive::<Time32SecondType>().value(i)) * 1_000_000)
        }
        DataType::Time32(_) => {
            Value::Time(i64::from(array.as_primitive::<Time32MillisecondType>().value(i)) * 1_000)
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            Value::Time(array.as_primitive::<Time64NanosecondType>().value(i) / 1_000)
        }
        DataType::Time64(_) => Value::Time(array.as_primitive::<Time64MicrosecondType>().value(i)),
        DataType::Timestamp(unit, _) => {
            let raw = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(i),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(i),
            };
            Value::Timestamp(micros(raw, unit))
        }
        DataType::List(_) => list_values(array.as_list::<i32>().value(i).as_ref())?,
        DataType::LargeList(_) => list_values(array.as_list::<i64>().value(i).as_ref())?,
        DataType::FixedSizeList(..) => list_values(array.as_fixed_size_list().value(i).as_ref())?,
        DataType::Struct(_) => struct_values(array.as_struct(), i)?,
        other => return Err(format!("unsupported Arrow type {other}")),
    })
}

/// Row `i` of a struct array: one value per child, in field order (a child
/// that is null at `i` is `Null`).
fn struct_values(array: &StructArray, i: usize) -> Result<Value, String> {
    array
        .columns()
        .iter()
        .zip(array.fields())
        .map(|(child, field)| {
            value_at(child.as_ref(), i).map_err(|e| format!("field {}: {e}", field.name()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Struct)
}

fn list_values(items: &dyn Array) -> Result<Value, String> {
    (0..items.len())
        .map(|j| value_at(items, j))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::List)
}

// Tested end to end (envelopes → LakeSink → BronzeMerge) in `sink/tests.rs`.
