//! MySQL values (binlog rows and snapshot reads) → typed envelope values.
//!
//! Sits between the binlog reader / snapshot queries and the envelope: one
//! function per direction of doubt, driven by the column's lake type and its
//! [`Decode`] (unsigned integers arrive as their signed bit pattern in the
//! binlog; ENUM and SET arrive as numbers in the binlog and as labels from a
//! query). A value that does not fit its column is a definite error naming
//! the table, column and value.

use chrono::NaiveDate;
use tributary_mysql::mysql_async::Value as My;

use super::table_catalog::Decode;
use crate::envelope::Value;
use crate::schema::{ColumnSchema, ColumnType};

/// Converts one value of `column`.
pub fn to_value(column: &ColumnSchema, decode: &Decode, value: My) -> Result<Value, String> {
    if matches!(value, My::NULL) {
        return Ok(Value::Null);
    }
    let bad = |v: &My| {
        format!(
            "value {v:?} does not fit {} ({})",
            column.name, column.source_type
        )
    };
    let ty = column.source_type.as_str();
    Ok(match (&column.data_type, decode, value) {
        (ColumnType::Text, Decode::Enum(labels), My::Int(i)) => {
            Value::Text(label(labels, i).ok_or_else(|| bad(&My::Int(i)))?)
        }
        (ColumnType::Text, Decode::Enum(labels), My::UInt(i)) => {
            Value::Text(label(labels, i as i64).ok_or_else(|| bad(&My::UInt(i)))?)
        }
        (ColumnType::Text, Decode::Set(labels), My::Int(bits)) => {
            Value::Text(set(labels, bits as u64))
        }
        (ColumnType::Text, Decode::Set(labels), My::UInt(bits)) => Value::Text(set(labels, bits)),
        (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, _, v) => {
            let n = integer(ty, decode, &v).ok_or_else(|| bad(&v))?;
            match column.data_type {
                ColumnType::Int16 => Value::Int16(i16::try_from(n).map_err(|_| bad(&v))?),
                ColumnType::Int32 => Value::Int32(i32::try_from(n).map_err(|_| bad(&v))?),
                _ => Value::Int64(i64::try_from(n).map_err(|_| bad(&v))?),
            }
        }
        (ColumnType::Decimal { scale, .. }, _, v) => {
            let unscaled = match &v {
                My::Bytes(b) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|t| parse_decimal(t, *scale)),
                My::Int(_) | My::UInt(_) => integer(ty, decode, &v)
                    .and_then(|n| n.checked_mul(10i128.pow(u32::try_from(*scale).ok()?))),
                _ => None,
            };
            Value::Decimal(unscaled.ok_or_else(|| bad(&v))?)
        }
        (ColumnType::Float32, _, My::Float(f)) => Value::Float32(f),
        (ColumnType::Float32, _, My::Double(f)) => Value::Float32(f as f32),
        (ColumnType::Float64, _, My::Double(f)) => Value::Float64(f),
        (ColumnType::Float64, _, My::Float(f)) => Value::Float64(f64::from(f)),
        (ColumnType::Float32 | ColumnType::Float64, _, My::Bytes(b)) => {
            let f: f64 = std::str::from_utf8(&b)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| bad(&My::Bytes(b.clone())))?;
            if column.data_type == ColumnType::Float32 {
                Value::Float32(f as f32)
            } else {
                Value::Float64(f)
            }
        }
        (ColumnType::Date, _, My::Date(y, m, d, ..)) => {
            let date = NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                .ok_or_else(|| bad(&My::Date(y, m, d, 0, 0, 0, 0)))?;
            Value::Date((date - epoch()).num_days() as i32)
        }
        (ColumnType::Timestamp | ColumnType::TimestampTz, _, My::Date(y, mo, d, h, mi, s, us)) => {
            let at = NaiveDate::from_ymd_opt(i32::from(y), u32::from(mo), u32::from(d))
                .and_then(|date| {
                    date.and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us)
                })
                .ok_or_else(|| bad(&My::Date(y, mo, d, h, mi, s, us)))?;
            Value::Timestamp(at.and_utc().timestamp_micros())
        }
        (ColumnType::TimestampTz, _, My::Int(seconds)) => Value::Timestamp(seconds * 1_000_000),
        // The binlog's TIMESTAMP2: `seconds[.micros]` since the epoch.
        (ColumnType::TimestampTz, _, My::Bytes(b)) => {
            Value::Timestamp(epoch_micros(&b).ok_or_else(|| bad(&My::Bytes(b.clone())))?)
        }
        (ColumnType::Text, _, My::Time(neg, days, h, m, s, us)) => {
            let hours = days * 24 + u32::from(h);
            let mut text = format!("{}{hours:02}:{m:02}:{s:02}", if neg { "-" } else { "" });
            if us > 0 {
                text.push_str(&format!(".{us:06}"));
            }
            Value::Text(text)
        }
        (ColumnType::Text, _, My::Bytes(b)) => Value::Text(text(b)),
        (ColumnType::Text, _, other) => {
            Value::Text(other.as_sql(true).trim_matches('\'').to_string())
        }
        (ColumnType::Binary, Decode::Geometry, My::Bytes(b)) if b.len() >= 4 => {
            Value::Bytes(b[4..].to_vec())
        }
        (ColumnType::Binary, _, My::Bytes(b)) => Value::Bytes(b),
        (_, _, v) => return Err(bad(&v)),
    })
}

/// Binlog-only encodings made comparable with query results: SET values
/// arrive as their little-endian bitmask bytes.
pub fn from_binlog(decode: &Decode, value: My) -> My {
    match (decode, value) {
        (Decode::FixedBinary(width), My::Bytes(mut bytes)) if bytes.len() < *width => {
            bytes.resize(*width, 0);
            My::Bytes(bytes)
        }
        // ASCII reads the same in latin1 and UTF-8: no copy.
        (Decode::Latin1, My::Bytes(bytes)) if bytes.is_ascii() => My::Bytes(bytes),
        (Decode::Latin1, My::Bytes(bytes)) => My::Bytes(
            bytes
                .iter()
                .map(|&b| windows_1252(b))
                .collect::<String>()
                .into_bytes(),
        ),
        (Decode::Set(_), My::Bytes(bits)) if bits.len() <= 8 => My::UInt(
            bits.iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        ),
        (_, value) => value,
    }
}

/// A byte of MySQL's `latin1` (Windows-1252; its five unassigned bytes
/// pass through as the C1 controls, as MySQL converts them).
fn windows_1252(byte: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
        0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];
    match byte {
        0x80..=0x9F => {
            char::from_u32(u32::from(HIGH[usize::from(byte - 0x80)])).unwrap_or('\u{FFFD}')
        }
        _ => char::from(byte),
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// UTF-8 text; bytes that are not UTF-8 are read as Latin-1 (MySQL's
/// `latin1` columns), so no value is ever lost.
fn text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

fn label(labels: &[String], index: i64) -> Option<String> {
    if index == 0 {
        // MySQL's "error" enum value.
        return Some(String::new());
    }
    labels.get(usize::try_from(index - 1).ok()?).cloned()
}

fn set(labels: &[String], bits: u64) -> String {
    labels
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 64 && bits & (1 << i) != 0)
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `seconds[.fraction]` since the epoch as microseconds. Plain digits (what
/// the binlog gives) are read in place; anything else goes through the
/// general parse.
fn epoch_micros(bytes: &[u8]) -> Option<i64> {
    let (sec, frac) = match bytes.iter().position(|&c| c == b'.') {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &[][..]),
    };
    let plain = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    if (1..=12).contains(&sec.len()) && frac.len() <= 6 && plain(sec) && plain(frac) {
        let number = |d: &[u8]| d.iter().fold(0i64, |n, &c| n * 10 + i64::from(c - b'0'));
        let micros = number(frac) * 10i64.pow(6 - frac.len() as u32);
        return Some(number(sec) * 1_000_000 + micros);
    }
    let t = std::str::from_utf8(bytes).ok()?;
    let (sec, frac) = t.split_once('.').unwrap_or((t, "0"));
    let sec: i64 = sec.parse().ok()?;
    Some(sec * 1_000_000 + micros_of(frac)?)
}

/// The fraction of `seconds.fraction` as microseconds: its first six
/// digits, right-padded with zeros (`5` → 500000).
fn micros_of(frac: &str) -> Option<i64> {
    if frac.len() >= 6 {
        return frac.get(..6)?.parse().ok();
    }
    let mut digits = [b'0'; 6];
    digits[..frac.len()].copy_from_slice(frac.as_bytes());
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// `source_type` starts with `prefix`, ignoring ASCII case (the catalog's
/// types are lower case; no allocation per cell).
fn type_is(source_type: &str, prefix: &str) -> bool {
    source_type
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// An integer value, unsigned columns reinterpreted from the signed bit
/// pattern the binlog carries; BIT(n) from its big-endian bytes.
fn integer(source_type: &str, decode: &Decode, value: &My) -> Option<i128> {
    match value {
        My::Int(i) if *decode == Decode::Unsigned => {
            let width = if type_is(source_type, "tinyint") {
                8
            } else if type_is(source_type, "smallint") {
                16
            } else if type_is(source_type, "mediumint") {
                24
            } else if type_is(source_type, "int") {
                32
            } else {
                64
            };
            let mask: u64 = if width == 64 {
                u64::MAX
            } else {
                (1 << width) - 1
            };
            Some(i128::from((*i as u64) & mask))
        }
        // The binlog carries MEDIUMINT as three bytes that mysql_common reads
        // without sign extension; a signed column never holds 2^23 or more.
        My::Int(i) if type_is(source_type, "mediumint") && (1 << 23..1 << 24).contains(i) => {
            Some(i128::from(*i - (1 << 24)))
        }
        My::Int(i) => Some(i128::from(*i)),
        My::UInt(u) => Some(i128::from(*u)),
        My::Bytes(b) if type_is(source_type, "bit") => {
            Some(b.iter().fold(0i128, |acc, &x| (acc << 8) | i128::from(x)))
        }
        My::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// `-12.50` at scale 2 → -1250.
fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    if frac.len() > scale {
        return None;
    }
    let mut all = String::with_capacity(int.len() + scale);
    all.push_str(if int.is_empty() { "0" } else { int });
    all.push_str(frac);
    all.extend(std::iter::repeat_n('0', scale - frac.len()));
    let n: i128 = all.parse().ok()?;
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColumnType, source: &str) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            data_type: ty,
            source_type: source.into(),
            nullable: true,
            id: Some(1),
            default: None,
        }
    }

    #[test]
    fn integers_decimals_and_labels() {
        let tiny = col(ColumnType::Int16, "tinyint(3) unsigned");
        assert_eq!(
            to_value(&tiny, &Decode::Unsigned, My::Int(-1)),
            Ok(Value::Int16(255))
        );
        let upper = col(ColumnType::Int32, "SMALLINT(5) UNSIGNED");
        assert_eq!(
            to_value(&upper, &Decode::Unsigned, My::Int(-1)),
            Ok(Value::Int32(65_535))
        );
        let medium = col(ColumnType::Int32, "mediumint(9)");
        assert_eq!(
            to_value(&medium, &Decode::Plain, My::Int(16_777_215)),
            Ok(Value::Int32(-1))
        );
        assert_eq!(
            to_value(&medium, &Decode::Plain, My::Int(-8_388_608)),
            Ok(Value::Int32(-8_388_608))
        );
        let umedium = col(ColumnType::Int32, "mediumint(8) unsigned");
        assert_eq!(
            to_value(&umedium, &Decode::Unsigned, My::Int(16_777_215)),
            Ok(Value::Int32(16_777_215))
        );
        let big = col(
            ColumnType::Decimal {
                precision: 20,
                scale: 0,
            },
            "bigint(20) unsigned",
        );
        assert_eq!(
            to_value(&big, &Decode::Unsigned, My::Int(-1)),
            Ok(Value::Decimal(18_446_744_073_709_551_615))
        );
        let dec = col(
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
            "decimal(10,2)",
        );
        assert_eq!(
            to_value(&dec, &Decode::Plain, My::Bytes(b"-1.5".to_vec())),
            Ok(Value::Decimal(-150))
        );
        assert!(to_value(&dec, &Decode::Plain, My::Bytes(b"1.505".to_vec())).is_err());
        let e = col(ColumnType::Text, "enum('a','b')");
        let labels = Decode::Enum(vec!["a".into(), "b".into()]);
        assert_eq!(
            to_value(&e, &labels, My::Int(2)),
            Ok(Value::Text("b".into()))
        );
        assert_eq!(
            to_value(&e, &labels, My::Bytes(b"a".to_vec())),
            Ok(Value::Text("a".into()))
        );
        let s = col(ColumnType::Text, "set('x','y','z')");
        let set_labels = Decode::Set(vec!["x".into(), "y".into(), "z".into()]);
        assert_eq!(
            to_value(&s, &set_labels, My::Int(5)),
            Ok(Value::Text("x,z".into()))
        );
        assert_eq!(
            to_value(
                &s,
                &set_labels,
                from_binlog(&set_labels, My::Bytes(vec![6]))
            ),
            Ok(Value::Text("y,z".into()))
        );
        let bit = col(ColumnType::Int64, "bit(10)");
        assert_eq!(
            to_value(&bit, &Decode::Plain, My::Bytes(vec![1, 2])),
            Ok(Value::Int64(258))
        );
    }

    #[test]
    fn times_and_text() {
        let d = col(ColumnType::Date, "date");
        assert_eq!(
            to_value(&d, &Decode::Plain, My::Date(1970, 1, 2, 0, 0, 0, 0)),
            Ok(Value::Date(1))
        );
        let ts = col(ColumnType::Timestamp, "datetime(6)");
        assert_eq!(
            to_value(&ts, &Decode::Plain, My::Date(1970, 1, 1, 0, 0, 1, 5)),
            Ok(Value::Timestamp(1_000_005))
        );
        let t = col(ColumnType::Text, "time");
        assert_eq!(
            to_value(&t, &Decode::Plain, My::Time(true, 1, 2, 3, 4, 0)),
            Ok(Value::Text("-26:03:04".into()))
        );
        let tz = col(ColumnType::TimestampTz, "timestamp(6)");
        assert_eq!(
            to_value(&tz, &Decode::Plain, My::Bytes(b"2.5".to_vec())),
            Ok(Value::Timestamp(2_500_000))
        );
        assert_eq!(
            to_value(&tz, &Decode::Plain, My::Bytes(b"2.1234567".to_vec())),
            Ok(Value::Timestamp(2_123_456))
        );
        assert_eq!(
            to_value(&tz, &Decode::Plain, My::Bytes(b"3.".to_vec())),
            Ok(Value::Timestamp(3_000_000))
        );
        assert_eq!(
            to_value(&tz, &Decode::Plain, My::Bytes(b"4".to_vec())),
            Ok(Value::Timestamp(4_000_000))
        );
        assert!(to_value(&tz, &Decode::Plain, My::Bytes(b"4.x".to_vec())).is_err());
        assert!(to_value(&tz, &Decode::Plain, My::Bytes(b"".to_vec())).is_err());
        assert_eq!(
            to_value(&tz, &Decode::Plain, My::Bytes(b"-1.5".to_vec())),
            Ok(Value::Timestamp(-500_000))
        );
        assert_eq!(
            to_value(
                &tz,
                &Decode::Plain,
                My::Bytes(b"1700000000.000042".to_vec())
            ),
            Ok(Value::Timestamp(1_700_000_000_000_042))
        );
        assert_eq!(
            from_binlog(&Decode::Latin1, My::Bytes(b"plain".to_vec())),
            My::Bytes(b"plain".to_vec())
        );
        assert_eq!(
            from_binlog(&Decode::Latin1, My::Bytes(vec![b'a', 0x80, 0xe9])),
            My::Bytes("a\u{20ac}\u{e9}".as_bytes().to_vec())
        );
        let latin = col(ColumnType::Text, "varchar(10)");
        assert_eq!(
            to_value(&latin, &Decode::Plain, My::Bytes(vec![0xe9])),
            Ok(Value::Text("é".into()))
        );
    }
}
