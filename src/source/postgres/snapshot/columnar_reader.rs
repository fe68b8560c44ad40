//! Reads one initial-copy chunk straight into Arrow arrays: binary COPY
//! fields are appended to one Arrow builder per column, with no row or
//! envelope in between. The common fixed-width types and text are decoded in
//! place; every other form goes through [`decode_field`] (one [`Value`]) and
//! the sink's own `values::append`, so both paths give the lake the same
//! values as the stream does.

use arrow_array::ArrayRef;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, make_builder,
};
use futures::StreamExt;
use tokio_postgres::Client;

use super::super::binary_value::{
    CopyForm, RawField, Scalar, Wire, decode_field, fast_date, fast_timestamp,
};
use super::chunk_reader::{ChunkError, copy_rows, pg_error};
use super::table_plan::{CopyColumn, TablePlan};
use crate::envelope::Value;
use crate::sink::values;
use crate::source::SourceError;

/// The data columns of one chunk.
#[derive(Debug)]
pub struct ColumnarChunk {
    pub columns: Vec<ArrayRef>,
    pub rows: usize,
    pub approx_bytes: usize,
}

fn downcast<B: 'static>(builder: &mut dyn ArrayBuilder) -> &mut B {
    builder
        .as_any_mut()
        .downcast_mut::<B>()
        .expect("builder made for this column's Arrow type")
}

fn be<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

/// Appends one field; `Err` is the reason the value cannot be represented.
fn append_field(
    builder: &mut dyn ArrayBuilder,
    column: &CopyColumn,
    raw: Option<&[u8]>,
) -> Result<(), String> {
    let Some(bytes) = raw else {
        return values::append(builder, &column.column_type, &Value::Null);
    };
    if let CopyForm::Binary(Wire::Scalar(scalar)) = column.form {
        let done = match scalar {
            Scalar::Bool if bytes.len() == 1 => {
                downcast::<BooleanBuilder>(builder).append_value(bytes[0] != 0);
                true
            }
            Scalar::Int2 => be::<2>(bytes)
                .map(|b| downcast::<Int16Builder>(builder).append_value(i16::from_be_bytes(b)))
                .is_some(),
            Scalar::Int4 => be::<4>(bytes)
                .map(|b| downcast::<Int32Builder>(builder).append_value(i32::from_be_bytes(b)))
                .is_some(),
            Scalar::Int8 => be::<8>(bytes)
                .map(|b| downcast::<Int64Builder>(builder).append_value(i64::from_be_bytes(b)))
                .is_some(),
            Scalar::Float4 => be::<4>(bytes)
                .map(|b| downcast::<Float32Builder>(builder).append_value(f32::from_be_bytes(b)))
                .is_some(),
            Scalar::Float8 => be::<8>(bytes)
                .map(|b| downcast::<Float64Builder>(builder).append_value(f64::from_be_bytes(b)))
                .is_some(),
            Scalar::Utf8 => match std::str::from_utf8(bytes) {
                Ok(text) => {
                    downcast::<StringBuilder>(builder).append_value(text);
                    true
                }
                Err(_) => false,
            },
            // Outside years 1-9999 (and ±infinity) the general path
            // decides, so refusals match the stream's.
            Scalar::Date => match be::<4>(bytes).map(i32::from_be_bytes).and_then(fast_date) {
                Some(days) => {
                    downcast::<Date32Builder>(builder).append_value(days);
                    true
                }
                None => false,
            },
            Scalar::Timestamp | Scalar::TimestampTz => {
                match be::<8>(bytes)
                    .map(i64::from_be_bytes)
                    .and_then(fast_timestamp)
                {
                    Some(us) => {
                        downcast::<TimestampMicrosecondBuilder>(builder).append_value(us);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if done {
            return Ok(());
        }
    }
    let value = decode_field(column.form, &column.column_type, bytes).map_err(|e| e.to_string())?;
    values::check(&value, &column.column_type)?;
    values::append(builder, &column.column_type, &value)
}

/// Runs `copy_sql` and decodes every row into the plan's data columns.
pub async fn read_chunk_columnar(
    client: &Client,
    plan: &TablePlan,
    copy_sql: &str,
    expected_rows: usize,
) -> Result<ColumnarChunk, ChunkError> {
    let rows = copy_rows(client, plan, copy_sql, 0).await?;
    futures::pin_mut!(rows);
    let mut builders: Vec<Box<dyn ArrayBuilder>> = plan
        .columns
        .iter()
        .map(|c| make_builder(&c.column_type.arrow_type(), expected_rows))
        .collect();
    let mut count = 0usize;
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| pg_error(plan, e))?;
        for (i, (column, builder)) in plan.columns.iter().zip(builders.iter_mut()).enumerate() {
            let raw: Option<RawField> = row.try_get(i).map_err(|e| pg_error(plan, e))?;
            append_field(builder.as_mut(), column, raw.map(|r| r.0)).map_err(|e| {
                ChunkError::Source(SourceError::definite(format!(
                    "table {} column {}: {e}; the snapshot cannot represent this value in its lake type (see the README's type table)",
                    plan.qualified, column.name
                )))
            })?;
        }
        count += 1;
    }
    let columns: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
    let approx_bytes = columns.iter().map(|a| a.get_array_memory_size()).sum();
    Ok(ColumnarChunk {
        columns,
        rows: count,
        approx_bytes,
    })
}
