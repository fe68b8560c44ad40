//! Row-event cells as typed values: [`MysqlValue`], decoded from what
//! `mysql_common`'s binlog row parser yields ([`BinlogValue`]) plus the
//! column facts of the table map ([`ColumnMeta`]).
//!
//! Sits between [`crate::reader`] (rows events, still as driver values)
//! and the daemon's envelope mapping. `mysql_common` already decodes the
//! wire formats (integers, packed DECIMAL, DATETIME2/TIME2/TIMESTAMP2,
//! MySQL binary JSON); this module adds what it leaves open: signedness,
//! character sets, ENUM/SET labels, BIT width, YEAR 0000, BINARY padding,
//! the GEOMETRY SRID prefix, and columns missing from a MINIMAL row image.

use mysql_async::Value;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;

use crate::charset::{BINARY_COLLATION, CharsetMap, decode_text};
use crate::column_meta::ColumnMeta;
use crate::error::MysqlError;

/// One cell of a row image.
#[derive(Debug, Clone, PartialEq)]
pub enum MysqlValue {
    /// SQL NULL.
    Null,
    /// The column is not in this row image (`binlog_row_image` MINIMAL or
    /// NOBLOB): its value did not change / is not known here.
    Unchanged,
    /// A signed integer column of any width (TINYINT … BIGINT).
    Int(i64),
    /// An unsigned integer column of any width.
    UInt(u64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// DECIMAL as exact text with the column's scale (`-12.340`).
    Decimal(String),
    /// BIT(width), the bits as an unsigned number.
    Bit {
        /// The bits.
        value: u64,
        /// Declared width (1-64).
        width: u16,
    },
    /// Character data (CHAR, VARCHAR, TEXT) decoded from its character set.
    Text(String),
    /// Binary data (BINARY, VARBINARY, BLOB); BINARY(n) padded to n bytes.
    Bytes(Vec<u8>),
    /// Character data that could not be turned into text: the binlog gave
    /// no collation (`binlog_row_metadata` absent), or its character set is
    /// not one [`crate::charset`] decodes.
    RawText {
        /// The collation id, when known.
        collation: Option<u16>,
        /// The stored bytes.
        bytes: Vec<u8>,
    },
    /// DATE (`0000-00-00` is all zeros).
    Date {
        /// Year.
        year: u16,
        /// Month 1-12 (0 in zero dates).
        month: u8,
        /// Day 1-31 (0 in zero dates).
        day: u8,
    },
    /// TIME: a signed duration up to 838:59:59.
    Time {
        /// Below zero.
        negative: bool,
        /// Hours (0-838).
        hours: u32,
        /// Minutes.
        minutes: u8,
        /// Seconds.
        seconds: u8,
        /// Microseconds.
        micros: u32,
    },
    /// DATETIME (no time zone).
    DateTime {
        /// Year.
        year: u16,
        /// Month.
        month: u8,
        /// Day.
        day: u8,
        /// Hour.
        hour: u8,
        /// Minute.
        minute: u8,
        /// Second.
        second: u8,
        /// Microseconds.
        micros: u32,
    },
    /// TIMESTAMP as seconds since the Unix epoch (UTC); 0 is the zero
    /// timestamp `0000-00-00 00:00:00`.
    Timestamp {
        /// Seconds since the epoch.
        seconds: u64,
        /// Microseconds.
        micros: u32,
    },
    /// YEAR (0 is `0000`).
    Year(u16),
    /// ENUM: 1-based index (0 is the empty error value) and its label when
    /// the binlog names labels.
    Enum {
        /// Index into the declared labels, 1-based.
        index: u16,
        /// The label, with `binlog_row_metadata = FULL`.
        label: Option<String>,
    },
    /// SET: member bits and their labels when the binlog names them.
    Set {
        /// Bit i set: the i-th declared member is in the value.
        bits: u64,
        /// The members, with `binlog_row_metadata = FULL`.
        labels: Option<Vec<String>>,
    },
    /// JSON text (MySQL's binary JSON converted; MariaDB stores JSON as
    /// LONGTEXT, which arrives as [`MysqlValue::Text`]).
    Json(String),
    /// GEOMETRY: SRID and the WKB bytes after it.
    Geometry {
        /// Spatial reference id.
        srid: u32,
        /// Well-known binary.
        wkb: Vec<u8>,
    },
}

impl MysqlValue {
    /// A DECIMAL's unscaled value and scale (`-12.340` → `(-12340, 3)`);
    /// `None` for other values or beyond i128 (more than 38 digits).
    pub fn decimal_parts(&self) -> Option<(i128, u32)> {
        let MysqlValue::Decimal(text) = self else {
            return None;
        };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let negative = int.starts_with('-');
        let digits = format!("{}{frac}", int.trim_start_matches('-'));
        let unscaled: i128 = digits.parse().ok()?;
        let scale = u32::try_from(frac.len()).ok()?;
        Some((if negative { -unscaled } else { unscaled }, scale))
    }
}

/// Decodes a row image: `values` are the image's cells in column order,
/// for the columns marked in `present` (`None`: every column); columns not
/// present become [`MysqlValue::Unchanged`].
pub fn decode_row(
    columns: &[ColumnMeta],
    present: Option<&[bool]>,
    values: Vec<BinlogValue<'static>>,
    charsets: &CharsetMap,
) -> Result<Vec<MysqlValue>, MysqlError> {
    let mut values = values.into_iter();
    let mut out = Vec::with_capacity(columns.len());
    for column in columns {
        let is_present = present.is_none_or(|p| p.get(column.index).copied().unwrap_or(false));
        if !is_present {
            out.push(MysqlValue::Unchanged);
            continue;
        }
        let value = values.next().ok_or_else(|| MysqlError::Definite {
            message: format!(
                "a row image has fewer cells than its column bitmap (column {})",
                column.display_name()
            ),
        })?;
        out.push(decode_cell(column, value, charsets)?);
    }
    Ok(out)
}

/// Decodes one cell of `column`.
pub fn decode_cell(
    column: &ColumnMeta,
    value: BinlogValue<'static>,
    charsets: &CharsetMap,
) -> Result<MysqlValue, MysqlError> {
    let unexpected = |what: &dyn std::fmt::Debug| MysqlError::Definite {
        message: format!(
            "column {} ({:?}): unexpected binlog value {what:?}",
            column.display_name(),
            column.column_type
        ),
    };
    let value = match value {
        BinlogValue::Value(Value::NULL) => return Ok(MysqlValue::Null),
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(jsonb) => {
            let json = serde_json::Value::try_from(jsonb).map_err(|e| MysqlError::Definite {
                message: format!("column {}: invalid binary JSON: {e}", column.display_name()),
            })?;
            return Ok(MysqlValue::Json(json.to_string()));
        }
        BinlogValue::JsonDiff(_) => {
            return Err(MysqlError::Definite {
                message: format!(
                    "column {}: a partial JSON update (binlog_row_value_options = PARTIAL_JSON) carries only the change; SET GLOBAL binlog_row_value_options = '' so full JSON values are logged",
                    column.display_name()
                ),
            });
        }
    };
    use ColumnType::*;
    Ok(match (column.column_type, value) {
        (
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG,
            v,
        ) => match v {
            Value::UInt(u) => MysqlValue::UInt(u),
            Value::Int(i) if column.unsigned => {
                MysqlValue::UInt(u64::try_from(i).map_err(|_| unexpected(&i))?)
            }
            // mysql_common reads a signed MEDIUMINT without sign extension.
            Value::Int(i) if column.column_type == MYSQL_TYPE_INT24 && i >= 0x80_0000 => {
                MysqlValue::Int(i - 0x100_0000)
            }
            Value::Int(i) => MysqlValue::Int(i),
            other => return Err(unexpected(&other)),
        },
        (MYSQL_TYPE_FLOAT, Value::Float(f)) => MysqlValue::Float(f),
        (MYSQL_TYPE_DOUBLE, Value::Double(d)) => MysqlValue::Double(d),
        (MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL, Value::Bytes(b)) => {
            MysqlValue::Decimal(String::from_utf8(b).map_err(|e| unexpected(&e))?)
        }
        (MYSQL_TYPE_BIT, Value::Bytes(b)) => MysqlValue::Bit {
            value: b
                .iter()
                .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)),
            width: column.bit_width(),
        },
        (MYSQL_TYPE_YEAR, Value::Bytes(b)) => {
            let year: u16 = std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| unexpected(&b))?;
            // The binlog stores YEAR as year - 1900 in one byte; 0 is 0000.
            MysqlValue::Year(if year == 1900 { 0 } else { year })
        }
        (MYSQL_TYPE_YEAR, Value::Int(y)) => MysqlValue::Year(u16::try_from(y).unwrap_or(0)),
        (MYSQL_TYPE_NEWDATE | MYSQL_TYPE_DATE, Value::Date(year, month, day, ..)) => {
            MysqlValue::Date { year, month, day }
        }
        (
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2,
            Value::Date(year, month, day, hour, minute, second, micros),
        ) => MysqlValue::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        },
        (
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2,
            Value::Time(negative, days, hours, minutes, seconds, micros),
        ) => MysqlValue::Time {
            negative,
            hours: days * 24 + u32::from(hours),
            minutes,
            seconds,
            micros,
        },
        (MYSQL_TYPE_TIMESTAMP, Value::Int(seconds)) => MysqlValue::Timestamp {
            seconds: u64::try_from(seconds).map_err(|_| unexpected(&seconds))?,
            micros: 0,
        },
        (MYSQL_TYPE_TIMESTAMP2, Value::Bytes(b)) => {
            parse_timestamp(&b).ok_or_else(|| unexpected(&String::from_utf8_lossy(&b)))?
        }
        (MYSQL_TYPE_ENUM, Value::Int(index)) => {
            let index = u16::try_from(index).map_err(|_| unexpected(&index))?;
            let label = column.enum_labels.as_ref().and_then(|labels| {
                usize::from(index)
                    .checked_sub(1)
                    .and_then(|i| labels.get(i).cloned())
            });
            MysqlValue::Enum { index, label }
        }
        (MYSQL_TYPE_SET, Value::Bytes(b)) => {
            // Little-endian bitmask, one bit per declared member.
            let bits = b
                .iter()
                .rev()
                .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
            let labels = column.set_labels.as_ref().map(|labels| {
                labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && bits & (1u64 << i) != 0)
                    .map(|(_, l)| l.clone())
                    .collect()
            });
            MysqlValue::Set { bits, labels }
        }
        (MYSQL_TYPE_JSON, Value::Bytes(b)) => {
            MysqlValue::Json(String::from_utf8(b).map_err(|e| unexpected(&e))?)
        }
        (MYSQL_TYPE_GEOMETRY, Value::Bytes(b)) => {
            let srid = b
                .get(0..4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| unexpected(&b))?;
            MysqlValue::Geometry {
                srid,
                wkb: b[4..].to_vec(),
            }
        }
        (
            MYSQL_TYPE_STRING
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB,
            Value::Bytes(b),
        ) => character_or_binary(column, b, charsets),
        (MYSQL_TYPE_VECTOR, Value::Bytes(b)) => MysqlValue::Bytes(b),
        (_, other) => return Err(unexpected(&other)),
    })
}

fn character_or_binary(
    column: &ColumnMeta,
    mut bytes: Vec<u8>,
    charsets: &CharsetMap,
) -> MysqlValue {
    match column.collation {
        Some(BINARY_COLLATION) => {
            // BINARY(n) is logged without its trailing zero padding.
            if let Some(length) = column.fixed_length() {
                if bytes.len() < length {
                    bytes.resize(length, 0);
                }
            }
            MysqlValue::Bytes(bytes)
        }
        Some(collation) => match charsets
            .charset(collation)
            .and_then(|charset| decode_text(charset, &bytes))
        {
            Some(text) => MysqlValue::Text(text),
            None => MysqlValue::RawText {
                collation: Some(collation),
                bytes,
            },
        },
        None => MysqlValue::RawText {
            collation: None,
            bytes,
        },
    }
}

/// `mysql_common` renders TIMESTAMP2 as `seconds` or `seconds.micros`.
fn parse_timestamp(text: &[u8]) -> Option<MysqlValue> {
    let text = std::str::from_utf8(text).ok()?;
    let (seconds, micros) = match text.split_once('.') {
        Some((s, m)) => (s.parse().ok()?, m.parse().ok()?),
        None => (text.parse().ok()?, 0),
    };
    Some(MysqlValue::Timestamp { seconds, micros })
}

#[cfg(test)]
mod tests;
