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

use arrow_array::builder::{
    ArrayBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
    make_builder,
};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::error::SinkError;
use super::manifest::RegisteredShape;
use super::values;
use crate::envelope::{ENVELOPE_VERSION, Envelope, Op, ReadBatch, Value};
use crate::position::Position;
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

/// Dictionary page size before a column falls back to plain encoding: 128 KiB
/// keeps dictionaries for low-cardinality columns (statuses, enums, flags) and
/// stops paying for hashing unique values (ids, timestamps, names) early.
const DICTIONARY_PAGE_LIMIT: usize = 128 * 1024;

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
pub struct DeltaBuilder {
    table: Arc<TableSchema>,
    source: String,
    /// One Arrow builder per data column (compact: no per-value enum), kept
    /// until the flush is durable; `finish` clones their contents so a
    /// retried flush encodes the same bytes.
    data: Vec<Box<dyn ArrayBuilder>>,
    ops: Vec<Op>,
    pos: StringBuilder,
    first_pos: Option<Position>,
    last_pos: Option<Position>,
    commit_lsn: Int64Builder,
    lsn: Int64Builder,
    xid: Int64Builder,
    commit_ts: TimestampMicrosecondBuilder,
    first_commit_ts: Option<i64>,
    unchanged: ListBuilder<StringBuilder>,
    before: StringBuilder,
    counts: OpCounts,
    approx_bytes: usize,
    /// Snapshot batches appended whole ([`DeltaBuilder::append_reads`]),
    /// written after the rows of the builders.
    batches: Vec<RecordBatch>,
    batch_rows: usize,
    /// The registered schema version of `table`.
    shape: Option<RegisteredShape>,
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

impl std::fmt::Debug for DeltaBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaBuilder")
            .field("table", &self.table.qualified_name())
            .field("rows", &self.rows())
            .field("approx_bytes", &self.approx_bytes)
            .finish()
    }
}

impl DeltaBuilder {
    pub fn new(table: Arc<TableSchema>, source: &str) -> DeltaBuilder {
        let data = table
            .columns
            .iter()
            .map(|c| make_builder(&c.data_type.arrow_type(), 1024))
            .collect();
        DeltaBuilder {
            table,
            source: source.to_string(),
            data,
            ops: Vec::new(),
            pos: StringBuilder::new(),
            first_pos: None,
            last_pos: None,
            commit_lsn: Int64Builder::new(),
            lsn: Int64Builder::new(),
            xid: Int64Builder::new(),
            commit_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            first_commit_ts: None,
            unchanged: ListBuilder::new(StringBuilder::new()),
            before: StringBuilder::new(),
            counts: OpCounts::default(),
            approx_bytes: 0,
            batches: Vec::new(),
            batch_rows: 0,
            shape: None,
        }
    }

    pub fn table(&self) -> &Arc<TableSchema> {
        &self.table
    }

    /// Names the registered schema version these rows are written with
    /// (recorded in the file's metadata and its manifest entry).
    pub fn set_shape(&mut self, shape: RegisteredShape) {
        self.shape = Some(shape);
    }

    pub fn shape(&self) -> Option<&RegisteredShape> {
        self.shape.as_ref()
    }

    pub fn rows(&self) -> usize {
        self.ops.len() + self.batch_rows
    }

    /// Rough size of the buffered data in memory (≥ its Parquet size).
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    pub fn op_counts(&self) -> OpCounts {
        self.counts
    }

    /// Smallest and largest `_pos` buffered (sort keys).
    pub fn pos_range(&self) -> Option<(String, String)> {
        Some((self.first_pos?.sort_key(), self.last_pos?.sort_key()))
    }

    /// Commit timestamp (µs) of the first buffered row.
    pub fn first_commit_ts(&self) -> Option<i64> {
        self.first_commit_ts
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
        for (i, (column, builder)) in self
            .table
            .columns
            .iter()
            .zip(self.data.iter_mut())
            .enumerate()
        {
            let value = match image {
                Some(row) if !env.unchanged.contains(&i) || env.op == Op::Delete => &row[i],
                _ => &Value::Null,
            };
            size += values::approx_size(value);
            values::append(builder.as_mut(), &column.data_type, value).map_err(|detail| {
                SinkError::Encode {
                    table: self.table.qualified_name(),
                    message: format!("column {}: {detail}", column.name),
                }
            })?;
        }
        size += unchanged.iter().map(|u| u.len() + 4).sum::<usize>();
        let pos = env.position;
        if self.first_pos.is_none_or(|p| pos < p) {
            self.first_pos = Some(pos);
        }
        if self.last_pos.is_none_or(|p| pos > p) {
            self.last_pos = Some(pos);
        }
        self.ops.push(env.op);
        self.pos.append_value(pos.sort_key_buf().as_str());
        self.commit_lsn.append_value(commit_lsn);
        self.lsn.append_option(lsn);
        self.xid.append_option(xid);
        self.commit_ts.append_value(env.source.commit_ts_micros);
        self.first_commit_ts
            .get_or_insert(env.source.commit_ts_micros);
        for name in &unchanged {
            self.unchanged.values().append_value(name);
        }
        self.unchanged.append(true);
        self.before.append_option(before);
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

    /// Buffers a whole chunk of snapshot reads: its data arrays plus the
    /// metadata columns every `r` row has (no before image, nothing
    /// unchanged).
    pub fn append_reads(&mut self, reads: &ReadBatch) -> Result<(), SinkError> {
        let n = reads.rows;
        if n == 0 {
            return Ok(());
        }
        let commit_lsn = i64::try_from(reads.first.transaction_lsn())
            .map_err(|_| self.encode_error("commit LSN does not fit a signed 64-bit integer"))?;
        let mut arrays = reads.columns.clone();
        arrays.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(Op::Read.code(), n),
        )));
        let mut pos = StringBuilder::with_capacity(n, n * 29);
        for i in 0..n {
            pos.append_value(reads.position(i).sort_key_buf().as_str());
        }
        arrays.push(Arc::new(pos.finish()));
        arrays.push(Arc::new(Int64Array::from_value(commit_lsn, n)));
        arrays.push(Arc::new(Int64Array::new_null(n)));
        arrays.push(Arc::new(Int64Array::new_null(n)));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from_value(reads.source.commit_ts_micros, n)
                .with_timezone("UTC"),
        ));
        let mut unchanged = ListBuilder::with_capacity(StringBuilder::new(), n);
        for _ in 0..n {
            unchanged.append(true);
        }
        arrays.push(Arc::new(unchanged.finish()));
        arrays.push(Arc::new(StringArray::new_null(n)));
        let batch = RecordBatch::try_new(arrow_schema(&self.table), arrays)
            .map_err(|e| self.encode_error(e))?;
        let (first, last) = (reads.first, reads.last());
        if self.first_pos.is_none_or(|p| first < p) {
            self.first_pos = Some(first);
        }
        if self.last_pos.is_none_or(|p| last > p) {
            self.last_pos = Some(last);
        }
        self.first_commit_ts
            .get_or_insert(reads.source.commit_ts_micros);
        self.counts.r += n as u64;
        self.approx_bytes += reads.approx_bytes + n * 48;
        self.batch_rows += n;
        self.batches.push(batch);
        Ok(())
    }

    /// The buffered rows as Arrow batches (the builder keeps them): the
    /// row-by-row changes first, then appended snapshot batches.
    pub fn finish(&self) -> Result<Vec<RecordBatch>, SinkError> {
        let mut out = Vec::with_capacity(1 + self.batches.len());
        if !self.ops.is_empty() || self.batches.is_empty() {
            out.push(self.finish_rows()?);
        }
        out.extend(self.batches.iter().cloned());
        Ok(out)
    }

    fn finish_rows(&self) -> Result<RecordBatch, SinkError> {
        let mut arrays: Vec<ArrayRef> = self.data.iter().map(|b| b.finish_cloned()).collect();
        let mut ops = StringBuilder::with_capacity(self.ops.len(), self.ops.len());
        for op in &self.ops {
            ops.append_value(op.code());
        }
        arrays.push(Arc::new(ops.finish()));
        arrays.push(Arc::new(self.pos.finish_cloned()));
        arrays.push(Arc::new(self.commit_lsn.finish_cloned()));
        arrays.push(Arc::new(self.lsn.finish_cloned()));
        arrays.push(Arc::new(self.xid.finish_cloned()));
        arrays.push(Arc::new(self.commit_ts.finish_cloned()));
        arrays.push(Arc::new(self.unchanged.finish_cloned()));
        arrays.push(Arc::new(self.before.finish_cloned()));
        RecordBatch::try_new(arrow_schema(&self.table), arrays).map_err(|e| self.encode_error(e))
    }

    /// The buffered rows as a zstd Parquet file with tributary's metadata.
    pub fn encode(&self) -> Result<Bytes, SinkError> {
        let batches = self.finish()?;
        let table_schema =
            serde_json::to_string(self.table.as_ref()).map_err(|e| self.encode_error(e))?;
        let mut metadata = vec![
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
        if let Some(shape) = &self.shape {
            let schema = serde_json::to_string(&shape.schema).map_err(|e| self.encode_error(e))?;
            metadata.push(KeyValue::new("tributary.schema".into(), schema));
        }
        let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(|e| self.encode_error(e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_created_by(CREATED_BY.into())
            .set_key_value_metadata(Some(metadata))
            // `_pos` is unique per row: a dictionary would only cost hashing.
            .set_column_dictionary_enabled(ColumnPath::from("_pos"), false)
            // High-cardinality columns give up on their dictionary after
            // this much instead of hashing a whole flush first.
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), arrow_schema(&self.table), Some(props))
            .map_err(|e| self.encode_error(e))?;
        for batch in &batches {
            writer.write(batch).map_err(|e| self.encode_error(e))?;
        }
        let bytes = writer.into_inner().map_err(|e| self.encode_error(e))?;
        Ok(Bytes::from(bytes))
    }
}
