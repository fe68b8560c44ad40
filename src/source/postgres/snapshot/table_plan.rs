//! How one table is read by a snapshot: its lake schema (built exactly as
//! the stream builds it from a pgoutput Relation message), the SELECT list
//! that lets every column be decoded from binary COPY, and how the table is
//! cut into chunks.
//!
//! Chunking rule, and why: a table with a primary key (or a replica identity
//! index) is chunked by **key ranges**; only tables without any key (REPLICA
//! IDENTITY FULL) are chunked by **ctid page ranges**. Key ranges make a
//! chunk mean the same rows whenever it is read, which is what lets an
//! interrupted initial copy continue incrementally after a crash without ever
//! losing a row that an update moved to another page. For keyless FULL tables
//! page ranges are exact too, because every update of such a row arrives as a
//! delete of the old full row plus an insert of the new one.

use std::sync::Arc;

use tokio_postgres::Client;
use tributary_postgres::catalog::{self, TypeCache};
use tributary_postgres::sql::quote_literal;

use super::super::binary_value::{CopyForm, copy_form, select_expr};
use super::super::change_mapper::ChangeMapper;
use crate::schema::{ColumnType, TableSchema};
use crate::snapshot::ChunkCursor;
use crate::source::SourceError;

/// Integer types whose values can be split into ranges arithmetically.
const INTEGER_TYPES: [&str; 3] = ["smallint", "integer", "bigint"];

/// Alias of the table in every snapshot query.
const TABLE_ALIAS: &str = "tributary_t";

/// Always-quoted SQL identifier.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns a table is chunked by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkKey {
    /// Key columns (quoted) with their SQL types (`format_type`). `integer`
    /// is set for a single integer column, whose ranges can be computed from
    /// min/max instead of scanning the index for boundaries.
    Columns {
        /// Alias-qualified column references.
        columns: Vec<String>,
        /// Bare quoted names (for queries over a subquery's output).
        names: Vec<String>,
        types: Vec<String>,
        integer: bool,
    },
    /// No key: heap page ranges.
    Pages,
}

/// How big a table is, for cutting it into chunks.
#[derive(Debug, Clone, Copy)]
pub struct TableSize {
    /// `pg_class.reltuples` (0 when never analyzed).
    pub estimated_rows: u64,
    /// Heap pages right now (`pg_relation_size / block_size`).
    pub pages: u32,
    rows_per_page: u64,
}

impl TableSize {
    /// Heap pages holding about `chunk_rows` rows (at least one).
    pub fn pages_per_chunk(&self, chunk_rows: usize) -> u32 {
        (chunk_rows as u64 / self.rows_per_page).max(1) as u32
    }
}

/// Rows per heap page assumed before a table is analyzed.
const DEFAULT_ROWS_PER_PAGE: u64 = 60;

/// One column as the snapshot reads it.
#[derive(Debug, Clone)]
pub struct CopyColumn {
    pub name: String,
    pub form: CopyForm,
    pub column_type: ColumnType,
}

/// Everything needed to read one table.
#[derive(Debug)]
pub struct TablePlan {
    /// `schema.table`.
    pub qualified: String,
    pub oid: u32,
    pub schema: Arc<TableSchema>,
    pub columns: Vec<CopyColumn>,
    pub chunk_key: ChunkKey,
    select_list: String,
    from: String,
}

impl TablePlan {
    /// Reads the table's catalog entry; `None` when the table does not exist.
    pub async fn load(
        client: &Client,
        types: &mut TypeCache,
        source: &str,
        database: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<TablePlan>, SourceError> {
        let Some(rel) = catalog::relation_desc(client, types, schema, table).await? else {
            return Ok(None);
        };
        let columns = catalog::column_details(client, rel.oid).await?;
        let mut mapper = ChangeMapper::new(source, database);
        mapper.set_columns(rel.oid, columns);
        mapper.relation(&rel, None);
        let lake_schema = mapper
            .schema_of(rel.oid)
            .expect("relation registered just above");
        let identity = catalog::table_identity(client, schema, table).await?;
        let key_names = if !identity.primary_key.is_empty() {
            identity.primary_key.clone()
        } else {
            identity.identity_index_columns.clone()
        };
        let chunk_key = if key_names.is_empty() {
            ChunkKey::Pages
        } else {
            let mut types_of = Vec::with_capacity(key_names.len());
            for name in &key_names {
                let row = client
                    .query_one(
                        "SELECT format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute \
                         WHERE attrelid = $1 AND attname = $2",
                        &[&rel.oid, name],
                    )
                    .await
                    .map_err(tributary_postgres::PgError::from)?;
                types_of.push(row.get::<_, String>(0));
            }
            let integer = types_of.len() == 1 && INTEGER_TYPES.contains(&types_of[0].as_str());
            ChunkKey::Columns {
                // Qualified by the alias: a bare name in ORDER BY would bind
                // to a SELECT-list column cast to text, not the key itself.
                columns: key_names
                    .iter()
                    .map(|n| format!("{TABLE_ALIAS}.{}", quoted(n)))
                    .collect(),
                names: key_names.iter().map(|n| quoted(n)).collect(),
                types: types_of,
                integer,
            }
        };
        let mut columns = Vec::with_capacity(rel.columns.len());
        let mut exprs = Vec::with_capacity(rel.columns.len());
        for (col, lake) in rel.columns.iter().zip(&lake_schema.columns) {
            exprs.push(select_expr(
                &quoted(&col.name),
                &col.type_info,
                &lake.data_type,
            ));
            columns.push(CopyColumn {
                name: col.name.clone(),
                form: copy_form(&col.type_info, &lake.data_type),
                column_type: lake.data_type.clone(),
            });
        }
        Ok(Some(TablePlan {
            qualified: format!("{schema}.{table}"),
            oid: rel.oid,
            schema: lake_schema,
            columns,
            chunk_key,
            select_list: exprs.join(", "),
            from: format!("{}.{} AS {TABLE_ALIAS}", quoted(schema), quoted(table)),
        }))
    }

    /// The table's size statistics; `None` when the table is gone.
    pub async fn size(&self, client: &Client) -> Result<Option<TableSize>, tokio_postgres::Error> {
        let row = client
            .query_opt(
                "SELECT GREATEST(reltuples, 0)::int8, relpages::int8, \
                 (pg_catalog.pg_relation_size(oid) / current_setting('block_size')::int8)::int8 \
                 FROM pg_catalog.pg_class WHERE oid = $1",
                &[&self.oid],
            )
            .await?;
        Ok(row.map(|row| {
            let (reltuples, relpages, pages): (i64, i64, i64) =
                (row.get(0), row.get(1), row.get(2));
            TableSize {
                estimated_rows: reltuples.max(0) as u64,
                pages: pages.clamp(0, i64::from(u32::MAX)) as u32,
                rows_per_page: if reltuples > 0 && relpages > 0 {
                    (reltuples / relpages).max(1) as u64
                } else {
                    DEFAULT_ROWS_PER_PAGE
                },
            }
        }))
    }

    /// `FROM` target, quoted.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// Number of key-text columns a keyset query appends after the row.
    pub fn key_text_columns(&self) -> usize {
        match &self.chunk_key {
            ChunkKey::Columns { columns, .. } => columns.len(),
            ChunkKey::Pages => 0,
        }
    }

    fn key_tuple(&self) -> String {
        match &self.chunk_key {
            ChunkKey::Columns { columns, .. } => format!("({})", columns.join(", ")),
            ChunkKey::Pages => "ctid".into(),
        }
    }

    /// `(lit::type, …)` for key values in text form.
    fn key_literal(&self, values: &[String]) -> String {
        let ChunkKey::Columns { types, .. } = &self.chunk_key else {
            return String::new();
        };
        let parts: Vec<String> = values
            .iter()
            .zip(types)
            .map(|(v, t)| format!("{}::{t}", quote_literal(v)))
            .collect();
        format!("({})", parts.join(", "))
    }

    fn copy(select: String) -> String {
        format!("COPY ({select}) TO STDOUT (FORMAT binary)")
    }

    /// Rows of a key range `(after, upto]` (either bound open).
    pub fn key_range_copy(&self, after: Option<&[String]>, upto: Option<&[String]>) -> String {
        let mut conds = Vec::new();
        if let Some(after) = after {
            conds.push(format!(
                "{} > {}",
                self.key_tuple(),
                self.key_literal(after)
            ));
        }
        if let Some(upto) = upto {
            conds.push(format!(
                "{} <= {}",
                self.key_tuple(),
                self.key_literal(upto)
            ));
        }
        Self::copy(self.select_where(&conds, ""))
    }

    /// The next `limit` rows after `after` in key order, each followed by its
    /// key columns as text (to continue from the last one).
    pub fn keyset_copy(&self, after: Option<&[String]>, limit: usize) -> String {
        let ChunkKey::Columns { columns, .. } = &self.chunk_key else {
            unreachable!("keyset_copy on a keyless table");
        };
        let texts: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
        let mut conds = Vec::new();
        if let Some(after) = after {
            conds.push(format!(
                "{} > {}",
                self.key_tuple(),
                self.key_literal(after)
            ));
        }
        let tail = format!(" ORDER BY {} LIMIT {limit}", columns.join(", "));
        let select = format!(
            "SELECT {}, {} FROM {}{}{}",
            self.select_list,
            texts.join(", "),
            self.from,
            where_clause(&conds),
            tail
        );
        Self::copy(select)
    }

    /// Rows stored in heap pages `[from, to)` (`to` open = to the end).
    pub fn pages_copy(&self, from: u32, to: Option<u32>) -> String {
        let mut conds = vec![format!("ctid >= '({from},0)'::tid")];
        if let Some(to) = to {
            conds.push(format!("ctid < '({to},0)'::tid"));
        }
        Self::copy(self.select_where(&conds, ""))
    }

    fn select_where(&self, conds: &[String], tail: &str) -> String {
        format!(
            "SELECT {} FROM {}{}{tail}",
            self.select_list,
            self.from,
            where_clause(conds)
        )
    }

    /// The cursor condition as key text values, for planning queries.
    pub fn after_condition(&self, cursor: Option<&ChunkCursor>) -> String {
        match cursor {
            Some(ChunkCursor::KeyAfter { values }) => {
                format!(" WHERE {} > {}", self.key_tuple(), self.key_literal(values))
            }
            _ => String::new(),
        }
    }

    /// The key columns joined (for ORDER BY / SELECT in planning queries).
    pub fn key_columns_sql(&self) -> String {
        match &self.chunk_key {
            ChunkKey::Columns { columns, .. } => columns.join(", "),
            ChunkKey::Pages => "ctid".into(),
        }
    }
}

fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}
