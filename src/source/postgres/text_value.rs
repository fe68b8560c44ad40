//! Parsing pgoutput's text-format column values into typed [`Value`]s.
//!
//! pgoutput sends every value in its type's text output form. The
//! replication connection fixes the session settings that shape that form
//! (`DateStyle=ISO`, `TimeZone=UTC`, `extra_float_digits=3`), so each lake
//! type has exactly one text grammar to accept here. A value that cannot be
//! represented in its column's lake type (a `NaN` in `numeric(10,2)`, an
//! `infinity` timestamp) is an error, never a silent NULL: the pipeline stops
//! and names the table, column and position.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use crate::envelope::Value;
use crate::schema::ColumnType;

/// Why a text value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(message.into()))
}

/// Converts one non-NULL text value.
pub fn parse_text(column_type: &ColumnType, text: &str) -> Result<Value, ValueError> {
    Ok(match column_type {
        ColumnType::Bool => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            other => return err(format!("{other:?} is not a boolean")),
        },
        ColumnType::Int16 => Value::Int16(parse_num(text)?),
        ColumnType::Int32 => Value::Int32(parse_num(text)?),
        ColumnType::Int64 => Value::Int64(parse_num(text)?),
        ColumnType::Float32 => Value::Float32(parse_float(text)? as f32),
        ColumnType::Float64 => Value::Float64(parse_float(text)?),
        ColumnType::Decimal { precision, scale } => {
            Value::Decimal(parse_decimal(text, *precision, *scale)?)
        }
        ColumnType::Text => Value::Text(text.to_string()),
        ColumnType::Binary => Value::Bytes(parse_bytea(text)?),
        ColumnType::Date => Value::Date(parse_date(text)?),
        ColumnType::Time => Value::Time(parse_time(text)?),
        ColumnType::Timestamp => Value::Timestamp(parse_timestamp(text)?),
        ColumnType::TimestampTz => Value::Timestamp(parse_timestamptz(text)?),
        ColumnType::List { element } => Value::List(parse_array(element, text)?),
        // The PostgreSQL type map never produces struct columns.
        ColumnType::Struct { .. } => {
            return err("PostgreSQL sends no struct values; this column's lake type is wrong");
        }
    })
}

fn parse_num<T: std::str::FromStr>(text: &str) -> Result<T, ValueError> {
    text.parse()
        .map_err(|_| ValueError(format!("{text:?} is not an integer of this width")))
}

fn parse_float(text: &str) -> Result<f64, ValueError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| ValueError(format!("{text:?} is not a floating-point number"))),
    }
}

/// Exact decimal text → unscaled i128 at `scale`, checking `precision`.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, ValueError> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return err(format!(
            "{text} cannot be stored in decimal({precision},{scale}); use an unconstrained numeric column (stored as text) or remove the special value"
        ));
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return err(format!("{text:?} is not a decimal number"));
    }
    let scale = scale.max(0) as usize;
    if frac_part.len() > scale && frac_part[scale..].bytes().any(|b| b != b'0') {
        return err(format!("{text} has more than {scale} fractional digits"));
    }
    let mut unscaled: i128 = 0;
    let frac_digits = frac_part.bytes().chain(std::iter::repeat(b'0')).take(scale);
    for b in int_part.bytes().chain(frac_digits) {
        unscaled = unscaled
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(|| ValueError(format!("{text} overflows decimal({precision},{scale})")))?;
    }
    let limit = 10i128.pow(precision as u32);
    if unscaled >= limit {
        return err(format!("{text} exceeds decimal({precision},{scale})"));
    }
    Ok(if negative { -unscaled } else { unscaled })
}

fn parse_bytea(text: &str) -> Result<Vec<u8>, ValueError> {
    let hex_digits = text.strip_prefix("\\x").ok_or_else(|| {
        ValueError("bytea value is not in hex output format; set bytea_output = 'hex'".into())
    })?;
    hex::decode(hex_digits).map_err(|e| ValueError(format!("bad bytea hex: {e}")))
}

fn strip_bc(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

fn reject_infinite(text: &str, what: &str) -> Result<(), ValueError> {
    if text == "infinity" || text == "-infinity" {
        return err(format!(
            "{text} cannot be stored as a lake {what}; the lake types have no infinity"
        ));
    }
    Ok(())
}

/// The digits of `bytes` as a number, if they are all ASCII digits.
fn ascii_number(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    bytes.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// `YYYY-MM-DD` without a format-string parser (the hot path: every date
/// and timestamp value goes through here).
fn fast_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(
        ascii_number(&b[0..4])? as i32,
        ascii_number(&b[5..7])?,
        ascii_number(&b[8..10])?,
    )
}

/// `HH:MM:SS[.f…]` (up to 6 fractional digits) as microseconds since
/// midnight, without a format-string parser.
fn fast_time_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        ascii_number(&b[0..2])?,
        ascii_number(&b[3..5])?,
        ascii_number(&b[6..8])?,
    );
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut micros = 0i64;
    if b.len() > 8 {
        let frac = b[8..].strip_prefix(b".")?;
        if frac.is_empty() || frac.len() > 6 {
            return None;
        }
        micros = i64::from(ascii_number(frac)?) * 10i64.pow(6 - frac.len() as u32);
    }
    Some((i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec)) * 1_000_000 + micros)
}

fn naive_date(text: &str) -> Result<NaiveDate, ValueError> {
    if let Some(date) = fast_date(text) {
        return Ok(date);
    }
    let (body, bc) = strip_bc(text);
    let mut date = NaiveDate::parse_from_str(body, "%Y-%m-%d")
        .map_err(|_| ValueError(format!("{text:?} is not an ISO date")))?;
    if bc {
        // 1 BC is year 0 in the proleptic calendar.
        use chrono::Datelike;
        date = date
            .with_year(1 - date.year())
            .ok_or_else(|| ValueError(format!("{text:?} is out of range")))?;
    }
    Ok(date)
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("epoch"),
};

fn parse_date(text: &str) -> Result<i32, ValueError> {
    reject_infinite(text, "date")?;
    let days = (naive_date(text)? - EPOCH).num_days();
    i32::try_from(days).map_err(|_| ValueError(format!("{text} is out of the date range")))
}

fn parse_time(text: &str) -> Result<i64, ValueError> {
    if text == "24:00:00" {
        return Ok(86_400_000_000);
    }
    if let Some(micros) = fast_time_micros(text) {
        return Ok(micros);
    }
    let t = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .map_err(|_| ValueError(format!("{text:?} is not a time")))?;
    let micros = (t - NaiveTime::MIN).num_microseconds().unwrap_or(0);
    Ok(micros)
}

fn split_datetime(text: &str) -> Result<(NaiveDate, &str), ValueError> {
    let (body, bc) = strip_bc(text);
    let (date, time) = body
        .split_once(' ')
        .ok_or_else(|| ValueError(format!("{text:?} is not an ISO timestamp")))?;
    let date = if bc {
        naive_date(&format!("{date} BC"))?
    } else {
        naive_date(date)?
    };
    Ok((date, time))
}

fn micros_of(dt: NaiveDateTime, text: &str) -> Result<i64, ValueError> {
    dt.and_utc()
        .timestamp_micros()
        .checked_add(0)
        .ok_or_else(|| ValueError(format!("{text} is out of the timestamp range")))
}

/// A date plus a `HH:MM:SS[.f]` time as microseconds since the epoch.
fn timestamp_micros(date: NaiveDate, time: &str, text: &str) -> Result<i64, ValueError> {
    if let Some(micros) = fast_time_micros(time) {
        let days = (date - EPOCH).num_days();
        return days
            .checked_mul(86_400_000_000)
            .and_then(|d| d.checked_add(micros))
            .ok_or_else(|| ValueError(format!("{text} is out of the timestamp range")));
    }
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S%.f")
        .map_err(|_| ValueError(format!("{text:?} is not an ISO timestamp")))?;
    micros_of(date.and_time(time), text)
}

fn parse_timestamp(text: &str) -> Result<i64, ValueError> {
    reject_infinite(text, "timestamp")?;
    let (date, time) = split_datetime(text)?;
    timestamp_micros(date, time, text)
}

/// `2024-01-02 03:04:05.123456+05:30` (offset forms `+HH`, `+HH:MM`, `+HH:MM:SS`).
fn parse_timestamptz(text: &str) -> Result<i64, ValueError> {
    reject_infinite(text, "timestamp")?;
    let (date, rest) = split_datetime(text)?;
    let split_at = rest
        .rfind(['+', '-'])
        .ok_or_else(|| ValueError(format!("{text:?} has no UTC offset")))?;
    let (time, offset) = rest.split_at(split_at);
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut seconds = 0i64;
    for (i, part) in offset[1..].split(':').enumerate() {
        let n: i64 = part
            .parse()
            .map_err(|_| ValueError(format!("{text:?} has a bad UTC offset")))?;
        seconds += n * [3600, 60, 1].get(i).copied().unwrap_or(0);
    }
    let local = timestamp_micros(date, time, text)?;
    Ok(local - sign * seconds * 1_000_000)
}

/// One-dimensional array text form: `{1,2,NULL}`, `{"a b","c\"d"}`.
fn parse_array(element: &ColumnType, text: &str) -> Result<Vec<Value>, ValueError> {
    // Arrays with explicit bounds print as `[2:3]={...}`.
    let body = match text.find("={") {
        Some(pos) if text.starts_with('[') => &text[pos + 1..],
        _ => text,
    };
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| ValueError(format!("{text:?} is not an array")))?;
    if inner.starts_with('{') {
        return err(
            "multi-dimensional arrays are not supported; store them as text (cast the column) or flatten them",
        );
    }
    let mut values = Vec::new();
    if inner.is_empty() {
        return Ok(values);
    }
    let bytes = inner.as_bytes();
    let mut i = 0;
    loop {
        let mut item = String::new();
        let quoted = bytes.get(i) == Some(&b'"');
        if quoted {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                let start = i;
                i += 1;
                while i < bytes.len() && !inner.is_char_boundary(i) {
                    i += 1;
                }
                item.push_str(&inner[start..i]);
            }
            i += 1; // closing quote
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            item.push_str(inner[start..i].trim());
        }
        if !quoted && item == "NULL" {
            values.push(Value::Null);
        } else {
            values.push(parse_text(element, &item)?);
        }
        match bytes.get(i) {
            Some(b',') => i += 1,
            None => break,
            Some(_) => return err(format!("{text:?} is not a valid array")),
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("12.50", 12, 2), Ok(1250));
        assert_eq!(parse_decimal("-0.5", 12, 2), Ok(-50));
        assert_eq!(parse_decimal("7", 5, 0), Ok(7));
        assert!(
            parse_decimal("NaN", 10, 2)
                .unwrap_err()
                .0
                .contains("decimal(10,2)")
        );
        assert!(parse_decimal("123456", 5, 0).is_err());
    }

    #[test]
    fn timestamps_and_dates() {
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(parse_date("1969-12-31"), Ok(-1));
        assert!(parse_date("infinity").is_err());
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Ok(1_500_000));
        assert_eq!(parse_timestamptz("1970-01-01 01:00:00+01"), Ok(0));
        assert_eq!(
            parse_timestamptz("1970-01-01 00:00:00-05:30"),
            Ok(19_800_000_000)
        );
        assert_eq!(parse_time("00:00:01.000002"), Ok(1_000_002));
        assert_eq!(parse_date("0001-01-01 BC").map(|d| d < -719_000), Ok(true));
    }

    #[test]
    fn fast_paths_agree_with_chrono() {
        for t in [
            "00:00:00",
            "23:59:59.999999",
            "12:34:56.7",
            "01:02:03.000450",
        ] {
            let chrono_micros = (NaiveTime::parse_from_str(t, "%H:%M:%S%.f").unwrap()
                - NaiveTime::MIN)
                .num_microseconds()
                .unwrap();
            assert_eq!(fast_time_micros(t), Some(chrono_micros), "{t}");
        }
        for d in ["1970-01-01", "2024-02-29", "0001-01-01", "9999-12-31"] {
            assert_eq!(
                fast_date(d),
                NaiveDate::parse_from_str(d, "%Y-%m-%d").ok(),
                "{d}"
            );
        }
        assert_eq!(fast_date("2023-02-29"), None);
        assert_eq!(fast_time_micros("24:00:00"), None);
        assert_eq!(
            parse_timestamp("2024-01-02 03:04:05.5"),
            Ok(1_704_164_645_500_000)
        );
        assert_eq!(parse_timestamp("1969-12-31 23:59:59"), Ok(-1_000_000));
        assert_eq!(
            parse_timestamptz("2024-01-02 03:04:05.5+00"),
            Ok(1_704_164_645_500_000)
        );
    }

    #[test]
    fn arrays_with_quotes_and_nulls() {
        let v = parse_text(
            &ColumnType::List {
                element: Box::new(ColumnType::Text),
            },
            r#"{plain,"with space","quo\"te",NULL,"NULL"}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            Value::List(vec![
                Value::Text("plain".into()),
                Value::Text("with space".into()),
                Value::Text("quo\"te".into()),
                Value::Null,
                Value::Text("NULL".into()),
            ])
        );
        let ints = parse_text(
            &ColumnType::List {
                element: Box::new(ColumnType::Int32),
            },
            "{1,-2,3}",
        )
        .unwrap();
        assert_eq!(
            ints,
            Value::List(vec![Value::Int32(1), Value::Int32(-2), Value::Int32(3)])
        );
        assert!(
            parse_text(
                &ColumnType::List {
                    element: Box::new(ColumnType::Int32)
                },
                "{{1},{2}}"
            )
            .is_err()
        );
    }

    #[test]
    fn bytea_and_floats() {
        assert_eq!(
            parse_text(&ColumnType::Binary, "\\x00ff"),
            Ok(Value::Bytes(vec![0, 255]))
        );
        assert!(
            matches!(parse_text(&ColumnType::Float64, "NaN"), Ok(Value::Float64(f)) if f.is_nan())
        );
        assert_eq!(
            parse_text(&ColumnType::Float64, "-Infinity"),
            Ok(Value::Float64(f64::NEG_INFINITY))
        );
    }
}
