//! Snapshot requests reaching a running source through its own stream.
//!
//! Two doors, one effect (an incremental snapshot of the named tables):
//! - `tributary snapshot --source S --table T` writes a transactional logical
//!   message (prefix [`SIGNAL_PREFIX`]) into the source database's WAL;
//! - operators without shell access INSERT into the configured
//!   `signal_table` (`id text PRIMARY KEY, type text NOT NULL, data text`)
//!   a row `('any id', 'snapshot', '{"tables": ["public.orders"]}')`.
//!
//! Both arrive in commit order through the replication stream, so a request
//! made while the daemon is down is picked up when it starts, and a request
//! is never lost between being written and being acted on.

use serde::{Deserialize, Serialize};

use crate::envelope::{Row, Value};
use crate::schema::TableSchema;

/// Prefix of signal messages.
pub const SIGNAL_PREFIX: &str = "tributary.signal";

/// A snapshot request as written by `tributary snapshot` (and by the source
/// itself when a change of shape needs the table re-read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSignal {
    /// The configured source it is meant for (several sources may read the
    /// same database).
    pub source: String,
    /// `schema.table` names.
    pub tables: Vec<String>,
    /// Empty each table in the lake first (a `t` change at the message's
    /// position), then snapshot it: the table was dropped and recreated, or
    /// renamed onto this name, so its earlier lake rows are not its rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// Why the source asked (logged when the message is acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The signal message if it is meant for `source`.
pub fn signal_from_message(source: &str, content: &[u8]) -> Option<SnapshotSignal> {
    let signal: SnapshotSignal = serde_json::from_slice(content).ok()?;
    (signal.source == source).then_some(signal)
}

/// Writes `signal` into the source database's WAL as a transactional
/// logical message; returns the message's LSN. Durable once this returns, so
/// a request survives any crash after it.
pub async fn emit(
    client: &tokio_postgres::Client,
    signal: &SnapshotSignal,
) -> Result<String, tokio_postgres::Error> {
    let content = serde_json::to_string(signal).expect("signal serializes");
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_logical_emit_message(true, $1, $2)::text",
            &[&SIGNAL_PREFIX, &content],
        )
        .await?;
    Ok(row.get(0))
}

/// The `data` of a signal-table row: `{"tables": [...]}` (Debezium's
/// `data-collections` is accepted too).
#[derive(Debug, Deserialize)]
struct SignalData {
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default, rename = "data-collections")]
    data_collections: Vec<String>,
}

/// The tables an inserted signal-table row asks to snapshot; `Err` names
/// what is wrong with the row (logged, then ignored).
pub fn tables_from_row(schema: &TableSchema, row: &Row) -> Result<Vec<String>, String> {
    let text = |name: &str| -> Option<&str> {
        let i = schema.columns.iter().position(|c| c.name == name)?;
        match &row[i] {
            Value::Text(t) => Some(t.as_str()),
            _ => None,
        }
    };
    let kind = text("type").ok_or("the row has no text column `type`")?;
    if !matches!(kind, "snapshot" | "execute-snapshot") {
        return Err(format!(
            "unknown signal type {kind:?} (expected \"snapshot\")"
        ));
    }
    let data = text("data").ok_or("the row has no text column `data`")?;
    let data: SignalData = serde_json::from_str(data)
        .map_err(|e| format!("`data` is not JSON like {{\"tables\": [\"public.t\"]}}: {e}"))?;
    let mut tables = data.tables;
    tables.extend(data.data_collections);
    if tables.is_empty() {
        return Err("`data` names no tables".into());
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnSchema, ColumnType};

    #[test]
    fn messages_are_for_one_source() {
        let signal = SnapshotSignal {
            source: "app".into(),
            tables: vec!["public.t".into()],
            reset: false,
            reason: None,
        };
        let msg = serde_json::to_vec(&signal).unwrap();
        // Requests written before `reset` existed read the same.
        assert_eq!(
            String::from_utf8(msg.clone()).unwrap(),
            r#"{"source":"app","tables":["public.t"]}"#
        );
        assert_eq!(signal_from_message("app", &msg), Some(signal));
        assert_eq!(signal_from_message("other", &msg), None);
        assert_eq!(signal_from_message("app", b"not json"), None);
    }

    #[test]
    fn signal_rows() {
        let col = |name: &str| ColumnSchema {
            name: name.into(),
            data_type: ColumnType::Text,
            source_type: "text".into(),
            nullable: true,
            id: None,
            default: None,
        };
        let schema = TableSchema::new(
            "public",
            "sig",
            vec![col("id"), col("type"), col("data")],
            vec![0],
        );
        let row = |t: &str, d: &str| {
            vec![
                Value::Text("1".into()),
                Value::Text(t.into()),
                Value::Text(d.into()),
            ]
        };
        assert_eq!(
            tables_from_row(&schema, &row("snapshot", r#"{"tables":["public.a"]}"#)).unwrap(),
            vec!["public.a".to_string()]
        );
        assert_eq!(
            tables_from_row(
                &schema,
                &row("execute-snapshot", r#"{"data-collections":["public.b"]}"#)
            )
            .unwrap(),
            vec!["public.b".to_string()]
        );
        assert!(tables_from_row(&schema, &row("pause", "{}")).is_err());
        assert!(tables_from_row(&schema, &row("snapshot", "nope")).is_err());
    }
}
