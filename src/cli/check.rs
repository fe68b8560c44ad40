//! `tributary check`: connect to every source and sink and report every
//! problem at once, each with the SQL or action that fixes it.

use std::fmt::Write as _;

use tributary_postgres::preflight::{self, PreflightConfig, Problem};

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::sink::LakeStore;
use crate::source::postgres::{connect_catalog, publication_tables};

/// The report of `check`: human text and whether everything is fine.
#[derive(Debug)]
pub struct CheckReport {
    pub text: String,
    pub ok: bool,
}

/// Runs all checks. Never stops at the first problem.
pub async fn check(config: &Config) -> CheckReport {
    let mut text = String::new();
    let mut ok = true;
    for (name, sink) in &config.sink {
        let SinkConfig::Lake(lake) = sink;
        match probe_lake(&lake.url).await {
            Ok(()) => {
                let _ = writeln!(text, "ok    sink {name}: {} is writable", lake.url);
            }
            Err(problem) => {
                ok = false;
                let _ = writeln!(text, "FAIL  sink {name}: {problem}");
            }
        }
    }
    for source in &config.source {
        match source {
            SourceConfig::Postgres(pg) => {
                let problems = check_postgres(pg).await;
                if problems.is_empty() {
                    let _ = writeln!(
                        text,
                        "ok    source {}: {} is ready for logical replication",
                        pg.name,
                        pg.describe()
                    );
                }
                for problem in problems {
                    ok = false;
                    let _ = writeln!(
                        text,
                        "FAIL  source {}: {}\n      fix: {}",
                        pg.name, problem.what, problem.fix
                    );
                }
            }
            SourceConfig::Mysql(my) => {
                let report = async {
                    let mut conn = crate::source::mysql::connect(my).await?;
                    tributary_mysql::preflight(&mut conn, my.server_id)
                        .await
                        .map_err(crate::source::SourceError::from)
                }
                .await;
                match report {
                    Ok(report) if report.ok() => {
                        let _ = writeln!(
                            text,
                            "ok    source {}: {} ({}) is ready for binlog replication",
                            my.name,
                            my.describe(),
                            report.version
                        );
                        for check in &report.checks {
                            if let Some(warning) = &check.warning {
                                let _ = writeln!(text, "WARN  source {}: {warning}", my.name);
                            }
                        }
                    }
                    Ok(report) => {
                        ok = false;
                        for problem in report.problems() {
                            let _ = writeln!(text, "FAIL  source {}: {problem}", my.name);
                        }
                    }
                    Err(e) => {
                        ok = false;
                        let _ = writeln!(text, "FAIL  source {}: {e}", my.name);
                    }
                }
            }
            SourceConfig::Mongo(mongo) => {
                let problems = async {
                    let client = crate::source::mongodb::connect(mongo).await?;
                    crate::source::mongodb::preflight(&client, mongo).await
                }
                .await;
                match problems {
                    Ok(report) => {
                        if report.problems.is_empty() {
                            let _ = writeln!(
                                text,
                                "ok    source {}: {} is ready for change streams",
                                mongo.name,
                                mongo.describe()
                            );
                        }
                        for warning in &report.warnings {
                            let _ = writeln!(text, "WARN  source {}: {warning}", mongo.name);
                        }
                        for problem in &report.problems {
                            ok = false;
                            let _ = writeln!(text, "FAIL  source {}: {problem}", mongo.name);
                        }
                    }
                    Err(e) => {
                        ok = false;
                        let _ = writeln!(text, "FAIL  source {}: {e}", mongo.name);
                    }
                }
            }
        }
    }
    CheckReport { text, ok }
}

async fn probe_lake(url: &str) -> Result<(), String> {
    let store = LakeStore::from_url(url).map_err(|e| e.to_string())?;
    let path = "_tributary_check_probe";
    store
        .put_durable(path, bytes::Bytes::from_static(b"probe"))
        .await
        .map_err(|e| e.to_string())?;
    store.delete(path).await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn check_postgres(pg: &crate::config::PostgresSourceConfig) -> Vec<Problem> {
    let client = match connect_catalog(pg).await {
        Ok(c) => c,
        Err(e) => {
            return vec![Problem {
                what: format!("cannot connect to {}: {e}", pg.describe()),
                fix: "check host, port, user, password and pg_hba.conf; the server must accept connections from this host".into(),
            }];
        }
    };
    let cfg = PreflightConfig {
        slot: pg.slot.clone(),
        publication: pg.publication.clone(),
        tables: publication_tables(pg),
        manage_publication: pg.manage_publication,
        user: pg.user.clone(),
    };
    let mut problems = match preflight::preflight(&client, &cfg).await {
        Ok(problems) => problems,
        Err(e) => vec![Problem {
            what: format!("the checks themselves failed: {e}"),
            fix: "grant the user SELECT on the pg_catalog views (or run check as a superuser)"
                .into(),
        }],
    };
    if let Some((schema, table)) = pg.signal_table() {
        match tributary_postgres::catalog::table_oid(&client, &schema, &table).await {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(Problem {
                what: format!("signal_table {schema}.{table} does not exist"),
                fix: format!(
                    "CREATE TABLE {schema}.{table} (id text PRIMARY KEY, type text NOT NULL, data text);"
                ),
            }),
            Err(e) => problems.push(Problem {
                what: format!("cannot look up signal_table {schema}.{table}: {e}"),
                fix: "grant the user USAGE on its schema".into(),
            }),
        }
    }
    problems
}
