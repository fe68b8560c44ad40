//! MySQL/MariaDB table shapes from `information_schema`: the lake schema of
//! each captured table, and what decoding its binlog rows needs (unsigned
//! flags, ENUM/SET labels).
//!
//! Sits at the start of the MySQL source and after every DDL on a captured
//! table ([`super::MysqlSource`] reloads the table's entry). Types:
//!
//! | MySQL | lake |
//! |---|---|
//! | TINYINT, SMALLINT, YEAR | int16 (SMALLINT UNSIGNED: int32) |
//! | MEDIUMINT, INT | int32 (INT UNSIGNED: int64) |
//! | BIGINT | int64 (BIGINT UNSIGNED: decimal(20,0)) |
//! | DECIMAL(p,s) | decimal(p,s) (p > 38: text) |
//! | FLOAT / DOUBLE | float32 / float64 |
//! | BIT(n) | int64 |
//! | CHAR, VARCHAR, TEXT…, ENUM, SET, JSON | text |
//! | BINARY, VARBINARY, BLOB… | binary |
//! | GEOMETRY, POINT, … | binary: the WKB (the stored 4-byte SRID prefix is dropped) |
//!
//! Text columns in `utf8mb4`, `utf8mb3`, `ascii` and `latin1` are decoded
//! (the binlog carries a column's bytes in its own character set; queries
//! return UTF-8); another character set stops the source at start with the
//! `CONVERT TO CHARACTER SET utf8mb4` fix.
//! | DATE | date |
//! | TIME | text (MySQL times reach ±838 hours) |
//! | DATETIME | timestamp |
//! | TIMESTAMP | timestamptz |

use tributary_mysql::mysql_async::Conn;
use tributary_mysql::mysql_async::prelude::Queryable;

use crate::schema::{ColumnSchema, ColumnType, TableSchema};
use crate::source::SourceError;

/// How a column's binlog values are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decode {
    Plain,
    Unsigned,
    /// ENUM labels, 1-based in the binlog.
    Enum(Vec<String>),
    /// SET labels, bit `i` = label `i`.
    Set(Vec<String>),
    /// Text stored as `latin1` (MySQL's latin1 is Windows-1252).
    Latin1,
    /// Spatial values: SRID (4 bytes) + WKB as stored.
    Geometry,
    /// BINARY(n): the binlog drops the trailing zero bytes that pad it.
    FixedBinary(usize),
}

/// A captured table as the source decodes it.
#[derive(Debug, Clone)]
pub struct MysqlTable {
    pub schema: std::sync::Arc<TableSchema>,
    pub decode: Vec<Decode>,
}

fn catalog_error(table: &str, e: tributary_mysql::mysql_async::Error) -> SourceError {
    SourceError::from(tributary_mysql::MysqlError::from_driver(
        e,
        &format!("reading the columns of {table}"),
        "-",
    ))
}

/// Loads `database.table`; `None` when it does not exist.
pub async fn load(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<MysqlTable>, SourceError> {
    let qualified = format!("{database}.{table}");
    type Col = (
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        u32,
        Option<String>,
    );
    let rows: Vec<Col> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, COLUMN_DEFAULT, ORDINAL_POSITION, CHARACTER_SET_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| catalog_error(&qualified, e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut decode = Vec::with_capacity(rows.len());
    let mut key = Vec::new();
    for (i, (name, data_type, column_type, nullable, column_key, default, ordinal, charset)) in
        rows.into_iter().enumerate()
    {
        let (lake, mut how) = map_type(&data_type, &column_type);
        match charset.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("utf8mb4" | "utf8mb3" | "utf8" | "ascii" | "binary") => {}
            Some("latin1") if how == Decode::Plain => how = Decode::Latin1,
            Some("latin1") => {}
            Some(other) => {
                return Err(SourceError::definite(format!(
                    "column {name} of {qualified} uses character set {other}, which tributary cannot decode from the binlog; convert it with ALTER TABLE {qualified} CONVERT TO CHARACTER SET utf8mb4 (or remove the table from `tables`)"
                )));
            }
        }
        if column_key == "PRI" {
            key.push(i);
        }
        columns.push(ColumnSchema {
            name,
            data_type: lake,
            source_type: column_type,
            nullable: nullable == "YES",
            id: Some(ordinal),
            default,
        });
        decode.push(how);
    }
    let schema = TableSchema::new(database, table, columns, key);
    Ok(Some(MysqlTable {
        schema: std::sync::Arc::new(schema),
        decode,
    }))
}

/// The lake type and decoding of a MySQL column.
pub fn map_type(data_type: &str, column_type: &str) -> (ColumnType, Decode) {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let plain = |t| {
        (
            t,
            if unsigned {
                Decode::Unsigned
            } else {
                Decode::Plain
            },
        )
    };
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" | "year" => plain(ColumnType::Int16),
        "smallint" if unsigned => plain(ColumnType::Int32),
        "smallint" => plain(ColumnType::Int16),
        "mediumint" => plain(ColumnType::Int32),
        "int" | "integer" if unsigned => plain(ColumnType::Int64),
        "int" | "integer" => plain(ColumnType::Int32),
        "bigint" if unsigned => plain(ColumnType::Decimal {
            precision: 20,
            scale: 0,
        }),
        "bigint" => plain(ColumnType::Int64),
        "decimal" | "numeric" => match decimal_params(column_type) {
            Some((p, s)) if p <= 38 => plain(ColumnType::Decimal {
                precision: p,
                scale: s,
            }),
            _ => plain(ColumnType::Text),
        },
        "float" => plain(ColumnType::Float32),
        "double" | "real" => plain(ColumnType::Float64),
        "bit" => plain(ColumnType::Int64),
        "date" => plain(ColumnType::Date),
        "datetime" => plain(ColumnType::Timestamp),
        "timestamp" => plain(ColumnType::TimestampTz),
        "time" => plain(ColumnType::Text),
        "enum" => (ColumnType::Text, Decode::Enum(labels(column_type))),
        "set" => (ColumnType::Text, Decode::Set(labels(column_type))),
        "binary" => (
            ColumnType::Binary,
            Decode::FixedBinary(decimal_params(column_type).map_or(1, |(n, _)| usize::from(n))),
        ),
        "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => plain(ColumnType::Binary),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => (ColumnType::Binary, Decode::Geometry),
        _ => plain(ColumnType::Text),
    }
}

fn decimal_params(column_type: &str) -> Option<(u8, i8)> {
    let inner = column_type.split_once('(')?.1.split_once(')')?.0;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// `enum('a','b''c')` → `["a", "b'c"]`.
fn labels(column_type: &str) -> Vec<String> {
    let Some(inner) = column_type
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(inner, _)| inner)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = inner.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '\'') => quoted = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                current.push('\'');
                chars.next();
            }
            (true, '\'') => {
                quoted = false;
                out.push(std::mem::take(&mut current));
            }
            (true, c) => current.push(c),
            (false, _) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_as_documented() {
        assert_eq!(map_type("int", "int(10) unsigned").0, ColumnType::Int64);
        assert_eq!(map_type("int", "int(11)").0, ColumnType::Int32);
        assert_eq!(
            map_type("bigint", "bigint(20) unsigned").0,
            ColumnType::Decimal {
                precision: 20,
                scale: 0
            }
        );
        assert_eq!(
            map_type("decimal", "decimal(10,2)").0,
            ColumnType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(map_type("decimal", "decimal(65,2)").0, ColumnType::Text);
        assert_eq!(
            map_type("timestamp", "timestamp(6)").0,
            ColumnType::TimestampTz
        );
        assert_eq!(
            map_type("enum", "enum('a','b''c')").1,
            Decode::Enum(vec!["a".into(), "b'c".into()])
        );
        assert_eq!(
            map_type("set", "set('x','y')").1,
            Decode::Set(vec!["x".into(), "y".into()])
        );
    }
}
