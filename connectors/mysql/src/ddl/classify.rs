//! [`classify`]: leading keywords recognized here, the statement parsed
//! by `sqlparser` (MySQL dialect), the AST mapped to a [`DdlEvent`].

use sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, CreateTableLikeKind, MySQLColumnPosition,
    ObjectName, ObjectType, RenameTableNameKind, Statement,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use super::head;
use super::{AlterChange, ColumnDefinition, ColumnPosition, DdlEvent, TableName};

/// The kind of table statement the leading keywords announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    AlterTable,
    CreateTable,
    CreateIndex,
    DropTable,
    DropIndex,
    RenameTable,
    Truncate,
    DropDatabase,
}

/// Classifies the statement of a QUERY event run with `default_database`
/// as the session's database.
pub fn classify(default_database: &str, sql: &str) -> DdlEvent {
    let text = head::unwrap_executable_comments(sql);
    let words = head::leading_words(&text, 5);
    let Some((verb, normalized)) = recognize(&text, &words) else {
        return DdlEvent::NotDdl;
    };
    let unknown = || DdlEvent::Unknown {
        sql: sql.to_string(),
        tables: guess_tables(default_database, &text, &words, verb),
    };
    let statements = match Parser::parse_sql(&MySqlDialect {}, &normalized) {
        Ok(statements) if statements.len() == 1 => statements,
        _ => return unknown(),
    };
    let Some(statement) = statements.into_iter().next() else {
        return unknown();
    };
    from_statement(default_database, statement).unwrap_or_else(unknown)
}

/// Recognizes a table statement from its leading keywords; returns the
/// text to parse (MariaDB-only keywords removed).
fn recognize(text: &str, words: &[head::Word]) -> Option<(Verb, String)> {
    let w: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let first = *w.first()?;
    let second = w.get(1).copied().unwrap_or("");
    let position = |word: &str| w.iter().position(|x| *x == word);
    let verb = match first {
        "ALTER" => {
            // ALTER [ONLINE] [IGNORE] TABLE
            let table = position("TABLE")?;
            if !w[1..table]
                .iter()
                .all(|x| matches!(*x, "ONLINE" | "IGNORE"))
            {
                return None;
            }
            let rest = &text[words[table].end..];
            return Some((Verb::AlterTable, format!("ALTER TABLE{rest}")));
        }
        "CREATE" => {
            let mut i = 1;
            if w.get(1..3) == Some(&["OR", "REPLACE"][..]) {
                i = 3;
            }
            match w.get(i).copied() {
                Some("TEMPORARY") if w.get(i + 1) == Some(&"TABLE") => Verb::CreateTable,
                Some("TABLE") => Verb::CreateTable,
                Some("INDEX") => Verb::CreateIndex,
                Some("UNIQUE" | "FULLTEXT" | "SPATIAL") if w.get(i + 1) == Some(&"INDEX") => {
                    Verb::CreateIndex
                }
                _ => return None,
            }
        }
        "DROP" => match second {
            "TABLE" | "TABLES" => Verb::DropTable,
            "TEMPORARY" if w.get(2) == Some(&"TABLE") => Verb::DropTable,
            "INDEX" => Verb::DropIndex,
            "DATABASE" | "SCHEMA" => Verb::DropDatabase,
            _ => return None,
        },
        "RENAME" if matches!(second, "TABLE" | "TABLES") => Verb::RenameTable,
        "TRUNCATE" => Verb::Truncate,
        _ => return None,
    };
    let normalized = match (verb, second) {
        // sqlparser knows `DROP TABLE`, MySQL also accepts `DROP TABLES`.
        (Verb::DropTable | Verb::RenameTable, "TABLES") => {
            format!("{} TABLE{}", first, &text[words[1].end..])
        }
        _ => text.to_string(),
    };
    Some((verb, normalized))
}

fn from_statement(default_database: &str, statement: Statement) -> Option<DdlEvent> {
    let name = |n: &ObjectName| table_name(default_database, n);
    Some(match statement {
        Statement::CreateTable(create) => DdlEvent::CreateTable {
            table: name(&create.name)?,
            columns: create.columns.iter().map(column_definition).collect(),
            like: match &create.like {
                Some(CreateTableLikeKind::Plain(l) | CreateTableLikeKind::Parenthesized(l)) => {
                    Some(name(&l.name)?)
                }
                None => None,
            },
            or_replace: create.or_replace,
        },
        Statement::AlterTable(alter) => {
            let table = name(&alter.name)?;
            let changes = alter
                .operations
                .into_iter()
                .map(|op| alter_change(default_database, op))
                .collect::<Option<Vec<_>>>()?;
            DdlEvent::AlterTable { table, changes }
        }
        Statement::CreateIndex(index) => DdlEvent::AlterTable {
            table: name(&index.table_name)?,
            changes: vec![AlterChange::Other {
                description: format!("CREATE INDEX {}", display_opt(&index.name)),
            }],
        },
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } => DdlEvent::DropTable {
            tables: names.iter().map(name).collect::<Option<Vec<_>>>()?,
        },
        Statement::Drop {
            object_type: ObjectType::Index,
            names,
            table: Some(table),
            ..
        } => DdlEvent::AlterTable {
            table: name(&table)?,
            changes: names
                .iter()
                .map(|n| AlterChange::Other {
                    description: format!("DROP INDEX {n}"),
                })
                .collect(),
        },
        Statement::Drop {
            object_type: ObjectType::Database | ObjectType::Schema,
            names,
            ..
        } if names.len() == 1 => DdlEvent::DropDatabase {
            database: ident_parts(&names[0])?.pop()?,
        },
        Statement::RenameTable(renames) => DdlEvent::RenameTable {
            renames: renames
                .iter()
                .map(|r| Some((name(&r.old_name)?, name(&r.new_name)?)))
                .collect::<Option<Vec<_>>>()?,
        },
        Statement::Truncate(truncate) if truncate.table_names.len() == 1 => {
            DdlEvent::TruncateTable {
                table: name(&truncate.table_names[0].name)?,
            }
        }
        _ => return None,
    })
}

fn alter_change(default_database: &str, op: AlterTableOperation) -> Option<AlterChange> {
    Some(match op {
        AlterTableOperation::AddColumn {
            if_not_exists: false,
            column_def,
            column_position,
            ..
        } => AlterChange::AddColumn {
            column: column_definition(&column_def),
            position: column_position.map(position),
        },
        AlterTableOperation::DropColumn {
            column_names,
            if_exists: false,
            ..
        } if column_names.len() == 1 => AlterChange::DropColumn {
            name: column_names[0].value.clone(),
        },
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            options,
            column_position,
        } => AlterChange::ModifyColumn {
            column: column_definition(&ColumnDef {
                name: col_name,
                data_type,
                options: options
                    .into_iter()
                    .map(|option| sqlparser::ast::ColumnOptionDef { name: None, option })
                    .collect(),
            }),
            position: column_position.map(position),
        },
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            column_position,
        } => AlterChange::ChangeColumn {
            old_name: old_name.value,
            column: column_definition(&ColumnDef {
                name: new_name,
                data_type,
                options: options
                    .into_iter()
                    .map(|option| sqlparser::ast::ColumnOptionDef { name: None, option })
                    .collect(),
            }),
            position: column_position.map(position),
        },
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => AlterChange::RenameColumn {
            from: old_column_name.value,
            to: new_column_name.value,
        },
        AlterTableOperation::RenameTable {
            table_name: RenameTableNameKind::To(n) | RenameTableNameKind::As(n),
        } => AlterChange::RenameTable {
            to: table_name(default_database, &n)?,
        },
        // Conditional column changes depend on the table's state, which
        // only the catalog knows: not understood here.
        AlterTableOperation::AddColumn { .. } | AlterTableOperation::DropColumn { .. } => {
            return None;
        }
        op @ (AlterTableOperation::AddConstraint { .. }
        | AlterTableOperation::DropConstraint { .. }
        | AlterTableOperation::DropPrimaryKey { .. }
        | AlterTableOperation::DropForeignKey { .. }
        | AlterTableOperation::DropIndex { .. }
        | AlterTableOperation::RenameConstraint { .. }
        | AlterTableOperation::AlterColumn { .. }
        | AlterTableOperation::Algorithm { .. }
        | AlterTableOperation::Lock { .. }) => AlterChange::Other {
            description: op.to_string(),
        },
        _ => return None,
    })
}

fn column_definition(column: &ColumnDef) -> ColumnDefinition {
    let not_null = column.options.iter().any(|o| {
        matches!(
            o.option,
            ColumnOption::NotNull | ColumnOption::PrimaryKey(_)
        )
    });
    ColumnDefinition {
        name: column.name.value.clone(),
        data_type: column.data_type.to_string(),
        nullable: !not_null,
    }
}

fn position(position: MySQLColumnPosition) -> ColumnPosition {
    match position {
        MySQLColumnPosition::First => ColumnPosition::First,
        MySQLColumnPosition::After(column) => ColumnPosition::After(column.value),
    }
}

fn display_opt(name: &Option<ObjectName>) -> String {
    name.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The unquoted parts of a name (`None` for function-valued parts).
fn ident_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| part.as_ident().map(|i| i.value.clone()))
        .collect()
}

fn table_name(default_database: &str, name: &ObjectName) -> Option<TableName> {
    let mut parts = ident_parts(name)?;
    let table = parts.pop()?;
    let database = match parts.len() {
        0 => default_database.to_string(),
        1 => parts.pop()?,
        _ => return None,
    };
    Some(TableName {
        database,
        name: table,
    })
}

/// The table a statement that could not be parsed seems to name: the
/// (possibly qualified, possibly back-quoted) name after the keywords.
fn guess_tables(
    default_database: &str,
    text: &str,
    words: &[head::Word],
    verb: Verb,
) -> Vec<TableName> {
    let after = match verb {
        Verb::AlterTable | Verb::CreateTable | Verb::DropTable | Verb::RenameTable => words
            .iter()
            .position(|w| w.text == "TABLE" || w.text == "TABLES"),
        Verb::Truncate => Some(if words.get(1).is_some_and(|w| w.text == "TABLE") {
            1
        } else {
            0
        }),
        _ => None,
    };
    let Some(index) = after else {
        return Vec::new();
    };
    let mut rest = text[words[index].end..].trim_start();
    for keyword in ["IF NOT EXISTS", "IF EXISTS"] {
        if rest.len() >= keyword.len() && rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
            rest = rest[keyword.len()..].trim_start();
        }
    }
    let mut parts = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut current = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '`' => {
                while let Some((_, q)) = chars.next() {
                    if q == '`' {
                        if chars.peek().is_some_and(|(_, n)| *n == '`') {
                            chars.next();
                            current.push('`');
                            continue;
                        }
                        break;
                    }
                    current.push(q);
                }
            }
            '.' => parts.push(std::mem::take(&mut current)),
            c if c.is_alphanumeric() || c == '_' || c == '$' => current.push(c),
            _ => break,
        }
    }
    parts.push(current);
    if parts.iter().any(String::is_empty) || parts.len() > 2 {
        return Vec::new();
    }
    let name = parts.pop().unwrap_or_default();
    let database = parts.pop().unwrap_or_else(|| default_database.to_string());
    vec![TableName { database, name }]
}
