//! `tributary checkpoint show|reset`: inspect and move a source's checkpoint.
//!
//! Reset refuses positions the slot can no longer serve: PostgreSQL releases
//! WAL up to the slot's `confirmed_flush_lsn`, so an earlier LSN cannot be
//! streamed again; re-copying older data is what snapshots are for.

use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointStore};
use crate::config::{Config, SinkConfig, SourceConfig};
use crate::position::{Position, ResumePoint, format_lsn, parse_lsn};
use crate::sink::{LakeStore, ManifestWriter};
use crate::snapshot::{SnapshotKind, SnapshotState};
use crate::source::postgres::connect_catalog;

pub(crate) fn store_for(config: &Config, source: &SourceConfig) -> Result<LakeStore, String> {
    let SinkConfig::Lake(lake) = &config.sink[source.sink()];
    LakeStore::from_url(&lake.url).map_err(|e| e.to_string())
}

pub(crate) fn find<'a>(config: &'a Config, name: &str) -> Result<&'a SourceConfig, String> {
    config
        .source
        .iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| {
            let names: Vec<_> = config.source.iter().map(|s| s.name()).collect();
            format!(
                "no source named {name:?}; configured sources: [{}]",
                names.join(", ")
            )
        })
}

/// Text for `checkpoint show`.
pub async fn show(config: &Config, only: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    for source in &config.source {
        if only.is_some_and(|o| o != source.name()) {
            continue;
        }
        let store = store_for(config, source)?;
        let checkpoints = CheckpointStore::new(store, source.name());
        let checkpoint = checkpoints.load().await.map_err(|e| e.to_string())?;
        match checkpoint {
            None => out.push_str(&format!(
                "{}: no checkpoint yet (starts at the slot's position)\n",
                source.name()
            )),
            Some(c) => {
                let resume = c
                    .resume
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "slot position".into());
                let last = c
                    .last_position
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "{}: resume at {resume}; last durable change {last}; manifest {}; transaction complete: {}; updated {}\n",
                    source.name(),
                    c.manifest_seq,
                    c.txn_complete,
                    c.updated_at
                ));
                if let Some(snapshot) = &c.snapshot {
                    out.push_str(&format!(
                        "  snapshots: {} of {} tables done",
                        snapshot.done.len(),
                        snapshot.tables.len()
                    ));
                    for p in &snapshot.pending {
                        out.push_str(&format!(
                            "; {} {:?} in progress ({} rows so far)",
                            p.table, p.kind, p.rows
                        ));
                    }
                    out.push('\n');
                }
            }
        }
    }
    if let Some(name) = only {
        find(config, name)?;
    }
    Ok(out)
}

/// `checkpoint reset --to LSN`.
pub async fn reset(config: &Config, name: &str, to: &str) -> Result<String, String> {
    let source = find(config, name)?;
    let pg = match source {
        SourceConfig::Postgres(pg) => pg,
        SourceConfig::Mysql(my) => return reset_mysql(config, source, my, to).await,
        SourceConfig::Mongo(mongo) => return reset_mongo(config, source, mongo, to).await,
    };
    let target = parse_lsn(to).ok_or_else(|| {
        format!("{to:?} is not an LSN; write it as PostgreSQL prints it, e.g. 0/16B3748")
    })?;
    let client = connect_catalog(pg).await.map_err(|e| e.to_string())?;
    let row = client
        .query_opt(
            "SELECT active_pid, confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&pg.slot],
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("replication slot {:?} does not exist; start the daemon once to create it", pg.slot))?;
    let active: Option<i32> = row.get(0);
    if let Some(pid) = active {
        return Err(format!(
            "replication slot {:?} is in use by PID {pid}; stop the daemon before resetting its checkpoint",
            pg.slot
        ));
    }
    let confirmed = row
        .get::<_, Option<String>>(1)
        .and_then(|t| parse_lsn(&t))
        .unwrap_or(0);
    let wal_status: Option<String> = row.get(2);
    if wal_status.as_deref() == Some("lost") {
        return Err(format!(
            "replication slot {:?} has lost required WAL (wal_status = lost); it can serve no position: drop and recreate it and re-snapshot the tables",
            pg.slot
        ));
    }
    if target < confirmed {
        return Err(format!(
            "cannot reset to {}: slot {:?} has confirmed {} and PostgreSQL has released the WAL before it, so those changes cannot be streamed again; to re-copy the tables' data, run `tributary snapshot --config <file> --source {name} --table <schema.table>` instead (an incremental snapshot while the stream keeps running)",
            format_lsn(target),
            pg.slot,
            format_lsn(confirmed)
        ));
    }
    let current: String = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let current = parse_lsn(&current).unwrap_or(u64::MAX);
    if target > current {
        return Err(format!(
            "cannot reset to {}: it is beyond the server's current WAL position {}",
            format_lsn(target),
            format_lsn(current)
        ));
    }
    save_reset(config, source, |previous| Reset {
        last_position: None,
        resume: Some(ResumePoint::Postgres { lsn: target }),
        // Which tables are captured and snapshotted does not change with
        // the stream position.
        snapshot: previous.and_then(|c| c.snapshot.clone()),
    })
    .await?;
    Ok(format!(
        "{name}: checkpoint reset; the next run resumes at {} (slot confirmed {})",
        format_lsn(target),
        format_lsn(confirmed)
    ))
}

/// `checkpoint reset` of a MySQL/MariaDB source: to `FILE:POS` (replay from
/// there; the server must still have the file) or to `current` (after a
/// purged binlog: stream from the server's current position and copy every
/// table again, each emptied in the lake first, chunk by chunk).
async fn reset_mysql(
    config: &Config,
    source: &SourceConfig,
    my: &crate::config::MysqlSourceConfig,
    to: &str,
) -> Result<String, String> {
    use tributary_mysql::mysql_async::prelude::Queryable;
    let name = &my.name;
    let mut conn = crate::source::mysql::connect(my)
        .await
        .map_err(|e| e.to_string())?;
    let report = tributary_mysql::preflight(&mut conn, my.server_id)
        .await
        .map_err(|e| e.to_string())?;
    let in_use = report.checks.iter().any(|c| {
        c.name == "server_id"
            && c.problem
                .as_deref()
                .is_some_and(|p| p.contains("another replica"))
    });
    if in_use {
        return Err(format!(
            "a replica with server_id {} is connected to {}: stop the daemon (source {name}) before resetting its checkpoint",
            my.server_id,
            my.describe()
        ));
    }
    let current = to.eq_ignore_ascii_case("current") || to.eq_ignore_ascii_case("now");
    let file = if current {
        tributary_mysql::reader::current_position(&mut conn, report.flavor)
            .await
            .map_err(|e| e.to_string())?
            .file
    } else {
        let (file, pos) = to
            .rsplit_once(':')
            .and_then(|(f, p)| Some((f.to_string(), p.parse::<u64>().ok()?)))
            .ok_or_else(|| {
                format!("{to:?} is not a binlog position; write FILE:POS (e.g. binlog.000042:1234, see SHOW BINARY LOGS) or `current`")
            })?;
        let logs: Vec<tributary_mysql::mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| e.to_string())?;
        let have = logs
            .iter()
            .any(|row| row.get::<String, usize>(0).as_deref() == Some(file.as_str()));
        if !have {
            return Err(format!(
                "{} no longer has binlog file {file} (see SHOW BINARY LOGS); reset to a listed file, or use --to current to copy the tables again",
                my.describe()
            ));
        }
        tributary_mysql::BinlogFile { file, pos }
    };
    let resume = crate::source::mysql::resume_at(&mut conn, report.flavor, file)
        .await
        .map_err(|e| e.to_string())?;
    let captured: Vec<String> = my
        .table_list()
        .iter()
        .map(|(d, t)| format!("{d}.{t}"))
        .collect();
    save_reset(config, source, |previous| {
        let mut snapshot = previous
            .and_then(|c| c.snapshot.clone())
            .unwrap_or_default();
        if current {
            for table in &captured {
                snapshot.enqueue_with(table, SnapshotKind::Incremental, true);
            }
            snapshot.tables = captured.clone();
        }
        Reset {
            // Moving forward keeps the last position (snapshot rows are
            // placed after it); moving back lets the replayed changes through.
            last_position: if current {
                previous.and_then(|c| c.last_position)
            } else {
                None
            },
            resume: Some(ResumePoint::Mysql(resume.clone())),
            snapshot: Some(snapshot),
        }
    })
    .await?;
    Ok(if current {
        format!(
            "{name}: checkpoint reset; the next run streams from {resume} and copies {} again (each emptied in the lake first, chunk by chunk while streaming)",
            captured.join(", ")
        )
    } else {
        format!("{name}: checkpoint reset; the next run resumes at {resume}")
    })
}

/// `checkpoint reset --to current` of a MongoDB source (after the oplog
/// rolled past its resume token): the next start takes the cluster time and
/// copies every collection again (each emptied in the lake first), then
/// streams from that time.
async fn reset_mongo(
    config: &Config,
    source: &SourceConfig,
    mongo: &crate::config::MongoSourceConfig,
    to: &str,
) -> Result<String, String> {
    let name = &mongo.name;
    if !(to.eq_ignore_ascii_case("current") || to.eq_ignore_ascii_case("now")) {
        return Err(format!(
            "{name} is a mongodb source: only --to current is supported (resume tokens are opaque; copying again is how to recover)"
        ));
    }
    save_reset(config, source, |previous| {
        let mut snapshot = previous
            .and_then(|c| c.snapshot.clone())
            .unwrap_or_default();
        for table in snapshot.tables.clone() {
            snapshot.enqueue(&table, SnapshotKind::Initial);
        }
        snapshot.done.clear();
        Reset {
            // Copy rows are placed after the last durable change.
            last_position: previous.and_then(|c| c.last_position),
            resume: None,
            snapshot: Some(snapshot),
        }
    })
    .await?;
    Ok(format!(
        "{name}: checkpoint reset; the next run copies every collection again (each emptied in the lake first) and streams from the cluster time taken before the copy"
    ))
}

/// What a reset changes in a source's checkpoint.
struct Reset {
    last_position: Option<Position>,
    resume: Option<ResumePoint>,
    snapshot: Option<SnapshotState>,
}

/// Writes the checkpoint a reset leads to (`reset` sees the current one),
/// keeping the manifest sequence where the lake is.
async fn save_reset(
    config: &Config,
    source: &SourceConfig,
    reset: impl FnOnce(Option<&Checkpoint>) -> Reset,
) -> Result<(), String> {
    let name = source.name();
    let store = store_for(config, source)?;
    let latest = ManifestWriter::new(store.clone(), name)
        .latest()
        .await
        .map_err(|e| e.to_string())?;
    let checkpoints = CheckpointStore::new(store, name);
    let previous = checkpoints.load().await.map_err(|e| e.to_string())?;
    let Reset {
        last_position,
        resume,
        snapshot,
    } = reset(previous.as_ref());
    let checkpoint = Checkpoint {
        checkpoint_version: CHECKPOINT_VERSION,
        source: name.to_string(),
        manifest_seq: latest.map(|m| m.seq).unwrap_or(0),
        last_position,
        resume,
        txn_complete: true,
        snapshot,
        updated_at: chrono::Utc::now().to_rfc3339(),
    };
    checkpoints
        .save(&checkpoint)
        .await
        .map_err(|e| e.to_string())
}
