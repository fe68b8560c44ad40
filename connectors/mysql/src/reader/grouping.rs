//! Event groups into transactions: the queue between the binlog events the
//! reader decodes and the [`super::MysqlEvent`]s it hands out.
//!
//! A group opens with a GTID event or `BEGIN` (or, for a standalone
//! statement, with the statement itself) and ends with XID, `COMMIT` or
//! `ROLLBACK`. Changes that may still be undone are held back:
//! - groups that may end in `ROLLBACK` (all but the ones MariaDB flags
//!   transactional) are held until their end and dropped on `ROLLBACK`;
//! - after a `SAVEPOINT s` query, what follows is held until the group
//!   ends; `ROLLBACK TO s` drops it (the server logs the undone rows when
//!   the group also changed a non-transactional table).
//!
//! Past [`super::ROLLBACK_HOLD_ROWS`] held rows, held events are released
//! early; an undo that reaches them afterwards is an error, never a silent
//! phantom row.

use std::collections::VecDeque;

use super::{MysqlEvent, Queued, ROLLBACK_HOLD_ROWS};
use crate::error::MysqlError;
use crate::position::{BinlogFile, MysqlResume};

/// A savepoint statement inside a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SavepointStatement {
    /// `SAVEPOINT s`.
    Set(String),
    /// `ROLLBACK TO [SAVEPOINT] s`.
    RollbackTo(String),
    /// `RELEASE SAVEPOINT s`.
    Release(String),
}

impl SavepointStatement {
    /// Recognizes `sql` (as the server logs it: ``SAVEPOINT `s1` ``,
    /// ``ROLLBACK TO `s1` ``).
    pub(super) fn parse(sql: &str) -> Option<SavepointStatement> {
        let words: Vec<&str> = sql.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
        let name = |i: usize| -> Option<String> {
            (words.len() == i + 1).then(|| words[i].trim_matches('`').replace("``", "`"))
        };
        match upper[..] {
            ["SAVEPOINT", _] => name(1).map(SavepointStatement::Set),
            ["ROLLBACK", "WORK", "TO", "SAVEPOINT", _] => {
                name(4).map(SavepointStatement::RollbackTo)
            }
            ["ROLLBACK", "TO", "SAVEPOINT", _] | ["ROLLBACK", "WORK", "TO", _] => {
                name(3).map(SavepointStatement::RollbackTo)
            }
            ["ROLLBACK", "TO", _] => name(2).map(SavepointStatement::RollbackTo),
            ["RELEASE", "SAVEPOINT", _] => name(2).map(SavepointStatement::Release),
            _ => None,
        }
    }
}

/// The open group.
#[derive(Debug, Default)]
struct OpenGroup {
    /// Held events (with their row counts) while they may still be undone;
    /// `None` when streaming.
    held: Option<Vec<(Queued, usize)>>,
    /// Holding since the group's start (so a full ROLLBACK can drop all).
    held_from_start: bool,
    held_rows: usize,
    /// Held events were released early (too many rows).
    released_early: bool,
    /// Savepoints: name and the length of `held` when set.
    savepoints: Vec<(String, usize)>,
}

/// Groups events into transactions and queues them for handing out.
#[derive(Debug, Default)]
pub(super) struct Grouping {
    open: Option<OpenGroup>,
    ready: VecDeque<Queued>,
    /// The next group's GTID, whether it is all transactional, and where
    /// its first event starts.
    next_gtid: Option<String>,
    next_transactional: bool,
    next_start: Option<u64>,
}

impl Grouping {
    /// The next event ready to hand out.
    pub(super) fn pop(&mut self) -> Option<Queued> {
        self.ready.pop_front()
    }

    /// Whether a group is open.
    pub(super) fn in_group(&self) -> bool {
        self.open.is_some()
    }

    /// A GTID event announced the next group.
    pub(super) fn announce(&mut self, gtid: String, transactional: bool, at: u64) {
        self.next_gtid = Some(gtid);
        self.next_transactional = transactional;
        self.next_start = Some(at);
    }

    /// An event of the next group starts at `at` (its first one counts).
    pub(super) fn starts_at(&mut self, at: u64) {
        self.next_start.get_or_insert(at);
    }

    /// Opens a group in `file` (whose first event started at the noted
    /// offset, else `fallback`).
    pub(super) fn begin(&mut self, file: &str, fallback: u64, timestamp: u32) {
        let at = BinlogFile {
            file: file.to_string(),
            pos: self.next_start.unwrap_or(fallback),
        };
        let hold = !self.next_transactional;
        self.open = Some(OpenGroup {
            held: hold.then(Vec::new),
            held_from_start: hold,
            ..OpenGroup::default()
        });
        self.emit(
            MysqlEvent::Begin {
                gtid: self.next_gtid.clone(),
                at,
                timestamp,
            }
            .into(),
            0,
        );
    }

    /// Queues `queued` (carrying `rows` row changes) now, or holds it with
    /// its open group.
    pub(super) fn emit(&mut self, queued: Queued, rows: usize) {
        let Some(group) = self.open.as_mut() else {
            self.ready.push_back(queued);
            return;
        };
        let Some(held) = group.held.as_mut() else {
            self.ready.push_back(queued);
            return;
        };
        held.push((queued, rows));
        group.held_rows += rows;
        if group.held_rows > ROLLBACK_HOLD_ROWS {
            tracing::debug!(
                rows = group.held_rows,
                "releasing a large group before its end"
            );
            self.ready.extend(held.drain(..).map(|(q, _)| q));
            group.held = None;
            group.held_rows = 0;
            group.released_early = true;
        }
    }

    /// A savepoint statement of the open group (outside a group: ignored).
    pub(super) fn savepoint(
        &mut self,
        statement: SavepointStatement,
        here: &str,
    ) -> Result<(), MysqlError> {
        let Some(group) = self.open.as_mut() else {
            return Ok(());
        };
        match statement {
            SavepointStatement::Set(name) => {
                if group.held.is_none() && !group.released_early {
                    // Stream what came before, hold what follows.
                    group.held = Some(Vec::new());
                }
                let mark = group.held.as_ref().map_or(usize::MAX, Vec::len);
                group.savepoints.retain(|(n, _)| *n != name);
                group.savepoints.push((name, mark));
            }
            SavepointStatement::Release(name) => {
                if let Some(i) = group.savepoints.iter().position(|(n, _)| *n == name) {
                    group.savepoints.truncate(i);
                }
            }
            SavepointStatement::RollbackTo(name) => {
                let Some(i) = group.savepoints.iter().position(|(n, _)| *n == name) else {
                    return Err(undo_error(here, "an unknown savepoint"));
                };
                let mark = group.savepoints[i].1;
                group.savepoints.truncate(i + 1);
                match group.held.as_mut() {
                    Some(held) if mark <= held.len() => {
                        let dropped: usize = held.drain(mark..).map(|(_, rows)| rows).sum();
                        group.held_rows -= dropped;
                        tracing::debug!(at = %here, rows = dropped, "dropped changes undone by ROLLBACK TO SAVEPOINT");
                    }
                    _ => {
                        return Err(undo_error(
                            here,
                            &format!("more than {ROLLBACK_HOLD_ROWS} rows"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues a heartbeat unless a group is open.
    pub(super) fn heartbeat(&mut self, resume: MysqlResume) {
        if self.open.is_none() {
            self.ready
                .push_back(MysqlEvent::Heartbeat { resume }.into());
        }
    }

    fn end_group(&mut self) -> Option<OpenGroup> {
        self.next_gtid = None;
        self.next_start = None;
        self.next_transactional = false;
        self.open.take()
    }

    /// The open group committed; `resume` is the position after it.
    pub(super) fn commit(&mut self, resume: MysqlResume, timestamp: u32, xid: Option<u64>) {
        let Some(group) = self.end_group() else {
            return;
        };
        self.ready
            .extend(group.held.into_iter().flatten().map(|(q, _)| q));
        self.ready.push_back(
            MysqlEvent::Commit {
                resume,
                timestamp,
                xid,
            }
            .into(),
        );
    }

    /// The open group ended in `ROLLBACK` (at `here`): its held events are
    /// dropped; an error when some were already handed out.
    pub(super) fn rollback(&mut self, here: &str) -> Result<(), MysqlError> {
        let Some(group) = self.end_group() else {
            return Ok(());
        };
        if group.held.is_none() || !group.held_from_start {
            let why = if group.released_early {
                format!("more than {ROLLBACK_HOLD_ROWS} rows")
            } else {
                "the server flagged the group transactional".to_string()
            };
            return Err(undo_error(here, &why));
        }
        tracing::debug!(at = %here, "dropped a group that ended in ROLLBACK");
        Ok(())
    }
}

fn undo_error(here: &str, why: &str) -> MysqlError {
    MysqlError::Definite {
        message: format!(
            "the binlog undoes changes at {here} that were already handed out ({why}); they would stand in the lake: copy the affected tables again with `tributary snapshot`"
        ),
    }
}

#[cfg(test)]
mod tests;
