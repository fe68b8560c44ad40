//! The binlog as a stream of committed transactions: [`MysqlReplication`].
//!
//! Sits at the left end of a MySQL/MariaDB source: a replica connection
//! (`COM_BINLOG_DUMP` / `COM_BINLOG_DUMP_GTID`, through `mysql_async`) from
//! a [`MysqlResume`] point, turned into [`MysqlEvent`]s — `Begin`, `Rows`
//! (with the table map that describes them), `Query` (DDL and other
//! statements), `Commit` carrying the resume point *after* the transaction,
//! and `Heartbeat` while the server is idle so the checkpoint can still
//! move. [`MysqlReplication::next_decoded`] gives the same stream with rows
//! as [`crate::MysqlValue`]s and statements classified ([`DecodedEvent`]).
//!
//! Transactions: ROW-format binlogs hold only committed InnoDB
//! transactions, grouped `GTID → BEGIN → table maps and rows → XID` (or
//! `COMMIT` for non-transactional tables); a DDL is one standalone `Query`,
//! reported as `Begin, Query, Commit`. A group that changed
//! non-transactional tables and was rolled back ends in a `ROLLBACK`
//! statement: such groups are held back until their end and dropped on
//! `ROLLBACK` (MariaDB flags transactional groups in their GTID event, and
//! those are streamed without holding). Likewise rows between `SAVEPOINT s`
//! and `ROLLBACK TO s` queries (logged when the transaction also changed a
//! non-transactional table) are dropped. Held rows beyond
//! [`ROLLBACK_HOLD_ROWS`] are released early; an undo reaching them fails
//! the stream rather than leave rows standing (see `reader/grouping.rs`).
//!
//! Positions: every event header carries the offset of the next event; a
//! ROTATE names the next file. MariaDB's GTID (162) and GTID_LIST (163)
//! events arrive as events `mysql_async` does not decode; they are read by
//! [`crate::position`].

mod decode;
mod event;
mod grouping;
mod rotate;
mod row_image;
mod session;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::{BinlogStream, Opts};

use crate::charset::CharsetMap;
use crate::error::MysqlError;
use crate::position::{
    BinlogFile, MariaGtidEvent, MariaGtidPos, MysqlGtidSet, MysqlResume, format_uuid,
};
use crate::preflight::Flavor;

pub use event::{DecodedEvent, DecodedRow, MysqlEvent, RowImages, RowsKind};
pub use session::current_position;

/// Rows a possibly-rolled-back group may hold before it is released.
pub const ROLLBACK_HOLD_ROWS: usize = 100_000;

/// MariaDB event types `mysql_async` does not know.
const MARIADB_GTID_EVENT: u8 = 162;
const MARIADB_GTID_LIST_EVENT: u8 = 163;
/// MariaDB GTID flag: every change of the group can be rolled back.
const MARIADB_FL_TRANSACTIONAL: u8 = 4;
/// MariaDB's compressed QUERY and rows events (`log_bin_compress = ON`).
const MARIADB_COMPRESSED_EVENTS: std::ops::RangeInclusive<u8> = 165..=171;

/// How to start a [`MysqlReplication`].
#[derive(Debug, Clone)]
pub struct MysqlReplicationConfig {
    /// Connection options of the CDC user.
    pub opts: Opts,
    /// The replica id presented to the server (unique among its replicas).
    pub server_id: u32,
    /// MariaDB or MySQL (from [`crate::preflight()`]).
    pub flavor: Flavor,
    /// Where to start; `None`: the server's current end of binlog.
    pub start: Option<MysqlResume>,
    /// How often an idle server sends a heartbeat.
    pub heartbeat: Duration,
}

/// How [`MysqlReplication::start_with`] asks for the start point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartBy {
    /// The resume point's file and offset (`COM_BINLOG_DUMP`).
    FileCoordinates,
    /// The resume point's GTID position (MariaDB `@slave_connect_state`,
    /// MySQL `COM_BINLOG_DUMP_GTID`); file coordinates when it has none.
    Gtid,
}

/// Which columns a row change's before and after images carry (`None`:
/// no such image).
type ImagePresence = (Option<Vec<bool>>, Option<Vec<bool>>);

/// An event waiting to be handed out, with what decoding its rows needs.
#[derive(Debug)]
struct Queued {
    event: MysqlEvent,
    /// Which columns the before/after images of a rows event carry (the
    /// same for all its rows; `None`: every column).
    presence: ImagePresence,
}

impl From<MysqlEvent> for Queued {
    fn from(event: MysqlEvent) -> Queued {
        Queued {
            event,
            presence: (None, None),
        }
    }
}

/// A running binlog stream.
pub struct MysqlReplication {
    stream: BinlogStream,
    flavor: Flavor,
    file: String,
    /// Offset after the last event read.
    pos: u64,
    mariadb_gtid: MariaGtidPos,
    mysql_gtid: Option<MysqlGtidSet>,
    /// Table maps by id, with how their rows are read (`None`: by
    /// `mysql_common`).
    tables: HashMap<u64, (TableMapEvent<'static>, Option<row_image::RowsPlan>)>,
    grouping: grouping::Grouping,
    charsets: CharsetMap,
    columns: decode::ColumnsCache,
}

impl std::fmt::Debug for MysqlReplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlReplication")
            .field("position", &self.resume().to_string())
            .field("in_txn", &self.grouping.in_group())
            .finish()
    }
}

impl MysqlReplication {
    /// Connects, prepares the session the way a replica does, and starts
    /// the dump at `config.start`'s file coordinates.
    pub async fn start(config: MysqlReplicationConfig) -> Result<MysqlReplication, MysqlError> {
        MysqlReplication::start_with(config, StartBy::FileCoordinates).await
    }

    /// Like [`MysqlReplication::start`], choosing how the start point is
    /// requested.
    pub async fn start_with(
        config: MysqlReplicationConfig,
        by: StartBy,
    ) -> Result<MysqlReplication, MysqlError> {
        let started = session::open(&config, by).await?;
        let start = started.start;
        Ok(MysqlReplication {
            stream: started.stream,
            flavor: config.flavor,
            file: start.file.file.clone(),
            pos: start.file.pos,
            mariadb_gtid: start
                .mariadb_gtid
                .as_deref()
                .and_then(MariaGtidPos::parse)
                .unwrap_or_default(),
            mysql_gtid: start.mysql_gtid.as_deref().and_then(MysqlGtidSet::parse),
            tables: HashMap::new(),
            grouping: grouping::Grouping::default(),
            charsets: CharsetMap::builtin(),
            columns: decode::ColumnsCache::default(),
        })
    }

    /// Uses `charsets` (e.g. [`CharsetMap::load`]ed from the server) to
    /// decode text in [`MysqlReplication::next_decoded`].
    pub fn set_charsets(&mut self, charsets: CharsetMap) {
        self.charsets = charsets;
    }

    /// Ends the dump and closes the connection, so the server forgets this
    /// replica at once (a lingering dump thread holds the `server_id`).
    pub async fn close(self) -> Result<(), MysqlError> {
        self.stream
            .close()
            .await
            .map_err(|e| MysqlError::from_driver(e, "closing the binlog stream", "-"))
    }

    /// The resume point after everything read so far.
    pub fn resume(&self) -> MysqlResume {
        MysqlResume {
            file: BinlogFile {
                file: self.file.clone(),
                pos: self.pos,
            },
            mariadb_gtid: (self.flavor == Flavor::MariaDb && !self.mariadb_gtid.0.is_empty())
                .then(|| self.mariadb_gtid.to_string()),
            mysql_gtid: self.mysql_gtid.as_ref().map(MysqlGtidSet::to_string),
        }
    }

    /// The next event; `Err` when the stream failed (transient when the
    /// connection dropped).
    pub async fn next(&mut self) -> Result<MysqlEvent, MysqlError> {
        Ok(self.next_queued().await?.event)
    }

    /// The next event with rows decoded into [`crate::MysqlValue`]s and
    /// statements classified.
    pub async fn next_decoded(&mut self) -> Result<DecodedEvent, MysqlError> {
        let queued = self.next_queued().await?;
        decode::decode_event(queued, &mut self.columns, &self.charsets)
    }

    async fn next_queued(&mut self) -> Result<Queued, MysqlError> {
        loop {
            if let Some(queued) = self.grouping.pop() {
                return Ok(queued);
            }
            let position = self.resume().to_string();
            let event = match self.stream.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    return Err(MysqlError::from_driver(e, "reading the binlog", &position));
                }
                None => {
                    return Err(MysqlError::Transient {
                        message: format!("the server ended the binlog stream at {position}"),
                    });
                }
            };
            self.handle(event)?;
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), MysqlError> {
        let header = event.header();
        let timestamp = header.timestamp();
        let next_pos = u64::from(header.log_pos());
        // Artificial events (sent at the start of a dump) carry 0.
        let event_start = if next_pos > 0 {
            next_pos.saturating_sub(u64::from(header.event_size()))
        } else {
            self.pos
        };
        let here = format!("{}:{}", self.file, event_start);
        let raw_type = header.event_type_raw();
        if raw_type == MARIADB_GTID_EVENT {
            let gtid =
                MariaGtidEvent::parse(header.server_id(), event.data()).ok_or_else(|| {
                    MysqlError::Definite {
                        message: format!("malformed MariaDB GTID event at {here}"),
                    }
                })?;
            self.grouping.announce(
                gtid.gtid.to_string(),
                gtid.flags & MARIADB_FL_TRANSACTIONAL != 0,
                event_start,
            );
            self.mariadb_gtid.apply(gtid.gtid);
            self.advance(next_pos);
            if !gtid.standalone() {
                self.begin(timestamp);
            }
            return Ok(());
        }
        if raw_type == MARIADB_GTID_LIST_EVENT {
            if let Some(list) = MariaGtidPos::from_gtid_list_event(event.data()) {
                self.mariadb_gtid = self.mariadb_gtid.merged(&list);
            }
            self.advance(next_pos);
            return Ok(());
        }
        if self.flavor == Flavor::MariaDb && MARIADB_COMPRESSED_EVENTS.contains(&raw_type) {
            return Err(MysqlError::Setup {
                message: format!(
                    "compressed binlog event (type {raw_type}) at {here}: the server logs with log_bin_compress = ON, which this reader cannot decode; SET GLOBAL log_bin_compress = OFF"
                ),
            });
        }
        let bad = |e: std::io::Error| MysqlError::Definite {
            message: format!("cannot decode a binlog event at {here}: {e}"),
        };
        match event.read_data().map_err(bad)? {
            Some(EventData::RotateEvent(rotate)) => {
                self.file = rotate::rotate_name(&event, &rotate);
                self.pos = rotate.position();
            }
            Some(EventData::GtidEvent(gtid)) => {
                if gtid.is_tagged() {
                    return Err(MysqlError::Definite {
                        message: format!(
                            "tagged GTID at {here} (MySQL 8.4 `uuid:tag:n`): not supported by this reader"
                        ),
                    });
                }
                let uuid = format_uuid(&gtid.sid());
                self.grouping
                    .announce(format!("{uuid}:{}", gtid.gno()), false, event_start);
                self.mysql_gtid
                    .get_or_insert_with(MysqlGtidSet::default)
                    .add(&uuid, gtid.gno());
                self.advance(next_pos);
            }
            Some(EventData::QueryEvent(query)) => {
                self.grouping.starts_at(event_start);
                self.advance(next_pos);
                let sql = query.query().trim().to_string();
                let upper = sql.to_ascii_uppercase();
                if upper == "BEGIN" {
                    self.begin(timestamp);
                } else if upper == "COMMIT" {
                    self.commit(timestamp, None);
                } else if upper == "ROLLBACK" {
                    self.grouping.rollback(&here)?;
                } else if let Some(statement) = grouping::SavepointStatement::parse(&sql) {
                    self.grouping.savepoint(statement, &here)?;
                } else {
                    let standalone = !self.grouping.in_group();
                    if standalone {
                        self.begin(timestamp);
                    }
                    self.grouping.emit(
                        MysqlEvent::Query {
                            database: query.schema().to_string(),
                            sql,
                        }
                        .into(),
                        0,
                    );
                    if standalone {
                        self.commit(timestamp, None);
                    }
                }
            }
            Some(EventData::TableMapEvent(map)) => {
                self.advance(next_pos);
                // Every transaction repeats its tables' maps: keep the plan
                // while the map stays the same.
                let same = self
                    .tables
                    .get(&map.table_id())
                    .is_some_and(|(known, _)| *known == map);
                if !same {
                    let plan = row_image::RowsPlan::of(&map);
                    self.tables.insert(map.table_id(), (map.into_owned(), plan));
                }
            }
            Some(EventData::RowsEvent(rows_event)) => {
                let at = BinlogFile {
                    file: self.file.clone(),
                    pos: event_start,
                };
                self.grouping.starts_at(event_start);
                self.advance(next_pos);
                let queued = self.rows(&rows_event, at).map_err(bad)?;
                if !self.grouping.in_group() {
                    self.begin(timestamp);
                }
                let count = match &queued.event {
                    MysqlEvent::Rows { rows, .. } => rows.len(),
                    _ => 0,
                };
                self.grouping.emit(queued, count);
            }
            Some(EventData::XidEvent(xid)) => {
                self.advance(next_pos);
                self.commit(timestamp, Some(xid.xid));
            }
            Some(EventData::HeartbeatEvent) => {
                if next_pos > 0 {
                    self.pos = next_pos;
                }
                self.grouping.heartbeat(self.resume());
            }
            Some(EventData::TransactionPayloadEvent(_)) => {
                return Err(MysqlError::Setup {
                    message: format!(
                        "compressed transaction payload at {here}: the server runs with binlog_transaction_compression = ON, which this reader cannot decode; SET GLOBAL binlog_transaction_compression = OFF"
                    ),
                });
            }
            _ => self.advance(next_pos),
        }
        Ok(())
    }

    /// Decodes a rows event with the table map it names.
    fn rows(&self, rows_event: &RowsEventData<'_>, at: BinlogFile) -> std::io::Result<Queued> {
        let table_id = rows_event.table_id();
        let (table, plan) = self.tables.get(&table_id).ok_or_else(|| {
            std::io::Error::other(format!(
                "rows event for unknown table id {table_id}: the binlog is missing its table map"
            ))
        })?;
        let kind = match rows_event {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                RowsKind::Insert
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                RowsKind::Delete
            }
            _ => RowsKind::Update,
        };
        let count = usize::try_from(rows_event.num_columns()).unwrap_or(0);
        let before_present: Option<Vec<bool>> = rows_event
            .columns_before_image()
            .map(|b| (0..count).map(|i| b.get(i).is_some_and(|x| *x)).collect());
        let after_present: Option<Vec<bool>> = rows_event
            .columns_after_image()
            .map(|b| (0..count).map(|i| b.get(i).is_some_and(|x| *x)).collect());
        let rows = match plan.as_ref().and_then(|plan| plan.read(rows_event)) {
            Some(rows) => {
                // Debug builds (every test) check the fast reader against
                // mysql_common on every rows event.
                #[cfg(debug_assertions)]
                assert_eq!(
                    rows,
                    Self::rows_by_mysql_common(rows_event, table)?,
                    "row_image disagrees with mysql_common on {}.{}",
                    table.database_name(),
                    table.table_name()
                );
                rows
            }
            None => Self::rows_by_mysql_common(rows_event, table)?,
        };
        Ok(Queued {
            event: MysqlEvent::Rows {
                kind,
                table: Box::new(table.clone()),
                rows,
                at,
            },
            presence: (before_present, after_present),
        })
    }

    /// The row images as `mysql_common` reads them (any column type).
    fn rows_by_mysql_common(
        rows_event: &RowsEventData<'_>,
        table: &TableMapEvent<'static>,
    ) -> std::io::Result<Vec<RowImages>> {
        let mut rows = Vec::new();
        for row in rows_event.rows(table) {
            let (before, after) = row?;
            rows.push((before.map(BinlogRow::unwrap), after.map(BinlogRow::unwrap)));
        }
        Ok(rows)
    }

    fn advance(&mut self, next_pos: u64) {
        if next_pos > 0 {
            self.pos = next_pos;
        }
    }

    fn begin(&mut self, timestamp: u32) {
        self.grouping.begin(&self.file, self.pos, timestamp);
    }

    fn commit(&mut self, timestamp: u32, xid: Option<u64>) {
        let resume = self.resume();
        self.grouping.commit(resume, timestamp, xid);
    }
}
