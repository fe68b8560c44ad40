//! [`MysqlEvent`] → [`DecodedEvent`]: rows into [`crate::MysqlValue`]s
//! with the column facts of their table map (cached per table map),
//! statements through [`crate::ddl::classify`].

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::binlog::events::TableMapEvent;

use super::{DecodedEvent, MysqlEvent, Queued};
use crate::charset::CharsetMap;
use crate::column_meta::{ColumnMeta, columns_of};
use crate::column_value::decode_row;
use crate::ddl::{TableName, classify};
use crate::error::MysqlError;

/// Column facts per table id, kept while the table map stays the same.
#[derive(Debug, Default)]
pub(super) struct ColumnsCache(HashMap<u64, (TableMapEvent<'static>, Arc<Vec<ColumnMeta>>)>);

impl ColumnsCache {
    fn columns(
        &mut self,
        table: &TableMapEvent<'static>,
    ) -> Result<Arc<Vec<ColumnMeta>>, MysqlError> {
        if let Some((cached, columns)) = self.0.get(&table.table_id()) {
            if cached == table {
                return Ok(columns.clone());
            }
        }
        let columns = Arc::new(columns_of(table)?);
        self.0
            .insert(table.table_id(), (table.clone(), columns.clone()));
        Ok(columns)
    }
}

pub(super) fn decode_event(
    queued: Queued,
    cache: &mut ColumnsCache,
    charsets: &CharsetMap,
) -> Result<DecodedEvent, MysqlError> {
    Ok(match queued.event {
        MysqlEvent::Begin {
            gtid,
            at,
            timestamp,
        } => DecodedEvent::Begin {
            gtid,
            at,
            timestamp,
        },
        MysqlEvent::Rows {
            kind,
            table,
            rows,
            at,
        } => {
            let columns = cache.columns(&table)?;
            let name = TableName {
                database: table.database_name().into_owned(),
                name: table.table_name().into_owned(),
            };
            let context = |e: MysqlError| MysqlError::Definite {
                message: format!("decoding a row of {name} at {at}: {e}"),
            };
            let mut decoded = Vec::with_capacity(rows.len());
            let (before_present, after_present) = &queued.presence;
            for (before, after) in rows {
                let before = before
                    .map(|values| decode_row(&columns, before_present.as_deref(), values, charsets))
                    .transpose()
                    .map_err(context)?;
                let after = after
                    .map(|values| decode_row(&columns, after_present.as_deref(), values, charsets))
                    .transpose()
                    .map_err(context)?;
                decoded.push((before, after));
            }
            DecodedEvent::Rows {
                table: name,
                kind,
                columns,
                rows: decoded,
                at,
            }
        }
        MysqlEvent::Query { database, sql } => {
            let ddl = classify(&database, &sql);
            DecodedEvent::Query { database, sql, ddl }
        }
        MysqlEvent::Commit {
            resume,
            timestamp,
            xid,
        } => DecodedEvent::Commit {
            resume,
            timestamp,
            xid,
        },
        MysqlEvent::Heartbeat { resume } => DecodedEvent::Heartbeat { resume },
    })
}
