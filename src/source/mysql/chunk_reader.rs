//! Reading a table in primary-key chunks inside a consistent snapshot whose
//! binlog position is known.
//!
//! Shared by both kinds of MySQL snapshot: the initial copy (one snapshot
//! for every table, before streaming) and incremental snapshots (one
//! snapshot per chunk, while streaming; see [`super::incremental`]).
//! [`open_snapshot`] starts `START TRANSACTION WITH CONSISTENT SNAPSHOT`
//! and returns the binlog position it is consistent with: MariaDB reports
//! it for exactly that snapshot (`binlog_snapshot_file/position`), without a
//! lock; MySQL has no such status, so the read lock `FLUSH TABLES WITH READ
//! LOCK` is held for the instant between opening the snapshot and reading
//! `SHOW MASTER STATUS` (needs RELOAD; writes wait for milliseconds).
//! [`read_chunk`] reads the next `limit` rows after a key (keyset
//! pagination); the key travels in checkpoints as a [`ChunkCursor`].

use tributary_mysql::mysql_async::prelude::Queryable;
use tributary_mysql::mysql_async::{Conn, Params, Row as MyRow, Value as My};
use tributary_mysql::{BinlogFile, Flavor};

use super::row_value::to_value;
use super::table_catalog::MysqlTable;
use crate::envelope::Row;
use crate::snapshot::ChunkCursor;
use crate::source::SourceError;

pub(super) fn driver(
    context: &str,
) -> impl Fn(tributary_mysql::mysql_async::Error) -> SourceError + '_ {
    move |e| SourceError::from(tributary_mysql::MysqlError::from_driver(e, context, "-"))
}

/// MariaDB or MySQL, from `VERSION()`.
pub async fn flavor_of(conn: &mut Conn) -> Result<Flavor, SourceError> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(driver("reading the server version"))?
        .unwrap_or_default();
    Ok(if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    })
}

/// Opens a REPEATABLE READ consistent snapshot on `conn`; returns the
/// binlog position it is consistent with. The caller ends it with `COMMIT`.
pub async fn open_snapshot(conn: &mut Conn, flavor: Flavor) -> Result<BinlogFile, SourceError> {
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(driver("preparing the snapshot session"))?;
    let at = match flavor {
        Flavor::MariaDb => {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .map_err(driver("opening the consistent snapshot"))?;
            let rows: Vec<(String, String)> = conn
                .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                .await
                .map_err(driver("reading the snapshot's binlog position"))?;
            let get = |name: &str| {
                rows.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            BinlogFile {
                file: get("binlog_snapshot_file").unwrap_or_default(),
                pos: get("binlog_snapshot_position")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
            }
        }
        Flavor::MySql => {
            conn.query_drop("FLUSH TABLES WITH READ LOCK")
                .await
                .map_err(driver(
                    "taking the brief read lock for the snapshot position (needs RELOAD)",
                ))?;
            let opened = conn
                .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await;
            let status: Result<Option<MyRow>, _> = conn.query_first("SHOW MASTER STATUS").await;
            conn.query_drop("UNLOCK TABLES")
                .await
                .map_err(driver("releasing the read lock"))?;
            opened.map_err(driver("opening the consistent snapshot"))?;
            let status = status.map_err(driver("reading SHOW MASTER STATUS"))?.ok_or_else(|| {
                SourceError::definite("SHOW MASTER STATUS returned nothing: the binary log is off; start the server with --log-bin")
            })?;
            BinlogFile {
                file: status.get(0).unwrap_or_default(),
                pos: status.get(1).unwrap_or_default(),
            }
        }
    };
    if at.sequence().is_none() || at.pos < 4 {
        return Err(SourceError::definite(format!(
            "the server reported binlog position {at} for a snapshot; expected a numbered file and an offset ≥ 4"
        )));
    }
    Ok(at)
}

/// One chunk of a table.
#[derive(Debug)]
pub struct Chunk {
    pub rows: Vec<Row>,
    /// Where the next chunk starts; `None`: the table is complete.
    pub next: Option<ChunkCursor>,
}

/// Reads the rows after `after` (from the start when `None`), at most
/// `limit` of them in key order; a table without a primary key in one read.
pub async fn read_chunk(
    conn: &mut Conn,
    table: &MysqlTable,
    after: Option<&ChunkCursor>,
    limit: usize,
) -> Result<Chunk, SourceError> {
    let schema = &table.schema;
    let ident = |n: &str| format!("`{}`", n.replace('`', "``"));
    let columns: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
    let keys: Vec<String> = schema
        .key
        .iter()
        .map(|&i| ident(&schema.columns[i].name))
        .collect();
    let from = format!("{}.{}", ident(&schema.namespace), ident(&schema.name));
    let after = match after {
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
            SourceError::definite(format!(
                "snapshot cursor {cursor:?} of {} cannot be read; clear the table's pending snapshot in the checkpoint (`tributary checkpoint show`) and request it again",
                schema.qualified_name()
            ))
        })?),
        None => None,
    };
    let (sql, params) = if keys.is_empty() {
        (
            format!("SELECT {} FROM {from}", columns.join(", ")),
            Params::Empty,
        )
    } else {
        let order = keys.join(", ");
        match after {
            None => (
                format!(
                    "SELECT {} FROM {from} ORDER BY {order} LIMIT {limit}",
                    columns.join(", ")
                ),
                Params::Empty,
            ),
            Some(after) => (
                format!(
                    "SELECT {} FROM {from} WHERE ({order}) > ({}) ORDER BY {order} LIMIT {limit}",
                    columns.join(", "),
                    vec!["?"; keys.len()].join(", "),
                ),
                Params::Positional(after),
            ),
        }
    };
    let rows: Vec<MyRow> = conn
        .exec(sql, params)
        .await
        .map_err(driver(&format!("copying {}", schema.qualified_name())))?;
    let complete = keys.is_empty() || rows.len() < limit;
    let mut last_key = None;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let values: Vec<My> = row.unwrap();
        last_key = Some(
            schema
                .key
                .iter()
                .map(|&i| values[i].clone())
                .collect::<Vec<_>>(),
        );
        let mut image = Vec::with_capacity(values.len());
        for ((value, column), decode) in values.into_iter().zip(&schema.columns).zip(&table.decode)
        {
            image.push(to_value(column, decode, value).map_err(|e| {
                SourceError::definite(format!("{} (snapshot): {e}", schema.qualified_name()))
            })?);
        }
        out.push(image);
    }
    let next = match (complete, last_key) {
        (false, Some(key)) => Some(encode_cursor(&key)),
        _ => None,
    };
    Ok(Chunk { rows: out, next })
}

/// Key values as a checkpoint cursor: each value tagged with its kind so it
/// comes back as the same driver value (`i:`, `u:`, `f:`, `d:` float/double,
/// `b:` hex bytes, `t:` date/time parts, `n:` time).
pub fn encode_cursor(values: &[My]) -> ChunkCursor {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    ChunkCursor::KeyAfter {
        values: values
            .iter()
            .map(|v| match v {
                My::NULL => "z:".to_string(),
                My::Int(i) => format!("i:{i}"),
                My::UInt(u) => format!("u:{u}"),
                My::Float(f) => format!("f:{f}"),
                My::Double(f) => format!("d:{f}"),
                My::Bytes(b) => format!("b:{}", hex(b)),
                My::Date(y, mo, d, h, mi, s, us) => format!("t:{y}:{mo}:{d}:{h}:{mi}:{s}:{us}"),
                My::Time(neg, days, h, mi, s, us) => {
                    format!("n:{}:{days}:{h}:{mi}:{s}:{us}", u8::from(*neg))
                }
            })
            .collect(),
    }
}

/// Inverse of [`encode_cursor`].
pub fn decode_cursor(cursor: &ChunkCursor) -> Option<Vec<My>> {
    let ChunkCursor::KeyAfter { values } = cursor else {
        return None;
    };
    values
        .iter()
        .map(|text| {
            let (tag, body) = text.split_once(':')?;
            let parts =
                || -> Option<Vec<u32>> { body.split(':').map(|p| p.parse().ok()).collect() };
            Some(match tag {
                "z" => My::NULL,
                "i" => My::Int(body.parse().ok()?),
                "u" => My::UInt(body.parse().ok()?),
                "f" => My::Float(body.parse().ok()?),
                "d" => My::Double(body.parse().ok()?),
                "b" => My::Bytes(
                    (0..body.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(body.get(i..i + 2)?, 16).ok())
                        .collect::<Option<Vec<u8>>>()?,
                ),
                "t" => match parts()?.as_slice() {
                    [y, mo, d, h, mi, s, us] => My::Date(
                        u16::try_from(*y).ok()?,
                        u8::try_from(*mo).ok()?,
                        u8::try_from(*d).ok()?,
                        u8::try_from(*h).ok()?,
                        u8::try_from(*mi).ok()?,
                        u8::try_from(*s).ok()?,
                        *us,
                    ),
                    _ => return None,
                },
                "n" => match parts()?.as_slice() {
                    [neg, days, h, mi, s, us] => My::Time(
                        *neg == 1,
                        *days,
                        u8::try_from(*h).ok()?,
                        u8::try_from(*mi).ok()?,
                        u8::try_from(*s).ok()?,
                        *us,
                    ),
                    _ => return None,
                },
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_every_key_kind() {
        let key = vec![
            My::Int(-42),
            My::UInt(u64::MAX),
            My::Double(1.5),
            My::Bytes(b"a\x00\xffz".to_vec()),
            My::Date(2024, 2, 29, 23, 59, 58, 123_456),
            My::Time(true, 3, 4, 5, 6, 7),
            My::NULL,
        ];
        let cursor = encode_cursor(&key);
        assert_eq!(decode_cursor(&cursor), Some(key));
        assert_eq!(
            decode_cursor(&ChunkCursor::KeyAfter {
                values: vec!["x:1".into()]
            }),
            None
        );
        assert_eq!(decode_cursor(&ChunkCursor::PageFrom { page: 1 }), None);
    }
}
