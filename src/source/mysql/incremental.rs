//! Incremental snapshots of a MySQL/MariaDB source while the binlog keeps
//! streaming: every chunk is read in its own consistent snapshot and
//! emitted exactly where that snapshot sits in the binlog.
//!
//! ```text
//!  chunk session (own connection)                 binlog stream (the source)
//!  ───────────────────────────────                ─────────────────────────────────────────
//!  START TRANSACTION WITH CONSISTENT SNAPSHOT → P  … transactions before P are emitted …
//!  SELECT next chunk in key order; COMMIT
//!  hold the rows                                   stream reaches P: emit the chunk as `r`
//!                                                  changes placed just before P
//!                                                  … transactions from P on apply on top …
//! ```
//!
//! The chunk holds the table's rows exactly as of P, so placing it between
//! the last transaction before P and the first one after is the same as if
//! the stream itself had carried it: no watermark writes, no signal table,
//! nothing written to the source. Only one chunk is read ahead, so memory
//! stays at `snapshot_chunk_rows` rows. If the stream already read a
//! transaction at or after P when the chunk arrives (the binlog is written a
//! moment before the engine commit becomes visible), the chunk is dropped
//! and read again. A chunk whose table changed shape meanwhile is read again
//! after the stream has passed the DDL.
//!
//! Rows anchored at the same place get increasing ordinals, continuing
//! after the checkpoint's last position: a chunk read again after a restart
//! at the same binlog position never sorts at or below rows already durable
//! (which the pipeline would skip as replayed).

use std::sync::Arc;

use tributary_mysql::mysql_async::Conn;
use tributary_mysql::mysql_async::prelude::Queryable;
use tributary_mysql::{BinlogFile, Flavor};

use super::chunk_reader::{open_snapshot, read_chunk};
use super::table_catalog::{self, MysqlTable};
use crate::config::MysqlSourceConfig;
use crate::envelope::{Envelope, Op, Row, SourceInfo};
use crate::position::Position;
use crate::schema::TableSchema;
use crate::snapshot::{ChunkCursor, TableSnapshot};
use crate::source::{SourceError, SourceEvent};

/// A chunk read and waiting for the stream to reach its snapshot.
#[derive(Debug)]
pub struct HeldChunk {
    pub table: String,
    schema: Arc<TableSchema>,
    /// The binlog position the chunk is consistent with.
    anchor: BinlogFile,
    rows: Vec<Row>,
    /// Empty the table in the lake first (a reset snapshot's first chunk).
    truncate_first: bool,
    pub next: Option<ChunkCursor>,
}

impl HeldChunk {
    pub fn row_count(&self) -> u64 {
        self.rows.len() as u64
    }
}

/// Incremental snapshot chunks of one source.
#[derive(Debug)]
pub struct IncrementalChunks {
    /// The chunk session; dropped on error or cancellation, reopened lazily.
    conn: Option<Conn>,
    held: Option<HeldChunk>,
    /// `(file_seq, txn_pos, ordinal)` of the last snapshot row placed.
    floor: Option<(u64, u64, u64)>,
}

impl IncrementalChunks {
    /// `last_durable`: the checkpoint's last position (rows at the same
    /// anchor continue after it).
    pub fn new(last_durable: Option<Position>) -> IncrementalChunks {
        let floor = match last_durable {
            Some(Position::Mysql {
                file_seq,
                txn_pos,
                ordinal,
            }) => Some((file_seq, txn_pos, ordinal)),
            _ => None,
        };
        IncrementalChunks {
            conn: None,
            held: None,
            floor,
        }
    }

    /// After the initial copy: its rows are the latest placed.
    pub fn placed_through(&mut self, position: Position) {
        if let Position::Mysql {
            file_seq,
            txn_pos,
            ordinal,
        } = position
        {
            self.floor = Some((file_seq, txn_pos, ordinal));
        }
    }

    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// A DDL changed `table`: a held chunk of it was read with the old shape.
    pub fn forget(&mut self, table: &str) {
        if self.held.as_ref().is_some_and(|h| h.table == table) {
            self.held = None;
        }
    }

    /// Reads the next chunk of `entry` and holds it. Returns `false` when
    /// no chunk was read because the table's shape in the catalog differs
    /// from `table` (a DDL the stream has not reached yet: try later).
    pub async fn read(
        &mut self,
        config: &MysqlSourceConfig,
        flavor: Flavor,
        table: &MysqlTable,
        entry: &TableSnapshot,
    ) -> Result<bool, SourceError> {
        // Taken out for the awaits: a cancelled read drops the session (and
        // its open snapshot) instead of leaving it mid-query.
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => super::connect(config).await?,
        };
        let schema = &table.schema;
        let now = table_catalog::load(&mut conn, &schema.namespace, &schema.name).await?;
        let same_shape = now.as_ref().is_some_and(|now| {
            now.schema.columns.len() == schema.columns.len()
                && now
                    .schema
                    .columns
                    .iter()
                    .zip(&schema.columns)
                    .all(|(a, b)| a.name == b.name && a.source_type == b.source_type)
        });
        if !same_shape {
            self.conn = Some(conn);
            return Ok(false);
        }
        let anchor = open_snapshot(&mut conn, flavor).await?;
        let chunk = read_chunk(
            &mut conn,
            table,
            entry.cursor.as_ref(),
            config.snapshot_chunk_rows,
        )
        .await?;
        conn.query_drop("COMMIT")
            .await
            .map_err(super::chunk_reader::driver("ending the chunk's snapshot"))?;
        self.conn = Some(conn);
        self.held = Some(HeldChunk {
            table: entry.table.clone(),
            schema: schema.clone(),
            anchor,
            rows: chunk.rows,
            truncate_first: entry.reset && entry.cursor.is_none(),
            next: chunk.next,
        });
        Ok(true)
    }

    /// The held chunk once the stream has reached its snapshot's position
    /// (`stream_at`: where the stream is; `last_begin`: where the last
    /// transaction it read began). A chunk the stream already passed is
    /// dropped (read again next time).
    pub fn take_ready(
        &mut self,
        stream_at: &BinlogFile,
        last_begin: Option<&BinlogFile>,
    ) -> Option<HeldChunk> {
        let held = self.held.as_ref()?;
        if last_begin.is_some_and(|b| *b >= held.anchor) {
            tracing::debug!(table = %held.table, anchor = %held.anchor, "the stream passed the chunk's snapshot before it arrived; reading it again");
            self.held = None;
            return None;
        }
        if *stream_at >= held.anchor {
            return self.held.take();
        }
        None
    }

    /// The chunk as changes placed just before its snapshot's position.
    pub fn changes(&mut self, chunk: HeldChunk, info: &SourceInfo) -> Vec<SourceEvent> {
        let file_seq = chunk.anchor.sequence().expect("checked by open_snapshot");
        let txn_pos = chunk.anchor.pos - 1;
        let mut ordinal = match self.floor {
            Some((f, t, o)) if (f, t) == (file_seq, txn_pos) => o,
            _ => 0,
        };
        let mut position = || {
            ordinal += 1;
            Position::Mysql {
                file_seq,
                txn_pos,
                ordinal,
            }
        };
        let mut events = Vec::with_capacity(chunk.rows.len() + 1);
        if chunk.truncate_first {
            events.push(SourceEvent::Change(Envelope {
                op: Op::Truncate,
                table: chunk.schema.clone(),
                after: None,
                before: None,
                unchanged: Vec::new(),
                position: position(),
                source: info.clone(),
            }));
        }
        for row in chunk.rows {
            events.push(SourceEvent::Change(Envelope {
                op: Op::Read,
                table: chunk.schema.clone(),
                after: Some(row),
                before: None,
                unchanged: Vec::new(),
                position: position(),
                source: info.clone(),
            }));
        }
        self.floor = Some((file_seq, txn_pos, ordinal));
        events
    }
}
