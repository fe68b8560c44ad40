//! Typed values into Arrow arrays (and JSON for the `_before` column).
//!
//! Sits between the envelope and the delta file: [`super::delta_writer`]
//! checks every value with [`check`] when it is buffered (so a mismatch is
//! reported with its table, column and position, never dropped), then
//! appends it to the column's Arrow builder with [`append`], so a buffered
//! batch is already compact Arrow data. The Arrow type of a column is always
//! [`ColumnType::arrow_type`], including nested lists.

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    StructBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};

use crate::envelope::Value;
use crate::schema::{ColumnType, StructField};

/// Name of a value's variant, for error messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::Decimal(_) => "decimal",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::Timestamp(_) => "timestamp",
        Value::List(_) => "list",
        Value::Struct(_) => "struct",
    }
}

/// Whether `value` can be stored in a column of type `ty` without loss.
/// Integers and floats may widen (int16 → int64); nothing narrows. The error
/// is a human sentence naming the value kind and the column type, prefixed
/// with the path inside the value when the mismatch is nested (`list
/// element 1: `, `field address.zip: `).
pub fn check(value: &Value, ty: &ColumnType) -> Result<(), String> {
    let fits = match (ty, value) {
        (_, Value::Null) => true,
        (ColumnType::Bool, Value::Bool(_)) => true,
        (ColumnType::Int16, Value::Int16(_)) => true,
        (ColumnType::Int32, Value::Int16(_) | Value::Int32(_)) => true,
        (ColumnType::Int64, Value::Int16(_) | Value::Int32(_) | Value::Int64(_)) => true,
        (ColumnType::Float32, Value::Float32(_)) => true,
        (ColumnType::Float64, Value::Float32(_) | Value::Float64(_)) => true,
        (ColumnType::Decimal { precision, .. }, Value::Decimal(v)) => {
            let limit = 10i128
                .checked_pow(u32::from(*precision))
                .unwrap_or(i128::MAX);
            if v.unsigned_abs() >= limit.unsigned_abs() {
                return Err(format!(
                    "decimal value with unscaled digits {v} exceeds the column's precision {precision} ({ty})"
                ));
            }
            true
        }
        (ColumnType::Text, Value::Text(_)) => true,
        (ColumnType::Binary, Value::Bytes(_)) => true,
        (ColumnType::Date, Value::Date(_)) => true,
        (ColumnType::Time, Value::Time(_)) => true,
        (ColumnType::Timestamp | ColumnType::TimestampTz, Value::Timestamp(_)) => true,
        (ColumnType::List { element }, Value::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                check(item, element).map_err(|e| format!("list element {i}: {e}"))?;
            }
            true
        }
        (ColumnType::Struct { fields }, Value::Struct(values)) => {
            check_struct(values, fields, ty)?;
            true
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "a {} value does not fit a {ty} column",
            kind(value)
        ))
    }
}

/// A struct value has exactly one value per field, each fitting its field.
/// Errors name the field path (`field a.b: …`) so a mismatch deep inside a
/// document points at the offending field, not only at the column.
fn check_struct(values: &[Value], fields: &[StructField], ty: &ColumnType) -> Result<(), String> {
    if values.len() != fields.len() {
        return Err(format!(
            "a struct value has {} values but the {ty} column has {} fields; the source must send one value per field (Null for an absent one)",
            values.len(),
            fields.len()
        ));
    }
    for (field, value) in fields.iter().zip(values) {
        check(value, &field.data_type).map_err(|e| nest_field_error(&field.name, e))?;
    }
    Ok(())
}

/// `field b: …` inside field `a` becomes `field a.b: …`, so the message
/// names the whole path once.
fn nest_field_error(name: &str, error: String) -> String {
    match error.strip_prefix("field ") {
        Some(inner) => format!("field {name}.{inner}"),
        None => format!("field {name}: {error}"),
    }
}

/// Appends one value (which passed [`check`]) to a builder made by
/// `arrow_array::builder::make_builder(&ty.arrow_type(), _)`.
pub fn append(
    builder: &mut dyn ArrayBuilder,
    ty: &ColumnType,
    value: &Value,
) -> Result<(), String> {
    fn downcast<'a, B: 'static>(
        builder: &'a mut dyn ArrayBuilder,
        ty: &ColumnType,
    ) -> Result<&'a mut B, String> {
        builder
            .as_any_mut()
            .downcast_mut::<B>()
            .ok_or_else(|| format!("internal: the builder does not match column type {ty}"))
    }
    let mismatch = |v: &Value| format!("unchecked {} value for {ty}", kind(v));
    macro_rules! primitive {
        ($builder:ty, $($pat:pat => $out:expr),+) => {{
            let b = downcast::<$builder>(builder, ty)?;
            match value {
                Value::Null => b.append_null(),
                $($pat => b.append_value($out),)+
                other => return Err(mismatch(other)),
            }
        }};
    }
    match ty {
        ColumnType::Bool => primitive!(BooleanBuilder, Value::Bool(x) => *x),
        ColumnType::Int16 => primitive!(Int16Builder, Value::Int16(x) => *x),
        ColumnType::Int32 => {
            primitive!(Int32Builder, Value::Int16(x) => i32::from(*x), Value::Int32(x) => *x)
        }
        ColumnType::Int64 => primitive!(Int64Builder,
            Value::Int16(x) => i64::from(*x), Value::Int32(x) => i64::from(*x), Value::Int64(x) => *x),
        ColumnType::Float32 => primitive!(Float32Builder, Value::Float32(x) => *x),
        ColumnType::Float64 => {
            primitive!(Float64Builder, Value::Float32(x) => f64::from(*x), Value::Float64(x) => *x)
        }
        ColumnType::Decimal { .. } => primitive!(Decimal128Builder, Value::Decimal(x) => *x),
        ColumnType::Text => primitive!(StringBuilder, Value::Text(x) => x),
        ColumnType::Binary => primitive!(BinaryBuilder, Value::Bytes(x) => x),
        ColumnType::Date => primitive!(Date32Builder, Value::Date(x) => *x),
        ColumnType::Time => primitive!(Time64MicrosecondBuilder, Value::Time(x) => *x),
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            primitive!(TimestampMicrosecondBuilder, Value::Timestamp(x) => *x)
        }
        ColumnType::List { element } => {
            let b = downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(builder, ty)?;
            match value {
                Value::Null => b.append_null(),
                Value::List(items) => {
                    for item in items {
                        append(b.values().as_mut(), element, item)?;
                    }
                    b.append(true);
                }
                other => return Err(mismatch(other)),
            }
        }
        ColumnType::Struct { fields } => {
            let b = downcast::<StructBuilder>(builder, ty)?;
            append_struct(b, fields, value).map_err(|e| match e {
                StructAppend::Child(e) => e,
                StructAppend::Mismatch => mismatch(value),
            })?;
        }
    }
    Ok(())
}

/// Why [`append_struct`] failed: a child's own error, or a value that is
/// not a struct at all (reported by the caller, which knows the type).
enum StructAppend {
    Child(String),
    Mismatch,
}

/// Appends one struct value: every child builder gets one entry (a null
/// struct still appends a null to each child, so the children stay as long
/// as the struct), then the struct's own validity.
fn append_struct(
    builder: &mut StructBuilder,
    fields: &[StructField],
    value: &Value,
) -> Result<(), StructAppend> {
    let values: &[Value] = match value {
        Value::Null => &[],
        Value::Struct(values) => values,
        _ => return Err(StructAppend::Mismatch),
    };
    for (i, (field, child)) in fields.iter().zip(builder.field_builders_mut()).enumerate() {
        let v = values.get(i).unwrap_or(&Value::Null);
        append(child.as_mut(), &field.data_type, v)
            .map_err(|e| StructAppend::Child(nest_field_error(&field.name, e)))?;
    }
    builder.append(!value.is_null());
    Ok(())
}

/// JSON form of a value of type `ty` (for `_before`): numbers as numbers,
/// decimals, dates and times as their canonical text, bytes as `\x` hex.
pub fn to_json(value: &Value, ty: &ColumnType) -> serde_json::Value {
    use serde_json::Value as J;
    let float = |f: f64| {
        serde_json::Number::from_f64(f).map_or_else(|| J::String(f.to_string()), J::Number)
    };
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int16(x) => J::from(*x),
        Value::Int32(x) => J::from(*x),
        Value::Int64(x) => J::from(*x),
        Value::Float32(x) => float(f64::from(*x)),
        Value::Float64(x) => float(*x),
        Value::Decimal(x) => {
            let scale = match ty {
                ColumnType::Decimal { scale, .. } => *scale,
                _ => 0,
            };
            J::String(format_decimal(*x, scale))
        }
        Value::Text(s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(format!("\\x{}", hex::encode(b))),
        Value::Date(d) => J::String(
            chrono::DateTime::from_timestamp(i64::from(*d) * 86_400, 0)
                .map_or_else(|| d.to_string(), |t| t.date_naive().to_string()),
        ),
        Value::Time(us) => J::String(
            chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (us / 1_000_000) as u32,
                ((us % 1_000_000) * 1_000) as u32,
            )
            .map_or_else(|| us.to_string(), |t| t.format("%H:%M:%S%.6f").to_string()),
        ),
        Value::Timestamp(us) => {
            let zone = if matches!(ty, ColumnType::TimestampTz) {
                "Z"
            } else {
                ""
            };
            J::String(chrono::DateTime::from_timestamp_micros(*us).map_or_else(
                || us.to_string(),
                |t| format!("{}{zone}", t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f")),
            ))
        }
        Value::List(items) => {
            let element = match ty {
                ColumnType::List { element } => element.as_ref(),
                other => other,
            };
            J::Array(items.iter().map(|v| to_json(v, element)).collect())
        }
        Value::Struct(values) => struct_json(values, ty),
    }
}

/// A struct as a JSON object keyed by field name (positional `fN` keys if
/// the type is not a struct, which [`check`] has already ruled out).
fn struct_json(values: &[Value], ty: &ColumnType) -> serde_json::Value {
    let fields: &[StructField] = match ty {
        ColumnType::Struct { fields } => fields,
        _ => &[],
    };
    let object = values
        .iter()
        .enumerate()
        .map(|(i, v)| match fields.get(i) {
            Some(field) => (field.name.clone(), to_json(v, &field.data_type)),
            None => (format!("f{i}"), to_json(v, &ColumnType::Text)),
        })
        .collect();
    serde_json::Value::Object(object)
}

/// `12345` with scale 2 → `123.45`; negative scales multiply.
pub fn format_decimal(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        return if unscaled == 0 {
            "0".into()
        } else {
            format!("{unscaled}{zeros}")
        };
    }
    let scale = usize::from(scale.unsigned_abs());
    let digits = unscaled.unsigned_abs().to_string();
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{int}.{frac}")
}

/// Rough in-memory size of a value, for flush decisions.
pub fn approx_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::Int16(_) => 2,
        Value::Int32(_) | Value::Float32(_) | Value::Date(_) => 4,
        Value::Int64(_) | Value::Float64(_) | Value::Time(_) | Value::Timestamp(_) => 8,
        Value::Decimal(_) => 16,
        Value::Text(s) => s.len() + 4,
        Value::Bytes(b) => b.len() + 4,
        Value::List(items) | Value::Struct(items) => {
            4 + items.iter().map(approx_size).sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_format_and_check_precision() {
        assert_eq!(format_decimal(12345, 2), "123.45");
        assert_eq!(format_decimal(-5, 3), "-0.005");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(format_decimal(7, -2), "700");
        let ty = ColumnType::Decimal {
            precision: 4,
            scale: 2,
        };
        assert!(check(&Value::Decimal(9999), &ty).is_ok());
        let err = check(&Value::Decimal(-10000), &ty).unwrap_err();
        assert!(err.contains("precision 4"), "{err}");
    }

    #[test]
    fn mismatches_name_the_kind() {
        assert_eq!(
            check(&Value::Text("x".into()), &ColumnType::Int64).unwrap_err(),
            "a text value does not fit a int64 column"
        );
        assert!(check(&Value::Int32(1), &ColumnType::Int64).is_ok());
        assert!(check(&Value::Int64(1), &ColumnType::Int32).is_err());
        let list = ColumnType::List {
            element: Box::new(ColumnType::Int32),
        };
        let err = check(
            &Value::List(vec![Value::Int32(1), Value::Text("a".into())]),
            &list,
        )
        .unwrap_err();
        assert!(err.starts_with("list element 1"), "{err}");
    }

    fn address() -> ColumnType {
        ColumnType::Struct {
            fields: vec![
                StructField {
                    name: "city".into(),
                    data_type: ColumnType::Text,
                },
                StructField {
                    name: "zips".into(),
                    data_type: ColumnType::List {
                        element: Box::new(ColumnType::Int32),
                    },
                },
            ],
        }
    }

    #[test]
    fn struct_mismatches_name_the_field_path() {
        let ty = ColumnType::Struct {
            fields: vec![StructField {
                name: "address".into(),
                data_type: address(),
            }],
        };
        let ok = Value::Struct(vec![Value::Struct(vec![
            Value::Null,
            Value::List(vec![Value::Int16(1)]),
        ])]);
        assert!(check(&ok, &ty).is_ok());
        assert!(check(&Value::Struct(vec![Value::Null]), &ty).is_ok());
        let bad = Value::Struct(vec![Value::Struct(vec![
            Value::Text("Oslo".into()),
            Value::List(vec![Value::Int32(1), Value::Text("0150".into())]),
        ])]);
        assert_eq!(
            check(&bad, &ty).unwrap_err(),
            "field address.zips: list element 1: a text value does not fit a int32 column"
        );
        let short = Value::Struct(vec![Value::Struct(vec![Value::Null])]);
        let err = check(&short, &ty).unwrap_err();
        assert!(
            err.starts_with("field address: a struct value has 1 values but the struct<city: text, zips: list<int32>> column has 2 fields"),
            "{err}"
        );
        assert_eq!(
            check(&Value::List(vec![]), &ty).unwrap_err(),
            "a list value does not fit a struct<address: struct<city: text, zips: list<int32>>> column"
        );
        assert_eq!(
            check(&Value::Struct(vec![]), &ColumnType::Text).unwrap_err(),
            "a struct value does not fit a text column"
        );
    }

    #[test]
    fn struct_json_and_size() {
        let value = Value::Struct(vec![
            Value::Text("Oslo".into()),
            Value::List(vec![Value::Int32(150), Value::Null]),
        ]);
        assert_eq!(
            to_json(&value, &address()),
            serde_json::json!({"city": "Oslo", "zips": [150, null]})
        );
        assert_eq!(approx_size(&value), 4 + 8 + (4 + 4 + 1));
    }

    #[test]
    fn json_forms() {
        let ts = to_json(&Value::Timestamp(1_000_001), &ColumnType::TimestampTz);
        assert_eq!(ts, serde_json::json!("1970-01-01T00:00:01.000001Z"));
        assert_eq!(
            to_json(&Value::Date(1), &ColumnType::Date),
            serde_json::json!("1970-01-02")
        );
        assert_eq!(
            to_json(&Value::Time(61_000_000), &ColumnType::Time),
            serde_json::json!("00:01:01.000000")
        );
        assert_eq!(
            to_json(&Value::Bytes(vec![1, 255]), &ColumnType::Binary),
            serde_json::json!("\\x01ff")
        );
    }
}
