//! Opening the replica session of a [`crate::MysqlReplication`]: the
//! session variables a replica sets, and the dump request from file
//! coordinates or a GTID position.

use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};

use super::{MysqlReplicationConfig, StartBy};
use crate::error::MysqlError;
use crate::position::{BinlogFile, DumpStart, MysqlResume};
use crate::preflight::Flavor;

/// A started dump.
pub(super) struct Started {
    pub(super) stream: BinlogStream,
    /// Where the dump starts (the resume point asked for, or the server's
    /// end of binlog).
    pub(super) start: MysqlResume,
}

/// Connects, prepares the session the way a replica does, and starts the
/// dump.
pub(super) async fn open(
    config: &MysqlReplicationConfig,
    by: StartBy,
) -> Result<Started, MysqlError> {
    let connect = |e| MysqlError::from_driver(e, "connecting for the binlog", "-");
    let mut conn = Conn::new(config.opts.clone()).await.map_err(connect)?;
    let setup = |e| MysqlError::from_driver(e, "preparing the replica session", "-");
    // Tell the server we understand its checksums (else it refuses to
    // stream a CRC32 binlog).
    conn.query_drop("SET @master_binlog_checksum = @@global.binlog_checksum")
        .await
        .map_err(setup)?;
    // An idle server sends a heartbeat this often (nanoseconds).
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
    if config.flavor == Flavor::MariaDb {
        // Capability 4 (MARIA_SLAVE_CAPABILITY_GTID): send GTID events
        // rather than rewriting them as BEGIN queries.
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(setup)?;
    }
    let dump = start.dump_start(by == StartBy::Gtid);
    let position = dump.to_string();
    let request = match &dump {
        DumpStart::File(file) => BinlogStreamRequest::new(config.server_id)
            .with_filename(file.file.as_bytes())
            .with_pos(file.pos),
        DumpStart::MariadbGtid(pos) => {
            // The master reads the replica's GTID state from these session
            // variables; an empty file name means "where the GTID is".
            conn.query_drop(format!(
                "SET @slave_connect_state = '{pos}', @slave_gtid_strict_mode = 1, @slave_gtid_ignore_duplicates = 0"
            ))
            .await
            .map_err(setup)?;
            BinlogStreamRequest::new(config.server_id)
                .with_filename(b"")
                .with_pos(4)
        }
        DumpStart::MysqlGtid(set) => BinlogStreamRequest::new(config.server_id)
            .with_gtid()
            .with_filename(b"")
            .with_pos(4)
            .with_gtid_set(set.to_sids()),
    };
    let stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| MysqlError::from_driver(e, "starting the binlog dump", &position))?;
    tracing::info!(start = %position, "binlog stream started");
    Ok(Started { stream, start })
}

/// The server's current end of binlog (where a source with no checkpoint
/// starts streaming), with its GTID position.
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
