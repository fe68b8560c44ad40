//! Reads one chunk: `COPY (SELECT …) TO STDOUT (FORMAT binary)` decoded
//! straight into typed rows with [`decode_field`], no text round trip.
//!
//! Used by both snapshot kinds: the initial copy's workers (inside the
//! exported snapshot) and the incremental snapshot's driver (between two
//! watermarks).

use futures::StreamExt;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;

use super::super::binary_value::{RawField, decode_field};
use super::table_plan::TablePlan;
use crate::envelope::{Row, Value};
use crate::source::SourceError;

/// The rows of one chunk.
#[derive(Debug, Default)]
pub struct ChunkRows {
    pub rows: Vec<Row>,
    /// Key (text form) of the last row, for keyset queries.
    pub last_key: Option<Vec<String>>,
}

/// Why a chunk could not be read.
#[derive(Debug)]
pub enum ChunkError {
    /// The table (or one of its columns) no longer exists: skip it.
    Gone(String),
    Source(SourceError),
}

impl From<SourceError> for ChunkError {
    fn from(e: SourceError) -> Self {
        ChunkError::Source(e)
    }
}

pub(super) fn pg_error(plan: &TablePlan, e: tokio_postgres::Error) -> ChunkError {
    let code = e.code().map(|c| c.code().to_string());
    match code.as_deref() {
        // undefined_table, undefined_column: dropped or altered meanwhile.
        Some("42P01") | Some("42703") => ChunkError::Gone(format!("{}: {e}", plan.qualified)),
        _ => ChunkError::Source(SourceError::from(tributary_postgres::PgError::from(e))),
    }
}

/// Starts `copy_sql` (built by [`TablePlan`]): the plan's columns plus
/// `extra` trailing ones, each read as a [`RawField`].
pub(super) async fn copy_rows(
    client: &Client,
    plan: &TablePlan,
    copy_sql: &str,
    extra: usize,
) -> Result<BinaryCopyOutStream, ChunkError> {
    let stream = client
        .copy_out(copy_sql)
        .await
        .map_err(|e| pg_error(plan, e))?;
    // RawField accepts every type, so the declared types only need the
    // right count.
    let types = vec![Type::BYTEA; plan.columns.len() + extra];
    Ok(BinaryCopyOutStream::new(stream, &types))
}

/// Runs `copy_sql` (built by [`TablePlan`]) and decodes every row.
/// `key_texts` trailing text columns are split off as the row's key.
pub async fn read_chunk(
    client: &Client,
    plan: &TablePlan,
    copy_sql: &str,
    key_texts: usize,
    expected_rows: usize,
) -> Result<ChunkRows, ChunkError> {
    let rows = copy_rows(client, plan, copy_sql, key_texts).await?;
    futures::pin_mut!(rows);
    let mut out = ChunkRows {
        rows: Vec::with_capacity(expected_rows),
        last_key: None,
    };
    let mut last_key = None;
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| pg_error(plan, e))?;
        let mut values = Vec::with_capacity(plan.columns.len());
        for (i, column) in plan.columns.iter().enumerate() {
            let raw: Option<RawField> = row.try_get(i).map_err(|e| pg_error(plan, e))?;
            let value = match raw {
                None => Value::Null,
                Some(raw) => decode_field(column.form, &column.column_type, raw.0).map_err(|e| {
                    SourceError::definite(format!(
                        "table {} column {}: {e}; the snapshot cannot represent this value in its lake type (see the README's type table)",
                        plan.qualified, column.name
                    ))
                })?,
            };
            values.push(value);
        }
        if key_texts > 0 {
            let mut key = Vec::with_capacity(key_texts);
            for i in 0..key_texts {
                let raw: Option<RawField> = row
                    .try_get(plan.columns.len() + i)
                    .map_err(|e| pg_error(plan, e))?;
                let text = raw
                    .map(|r| String::from_utf8_lossy(r.0).into_owned())
                    .unwrap_or_default();
                key.push(text);
            }
            last_key = Some(key);
        }
        out.rows.push(values);
    }
    out.last_key = last_key;
    Ok(out)
}
