//! Rows events → row images without `mysql_common`'s per-row overhead.
//!
//! `RowsEventData::rows` builds a full `Column` (schema, table and column
//! names, each a fresh allocation) for every cell of every row and re-parses
//! the table map's optional metadata for every row image; on a backlog that
//! was most of the reader's time. A [`RowsPlan`] is made once per table map
//! (what each column's cells look like on the wire) and the rows data is
//! read straight into the same [`BinlogValue`]s `mysql_common` would give.
//!
//! Each value's decoding mirrors `mysql_common` 0.37's
//! `BinlogValue::deserialize` exactly (including its quirks: MEDIUMINT
//! without sign extension, YEAR as `1900 + n` text, TIMESTAMP2 as
//! `seconds[.micros]` text, DECIMAL as text). Anything outside that set — a
//! column type it does not cover (MySQL's binary JSON, typed arrays),
//! partial JSON updates, a table map that does not describe the event,
//! malformed data — is left to `mysql_common` (the caller falls back to
//! `RowsEventData::rows`), so errors read as before. Debug builds decode
//! every event both ways and compare.

use std::io;

use mysql_async::Value;
use mysql_async::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;

use super::event::RowImages;

/// How one column's cells are laid out in a row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Tiny {
        unsigned: bool,
    },
    Short {
        unsigned: bool,
    },
    Long {
        unsigned: bool,
    },
    LongLong {
        unsigned: bool,
    },
    Float,
    Double,
    Timestamp,
    /// MEDIUMINT: three little-endian bytes, read without sign extension.
    Int24,
    Time,
    DateTime,
    Year,
    NewDate,
    Bit {
        bytes: usize,
    },
    Timestamp2 {
        dec: u8,
    },
    DateTime2 {
        dec: u8,
    },
    Time2 {
        dec: u8,
    },
    Decimal {
        precision: usize,
        scale: usize,
    },
    Enum {
        bytes: u8,
    },
    Set {
        bytes: usize,
    },
    /// BLOB/TEXT, GEOMETRY, VECTOR: a 1-4 byte little-endian length.
    Blob {
        length_bytes: u8,
    },
    /// VARCHAR, CHAR: a 1 or 2 byte length.
    Var {
        wide: bool,
    },
}

/// The cell layouts of a table map's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RowsPlan {
    cells: Vec<Cell>,
}

impl RowsPlan {
    /// The plan of `table`; `None` when a column is outside what this
    /// module decodes (its rows go through `mysql_common`).
    pub(super) fn of(table: &TableMapEvent<'_>) -> Option<RowsPlan> {
        let count = usize::try_from(table.columns_count()).ok()?;
        // The same walk over the optional metadata as `mysql_common` makes
        // for every row: a failure in it is left to `mysql_common` to report.
        let extractor = OptionalMetaExtractor::new(table.iter_optional_meta()).ok()?;
        let mut signedness = extractor.iter_signedness();
        let mut charsets = extractor.iter_charset();
        let mut enum_set_charsets = extractor.iter_enum_and_set_charset();
        let mut primary_key = extractor.iter_primary_key();
        let mut names = extractor.iter_column_name();
        let mut cells = Vec::with_capacity(count);
        for i in 0..count {
            let column_type = table.get_column_type(i).ok()??;
            let meta = table.get_column_metadata(i).unwrap_or(&[]);
            let unsigned = column_type.is_numeric_type() && signedness.next().unwrap_or_default();
            if column_type.is_character_type() {
                charsets.next().transpose().ok()?;
            } else if column_type.is_enum_or_set_type() {
                enum_set_charsets.next().transpose().ok()?;
            }
            names.next().transpose().ok()?;
            primary_key
                .next_if(|next| next.is_err() || next.as_ref().ok() == Some(&(i as u64)))
                .transpose()
                .ok()?;
            cells.push(cell(column_type, meta, unsigned)?);
        }
        Some(RowsPlan { cells })
    }

    /// The row images of `rows_event`; `None` when `mysql_common` should
    /// read them instead (see the module doc).
    pub(super) fn read(&self, rows_event: &RowsEventData<'_>) -> Option<Vec<RowImages>> {
        if matches!(rows_event, RowsEventData::PartialUpdateRowsEvent(_)) {
            return None;
        }
        let count = usize::try_from(rows_event.num_columns()).ok()?;
        if count != self.cells.len() {
            return None;
        }
        // The cells each image carries (the same for every row).
        let before = rows_event
            .columns_before_image()
            .map(|bits| self.present(|i| bits.get(i).is_some_and(|x| *x)));
        let after = rows_event
            .columns_after_image()
            .map(|bits| self.present(|i| bits.get(i).is_some_and(|x| *x)));
        let mut data = rows_event.rows_data();
        let mut rows = Vec::new();
        while !data.is_empty() {
            let before = match &before {
                Some(cells) => Some(image(cells, &mut data).ok()?),
                None => None,
            };
            let after = match &after {
                Some(cells) => Some(image(cells, &mut data).ok()?),
                None => None,
            };
            rows.push((before, after));
        }
        Some(rows)
    }

    /// The cells of the columns for which `present(index)` holds.
    fn present(&self, present: impl Fn(usize) -> bool) -> Vec<Cell> {
        self.cells
            .iter()
            .enumerate()
            .filter(|(i, _)| present(*i))
            .map(|(_, cell)| *cell)
            .collect()
    }
}

/// One row image of the columns `cells`: their null bitmap, then the
/// non-null values.
fn image(cells: &[Cell], data: &mut &[u8]) -> io::Result<Vec<BinlogValue<'static>>> {
    let nulls = take(data, cells.len().div_ceil(8))?;
    let mut values = Vec::with_capacity(cells.len());
    for (i, cell) in cells.iter().enumerate() {
        let null = nulls[i / 8] & (1 << (i % 8)) != 0;
        values.push(BinlogValue::Value(if null {
            Value::NULL
        } else {
            value(*cell, data)?
        }));
    }
    Ok(values)
}

fn cell(column_type: ColumnType, meta: &[u8], unsigned: bool) -> Option<Cell> {
    use ColumnType::*;
    let byte = |i: usize| meta.get(i).copied();
    Some(match column_type {
        MYSQL_TYPE_TINY => Cell::Tiny { unsigned },
        MYSQL_TYPE_SHORT => Cell::Short { unsigned },
        MYSQL_TYPE_LONG => Cell::Long { unsigned },
        MYSQL_TYPE_LONGLONG => Cell::LongLong { unsigned },
        MYSQL_TYPE_FLOAT => Cell::Float,
        MYSQL_TYPE_DOUBLE => Cell::Double,
        MYSQL_TYPE_TIMESTAMP => Cell::Timestamp,
        MYSQL_TYPE_INT24 => Cell::Int24,
        MYSQL_TYPE_TIME => Cell::Time,
        MYSQL_TYPE_DATETIME => Cell::DateTime,
        MYSQL_TYPE_YEAR => Cell::Year,
        MYSQL_TYPE_NEWDATE => Cell::NewDate,
        MYSQL_TYPE_BIT => Cell::Bit {
            bytes: (usize::from(byte(1)?) * 8 + usize::from(byte(0)?)).div_ceil(8),
        },
        MYSQL_TYPE_TIMESTAMP2 => Cell::Timestamp2 { dec: byte(0)? },
        MYSQL_TYPE_DATETIME2 => Cell::DateTime2 { dec: byte(0)? },
        MYSQL_TYPE_TIME2 => Cell::Time2 { dec: byte(0)? },
        MYSQL_TYPE_NEWDECIMAL => {
            let (precision, scale) = (usize::from(byte(0)?), usize::from(byte(1)?));
            if scale > precision {
                return None;
            }
            Cell::Decimal { precision, scale }
        }
        MYSQL_TYPE_ENUM => match byte(1)? {
            bytes @ (1 | 2) => Cell::Enum { bytes },
            _ => return None,
        },
        MYSQL_TYPE_SET => Cell::Set {
            bytes: usize::from(byte(1)?),
        },
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_VECTOR => match byte(0)? {
            length_bytes @ 1..=4 => Cell::Blob { length_bytes },
            _ => return None,
        },
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => Cell::Var {
            wide: (u16::from(byte(0)?) | (u16::from(byte(1)?) << 8)) >= 256,
        },
        MYSQL_TYPE_STRING => {
            let (byte0, byte1) = (usize::from(byte(0)?), usize::from(byte(1)?));
            let length = if byte0 >= 1 {
                if (byte0 & 0x30) != 0x30 {
                    byte1 | (((byte0 & 0x30) ^ 0x30) << 4)
                } else {
                    byte1
                }
            } else {
                byte0 | (byte1 << 8)
            };
            Cell::Var {
                wide: length >= 256,
            }
        }
        _ => return None,
    })
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "row image ends early")
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> io::Result<&'a [u8]> {
    if data.len() < n {
        return Err(eof());
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

fn array<const N: usize>(data: &mut &[u8]) -> io::Result<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>().ok_or_else(eof)?;
    *data = rest;
    Ok(*head)
}

/// Little-endian unsigned integer of `n` (1-8) bytes.
fn uint_le(data: &mut &[u8], n: usize) -> io::Result<u64> {
    Ok(take(data, n)?
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Big-endian unsigned integer of `n` (1-8) bytes.
fn uint_be(data: &mut &[u8], n: usize) -> io::Result<u64> {
    Ok(take(data, n)?
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Big-endian signed integer of `n` (1-4) bytes, sign-extended.
fn int_be(data: &mut &[u8], n: usize) -> io::Result<i32> {
    let raw = uint_be(data, n)?;
    let shift = 64 - 8 * n as u32;
    Ok((((raw << shift) as i64) >> shift) as i32)
}

fn value(cell: Cell, data: &mut &[u8]) -> io::Result<Value> {
    Ok(match cell {
        Cell::Tiny { unsigned: false } => Value::Int(i64::from(array::<1>(data)?[0] as i8)),
        Cell::Tiny { unsigned: true } => Value::Int(i64::from(array::<1>(data)?[0])),
        Cell::Short { unsigned: false } => Value::Int(i64::from(i16::from_le_bytes(array(data)?))),
        Cell::Short { unsigned: true } => Value::Int(i64::from(u16::from_le_bytes(array(data)?))),
        Cell::Long { unsigned: false } => Value::Int(i64::from(i32::from_le_bytes(array(data)?))),
        Cell::Long { unsigned: true } => Value::Int(i64::from(u32::from_le_bytes(array(data)?))),
        Cell::LongLong { unsigned: false } => Value::Int(i64::from_le_bytes(array(data)?)),
        Cell::LongLong { unsigned: true } => {
            let x = u64::from_le_bytes(array(data)?);
            i64::try_from(x).map_or(Value::UInt(x), Value::Int)
        }
        Cell::Float => Value::Float(f32::from_le_bytes(array(data)?)),
        Cell::Double => Value::Double(f64::from_le_bytes(array(data)?)),
        Cell::Timestamp => Value::Int(i64::from(u32::from_le_bytes(array(data)?))),
        Cell::Int24 => Value::Int(uint_le(data, 3)? as i64),
        Cell::Time => {
            let tmp = uint_le(data, 3)?;
            let (h, m, s) = (tmp / 10000, (tmp % 10000) / 100, tmp % 100);
            Value::Time(false, 0, h as u8, m as u8, s as u8, 0)
        }
        Cell::DateTime => {
            let raw = u64::from_le_bytes(array(data)?);
            let (d, t) = (raw / 1_000_000, raw % 1_000_000);
            Value::Date(
                (d / 10000) as u16,
                ((d % 10000) / 100) as u8,
                (d % 100) as u8,
                (t / 10000) as u8,
                ((t % 10000) / 100) as u8,
                (t % 100) as u8,
                0,
            )
        }
        Cell::Year => {
            let y = i32::from(array::<1>(data)?[0]);
            Value::Bytes((1900 + y).to_string().into_bytes())
        }
        Cell::NewDate => {
            let tmp = uint_le(data, 3)?;
            Value::Date(
                (tmp >> 9) as u16,
                ((tmp >> 5) & 15) as u8,
                (tmp & 31) as u8,
                0,
                0,
                0,
                0,
            )
        }
        Cell::Bit { bytes } | Cell::Set { bytes } => Value::Bytes(take(data, bytes)?.to_vec()),
        Cell::Timestamp2 { dec } => {
            let sec = uint_be(data, 4)? as u32 as i32;
            let usec = match dec {
                1 | 2 => int_be(data, 1)? * 10000,
                3 | 4 => int_be(data, 2)? * 100,
                5 | 6 => int_be(data, 3)?,
                _ => 0,
            };
            Value::Bytes(timestamp_text(sec, usec))
        }
        Cell::DateTime2 { dec } => {
            const DATETIMEF_INT_OFS: i64 = 0x80_0000_0000;
            let int_part = uint_be(data, 5)? as i64 - DATETIMEF_INT_OFS;
            let frac = match dec {
                1 | 2 => int_be(data, 1)? * 10_000,
                3 | 4 => int_be(data, 2)? * 100,
                5 | 6 => int_be(data, 3)?,
                _ => 0,
            };
            datetime_from_packed(packed_time(int_part, i64::from(frac)))
        }
        Cell::Time2 { dec } => time_from_packed(time2_packed(data, dec)?),
        Cell::Decimal { precision, scale } => {
            Value::Bytes(decimal_text(data, precision, scale)?.into_bytes())
        }
        Cell::Enum { bytes } => Value::Int(uint_le(data, usize::from(bytes))? as i64),
        Cell::Blob { length_bytes } => {
            let n = uint_le(data, usize::from(length_bytes))? as usize;
            Value::Bytes(take(data, n)?.to_vec())
        }
        Cell::Var { wide } => {
            let n = uint_le(data, if wide { 2 } else { 1 })? as usize;
            Value::Bytes(take(data, n)?.to_vec())
        }
    })
}

/// `seconds` or `seconds.micros`, as `mysql_common` renders TIMESTAMP2
/// (`{sec}` / `{sec}.{usec:06}`), without the formatting machinery for
/// the usual case.
fn timestamp_text(sec: i32, usec: i32) -> Vec<u8> {
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return if usec == 0 {
            sec.to_string().into_bytes()
        } else {
            format!("{sec}.{usec:06}").into_bytes()
        };
    }
    let mut digits = [0u8; 10];
    let mut n = sec.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut out = Vec::with_capacity(digits.len() - start + 7);
    out.extend_from_slice(&digits[start..]);
    if usec != 0 {
        let mut frac = *b".000000";
        let mut n = usec.unsigned_abs();
        for slot in frac[1..].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&frac);
    }
    out
}

fn packed_time(int_part: i64, frac: i64) -> i64 {
    ((int_part as u64) << 24) as i64 + frac
}

fn time2_packed(data: &mut &[u8], dec: u8) -> io::Result<i64> {
    const TIMEF_INT_OFS: i64 = 0x80_0000;
    const TIMEF_OFS: i64 = 0x8000_0000_0000;
    Ok(match dec {
        1 | 2 => {
            let mut int_part = uint_be(data, 3)? as i64 - TIMEF_INT_OFS;
            let mut frac = u32::from(array::<1>(data)?[0]);
            if int_part < 0 && frac > 0 {
                int_part += 1;
                frac = frac.wrapping_sub(0x100);
            }
            packed_time(int_part, i64::from(frac).wrapping_mul(10_000))
        }
        3 | 4 => {
            let mut int_part = uint_be(data, 3)? as i64 - TIMEF_INT_OFS;
            let mut frac = i32::from(u16::from_be_bytes(array(data)?));
            if int_part < 0 && frac > 0 {
                int_part += 1;
                frac -= 0x10000;
            }
            packed_time(int_part, i64::from(frac * 100))
        }
        5 | 6 => uint_be(data, 6)? as i64 - TIMEF_OFS,
        _ => packed_time(uint_be(data, 3)? as i64 - TIMEF_INT_OFS, 0),
    })
}

fn time_from_packed(mut tmp: i64) -> Value {
    let negative = tmp < 0;
    if negative {
        tmp = -tmp;
    }
    let hms = tmp >> 24;
    let h = ((hms >> 12) as u32) % (1 << 10);
    let m = ((hms >> 6) as u32) % (1 << 6);
    let s = (hms as u32) % (1 << 6);
    let u = tmp % (1 << 24);
    Value::Time(negative, h / 24, (h % 24) as u8, m as u8, s as u8, u as u32)
}

fn datetime_from_packed(mut tmp: i64) -> Value {
    if tmp < 0 {
        tmp = -tmp;
    }
    let usec = tmp % (1 << 24);
    let ymdhms = tmp >> 24;
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms % (1 << 17);
    Value::Date(
        (ym / 13) as u32 as u16,
        (ym % 13) as u8,
        (ymd % (1 << 5)) as u8,
        (hms >> 12) as u32 as u8,
        ((hms >> 6) % (1 << 6)) as u8,
        (hms % (1 << 6)) as u8,
        usec as u32,
    )
}

/// Digits per 4-byte word of MySQL's packed DECIMAL.
const DIG_PER_DEC: usize = 9;
/// Bytes of a partial word of n digits.
const DIG_TO_BYTES: [usize; DIG_PER_DEC + 1] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const POWERS_10: [i32; DIG_PER_DEC + 1] = [
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
];

/// A packed DECIMAL(precision, scale) as text, exactly as `mysql_common`'s
/// `Decimal::read_bin(.., keep_precision = false)` then `to_string()`.
fn decimal_text(data: &mut &[u8], precision: usize, scale: usize) -> io::Result<String> {
    let intg = precision - scale;
    let (prefix_len, intg_full) = (intg % DIG_PER_DEC, intg / DIG_PER_DEC);
    let (suffix_len, frac_full) = (scale % DIG_PER_DEC, scale / DIG_PER_DEC);
    let size = intg_full * 4 + DIG_TO_BYTES[prefix_len] + frac_full * 4 + DIG_TO_BYTES[suffix_len];
    let mut buffer = [0u8; 40];
    let mut heap;
    let bytes: &mut [u8] = if size <= buffer.len() {
        buffer[..size].copy_from_slice(take(data, size)?);
        &mut buffer[..size]
    } else {
        heap = take(data, size)?.to_vec();
        &mut heap
    };
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x80;
    }
    let mask: i32 = if bytes.first().copied().unwrap_or(0) & 0x80 == 0 {
        0
    } else {
        -1
    };
    let mut input: &[u8] = bytes;
    let mut sign = mask != 0;
    let mut out_intg = intg;
    let mut digits: Vec<i32> = Vec::with_capacity(intg_full + frac_full + 2);
    let mut trimmed = false;
    if prefix_len > 0 {
        let x = int_be(&mut input, DIG_TO_BYTES[prefix_len])? ^ mask;
        if x == 0 && !trimmed {
            out_intg -= prefix_len;
        } else {
            trimmed = true;
            digits.push(x);
        }
    }
    for _ in 0..intg_full {
        let x = int_be(&mut input, 4)? ^ mask;
        if x == 0 && !trimmed {
            out_intg -= DIG_PER_DEC;
        } else {
            trimmed = true;
            digits.push(x);
        }
    }
    for _ in 0..frac_full {
        digits.push(int_be(&mut input, 4)? ^ mask);
    }
    let mut out_frac = scale;
    if suffix_len > 0 {
        let x = int_be(&mut input, DIG_TO_BYTES[suffix_len])? ^ mask;
        digits.push(x.wrapping_mul(POWERS_10[DIG_PER_DEC - suffix_len]));
    }
    if out_intg == 0 && out_frac == 0 {
        out_intg = 1;
        out_frac = 0;
        sign = false;
        digits.clear();
        digits.push(0);
    }
    Ok(format_decimal(sign, out_intg, out_frac, &digits))
}

/// `mysql_common`'s `Display for Decimal`.
fn format_decimal(sign: bool, intg: usize, frac: usize, digits: &[i32]) -> String {
    use std::fmt::Write;
    let prefix_len = intg % DIG_PER_DEC;
    let suffix_len = frac % DIG_PER_DEC;
    let mut f = String::with_capacity(intg + frac + 2);
    let mut remaining = intg;
    if sign {
        f.push('-');
    }
    let mut i = 0;
    while i < digits.len() && remaining > 0 {
        let x = digits[i];
        i += 1;
        if prefix_len > 0 && i == 1 {
            let _ = write!(f, "{x}");
            remaining = remaining.saturating_sub(prefix_len);
        } else {
            if i == 1 {
                let _ = write!(f, "{x}");
            } else {
                let _ = write!(f, "{x:09}");
            }
            remaining = remaining.saturating_sub(DIG_PER_DEC);
        }
    }
    if intg == 0 {
        f.push('0');
    }
    if i < digits.len() {
        f.push('.');
    }
    while i < digits.len() {
        let mut x = digits[i];
        i += 1;
        if i == digits.len() && suffix_len > 0 {
            x /= POWERS_10[DIG_PER_DEC - suffix_len];
            let _ = write!(f, "{x:0suffix_len$}");
        } else {
            let _ = write!(f, "{x:09}");
        }
    }
    f
}

#[cfg(test)]
mod tests;
