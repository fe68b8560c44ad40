//! The binlog as a stream of committed transactions: [`MysqlReplication`].
//!
//! Sits at the left end of a MySQL/MariaDB source: a replica connection
//! (`COM_BINLOG_DUMP`, through `mysql_async`) from a [`MysqlResume`] point,
//! turned into [`MysqlEvent`]s — `Begin`, `Rows` (with the table map that
//! describes them), `Query` (DDL and other statements), `Commit` carrying
//! the resume point *after* the transaction, and `Heartbeat` while the
//! server is idle so the checkpoint can still move.
//!
//! Transactions: ROW-format binlogs hold only committed transactions,
//! grouped `GTID → BEGIN → table maps and rows → XID` (or `COMMIT` for
//! non-transactional tables); a DDL is one standalone `Query`, reported as
//! `Begin, Query, Commit`. A `ROLLBACK` query ends a group whose
//! non-transactional rows did happen, so it commits like `COMMIT`.
//!
//! Positions: every event header carries the offset of the next event; a
//! ROTATE names the next file. MariaDB's GTID events (162) arrive as events
//! `mysql_async` does not decode; [`MariaGtid::from_event`] reads them.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{EventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};

use crate::error::MysqlError;
use crate::position::{BinlogFile, MariaGtid, MariaGtidPos, MysqlGtidSet, MysqlResume};
use crate::preflight::Flavor;

/// MariaDB's GTID event type.
const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB GTID event flag: a statement without BEGIN/COMMIT (DDL).
const MARIADB_FL_STANDALONE: u8 = 1;

/// How to start a [`MysqlReplication`].
#[derive(Debug, Clone)]
pub struct MysqlReplicationConfig {
    pub opts: Opts,
    /// The replica id presented to the server (unique among its replicas).
    pub server_id: u32,
    pub flavor: Flavor,
    /// Where to start; `None`: the server's current end of binlog.
    pub start: Option<MysqlResume>,
    /// How often an idle server sends a heartbeat.
    pub heartbeat: Duration,
}

/// One row change of a rows event: images in table-map column order.
pub type RowImages = (
    Option<Vec<BinlogValue<'static>>>,
    Option<Vec<BinlogValue<'static>>>,
);

/// What kind of rows event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    Insert,
    Update,
    Delete,
}

/// One step of the binlog, in order.
#[derive(Debug)]
pub enum MysqlEvent {
    Begin {
        /// The transaction's GTID, when the server uses them.
        gtid: Option<String>,
        /// Where the transaction's first event (its GTID, else its BEGIN)
        /// starts: transactions are written whole, in commit order, so this
        /// orders them.
        at: BinlogFile,
        /// Commit time (seconds since the epoch, from the event header).
        timestamp: u32,
    },
    Rows {
        kind: RowsKind,
        table: Box<TableMapEvent<'static>>,
        rows: Vec<RowImages>,
        /// Offset of the event in its file (orders the rows of a
        /// transaction).
        at: BinlogFile,
    },
    /// A statement: DDL (`ALTER TABLE …`), or anything else logged as a
    /// statement. `database` is the session's default database.
    Query {
        database: String,
        sql: String,
    },
    Commit {
        resume: MysqlResume,
        timestamp: u32,
    },
    /// Idle server: nothing is pending; everything before `resume` was
    /// delivered.
    Heartbeat {
        resume: MysqlResume,
    },
}

/// A running binlog stream.
pub struct MysqlReplication {
    stream: BinlogStream,
    flavor: Flavor,
    file: String,
    /// Offset after the last event read.
    pos: u64,
    in_txn: bool,
    /// Events carry a CRC32 checksum (`binlog_checksum = CRC32`).
    checksum: bool,
    /// The open transaction's GTID.
    txn_gtid: Option<String>,
    /// Where the next transaction's first event started.
    txn_start: Option<u64>,
    mariadb_gtid: MariaGtidPos,
    mysql_gtid: Option<MysqlGtidSet>,
    tables: HashMap<u64, TableMapEvent<'static>>,
    pending: std::collections::VecDeque<MysqlEvent>,
}

impl std::fmt::Debug for MysqlReplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlReplication")
            .field("position", &self.resume().to_string())
            .field("in_txn", &self.in_txn)
            .finish()
    }
}

impl MysqlReplication {
    /// Connects, prepares the session the way a replica does, and starts
    /// the dump at `config.start`.
    pub async fn start(config: MysqlReplicationConfig) -> Result<MysqlReplication, MysqlError> {
        let connect = |e| MysqlError::from_driver(e, "connecting for the binlog", "-");
        let mut conn = Conn::new(config.opts.clone()).await.map_err(connect)?;
        let setup = |e| MysqlError::from_driver(e, "preparing the replica session", "-");
        conn.query_drop("SET @master_binlog_checksum = @@global.binlog_checksum")
            .await
            .map_err(setup)?;
        let checksum: Option<String> = conn
            .query_first("SELECT @@global.binlog_checksum")
            .await
            .map_err(setup)?;
        let checksum = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        conn.query_drop(format!(
            "SET @master_heartbeat_period = {}",
            config.heartbeat.as_nanos()
        ))
        .await
        .map_err(setup)?;
        let start = match config.start.clone() {
            Some(start) => start,
            None => current_position(&mut conn, config.flavor).await?,
        };
        let mariadb_gtid = start
            .mariadb_gtid
            .as_deref()
            .and_then(MariaGtidPos::parse)
            .unwrap_or_default();
        if config.flavor == Flavor::MariaDb {
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(setup)?;
        }
        let position = start.to_string();
        let request = BinlogStreamRequest::new(config.server_id)
            .with_filename(start.file.file.as_bytes())
            .with_pos(start.file.pos);
        let stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| MysqlError::from_driver(e, "starting the binlog dump", &position))?;
        tracing::info!(start = %position, "binlog stream started");
        Ok(MysqlReplication {
            stream,
            flavor: config.flavor,
            file: start.file.file.clone(),
            pos: start.file.pos,
            in_txn: false,
            checksum,
            txn_gtid: None,
            txn_start: None,
            mariadb_gtid,
            mysql_gtid: start.mysql_gtid.as_deref().and_then(MysqlGtidSet::parse),
            tables: HashMap::new(),
            pending: Default::default(),
        })
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
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
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

    fn handle(&mut self, event: mysql_async::binlog::events::Event) -> Result<(), MysqlError> {
        let header = event.header();
        let timestamp = header.timestamp();
        let event_start = self.pos;
        let next_pos = u64::from(header.log_pos());
        let here = format!("{}:{}", self.file, self.pos);
        let bad = |e: std::io::Error| MysqlError::Definite {
            message: format!("cannot decode a binlog event at {here}: {e}"),
        };
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            let body = event.data();
            let gtid = MariaGtid::from_event(header.server_id(), body).ok_or_else(|| {
                MysqlError::Definite {
                    message: format!("malformed MariaDB GTID event at {}:{}", self.file, self.pos),
                }
            })?;
            let standalone = body.get(12).is_some_and(|f| f & MARIADB_FL_STANDALONE != 0);
            self.txn_gtid = Some(gtid.to_string());
            self.txn_start = Some(event_start);
            self.mariadb_gtid.apply(gtid);
            self.advance(next_pos);
            if !standalone {
                self.begin(timestamp);
            }
            return Ok(());
        }
        let data = event.read_data().map_err(bad)?;
        match data {
            Some(EventData::RotateEvent(rotate)) => {
                // The artificial ROTATE that opens a dump (timestamp 0)
                // precedes the format description, so its CRC32 checksum is
                // read as the last 4 bytes of the name.
                let raw = rotate.name_raw();
                let raw = if timestamp == 0 && self.checksum && raw.len() > 4 {
                    &raw[..raw.len() - 4]
                } else {
                    raw
                };
                self.file = String::from_utf8_lossy(raw).into_owned();
                self.pos = rotate.position();
            }
            Some(EventData::GtidEvent(gtid)) => {
                let uuid = format_uuid(&gtid.sid());
                self.txn_gtid = Some(format!("{uuid}:{}", gtid.gno()));
                self.txn_start = Some(event_start);
                self.mysql_gtid
                    .get_or_insert_with(MysqlGtidSet::default)
                    .add(&uuid, gtid.gno());
                self.advance(next_pos);
            }
            Some(EventData::QueryEvent(query)) => {
                self.txn_start.get_or_insert(event_start);
                self.advance(next_pos);
                let sql = query.query().trim().to_string();
                match sql.to_ascii_uppercase().as_str() {
                    "BEGIN" => self.begin(timestamp),
                    "COMMIT" | "ROLLBACK" => self.commit(timestamp),
                    _ => {
                        let standalone = !self.in_txn;
                        if standalone {
                            self.begin(timestamp);
                        }
                        self.pending.push_back(MysqlEvent::Query {
                            database: query.schema().to_string(),
                            sql,
                        });
                        if standalone {
                            self.commit(timestamp);
                        }
                    }
                }
            }
            Some(EventData::TableMapEvent(map)) => {
                self.advance(next_pos);
                self.tables.insert(map.table_id(), map.into_owned());
            }
            Some(EventData::RowsEvent(rows_event)) => {
                let at = BinlogFile {
                    file: self.file.clone(),
                    pos: self.pos,
                };
                self.txn_start.get_or_insert(event_start);
                self.advance(next_pos);
                let table_id = rows_event.table_id();
                let table = self
                    .tables
                    .get(&table_id)
                    .cloned()
                    .ok_or_else(|| MysqlError::Definite {
                        message: format!(
                            "rows event for unknown table id {table_id} at {at}: the binlog is missing its table map"
                        ),
                    })?;
                let kind = match &rows_event {
                    mysql_async::binlog::events::RowsEventData::WriteRowsEvent(_)
                    | mysql_async::binlog::events::RowsEventData::WriteRowsEventV1(_) => {
                        RowsKind::Insert
                    }
                    mysql_async::binlog::events::RowsEventData::DeleteRowsEvent(_)
                    | mysql_async::binlog::events::RowsEventData::DeleteRowsEventV1(_) => {
                        RowsKind::Delete
                    }
                    _ => RowsKind::Update,
                };
                let mut rows = Vec::new();
                for row in rows_event.rows(&table) {
                    let (before, after) = row.map_err(bad)?;
                    rows.push((before.map(|r| r.unwrap()), after.map(|r| r.unwrap())));
                }
                if !self.in_txn {
                    self.begin(timestamp);
                }
                self.pending.push_back(MysqlEvent::Rows {
                    kind,
                    table: Box::new(table),
                    rows,
                    at,
                });
            }
            Some(EventData::XidEvent(_)) => {
                self.advance(next_pos);
                self.commit(timestamp);
            }
            Some(EventData::HeartbeatEvent) => {
                if next_pos > 0 {
                    self.pos = next_pos;
                }
                if !self.in_txn {
                    self.pending.push_back(MysqlEvent::Heartbeat {
                        resume: self.resume(),
                    });
                }
            }
            _ => self.advance(next_pos),
        }
        Ok(())
    }

    fn advance(&mut self, next_pos: u64) {
        // Artificial events (a ROTATE/format description sent at the start
        // of a dump) carry 0.
        if next_pos > 0 {
            self.pos = next_pos;
        }
    }

    fn begin(&mut self, timestamp: u32) {
        self.in_txn = true;
        let at = BinlogFile {
            file: self.file.clone(),
            pos: self.txn_start.unwrap_or(self.pos),
        };
        self.pending.push_back(MysqlEvent::Begin {
            gtid: self.txn_gtid.clone(),
            at,
            timestamp,
        });
    }

    fn commit(&mut self, timestamp: u32) {
        if !self.in_txn {
            return;
        }
        self.in_txn = false;
        self.txn_gtid = None;
        self.txn_start = None;
        self.pending.push_back(MysqlEvent::Commit {
            resume: self.resume(),
            timestamp,
        });
    }
}

/// The server's current end of binlog (where a source with no checkpoint
/// starts streaming).
pub async fn current_position(conn: &mut Conn, flavor: Flavor) -> Result<MysqlResume, MysqlError> {
    let status: Option<mysql_async::Row> = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .map_err(|e| MysqlError::from_driver(e, "reading SHOW MASTER STATUS", "-"))?;
    let status = status.ok_or_else(|| MysqlError::Setup {
        message: "SHOW MASTER STATUS returned nothing: the binary log is off; start the server with --log-bin".into(),
    })?;
    let file: String = status.get(0).unwrap_or_default();
    let pos: u64 = status.get(1).unwrap_or_default();
    let (mariadb_gtid, mysql_gtid) = match flavor {
        Flavor::MariaDb => {
            let gtid: Option<String> = conn
                .query_first("SELECT @@global.gtid_binlog_pos")
                .await
                .map_err(|e| MysqlError::from_driver(e, "reading gtid_binlog_pos", "-"))?;
            (gtid.filter(|g| !g.is_empty()), None)
        }
        Flavor::MySql => {
            let gtid: Option<String> = conn
                .query_first("SELECT @@global.gtid_executed")
                .await
                .unwrap_or(None);
            (None, gtid.filter(|g| !g.is_empty()))
        }
    };
    Ok(MysqlResume {
        file: BinlogFile { file, pos },
        mariadb_gtid,
        mysql_gtid,
    })
}

fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_format_like_mysql() {
        let bytes = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(format_uuid(&bytes), "3e11fa47-71ca-11e1-9e33-c80aa9429562");
    }
}
