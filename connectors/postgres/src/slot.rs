//! Replication slot and publication management (ordinary SQL connection).
//!
//! Runs before the stream starts: the publication decides *which* tables
//! pgoutput sends, the slot decides *from where* (it keeps WAL until we
//! acknowledge it). The stream itself ([`crate::replication`]) requires the
//! slot to exist already, so creating it here — at a moment when the daemon can
//! still snapshot tables — is the one place slots are born.
//!
//! When the operator asked us not to manage the publication, a missing or
//! incomplete publication is a definite error carrying the exact SQL to run.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use crate::catalog::{publication_tables, schema_tables};
use crate::error::PgError;
use crate::lsn::Lsn;
use crate::sql::{qualified, quote_ident};

/// What a publication should cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationTables {
    /// These `(schema, table)` pairs.
    Tables(Vec<(String, String)>),
    /// Every table of a schema, including ones created later (`FOR TABLES IN SCHEMA`, PostgreSQL 15+).
    Schema(String),
}

/// The state of a replication slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotState {
    /// Whether the slot exists.
    pub exists: bool,
    /// PID of the walsender using it, if any.
    pub active_pid: Option<i32>,
    /// Position up to which the consumer confirmed (where streaming resumes).
    pub confirmed_flush_lsn: Option<Lsn>,
    /// Oldest WAL the slot retains.
    pub restart_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+).
    pub wal_status: Option<String>,
    /// Output plugin (`pgoutput` for slots we can use).
    pub plugin: Option<String>,
    /// Database the slot belongs to.
    pub database: Option<String>,
}

/// Read the state of `slot` (`exists == false` when there is none).
pub async fn slot_state(client: &Client, slot: &str) -> Result<SlotState, PgError> {
    let row = client
        .query_opt(
            "SELECT active_pid, confirmed_flush_lsn::text, restart_lsn::text, wal_status, plugin::text, database::text \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let Some(row) = row else {
        return Ok(SlotState::default());
    };
    let lsn = |i: usize| -> Result<Option<Lsn>, PgError> {
        row.get::<_, Option<String>>(i)
            .map(|s| s.parse::<Lsn>())
            .transpose()
            .map_err(PgError::from)
    };
    Ok(SlotState {
        exists: true,
        active_pid: row.get(0),
        confirmed_flush_lsn: lsn(1)?,
        restart_lsn: lsn(2)?,
        wal_status: row.get(3),
        plugin: row.get(4),
        database: row.get(5),
    })
}

/// Check that an existing slot is usable by a new pgoutput consumer in this database.
pub(crate) fn check_usable(slot: &str, state: &SlotState, current_db: &str) -> Result<(), PgError> {
    if let Some(pid) = state.active_pid {
        return Err(PgError::SlotInUse {
            slot: slot.to_owned(),
            pid,
        });
    }
    let unusable = |message: String| {
        Err(PgError::SlotUnusable {
            slot: slot.to_owned(),
            message,
        })
    };
    match state.plugin.as_deref() {
        Some("pgoutput") => {}
        Some(other) => return unusable(format!("it uses output plugin '{other}', not pgoutput")),
        None => return unusable("it is a physical slot, not a logical one".into()),
    }
    if let Some(db) = state.database.as_deref().filter(|db| *db != current_db) {
        return unusable(format!("it belongs to database '{db}', not '{current_db}'"));
    }
    if state.wal_status.as_deref() == Some("lost") {
        return unusable("its WAL has been removed (wal_status = lost)".into());
    }
    Ok(())
}

/// Create the pgoutput logical slot `slot` if missing and return its state.
/// An existing slot must be a pgoutput slot of this database and not in use.
pub async fn ensure_slot(client: &Client, slot: &str) -> Result<SlotState, PgError> {
    let current_db: String = client
        .query_one("SELECT current_database()::text", &[])
        .await?
        .get(0);
    let state = slot_state(client, slot).await?;
    if state.exists {
        check_usable(slot, &state, &current_db)?;
        return Ok(state);
    }
    match client
        .execute(
            "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
    {
        Ok(_) => tracing::info!(slot, "created logical replication slot"),
        // Created concurrently by someone else: fall through to the state check.
        Err(e) if e.code().is_some_and(|c| c.code() == "42710") => {}
        Err(e) => return Err(e.into()),
    }
    let state = slot_state(client, slot).await?;
    check_usable(slot, &state, &current_db)?;
    Ok(state)
}

/// Drop `slot` if it exists; returns whether it was dropped. Fails with
/// [`PgError::SlotInUse`] while a walsender uses it.
pub async fn drop_slot(client: &Client, slot: &str) -> Result<bool, PgError> {
    let state = slot_state(client, slot).await?;
    if !state.exists {
        return Ok(false);
    }
    if let Some(pid) = state.active_pid {
        return Err(PgError::SlotInUse {
            slot: slot.to_owned(),
            pid,
        });
    }
    client
        .execute("SELECT pg_catalog.pg_drop_replication_slot($1)", &[&slot])
        .await?;
    Ok(true)
}

/// What has to change for a publication to cover the configured tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationPlan {
    /// It exists and covers everything.
    UpToDate,
    /// It does not exist; `sql` creates it.
    Create { sql: String },
    /// It exists but lacks `missing`; `sql` adds them.
    Alter {
        sql: String,
        missing: Vec<(String, String)>,
    },
}

impl PublicationPlan {
    /// The SQL to run, if any.
    pub fn sql(&self) -> Option<&str> {
        match self {
            PublicationPlan::UpToDate => None,
            PublicationPlan::Create { sql } | PublicationPlan::Alter { sql, .. } => Some(sql),
        }
    }
}

/// Work out how publication `name` must change to cover `tables`.
pub async fn plan_publication(
    client: &Client,
    name: &str,
    tables: &PublicationTables,
) -> Result<PublicationPlan, PgError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await?
        .get(0);
    let exists = client
        .query_opt(
            "SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await?;
    let wanted = match tables {
        PublicationTables::Tables(list) => list.clone(),
        PublicationTables::Schema(schema) => schema_tables(client, schema).await?,
    };
    let pubname = quote_ident(name);
    let Some(row) = exists else {
        let sql = match tables {
            PublicationTables::Schema(schema) if version >= 150_000 => {
                format!(
                    "CREATE PUBLICATION {pubname} FOR TABLES IN SCHEMA {};",
                    quote_ident(schema)
                )
            }
            _ if wanted.is_empty() => {
                return Err(PgError::Config {
                    message: format!(
                        "no tables to publish in publication \"{name}\": configure tables, or create them first"
                    ),
                });
            }
            _ => format!(
                "CREATE PUBLICATION {pubname} FOR TABLE {};",
                table_list(&wanted)
            ),
        };
        return Ok(PublicationPlan::Create { sql });
    };
    if row.get::<_, bool>(0) {
        return Ok(PublicationPlan::UpToDate);
    }
    if let PublicationTables::Schema(schema) = tables {
        if version >= 150_000 {
            let covered = client
                .query_opt(
                    "SELECT 1 FROM pg_catalog.pg_publication_namespace pn \
                     JOIN pg_catalog.pg_publication p ON p.oid = pn.pnpubid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid \
                     WHERE p.pubname = $1 AND n.nspname = $2",
                    &[&name, &schema],
                )
                .await?
                .is_some();
            if covered {
                return Ok(PublicationPlan::UpToDate);
            }
            let missing = missing_tables(client, name, &wanted).await?;
            let sql = format!(
                "ALTER PUBLICATION {pubname} ADD TABLES IN SCHEMA {};",
                quote_ident(schema)
            );
            return Ok(PublicationPlan::Alter { sql, missing });
        }
    }
    let missing = missing_tables(client, name, &wanted).await?;
    if missing.is_empty() {
        return Ok(PublicationPlan::UpToDate);
    }
    let sql = format!(
        "ALTER PUBLICATION {pubname} ADD TABLE {};",
        table_list(&missing)
    );
    Ok(PublicationPlan::Alter { sql, missing })
}

async fn missing_tables(
    client: &Client,
    name: &str,
    wanted: &[(String, String)],
) -> Result<Vec<(String, String)>, PgError> {
    let have: BTreeSet<(String, String)> = publication_tables(client, name)
        .await?
        .into_iter()
        .collect();
    Ok(wanted
        .iter()
        .filter(|t| !have.contains(*t))
        .cloned()
        .collect())
}

fn table_list(tables: &[(String, String)]) -> String {
    tables
        .iter()
        .map(|(s, t)| qualified(s, t))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`ensure_publication`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationOutcome {
    /// Nothing to do.
    UpToDate,
    /// Created with this SQL.
    Created { sql: String },
    /// Altered with this SQL.
    Altered { sql: String },
}

/// Make publication `name` cover `tables`: create it when missing and add
/// missing tables when `manage` is true; otherwise fail with the SQL to run.
pub async fn ensure_publication(
    client: &Client,
    name: &str,
    tables: &PublicationTables,
    manage: bool,
) -> Result<PublicationOutcome, PgError> {
    let plan = plan_publication(client, name, tables).await?;
    match (plan, manage) {
        (PublicationPlan::UpToDate, _) => Ok(PublicationOutcome::UpToDate),
        (PublicationPlan::Create { sql }, true) => {
            client.batch_execute(&sql).await?;
            tracing::info!(%sql, "created publication");
            Ok(PublicationOutcome::Created { sql })
        }
        (PublicationPlan::Alter { sql, .. }, true) => {
            client.batch_execute(&sql).await?;
            tracing::info!(%sql, "extended publication");
            Ok(PublicationOutcome::Altered { sql })
        }
        (PublicationPlan::Create { sql }, false) => Err(PgError::Publication {
            publication: name.to_owned(),
            problem: "does not exist and publication management is off".into(),
            sql,
        }),
        (PublicationPlan::Alter { sql, missing }, false) => Err(PgError::Publication {
            publication: name.to_owned(),
            problem: format!(
                "lacks {} and publication management is off",
                describe(&missing)
            ),
            sql,
        }),
    }
}

pub(crate) fn describe(tables: &[(String, String)]) -> String {
    if tables.is_empty() {
        return "tables of the configured schema".into();
    }
    tables
        .iter()
        .map(|(s, t)| format!("{s}.{t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pid: Option<i32>, plugin: Option<&str>, db: &str, wal: &str) -> SlotState {
        SlotState {
            exists: true,
            active_pid: pid,
            plugin: plugin.map(str::to_owned),
            database: Some(db.into()),
            wal_status: Some(wal.into()),
            ..SlotState::default()
        }
    }

    #[test]
    fn usable_slot_checks() {
        assert!(check_usable("s", &state(None, Some("pgoutput"), "db", "reserved"), "db").is_ok());
        let e = check_usable(
            "s",
            &state(Some(42), Some("pgoutput"), "db", "reserved"),
            "db",
        )
        .unwrap_err();
        assert_eq!(
            e,
            PgError::SlotInUse {
                slot: "s".into(),
                pid: 42
            }
        );
        assert!(e.to_string().contains("active for PID 42"));
        for (st, needle) in [
            (state(None, Some("wal2json"), "db", "reserved"), "wal2json"),
            (state(None, None, "db", "reserved"), "physical"),
            (state(None, Some("pgoutput"), "other", "reserved"), "other"),
            (state(None, Some("pgoutput"), "db", "lost"), "lost"),
        ] {
            let e = check_usable("s", &st, "db").unwrap_err();
            assert!(
                e.to_string().contains(needle)
                    && e.to_string().contains("pg_drop_replication_slot"),
                "{e}"
            );
        }
    }

    #[test]
    fn table_lists_are_quoted() {
        let t = vec![
            ("public".to_owned(), "orders".to_owned()),
            ("Sales".to_owned(), "Line Items".to_owned()),
        ];
        assert_eq!(table_list(&t), "public.orders, \"Sales\".\"Line Items\"");
        assert_eq!(describe(&t), "public.orders, Sales.Line Items");
    }
}
