//! pgoutput changes → [`Envelope`]s.
//!
//! Sits between the connector's decoded [`PgEvent`]s and the pipeline. It
//! keeps the relation cache (oid → [`TableSchema`]), numbers the changes of
//! each transaction (the ordinal half of [`Position`]), converts text values
//! with [`parse_text`], and applies the rules that keep the lake correct:
//!
//! - an unchanged TOAST value (`'u'`) is never NULL: it is filled from the old
//!   tuple when REPLICA IDENTITY FULL sent one, otherwise listed in
//!   [`Envelope::unchanged`] so the merge keeps the previous value;
//! - an update that changes the key becomes a delete of the old key and an
//!   update of the new one, so the merge never keeps a ghost row;
//! - a table without a usable identity, or a value the lake cannot represent,
//!   is a definite error naming the table, the column, the position and the fix.

use std::collections::HashMap;
use std::sync::Arc;

use tributary_postgres::catalog::ColumnDetail;
use tributary_postgres::{Cell, ChangeKind, PgChange, RelationDesc, ReplicaIdentity, Tuple};

use super::text_value::parse_text;
use super::type_map::map_type;
use crate::envelope::{Envelope, Op, Row, SourceInfo, Value};
use crate::position::{Position, format_lsn};
use crate::schema::{ColumnSchema, TableSchema};
use crate::source::SourceError;

/// The transaction currently being mapped.
#[derive(Debug, Clone)]
struct OpenTxn {
    xid: u32,
    commit_lsn: u64,
    commit_ts_micros: i64,
    ordinal: u64,
}

/// The row images of one envelope.
#[derive(Debug)]
struct Images {
    after: Option<Row>,
    before: Option<Row>,
    unchanged: Vec<usize>,
}

/// The catalog's details of each column of a Relation message, where they
/// describe that column: the same name and type, and attribute numbers
/// increasing in message order (pgoutput lists columns by attnum). A name
/// the catalog now gives to another column (dropped and added again since,
/// so with a larger attnum than a column listed after it) or a type changed
/// since does not describe the message's column: `None`.
fn current_details(
    rel: &RelationDesc,
    catalog: Option<&Vec<ColumnDetail>>,
) -> Vec<Option<ColumnDetail>> {
    let mut matched: Vec<Option<ColumnDetail>> = rel
        .columns
        .iter()
        .map(|col| {
            catalog?
                .iter()
                .find(|d| d.name == col.name && d.type_oid == col.type_info.oid)
                .cloned()
        })
        .collect();
    let mut later_min = i16::MAX;
    for detail in matched.iter_mut().rev() {
        if let Some(d) = detail {
            if d.attnum > later_min {
                *detail = None;
            } else {
                later_min = d.attnum;
            }
        }
    }
    matched
}

/// Per-relation state: its lake schema and whether it can identify rows.
#[derive(Debug)]
struct MappedRelation {
    schema: Arc<TableSchema>,
    identity_problem: Option<String>,
}

/// Maps one source's pgoutput changes into envelopes.
#[derive(Debug)]
pub struct ChangeMapper {
    source: Arc<str>,
    database: Arc<str>,
    /// What the catalog says about each relation's columns (attnum,
    /// nullability, default), by relation OID; refreshed by the source
    /// before each Relation message is applied.
    columns: HashMap<u32, Vec<ColumnDetail>>,
    relations: HashMap<u32, MappedRelation>,
    txn: Option<OpenTxn>,
}

impl ChangeMapper {
    pub fn new(source: &str, database: &str) -> ChangeMapper {
        ChangeMapper {
            source: source.into(),
            database: database.into(),
            columns: HashMap::new(),
            relations: HashMap::new(),
            txn: None,
        }
    }

    /// Records the catalog's view of relation `oid`'s columns, applied by
    /// the next [`ChangeMapper::relation`] of that relation.
    pub fn set_columns(&mut self, oid: u32, columns: Vec<ColumnDetail>) {
        self.columns.insert(oid, columns);
    }

    /// A (new version of a) relation arrived. Columns are matched to the
    /// catalog details by name (the catalog may already be ahead of the
    /// message: a column renamed or dropped since gets no id, and counts as
    /// nullable, the safe assumption).
    ///
    /// A Relation message can describe a shape older than the catalog (the
    /// changes of transactions that committed before a later DDL are still
    /// being decoded): a column the catalog no longer has by that name takes
    /// its details from `previous` (the relation's earlier shape), so the
    /// old shape keeps its fingerprint instead of becoming a new version.
    pub fn relation(&mut self, rel: &RelationDesc, previous: Option<&TableSchema>) {
        let before = previous.or_else(|| self.relations.get(&rel.oid).map(|r| r.schema.as_ref()));
        let details = current_details(rel, self.columns.get(&rel.oid));
        let mut columns = Vec::with_capacity(rel.columns.len());
        for (col, detail) in rel.columns.iter().zip(details) {
            let detail = detail.or_else(|| {
                let old = before?.columns.iter().find(|c| c.name == col.name)?;
                Some(ColumnDetail {
                    name: old.name.clone(),
                    attnum: i16::try_from(old.id?).ok()?,
                    nullable: old.nullable,
                    default: old.default.clone(),
                    type_oid: col.type_info.oid,
                })
            });
            let detail = detail.as_ref();
            let mapping = map_type(&col.type_info, col.type_modifier);
            if mapping.fallback {
                tracing::warn!(
                    table = %format!("{}.{}", rel.namespace, rel.name),
                    column = %col.name,
                    pg_type = %col.type_info.name,
                    "no lake type for this PostgreSQL type; writing its text form"
                );
            }
            columns.push(ColumnSchema {
                name: col.name.clone(),
                data_type: mapping.column_type,
                source_type: col.type_info.name.clone(),
                nullable: detail.is_none_or(|d| d.nullable),
                id: detail.and_then(|d| u32::try_from(d.attnum).ok()),
                default: detail.and_then(|d| d.default.clone()),
            });
        }
        let key: Vec<usize> = rel
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_key)
            .map(|(i, _)| i)
            .collect();
        let qualified = format!("{}.{}", rel.namespace, rel.name);
        let identity_problem = identity_problem(&qualified, rel.replica_identity, !key.is_empty());
        // Under FULL without a key, every column identifies the row.
        let key = if key.is_empty() && rel.replica_identity == ReplicaIdentity::Full {
            (0..rel.columns.len()).collect()
        } else {
            key
        };
        let schema = TableSchema::new(rel.namespace.clone(), rel.name.clone(), columns, key)
            .with_source_id(Some(rel.oid));
        self.relations.insert(
            rel.oid,
            MappedRelation {
                schema: Arc::new(schema),
                identity_problem,
            },
        );
    }

    /// The lake schema of a relation, if seen.
    pub fn schema_of(&self, oid: u32) -> Option<Arc<TableSchema>> {
        self.relations.get(&oid).map(|r| r.schema.clone())
    }

    pub fn begin(&mut self, xid: u32, commit_lsn: u64, commit_ts_micros: i64) {
        self.txn = Some(OpenTxn {
            xid,
            commit_lsn,
            commit_ts_micros,
            ordinal: 0,
        });
    }

    /// True between a Begin and its Commit.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    pub fn commit(&mut self) {
        self.txn = None;
    }

    /// The next envelope of the open transaction: numbers it (the ordinal
    /// half of its position) and stamps the source block.
    fn envelope(
        &mut self,
        op: Op,
        table: Arc<TableSchema>,
        change_lsn: u64,
        images: Images,
    ) -> Result<Envelope, SourceError> {
        let txn = self
            .txn
            .as_mut()
            .ok_or_else(|| SourceError::definite("protocol error: change outside a transaction"))?;
        txn.ordinal += 1;
        Ok(Envelope {
            op,
            table,
            after: images.after,
            before: images.before,
            unchanged: images.unchanged,
            position: Position::Postgres {
                commit_lsn: txn.commit_lsn,
                ordinal: txn.ordinal,
            },
            source: SourceInfo {
                source: self.source.clone(),
                database: self.database.clone(),
                xid: Some(u64::from(txn.xid)),
                change_lsn: Some(change_lsn),
                commit_ts_micros: txn.commit_ts_micros,
            },
        })
    }

    /// A snapshot row emitted inside the open transaction (an incremental
    /// snapshot's chunk at its high watermark): numbered like a change.
    /// `unchanged` columns keep the value of the newer streamed changes.
    pub fn read_envelope(
        &mut self,
        table: Arc<TableSchema>,
        row: Row,
        unchanged: Vec<usize>,
        change_lsn: u64,
    ) -> Result<Envelope, SourceError> {
        self.envelope(
            Op::Read,
            table,
            change_lsn,
            Images {
                after: Some(row),
                before: None,
                unchanged,
            },
        )
    }

    /// A `t` change of `table` inside the open transaction: empties the
    /// table in the lake as of this position (a table reset; see
    /// `SnapshotSignal::reset`).
    pub fn truncate_envelope(
        &mut self,
        table: Arc<TableSchema>,
        change_lsn: u64,
    ) -> Result<Envelope, SourceError> {
        self.envelope(
            Op::Truncate,
            table,
            change_lsn,
            Images {
                after: None,
                before: None,
                unchanged: Vec::new(),
            },
        )
    }

    /// The latest schema seen for the table named `qualified`, if any.
    pub fn schema_named(&self, qualified: &str) -> Option<Arc<TableSchema>> {
        self.relations
            .values()
            .map(|r| &r.schema)
            .find(|s| s.is(qualified))
            .cloned()
    }

    /// Drops relations other than `oid` that carry the name `qualified` (a
    /// table dropped and recreated, or renamed away and another renamed onto
    /// its name): only the newest relation of a name is that table.
    pub fn forget_other_relations_named(&mut self, oid: u32, qualified: &str) {
        self.relations
            .retain(|&other, r| other == oid || !r.schema.is(qualified));
    }

    /// Maps one change into one or two envelopes, appended to `out`.
    pub fn change(
        &mut self,
        change: &PgChange,
        out: &mut Vec<Envelope>,
    ) -> Result<(), SourceError> {
        if change.kind == ChangeKind::Truncate {
            for rel in &change.truncated {
                let schema = self.known(rel.oid, rel)?;
                out.push(self.envelope(
                    Op::Truncate,
                    schema,
                    change.lsn.0,
                    Images {
                        after: None,
                        before: None,
                        unchanged: Vec::new(),
                    },
                )?);
            }
            return Ok(());
        }
        let rel = &change.relation;
        let schema = self.known(rel.oid, rel)?;
        let commit_lsn = self.txn.as_ref().map(|t| t.commit_lsn).unwrap_or(0);
        let at = |ordinal_hint: &str| {
            format!(
                "table {} at commit {} ({ordinal_hint})",
                schema.qualified_name(),
                format_lsn(commit_lsn)
            )
        };
        let convert = |tuple: &Tuple, what: &str| -> Result<(Row, Vec<usize>), SourceError> {
            tuple_to_row(&schema, tuple).map_err(|(col, message)| {
                SourceError::definite(format!(
                    "cannot encode column {col} of {}: {message}; nothing past this change was acknowledged",
                    at(what)
                ))
            })
        };
        match change.kind {
            ChangeKind::Insert => {
                let new = change
                    .new
                    .as_ref()
                    .ok_or_else(|| SourceError::definite("insert without tuple"))?;
                let (after, _) = convert(new, "insert")?;
                out.push(self.envelope(
                    Op::Create,
                    schema,
                    change.lsn.0,
                    Images {
                        after: Some(after),
                        before: None,
                        unchanged: Vec::new(),
                    },
                )?);
            }
            ChangeKind::Update => {
                self.require_identity(rel.oid)?;
                let new = change
                    .new
                    .as_ref()
                    .ok_or_else(|| SourceError::definite("update without tuple"))?;
                let (mut after, mut unchanged) = convert(new, "update")?;
                let before = match &change.old {
                    Some(old) => Some(convert(old, "update old tuple")?.0),
                    None => None,
                };
                // Fill unchanged TOAST values from a full old tuple.
                if let (Some(old), Some(before_row)) = (&change.old, &before) {
                    if !change.old_is_key_only {
                        unchanged.retain(|&i| {
                            if matches!(old.0.get(i), Some(Cell::Text(_)) | Some(Cell::Null)) {
                                after[i] = before_row[i].clone();
                                false
                            } else {
                                true
                            }
                        });
                    }
                }
                let key_changed = before.as_ref().is_some_and(|b| {
                    schema.key.iter().any(|&i| {
                        matches!(
                            change.old.as_ref().and_then(|o| o.0.get(i)),
                            Some(Cell::Text(_)) | Some(Cell::Null)
                        ) && b[i] != after[i]
                    })
                });
                if key_changed {
                    if !unchanged.is_empty() {
                        let names: Vec<_> = unchanged
                            .iter()
                            .map(|&i| schema.columns[i].name.clone())
                            .collect();
                        return Err(SourceError::definite(format!(
                            "an update changed the primary key of {} while TOASTed column(s) {} were unchanged and not sent by PostgreSQL; run ALTER TABLE {} REPLICA IDENTITY FULL so the old values are logged, then reset the checkpoint or re-snapshot the table",
                            at("update"),
                            names.join(", "),
                            schema.qualified_name()
                        )));
                    }
                    out.push(self.envelope(
                        Op::Delete,
                        schema.clone(),
                        change.lsn.0,
                        Images {
                            after: None,
                            before: before.clone(),
                            unchanged: Vec::new(),
                        },
                    )?);
                    out.push(self.envelope(
                        Op::Create,
                        schema,
                        change.lsn.0,
                        Images {
                            after: Some(after),
                            before: None,
                            unchanged: Vec::new(),
                        },
                    )?);
                    return Ok(());
                }
                out.push(self.envelope(
                    Op::Update,
                    schema,
                    change.lsn.0,
                    Images {
                        after: Some(after),
                        before: if change.old_is_key_only { None } else { before },
                        unchanged,
                    },
                )?);
            }
            ChangeKind::Delete => {
                self.require_identity(rel.oid)?;
                let old = change.old.as_ref().ok_or_else(|| SourceError::definite(format!(
                    "delete on {} carries no old tuple; run ALTER TABLE {} REPLICA IDENTITY FULL",
                    schema.qualified_name(),
                    schema.qualified_name()
                )))?;
                let (before, _) = convert(old, "delete")?;
                out.push(self.envelope(
                    Op::Delete,
                    schema,
                    change.lsn.0,
                    Images {
                        after: None,
                        before: Some(before),
                        unchanged: Vec::new(),
                    },
                )?);
            }
            ChangeKind::Truncate => {}
        }
        Ok(())
    }

    fn known(&mut self, oid: u32, rel: &RelationDesc) -> Result<Arc<TableSchema>, SourceError> {
        if !self.relations.contains_key(&oid) {
            self.relation(rel, None);
        }
        Ok(self.relations[&oid].schema.clone())
    }

    fn require_identity(&self, oid: u32) -> Result<(), SourceError> {
        match self
            .relations
            .get(&oid)
            .and_then(|r| r.identity_problem.clone())
        {
            Some(problem) => Err(SourceError::definite(problem)),
            None => Ok(()),
        }
    }
}

/// Why a table cannot be captured for updates and deletes, with the fix;
/// `None` when it can. The one rule behind start-up, `check`-style
/// refusals and the per-relation runtime error.
pub fn identity_problem(
    qualified: &str,
    identity: ReplicaIdentity,
    has_key: bool,
) -> Option<String> {
    match identity {
        ReplicaIdentity::Nothing => Some(format!(
            "table {qualified} has REPLICA IDENTITY NOTHING, so updates and deletes cannot be captured; run ALTER TABLE {qualified} REPLICA IDENTITY FULL (or DEFAULT with a primary key)"
        )),
        ReplicaIdentity::Default | ReplicaIdentity::Index if !has_key => Some(format!(
            "table {qualified} has no primary key under REPLICA IDENTITY DEFAULT, so updates and deletes cannot be captured; run ALTER TABLE {qualified} REPLICA IDENTITY FULL (or add a primary key)"
        )),
        _ => None,
    }
}

/// Converts a tuple; returns the row and the indexes of unchanged columns, or
/// `(column name, reason)`.
fn tuple_to_row(
    schema: &TableSchema,
    tuple: &Tuple,
) -> Result<(Row, Vec<usize>), (String, String)> {
    let mut row = Vec::with_capacity(schema.columns.len());
    let mut unchanged = Vec::new();
    for (i, column) in schema.columns.iter().enumerate() {
        let value = match tuple.0.get(i) {
            None | Some(Cell::Null) => Value::Null,
            Some(Cell::Unchanged) => {
                unchanged.push(i);
                Value::Null
            }
            Some(Cell::Text(bytes)) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| (column.name.clone(), "value is not valid UTF-8".to_string()))?;
                parse_text(&column.data_type, text).map_err(|e| (column.name.clone(), e.0))?
            }
        };
        row.push(value);
    }
    Ok((row, unchanged))
}
