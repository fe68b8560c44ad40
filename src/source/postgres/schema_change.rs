//! What a change of a table's shape means for the lake.
//!
//! Sits beside the Relation handling of [`super::PostgresSource`]: pgoutput
//! announces a new shape with a Relation message before the first change of
//! that shape, but logical replication carries no DDL and no rows for what
//! the DDL did to stored data. Most changes of shape need nothing more than
//! a new schema version (the registry and the merge rule handle them:
//! columns are matched by id, so a rename keeps values and a dropped and
//! re-added column starts empty). Three do, and are detected here:
//!
//! - **a table recreated** (the same name, a new relation OID): its earlier
//!   lake rows belong to the dropped table → reset (empty the table in the
//!   lake at the signal's position, then snapshot it);
//! - **a table renamed onto a captured name** → the same reset for the new
//!   name (the old name's lake rows stay as they were, like a dropped table);
//! - **stored values rewritten without WAL rows**: a column added with a
//!   default (every existing row now holds it) or a column's type changed
//!   (every row was rewritten by the cast or `USING`) → re-read the table
//!   with an incremental snapshot.
//!
//! Actions are requested through signal messages written into the WAL
//! before the changes of the new shape are passed on, so a crash anywhere
//! cannot lose them (the baseline on a fresh start is the registry's latest
//! version; a repeated request costs a snapshot, never correctness).

use crate::schema::TableSchema;

pub use crate::schema::subject_name as subject;

/// What the lake needs after a change of shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeAction {
    /// A new schema version (if the shape changed) is all.
    None,
    /// The relation now has another name (`from` was its name).
    RenamedAway { from: String },
    /// Empty the table in the lake and snapshot it again.
    Reset { reason: String },
    /// Snapshot the table again (stored values were rewritten).
    Resnapshot { reason: String },
}

/// Compares the new shape of a relation with the previous shape of the same
/// relation (`previous_of_oid`, seen in this run) and the previous shape of
/// the same name (`previous`: this run, or the registry's latest version).
pub fn lake_action(
    previous_of_oid: Option<&TableSchema>,
    previous: Option<&TableSchema>,
    current: &TableSchema,
) -> LakeAction {
    if let Some(before) = previous_of_oid {
        if before.namespace != current.namespace || before.name != current.name {
            return LakeAction::RenamedAway {
                from: before.qualified_name(),
            };
        }
    }
    let Some(before) = previous else {
        return LakeAction::None;
    };
    if let (Some(old), Some(new)) = (before.source_id, current.source_id) {
        if old != new {
            return LakeAction::Reset {
                reason: format!("dropped and recreated (relation {old} → {new})"),
            };
        }
    }
    let mut rewritten = Vec::new();
    for column in &current.columns {
        let Some(id) = column.id else { continue };
        match before.columns.iter().find(|c| c.id == Some(id)) {
            None if column.default.is_some() && before.columns.iter().any(|c| c.id.is_some()) => {
                rewritten.push(format!(
                    "column {} added with default {}",
                    column.name,
                    column.default.as_deref().unwrap_or_default()
                ));
            }
            Some(old)
                if old.data_type != column.data_type || old.source_type != column.source_type =>
            {
                rewritten.push(format!(
                    "column {}: type {} → {}",
                    column.name, old.source_type, column.source_type
                ));
            }
            _ => {}
        }
    }
    if rewritten.is_empty() {
        LakeAction::None
    } else {
        LakeAction::Resnapshot {
            reason: rewritten.join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnSchema, ColumnType};

    fn col(name: &str, id: u32, ty: ColumnType, source_type: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: ty,
            source_type: source_type.into(),
            nullable: true,
            id: Some(id),
            default: None,
        }
    }

    fn table(name: &str, oid: u32, columns: Vec<ColumnSchema>) -> TableSchema {
        TableSchema::new("public", name, columns, vec![0]).with_source_id(Some(oid))
    }

    fn base() -> TableSchema {
        table(
            "t",
            10,
            vec![
                col("id", 1, ColumnType::Int64, "int8"),
                col("a", 2, ColumnType::Int32, "int4"),
            ],
        )
    }

    #[test]
    fn plain_changes_need_only_a_version() {
        let before = base();
        let mut added = base();
        added.columns.push(col("b", 3, ColumnType::Text, "text"));
        let mut renamed = base();
        renamed.columns[1].name = "a2".into();
        let mut dropped = base();
        dropped.columns.pop();
        let mut readded = base();
        readded.columns[1].id = Some(3);
        for after in [added, renamed, dropped, readded] {
            assert_eq!(
                lake_action(Some(&before), Some(&before), &after),
                LakeAction::None
            );
        }
    }

    #[test]
    fn rewrites_ask_for_a_snapshot() {
        let before = base();
        let mut with_default = base();
        let mut b = col("b", 3, ColumnType::Int32, "int4");
        b.default = Some("7".into());
        with_default.columns.push(b);
        assert!(matches!(
            lake_action(Some(&before), Some(&before), &with_default),
            LakeAction::Resnapshot { reason } if reason.contains("added with default 7")
        ));
        let mut retyped = base();
        retyped.columns[1] = col("a", 2, ColumnType::Int64, "int8");
        assert!(matches!(
            lake_action(Some(&before), Some(&before), &retyped),
            LakeAction::Resnapshot { reason } if reason.contains("int4 → int8")
        ));
    }

    #[test]
    fn table_identity_changes() {
        let before = base();
        let recreated = table("t", 11, base().columns);
        assert!(matches!(
            lake_action(None, Some(&before), &recreated),
            LakeAction::Reset { .. }
        ));
        let renamed = table("t2", 10, base().columns);
        assert_eq!(
            lake_action(Some(&before), None, &renamed),
            LakeAction::RenamedAway {
                from: "public.t".into()
            }
        );
        // First sight of a table: nothing to compare with.
        assert_eq!(lake_action(None, None, &before), LakeAction::None);
    }
}
