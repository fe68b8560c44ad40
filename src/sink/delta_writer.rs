//! One delta file in the making: the buffered changes of one table shape.
//!
//! Sits inside [`super::LakeSink`]: every envelope written to the sink is
//! appended to the [`DeltaBuilder`] of its (table, schema fingerprint), and a
//! flush encodes each builder into one Parquet file. A file therefore never
//! mixes shapes, and its own metadata (`tributary.table_schema`) describes it
//! completely.
//!
//! Columns: the table's data columns (after image for `c`/`u`/`r`, before
//! image for `d`, all NULL for `t`; columns reported unchanged are NULL and
//! named in `_unchanged`), then the metadata columns
//! [`METADATA_COLUMNS`]. Values are type-checked when appended, so a bad
//! value stops the source with its table, column and position instead of
//! being dropped. Encoding is deterministic: the same envelopes give
//! byte-identical files, which makes a retried flush rewrite identical
//! objects under identical names.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::error::SinkError;
use super::values;
use crate::envelope::{ENVELOPE_VERSION, Envelope, Op, Value};
use crate::schema::TableSchema;

/// Metadata columns after the data columns, in file order.
pub const METADATA_COLUMNS: [&str; 8] = [
    "_op",
    "_pos",
    "_commit_lsn",
    "_lsn",
    "_xid",
    "_commit_ts",
    "_unchanged",
    "_before",
];

/// `created_by` of every file: fixed, so output does not depend on the build.
pub const CREATED_BY: &str = "tributary";

/// Zstd level: cheap on CPU, most of the size win.
const ZSTD_LEVEL: i32 = 2;

/// Per-operation row counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpCounts {
    pub c: u64,
    pub u: u64,
    pub d: u64,
    pub r: u64,
    pub t: u64,
}

impl OpCounts {
    fn add(&mut self, op: Op) {
        match op {
            Op::Create => self.c += 1,
            Op::Update => self.u += 1,
            Op::Delete => self.d += 1,
            Op::Read => self.r += 1,
            Op::Truncate => self.t += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.c + self.u + self.d + self.r + self.t
    }
}

/// Buffered changes of one (table, fingerprint), column by column.
#[derive(Debug, Clone)]
pub struct DeltaBuilder {
    table: Arc<TableSchema>,
    source: String,
    data: Vec<Vec<Value>>,
    ops: Vec<Op>,
    pos: Vec<String>,
    commit_lsn: Vec<i64>,
    lsn: Vec<Option<i64>>,
    xid: Vec<Option<i64>>,
    commit_ts: Vec<i64>,
    unchanged: Vec<Vec<String>>,
    before: Vec<Option<String>>,
    counts: OpCounts,
    approx_bytes: usize,
}

/// The Arrow schema of a delta file for `table`. Every data column is
/// nullable: delete and truncate rows leave non-key columns NULL.
pub fn arrow_schema(table: &TableSchema) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.arrow_type(), true))
        .collect();
    fields.extend([
        Field::new("_op", DataType::Utf8, false),
        Field::new("_pos", DataType::Utf8, false),
        Field::new("_commit_lsn", DataType::Int64, false),
        Field::new("_lsn", DataType::Int64, true),
        Field::new("_xid", DataType::Int64, true),
        Field::new(
            "_commit_ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(
            "_unchanged",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("_before", DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(fields))
}

impl DeltaBuilder {
    pub fn new(table: Arc<TableSchema>, source: &str) -> DeltaBuilder {
        let width = table.columns.len();
        DeltaBuilder {
            table,
            source: source.to_string(),
            data: vec![Vec::new(); width],
            ops: Vec::new(),
            pos: Vec::new(),
            commit_lsn: Vec::new(),
            lsn: Vec::new(),
            xid: Vec::new(),
            commit_ts: Vec::new(),
            unchanged: Vec::new(),
            before: Vec::new(),
            counts: OpCounts::default(),
            approx_bytes: 0,
        }
    }

    pub fn table(&self) -> &Arc<TableSchema> {
        &self.table
    }

    pub fn rows(&self) -> usize {
        self.ops.len()
    }

    /// Rough size of the buffered data in memory (≥ its Parquet size).
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    pub fn op_counts(&self) -> OpCounts {
        self.counts
    }

    /// Smallest and largest `_pos` buffered (sort keys).
    pub fn pos_range(&self) -> Option<(&str, &str)> {
        let first = self.pos.iter().min()?;
        let last = self.pos.iter().max()?;
        Some((first, last))
    }

    /// Commit timestamp (µs) of the first buffered row.
    pub fn first_commit_ts(&self) -> Option<i64> {
        self.commit_ts.first().copied()
    }

    /// True when every buffered row came from a snapshot (`r`).
    pub fn is_snapshot(&self) -> bool {
        self.counts.r > 0 && self.counts.r == self.counts.total()
    }

    fn unencodable(&self, env: &Envelope, column: &str, detail: String) -> SinkError {
        SinkError::Unencodable {
            table: self.table.qualified_name(),
            column: column.to_string(),
            position: env.position.to_string(),
            detail,
        }
    }

    /// Buffers one change. Checks everything first, so a rejected envelope
    /// leaves the builder unchanged.
    pub fn append(&mut self, env: &Envelope) -> Result<(), SinkError> {
        let columns = &self.table.columns;
        let image: Option<&Vec<Value>> = match env.op {
            Op::Create | Op::Update | Op::Read => Some(env.after.as_ref().ok_or_else(|| {
                self.unencodable(
                    env,
                    "*",
                    format!("a '{}' change has no after image", env.op),
                )
            })?),
            Op::Delete => Some(env.before.as_ref().ok_or_else(|| {
                self.unencodable(env, "*", "a delete has no before image (key)".into())
            })?),
            Op::Truncate => None,
        };
        for row in [image, env.before.as_ref()].into_iter().flatten() {
            if row.len() != columns.len() {
                return Err(self.unencodable(
                    env,
                    "*",
                    format!(
                        "row image has {} values, the schema {} columns",
                        row.len(),
                        columns.len()
                    ),
                ));
            }
            for (column, value) in columns.iter().zip(row) {
                values::check(value, &column.data_type)
                    .map_err(|detail| self.unencodable(env, &column.name, detail))?;
            }
        }
        let mut unchanged = Vec::with_capacity(env.unchanged.len());
        if image.is_some() && env.op != Op::Delete {
            for &i in &env.unchanged {
                let column = columns.get(i).ok_or_else(|| {
                    self.unencodable(
                        env,
                        "*",
                        format!("unchanged column index {i} is outside the schema"),
                    )
                })?;
                unchanged.push(column.name.clone());
            }
        }
        let to_i64 = |what: &str, v: u64| {
            i64::try_from(v).map_err(|_| {
                self.unencodable(
                    env,
                    what,
                    format!("{v} does not fit a signed 64-bit integer"),
                )
            })
        };
        let commit_lsn = to_i64("_commit_lsn", env.position.transaction_lsn())?;
        let lsn = env
            .source
            .change_lsn
            .map(|v| to_i64("_lsn", v))
            .transpose()?;
        let xid = env.source.xid.map(|v| to_i64("_xid", v)).transpose()?;
        let before = env.before.as_ref().map(|row| {
            let object: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), values::to_json(v, &c.data_type)))
                .collect();
            serde_json::Value::Object(object).to_string()
        });

        // Everything checked: buffer.
        let mut size = 64 + before.as_ref().map_or(0, String::len);
        for (i, column) in self.data.iter_mut().enumerate() {
            let value = match image {
                Some(row) if !env.unchanged.contains(&i) || env.op == Op::Delete => row[i].clone(),
                _ => Value::Null,
            };
            size += values::approx_size(&value);
            column.push(value);
        }
        size += unchanged.iter().map(|u| u.len() + 4).sum::<usize>();
        self.ops.push(env.op);
        self.pos.push(env.position.sort_key());
        self.commit_lsn.push(commit_lsn);
        self.lsn.push(lsn);
        self.xid.push(xid);
        self.commit_ts.push(env.source.commit_ts_micros);
        self.unchanged.push(unchanged);
        self.before.push(before);
        self.counts.add(env.op);
        self.approx_bytes += size;
        Ok(())
    }

    fn encode_error(&self, error: impl std::fmt::Display) -> SinkError {
        SinkError::Encode {
            table: self.table.qualified_name(),
            message: error.to_string(),
        }
    }

    /// The buffered rows as one Arrow batch (the builder keeps them).
    pub fn finish(&self) -> Result<RecordBatch, SinkError> {
        let mut arrays: Vec<ArrayRef> =
            Vec::with_capacity(self.data.len() + METADATA_COLUMNS.len());
        for (column, data) in self.table.columns.iter().zip(&self.data) {
            let refs: Vec<&Value> = data.iter().collect();
            arrays.push(
                values::to_array(&column.data_type, &refs).map_err(|e| self.encode_error(e))?,
            );
        }
        let strings = |items: &mut dyn Iterator<Item = Option<&str>>| -> ArrayRef {
            let mut b = StringBuilder::new();
            for item in items {
                b.append_option(item);
            }
            Arc::new(b.finish())
        };
        let ints = |items: &mut dyn Iterator<Item = Option<i64>>| -> ArrayRef {
            let mut b = Int64Builder::new();
            for item in items {
                b.append_option(item);
            }
            Arc::new(b.finish())
        };
        arrays.push(strings(&mut self.ops.iter().map(|o| Some(o.code()))));
        arrays.push(strings(&mut self.pos.iter().map(|p| Some(p.as_str()))));
        arrays.push(ints(&mut self.commit_lsn.iter().map(|v| Some(*v))));
        arrays.push(ints(&mut self.lsn.iter().copied()));
        arrays.push(ints(&mut self.xid.iter().copied()));
        let mut ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for v in &self.commit_ts {
            ts.append_value(*v);
        }
        arrays.push(Arc::new(ts.finish()));
        let mut unchanged = ListBuilder::new(StringBuilder::new());
        for names in &self.unchanged {
            for name in names {
                unchanged.values().append_value(name);
            }
            unchanged.append(true);
        }
        arrays.push(Arc::new(unchanged.finish()));
        arrays.push(strings(&mut self.before.iter().map(|b| b.as_deref())));
        RecordBatch::try_new(arrow_schema(&self.table), arrays).map_err(|e| self.encode_error(e))
    }

    /// The buffered rows as a zstd Parquet file with tributary's metadata.
    pub fn encode(&self) -> Result<Bytes, SinkError> {
        let batch = self.finish()?;
        let table_schema =
            serde_json::to_string(self.table.as_ref()).map_err(|e| self.encode_error(e))?;
        let metadata = vec![
            KeyValue::new(
                "tributary.envelope_version".into(),
                ENVELOPE_VERSION.to_string(),
            ),
            KeyValue::new(
                "tributary.schema_fingerprint".into(),
                self.table.fingerprint.clone(),
            ),
            KeyValue::new("tributary.table_schema".into(), table_schema),
            KeyValue::new("tributary.source".into(), self.source.clone()),
        ];
        let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| self.encode_error(e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_created_by(CREATED_BY.into())
            .set_key_value_metadata(Some(metadata))
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
            .map_err(|e| self.encode_error(e))?;
        writer.write(&batch).map_err(|e| self.encode_error(e))?;
        let bytes = writer.into_inner().map_err(|e| self.encode_error(e))?;
        Ok(Bytes::from(bytes))
    }
}
