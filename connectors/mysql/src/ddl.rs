//! What a QUERY event's statement does to tables: [`classify`] turns the
//! SQL of a binlog `Query` event into a [`DdlEvent`].
//!
//! Sits after [`crate::reader`] (which hands over every statement that is
//! not BEGIN/COMMIT with its session's default database) and before the
//! daemon's schema tracking: `CreateTable`/`AlterTable`/`DropTable`/
//! `RenameTable`/`TruncateTable` say which tables changed and how;
//! `Unknown` is a statement that touches a table but could not be
//! understood (the source should stop rather than guess); `NotDdl` is
//! everything else (transaction control, grants, users, databases, views,
//! routines).
//!
//! Parsing uses `sqlparser`'s MySQL dialect after the leading keywords are
//! recognized here (MariaDB's `ALTER ONLINE|IGNORE TABLE` is normalized;
//! executable comments count as text). Names are unquoted and qualified
//! with the default database.

mod classify;
mod head;

pub use classify::classify;

/// A table, qualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// Database (schema).
    pub database: String,
    /// Table.
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database, self.name)
    }
}

/// A column as a DDL statement defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// Column name.
    pub name: String,
    /// The type as written, normalized (`BIGINT UNSIGNED`, `VARCHAR(10)`).
    pub data_type: String,
    /// False for `NOT NULL` and `PRIMARY KEY` columns.
    pub nullable: bool,
}

/// Where `FIRST`/`AFTER` puts a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnPosition {
    /// First column.
    First,
    /// Right after this column.
    After(String),
}

/// One change of an `ALTER TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterChange {
    /// `ADD [COLUMN]`.
    AddColumn {
        /// The new column.
        column: ColumnDefinition,
        /// `FIRST`/`AFTER`, when given (else last).
        position: Option<ColumnPosition>,
    },
    /// `DROP [COLUMN]`.
    DropColumn {
        /// The dropped column.
        name: String,
    },
    /// `MODIFY [COLUMN]`: new type/options, same name.
    ModifyColumn {
        /// The column's new definition.
        column: ColumnDefinition,
        /// `FIRST`/`AFTER`, when given.
        position: Option<ColumnPosition>,
    },
    /// `CHANGE [COLUMN] old new …`: rename and/or redefine.
    ChangeColumn {
        /// The name before.
        old_name: String,
        /// The column's new definition (and name).
        column: ColumnDefinition,
        /// `FIRST`/`AFTER`, when given.
        position: Option<ColumnPosition>,
    },
    /// `RENAME COLUMN a TO b`.
    RenameColumn {
        /// The name before.
        from: String,
        /// The name after.
        to: String,
    },
    /// `RENAME [TO|AS] t2`.
    RenameTable {
        /// The new name.
        to: TableName,
    },
    /// A change that leaves the column list as it is (indexes, constraints,
    /// defaults, `ALGORITHM=`/`LOCK=`).
    Other {
        /// The change as SQL.
        description: String,
    },
}

/// What a statement does to tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlEvent {
    /// Not a table DDL (transaction control, GRANT, CREATE USER/DATABASE/VIEW…).
    NotDdl,
    /// `CREATE [OR REPLACE] TABLE`.
    CreateTable {
        /// The table.
        table: TableName,
        /// Its columns (empty for `LIKE`).
        columns: Vec<ColumnDefinition>,
        /// `CREATE TABLE t LIKE source`.
        like: Option<TableName>,
        /// `OR REPLACE` (MariaDB): an existing table was dropped first.
        or_replace: bool,
    },
    /// `ALTER TABLE` (also `CREATE INDEX`/`DROP INDEX`, as `Other` changes).
    AlterTable {
        /// The table (its name before any `RENAME` change).
        table: TableName,
        /// The changes, in order.
        changes: Vec<AlterChange>,
    },
    /// `DROP TABLE a, b`.
    DropTable {
        /// The dropped tables.
        tables: Vec<TableName>,
    },
    /// `RENAME TABLE a TO b, c TO d`.
    RenameTable {
        /// `(from, to)` pairs, applied in order.
        renames: Vec<(TableName, TableName)>,
    },
    /// `TRUNCATE [TABLE] t`.
    TruncateTable {
        /// The emptied table.
        table: TableName,
    },
    /// `DROP DATABASE|SCHEMA d`: every table in it is gone.
    DropDatabase {
        /// The database.
        database: String,
    },
    /// A statement on tables that could not be understood.
    Unknown {
        /// The statement.
        sql: String,
        /// The tables it seems to name (best effort; may be empty).
        tables: Vec<TableName>,
    },
}

impl DdlEvent {
    /// The tables the statement changes (for `RenameTable`, old and new
    /// names; for `DropDatabase`, none: compare databases instead).
    pub fn tables(&self) -> Vec<TableName> {
        match self {
            DdlEvent::NotDdl | DdlEvent::DropDatabase { .. } => Vec::new(),
            DdlEvent::CreateTable { table, .. } | DdlEvent::TruncateTable { table } => {
                vec![table.clone()]
            }
            DdlEvent::AlterTable { table, changes } => {
                let mut out = vec![table.clone()];
                out.extend(changes.iter().filter_map(|c| match c {
                    AlterChange::RenameTable { to } => Some(to.clone()),
                    _ => None,
                }));
                out
            }
            DdlEvent::DropTable { tables } | DdlEvent::Unknown { tables, .. } => tables.clone(),
            DdlEvent::RenameTable { renames } => renames
                .iter()
                .flat_map(|(a, b)| [a.clone(), b.clone()])
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
