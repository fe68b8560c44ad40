//! The PostgreSQL source: logical replication (pgoutput) through the
//! `tributary-postgres` connector, mapped into envelopes.
//!
//! Start-up ([`PostgresSource::open`]): connect an ordinary catalog session,
//! resolve the captured tables, make sure the publication and the slot exist
//! (creating them when allowed), refuse tables that cannot identify rows for
//! updates/deletes, then start streaming at the checkpoint's resume LSN.
//! Streaming: connector events are mapped by [`ChangeMapper`]; commits become
//! [`SourceEvent::Commit`] with the commit's end LSN as the resume point.

mod change_mapper;
mod text_value;
mod type_map;

use std::collections::VecDeque;
use std::path::PathBuf;

use tributary_postgres::catalog;
use tributary_postgres::slot::{self, PublicationTables};
use tributary_postgres::{Lsn, PgEvent, PgReplication, PgReplicationConfig};

pub use change_mapper::ChangeMapper;
pub use text_value::{ValueError, parse_text};
pub use type_map::map_type;

use crate::config::{DaemonConfig, PostgresSourceConfig, SslMode};
use crate::position::ResumePoint;
use crate::source::{Source, SourceError, SourceEvent};

/// Session settings that fix the text form pgoutput uses for dates, times and
/// floats, so [`parse_text`] has exactly one grammar per type.
pub const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,YMD -c timezone=UTC -c extra_float_digits=3 -c bytea_output=hex";

/// A running PostgreSQL source.
#[derive(Debug)]
pub struct PostgresSource {
    replication: PgReplication,
    mapper: ChangeMapper,
    pending: VecDeque<SourceEvent>,
}

/// Connects the catalog session (ordinary queries over `tokio-postgres`),
/// with TLS per the source's `sslmode`: `disable` plain; `prefer` TLS
/// without verification when the server offers it; `require` TLS without
/// verification; `verify-ca`/`verify-full` TLS verified against
/// `sslrootcert` (or the system roots), `verify-full` also checking the host
/// name. Transient failures (refused, reset) come back transient so the
/// pipeline retries with backoff.
pub async fn connect_catalog(
    config: &PostgresSourceConfig,
) -> Result<tokio_postgres::Client, SourceError> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use tokio_postgres::config::SslMode as PgSslMode;

    let password = config
        .resolve_password("source")
        .map_err(|e| SourceError::definite(e.to_string()))?;
    let mut pg = tokio_postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .dbname(&config.database)
        .user(&config.user)
        .application_name("tributary")
        .options(SESSION_OPTIONS)
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(pw) = &password {
        pg.password(pw.expose());
    }
    let tls_error = |e: openssl::error::ErrorStack| {
        SourceError::definite(format!(
            "cannot set up TLS for {}: {e}; check sslrootcert",
            config.describe()
        ))
    };
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
    let verify = matches!(config.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    if verify {
        if let Some(root) = &config.sslrootcert {
            builder.set_ca_file(root).map_err(tls_error)?;
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    pg.ssl_mode(match config.sslmode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    let mut tls = postgres_openssl::MakeTlsConnector::new(builder.build());
    if config.sslmode == SslMode::VerifyCa {
        tls.set_callback(|connect, _| {
            connect.set_verify_hostname(false);
            Ok(())
        });
    }
    let (client, connection) = pg
        .connect(tls)
        .await
        .map_err(|e| SourceError::from(tributary_postgres::PgError::from(e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "catalog connection closed");
        }
    });
    Ok(client)
}

/// The libpq connection string for a source, with fixed session options.
pub fn source_conninfo(config: &PostgresSourceConfig) -> Result<String, SourceError> {
    let password = config
        .resolve_password("source")
        .map_err(|e| SourceError::definite(e.to_string()))?;
    Ok(format!(
        "{} options='{}'",
        config.conninfo(password.as_ref()),
        SESSION_OPTIONS
    ))
}

/// The tables a source captures, as configured.
pub fn publication_tables(config: &PostgresSourceConfig) -> PublicationTables {
    match &config.schema {
        Some(schema) => PublicationTables::Schema(schema.clone()),
        None => PublicationTables::Tables(config.table_list()),
    }
}

impl PostgresSource {
    pub async fn open(
        config: &PostgresSourceConfig,
        daemon: &DaemonConfig,
        resume: Option<&ResumePoint>,
    ) -> Result<PostgresSource, SourceError> {
        let conninfo = source_conninfo(config)?;
        tracing::info!(source = %config.name, server = %config.describe(), "connecting");
        let client = connect_catalog(config).await?;

        let tables = publication_tables(config);
        let resolved = match &tables {
            PublicationTables::Schema(schema) => catalog::schema_tables(&client, schema).await?,
            PublicationTables::Tables(list) => list.clone(),
        };
        let mut mapper = ChangeMapper::new(&config.name, &config.database);
        for (schema, table) in &resolved {
            let identity = catalog::table_identity(&client, schema, table).await?;
            let qualified = format!("{schema}.{table}");
            let has_key =
                !identity.primary_key.is_empty() || !identity.identity_index_columns.is_empty();
            if let Some(problem) =
                change_mapper::identity_problem(&qualified, identity.replica_identity, has_key)
            {
                return Err(SourceError::definite(problem));
            }
            mapper.set_nullability(
                schema,
                table,
                catalog::column_nullability(&client, schema, table).await?,
            );
        }
        slot::ensure_publication(
            &client,
            &config.publication,
            &tables,
            config.manage_publication,
        )
        .await?;
        let slot_state = slot::ensure_slot(&client, &config.slot).await?;
        tracing::info!(
            source = %config.name,
            slot = %config.slot,
            confirmed_flush = ?slot_state.confirmed_flush_lsn.map(|l| l.to_string()),
            tables = resolved.len(),
            "slot and publication ready"
        );

        let start_lsn = match resume {
            Some(ResumePoint::Postgres { lsn }) if *lsn > 0 => Some(Lsn(*lsn)),
            _ => None,
        };
        let spill_dir: PathBuf = daemon.data_dir.join(&config.name).join("spill");
        let replication = PgReplication::start(
            PgReplicationConfig {
                conninfo: conninfo.clone(),
                slot: config.slot.clone(),
                publication: config.publication.clone(),
                start_lsn,
                spill_dir,
                memory_budget_bytes: config.txn_memory_mb * 1024 * 1024,
                channel_capacity: 4,
            },
            Some(std::sync::Arc::new(client)),
        )
        .await?;
        Ok(PostgresSource {
            replication,
            mapper,
            pending: VecDeque::new(),
        })
    }

    /// Pulls connector events until at least one source event is ready.
    async fn fill(&mut self) -> Result<(), SourceError> {
        let mut envelopes = Vec::new();
        while self.pending.is_empty() {
            for event in self.replication.next_batch().await? {
                self.map_event(event, &mut envelopes)?;
            }
        }
        Ok(())
    }

    fn map_event(
        &mut self,
        event: PgEvent,
        envelopes: &mut Vec<crate::envelope::Envelope>,
    ) -> Result<(), SourceError> {
        match event {
            PgEvent::Relation(rel) => self.mapper.relation(&rel),
            PgEvent::Begin {
                xid,
                commit_lsn,
                commit_ts_micros,
            } => {
                self.mapper.begin(xid, commit_lsn.0, commit_ts_micros);
            }
            PgEvent::Change(change) => {
                self.mapper.change(&change, envelopes)?;
                self.pending
                    .extend(envelopes.drain(..).map(SourceEvent::Change));
            }
            PgEvent::Commit { end_lsn, .. } => {
                self.mapper.commit();
                self.pending.push_back(SourceEvent::Commit {
                    resume: ResumePoint::Postgres { lsn: end_lsn.0 },
                });
            }
            PgEvent::Keepalive { wal_end } if !self.mapper.in_transaction() => {
                self.pending.push_back(SourceEvent::Idle {
                    resume: ResumePoint::Postgres { lsn: wal_end.0 },
                });
            }
            PgEvent::Keepalive { .. } | PgEvent::Message { .. } => {}
        }
        Ok(())
    }
}

impl Source for PostgresSource {
    async fn next(&mut self) -> Result<SourceEvent, SourceError> {
        if self.pending.is_empty() {
            self.fill().await?;
        }
        Ok(self.pending.pop_front().expect("fill leaves an event"))
    }

    fn next_ready(&mut self) -> Option<SourceEvent> {
        self.pending.pop_front()
    }

    async fn ack(&mut self, resume: &ResumePoint) -> Result<(), SourceError> {
        let ResumePoint::Postgres { lsn } = resume;
        self.replication.ack(Lsn(*lsn));
        Ok(())
    }

    async fn close(self) -> Result<(), SourceError> {
        self.replication.shutdown().await;
        Ok(())
    }
}
