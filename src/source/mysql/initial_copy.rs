//! The initial copy of a MySQL/MariaDB source, consistent with a binlog
//! position, without holding a global lock where the server allows it.
//!
//! One session opens a consistent snapshot ([`super::chunk_reader::open_snapshot`]:
//! MariaDB reports its binlog position, MySQL takes `FLUSH TABLES WITH READ
//! LOCK` for an instant) and reads every table in primary-key chunks of
//! `snapshot_chunk_rows`. Rows are `r` changes placed just before the
//! snapshot's position, each table's preceded by a `t` change. Each chunk is
//! its own commit (resume point: the snapshot's position) followed by the
//! table's progress, so a chunk is durable with its cursor: after a crash
//! the unfinished tables continue from their cursors as incremental
//! snapshots ([`super::incremental`]) while the binlog streams from the
//! snapshot's position, instead of copying everything again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tributary_mysql::mysql_async::Conn;
use tributary_mysql::{Flavor, MysqlResume};

use super::chunk_reader::{flavor_of, open_snapshot, read_chunk};
use super::table_catalog::MysqlTable;
use crate::config::MysqlSourceConfig;
use crate::envelope::{Envelope, Op, SourceInfo};
use crate::position::Position;
use crate::snapshot::ChunkCursor;
use crate::source::{SourceError, SourceEvent};

/// The copy in progress.
#[derive(Debug)]
pub struct InitialCopy {
    conn: Conn,
    position: MysqlResume,
    flavor: Flavor,
    file_seq: u64,
    tables: VecDeque<String>,
    /// The table being copied and where its next chunk starts.
    current: Option<(String, Option<ChunkCursor>)>,
    ordinal: u64,
    chunk_rows: usize,
}

/// One chunk of the copy, ready for the pipeline.
#[derive(Debug)]
pub struct CopyChunk {
    pub table: String,
    pub events: Vec<SourceEvent>,
    /// Rows read (the `t` of a table's first chunk is not counted).
    pub rows: u64,
    /// Where the table's next chunk starts; `None`: the table is done.
    pub next: Option<ChunkCursor>,
}

impl InitialCopy {
    /// Opens the consistent snapshot of `tables` (`database.table`).
    pub async fn start(
        config: &MysqlSourceConfig,
        tables: &[String],
    ) -> Result<InitialCopy, SourceError> {
        let mut conn = super::connect(config).await?;
        let flavor = flavor_of(&mut conn).await?;
        let at = open_snapshot(&mut conn, flavor).await?;
        let file_seq = at.sequence().expect("checked by open_snapshot");
        Ok(InitialCopy {
            conn,
            position: MysqlResume {
                file: at,
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

    /// The position of the copy's last row (`txn_pos` just before the
    /// snapshot's position; ordinals count on across tables).
    pub fn last_position(&self) -> Position {
        Position::Mysql {
            file_seq: self.file_seq,
            txn_pos: self.position.file.pos - 1,
            ordinal: self.ordinal,
        }
    }

    fn position_next(&mut self) -> Position {
        self.ordinal += 1;
        self.last_position()
    }

    /// The next chunk; `None` when every table is copied. Cancel-safe: the
    /// cursor moves only after a chunk was read whole.
    pub async fn next_chunk(
        &mut self,
        tables: &HashMap<(String, String), MysqlTable>,
        source: &Arc<str>,
        database: &Arc<str>,
    ) -> Result<Option<CopyChunk>, SourceError> {
        let info = SourceInfo {
            source: source.clone(),
            database: database.clone(),
            xid: None,
            change_lsn: None,
            commit_ts_micros: chrono::Utc::now().timestamp_micros(),
        };
        let (table, cursor) = match &self.current {
            Some(current) => current.clone(),
            None => {
                let Some(table) = self.tables.pop_front() else {
                    return Ok(None);
                };
                self.current = Some((table.clone(), None));
                (table, None)
            }
        };
        let key = table
            .split_once('.')
            .map(|(d, t)| (d.to_string(), t.to_string()));
        let Some(captured) = key.and_then(|k| tables.get(&k)) else {
            self.current = None;
            return Ok(Some(CopyChunk {
                table,
                events: Vec::new(),
                rows: 0,
                next: None,
            }));
        };
        let chunk = read_chunk(&mut self.conn, captured, cursor.as_ref(), self.chunk_rows).await?;
        let mut events = Vec::with_capacity(chunk.rows.len() + 1);
        if cursor.is_none() {
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
        }
        let rows = chunk.rows.len() as u64;
        for image in chunk.rows {
            events.push(SourceEvent::Change(Envelope {
                op: Op::Read,
                table: captured.schema.clone(),
                after: Some(image),
                before: None,
                unchanged: Vec::new(),
                position: self.position_next(),
                source: info.clone(),
            }));
        }
        match &chunk.next {
            Some(next) => self.current = Some((table.clone(), Some(next.clone()))),
            None => {
                tracing::info!(table = %table, "snapshot of table finished");
                self.current = None;
            }
        }
        Ok(Some(CopyChunk {
            table,
            events,
            rows,
            next: chunk.next,
        }))
    }
}
