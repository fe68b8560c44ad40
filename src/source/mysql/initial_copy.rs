//! The initial copy of a MySQL/MariaDB source, consistent with a binlog
//! position, without holding a global lock where the server allows it.
//!
//! One session opens `START TRANSACTION WITH CONSISTENT SNAPSHOT` at
//! REPEATABLE READ. MariaDB reports the binlog position of exactly that
//! snapshot (`binlog_snapshot_file` / `binlog_snapshot_position`), so no
//! lock is taken. MySQL has no such status: the copy takes `FLUSH TABLES
//! WITH READ LOCK` for the instant between opening the snapshot and reading
//! `SHOW MASTER STATUS`, then releases it (writes wait for milliseconds).
//!
//! Every table is read in primary-key order, `snapshot_chunk_rows` at a
//! time (keyset pagination; a table without a primary key in one query).
//! All rows are `r` changes of one "transaction" placed just before the
//! snapshot's position, each table's preceded by a `t` change: if a copy is
//! interrupted and started again (at a newer position), the new copy
//! replaces whatever the old one had written. Streaming then starts at the
//! snapshot's position.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tributary_mysql::mysql_async::prelude::Queryable;
use tributary_mysql::mysql_async::{Conn, Params, Row as MyRow, Value as My};
use tributary_mysql::{BinlogFile, Flavor, MysqlResume};

use super::row_value::to_value;
use super::table_catalog::MysqlTable;
use crate::config::MysqlSourceConfig;
use crate::envelope::{Envelope, Op, SourceInfo};
use crate::position::Position;
use crate::source::{SourceError, SourceEvent};

/// The copy in progress.
#[derive(Debug)]
pub struct InitialCopy {
    conn: Conn,
    position: MysqlResume,
    flavor: Flavor,
    file_seq: u64,
    tables: VecDeque<String>,
    current: Option<TableCursor>,
    ordinal: u64,
    chunk_rows: usize,
}

#[derive(Debug)]
struct TableCursor {
    table: String,
    /// Key values of the last row read (`None`: nothing read yet).
    after: Option<Vec<My>>,
}

fn driver(context: &str) -> impl Fn(tributary_mysql::mysql_async::Error) -> SourceError + '_ {
    move |e| SourceError::from(tributary_mysql::MysqlError::from_driver(e, context, "-"))
}

impl InitialCopy {
    /// Opens the consistent snapshot of `tables` (`database.table`).
    pub async fn start(
        config: &MysqlSourceConfig,
        tables: &[String],
    ) -> Result<InitialCopy, SourceError> {
        let mut conn = super::connect(config).await?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(driver("reading the server version"))?
            .unwrap_or_default();
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(driver("preparing the snapshot session"))?;
        let file_pos = match flavor {
            Flavor::MariaDb => {
                conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await
                    .map_err(driver("opening the consistent snapshot"))?;
                let rows: Vec<(String, String)> = conn
                    .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                    .await
                    .map_err(driver("reading the snapshot's binlog position"))?;
                let get = |name: &str| {
                    rows.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                };
                let file = get("binlog_snapshot_file").unwrap_or_default();
                let pos = get("binlog_snapshot_position")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                BinlogFile { file, pos }
            }
            Flavor::MySql => {
                conn.query_drop("FLUSH TABLES WITH READ LOCK")
                    .await
                    .map_err(driver(
                        "taking the brief read lock for the snapshot position (needs RELOAD)",
                    ))?;
                let opened = conn
                    .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await;
                let status: Result<Option<MyRow>, _> = conn.query_first("SHOW MASTER STATUS").await;
                conn.query_drop("UNLOCK TABLES")
                    .await
                    .map_err(driver("releasing the read lock"))?;
                opened.map_err(driver("opening the consistent snapshot"))?;
                let status = status.map_err(driver("reading SHOW MASTER STATUS"))?.ok_or_else(|| {
                    SourceError::definite("SHOW MASTER STATUS returned nothing: the binary log is off; start the server with --log-bin")
                })?;
                BinlogFile {
                    file: status.get(0).unwrap_or_default(),
                    pos: status.get(1).unwrap_or_default(),
                }
            }
        };
        let file_seq = file_pos.sequence().ok_or_else(|| {
            SourceError::definite(format!(
                "the snapshot's binlog position {file_pos} has no file sequence number"
            ))
        })?;
        if file_pos.pos < 4 {
            return Err(SourceError::definite(format!(
                "the server reported binlog position {file_pos} for the snapshot; expected an offset ≥ 4"
            )));
        }
        Ok(InitialCopy {
            conn,
            position: MysqlResume {
                file: file_pos,
                mariadb_gtid: None,
                mysql_gtid: None,
            },
            flavor,
            file_seq,
            tables: tables.iter().cloned().collect(),
            current: None,
            ordinal: 0,
            chunk_rows: config.snapshot_chunk_rows,
        })
    }

    /// The binlog position the copy is consistent with.
    pub fn position(&self) -> &MysqlResume {
        &self.position
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    fn position_next(&mut self) -> Position {
        self.ordinal += 1;
        Position::Mysql {
            file_seq: self.file_seq,
            txn_pos: self.position.file.pos - 1,
            ordinal: self.ordinal,
        }
    }

    /// The next chunk of events; `None` when every table is copied.
    /// Cancel-safe: the cursor moves only after a chunk was read whole.
    pub async fn next_chunk(
        &mut self,
        tables: &HashMap<(String, String), MysqlTable>,
        source: &Arc<str>,
        database: &Arc<str>,
    ) -> Result<Option<Vec<SourceEvent>>, SourceError> {
        let info = SourceInfo {
            source: source.clone(),
            database: database.clone(),
            xid: None,
            change_lsn: None,
            commit_ts_micros: chrono::Utc::now().timestamp_micros(),
        };
        let mut events = Vec::new();
        if self.current.is_none() {
            let Some(table) = self.tables.pop_front() else {
                return Ok(None);
            };
            let key = table
                .split_once('.')
                .map(|(d, t)| (d.to_string(), t.to_string()));
            let Some(captured) = key.and_then(|k| tables.get(&k)) else {
                return Ok(Some(events));
            };
            // Replaces whatever an interrupted earlier copy wrote.
            events.push(SourceEvent::Change(Envelope {
                op: Op::Truncate,
                table: captured.schema.clone(),
                after: None,
                before: None,
                unchanged: Vec::new(),
                position: self.position_next(),
                source: info.clone(),
            }));
            self.current = Some(TableCursor { table, after: None });
        }
        let cursor = self.current.as_ref().expect("set above");
        let (db, name) = cursor.table.split_once('.').expect("database.table");
        let captured = &tables[&(db.to_string(), name.to_string())];
        let schema = &captured.schema;
        let ident = |n: &str| format!("`{}`", n.replace('`', "``"));
        let columns: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
        let keys: Vec<String> = schema
            .key
            .iter()
            .map(|&i| ident(&schema.columns[i].name))
            .collect();
        let from = format!("{}.{}", ident(db), ident(name));
        let (sql, params) = if keys.is_empty() {
            (
                format!("SELECT {} FROM {from}", columns.join(", ")),
                Params::Empty,
            )
        } else {
            let order = keys.join(", ");
            match &cursor.after {
                None => (
                    format!(
                        "SELECT {} FROM {from} ORDER BY {order} LIMIT {}",
                        columns.join(", "),
                        self.chunk_rows
                    ),
                    Params::Empty,
                ),
                Some(after) => (
                    format!(
                        "SELECT {} FROM {from} WHERE ({order}) > ({}) ORDER BY {order} LIMIT {}",
                        columns.join(", "),
                        vec!["?"; keys.len()].join(", "),
                        self.chunk_rows
                    ),
                    Params::Positional(after.clone()),
                ),
            }
        };
        let rows: Vec<MyRow> = self
            .conn
            .exec(sql, params)
            .await
            .map_err(driver(&format!("copying {}", schema.qualified_name())))?;
        let done = keys.is_empty() || rows.len() < self.chunk_rows;
        let mut last_key = None;
        for row in rows {
            let values: Vec<My> = row.unwrap();
            last_key = Some(
                schema
                    .key
                    .iter()
                    .map(|&i| values[i].clone())
                    .collect::<Vec<_>>(),
            );
            let mut image = Vec::with_capacity(values.len());
            for ((value, column), decode) in values
                .into_iter()
                .zip(&schema.columns)
                .zip(&captured.decode)
            {
                image.push(to_value(column, decode, value).map_err(|e| {
                    SourceError::definite(format!("{} (snapshot): {e}", schema.qualified_name()))
                })?);
            }
            events.push(SourceEvent::Change(Envelope {
                op: Op::Read,
                table: schema.clone(),
                after: Some(image),
                before: None,
                unchanged: Vec::new(),
                position: self.position_next(),
                source: info.clone(),
            }));
        }
        let count = events.len();
        if done {
            tracing::info!(table = %schema.qualified_name(), "snapshot of table finished");
            self.current = None;
        } else if let Some(cursor) = self.current.as_mut() {
            cursor.after = last_key;
        }
        let _ = count;
        Ok(Some(events))
    }
}
