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

/// A snapshot request as written by `tributary snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSignal {
    /// The configured source it is meant for (several sources may read the
    /// same database).
    pub source: String,
    /// `schema.table` names.
    pub tables: Vec<String>,
}

/// The tables a signal message asks `source` to snapshot.
pub fn tables_from_message(source: &str, content: &[u8]) -> Option<Vec<String>> {
    let signal: SnapshotSignal = serde_json::from_slice(content).ok()?;
    (signal.source == source).then_some(signal.tables)
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
        let msg = serde_json::to_vec(&SnapshotSignal {
            source: "app".into(),
            tables: vec!["public.t".into()],
        })
        .unwrap();
        assert_eq!(
            tables_from_message("app", &msg),
            Some(vec!["public.t".to_string()])
        );
        assert_eq!(tables_from_message("other", &msg), None);
        assert_eq!(tables_from_message("app", b"not json"), None);
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
