//! `tributary snapshot --source NAME --table T…`: ask a source for an
//! incremental snapshot of some of its tables.
//!
//! The request is written into the source database's WAL as a transactional
//! logical message, so it travels to the daemon through the replication
//! stream it already reads: no admin port, no shared files, and a request
//! made while the daemon is stopped is honoured when it starts. The daemon
//! copies the tables chunk by chunk between watermarks while it keeps
//! streaming (see `source::postgres::snapshot`).

use crate::config::{Config, SourceConfig, qualify};
use crate::snapshot_request::{REQUEST_VERSION, SnapshotRequest, SnapshotRequests};
use crate::source::postgres::connect_catalog;
use crate::source::postgres::snapshot::signal::{self, SnapshotSignal};

/// Writes the request; returns the text printed to the operator.
pub async fn request(
    config: &Config,
    name: &str,
    tables: &[String],
    reset: bool,
) -> Result<String, String> {
    let source = super::checkpoint::find(config, name)?;
    let pg = match source {
        SourceConfig::Postgres(pg) => pg,
        SourceConfig::Mysql(my) => return request_mysql(config, source, my, tables, reset).await,
        SourceConfig::Mongo(mongo) => {
            for table in tables {
                let captured = match table.split_once('.') {
                    Some((db, coll)) => {
                        db == mongo.database
                            && (mongo.collections.is_empty()
                                || mongo.collections.iter().any(|c| c == coll))
                    }
                    None => false,
                };
                if !captured {
                    return Err(format!(
                        "source {name} does not capture {table}; name collections as {}.<collection>",
                        mongo.database
                    ));
                }
            }
            return submit_request(config, source, name, tables, reset).await;
        }
    };
    if tables.is_empty() {
        return Err("name at least one table with --table schema.table".into());
    }
    let mut qualified = Vec::with_capacity(tables.len());
    for table in tables {
        let q = qualify(table)
            .ok_or_else(|| format!("{table:?} is not a table name; write schema.table"))?;
        let captured = match &pg.schema {
            Some(schema) => q.starts_with(&format!("{schema}.")),
            None => pg.table_list().iter().any(|(s, t)| format!("{s}.{t}") == q),
        };
        if !captured {
            return Err(format!(
                "source {name} does not capture {q}; add it to the source's `tables` (a restart then snapshots it by itself)"
            ));
        }
        qualified.push(q);
    }
    let client = connect_catalog(pg).await.map_err(|e| e.to_string())?;
    for q in &qualified {
        let (schema, table) = q.split_once('.').expect("qualified");
        let exists = tributary_postgres::catalog::table_oid(&client, schema, table)
            .await
            .map_err(|e| e.to_string())?;
        if exists.is_none() {
            return Err(format!(
                "table {q} does not exist in database {}",
                pg.database
            ));
        }
    }
    let signal = SnapshotSignal {
        source: name.to_string(),
        tables: qualified.clone(),
        reset,
        reason: None,
    };
    let lsn = signal::emit(&client, &signal)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{name}: incremental snapshot of {} requested (WAL {lsn}); the running daemon, or its next start, copies the tables while streaming; follow it with `tributary checkpoint show`",
        qualified.join(", ")
    ))
}

/// MySQL/MariaDB: the binlog carries no message from us, so the request
/// goes into the source's lake folder (`crate::snapshot_request`), where the
/// running daemon (or its next start) picks it up.
async fn request_mysql(
    config: &Config,
    source: &SourceConfig,
    my: &crate::config::MysqlSourceConfig,
    tables: &[String],
    reset: bool,
) -> Result<String, String> {
    let name = &my.name;
    if tables.is_empty() {
        return Err("name at least one table with --table database.table".into());
    }
    let captured: Vec<String> = my
        .table_list()
        .iter()
        .map(|(d, t)| format!("{d}.{t}"))
        .collect();
    for table in tables {
        if !captured.contains(table) {
            return Err(format!(
                "source {name} does not capture {table}; it captures [{}]",
                captured.join(", ")
            ));
        }
    }
    let mut conn = crate::source::mysql::connect(my)
        .await
        .map_err(|e| e.to_string())?;
    for table in tables {
        let (db, t) = table.split_once('.').expect("captured names are qualified");
        let exists = crate::source::mysql::table_catalog::load(&mut conn, db, t)
            .await
            .map_err(|e| e.to_string())?;
        if exists.is_none() {
            return Err(format!("table {table} does not exist on {}", my.describe()));
        }
    }
    submit_request(config, source, name, tables, reset).await
}

/// Writes a request file into the source's lake folder.
async fn submit_request(
    config: &Config,
    source: &SourceConfig,
    name: &str,
    tables: &[String],
    reset: bool,
) -> Result<String, String> {
    if tables.is_empty() {
        return Err("name at least one table with --table".into());
    }
    let store = super::checkpoint::store_for(config, source)?;
    let request = SnapshotRequest {
        request_version: REQUEST_VERSION,
        tables: tables.to_vec(),
        reset,
        requested_at: chrono::Utc::now().to_rfc3339(),
    };
    let id = SnapshotRequests::new(store, name)
        .submit(&request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{name}: incremental snapshot of {} requested ({id}{}); the running daemon, or its next start, copies the tables chunk by chunk while streaming; follow it with `tributary checkpoint show`",
        tables.join(", "),
        if reset {
            ", lake tables emptied first"
        } else {
            ""
        }
    ))
}
