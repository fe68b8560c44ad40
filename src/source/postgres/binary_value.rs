//! Decoding snapshot rows from `COPY … TO STDOUT (FORMAT binary)` into typed
//! [`Value`]s: the twin of [`super::text_value`].
//!
//! The stream path sees every column in its type's *text output* form
//! (pgoutput) and converts it with [`parse_text`]. Snapshots read tables with
//! `COPY (SELECT <exprs> FROM t WHERE …) TO STDOUT (FORMAT binary)` instead,
//! because binary COPY is much cheaper for the server to produce and for us
//! to decode (no number or date formatting and re-parsing). The one rule of
//! this module: for every column, the snapshot must produce exactly the
//! [`Value`] the stream would have produced for the same datum, including
//! refusing the same values (NaN in `numeric(10,2)`, infinite timestamps,
//! dates past 9999, multi-dimensional arrays) with the same message.
//!
//! Each column is selected in one of two [`CopyForm`]s, chosen once per
//! column by [`copy_form`] from the PostgreSQL type and the lake type:
//!
//! - **Binary**: the column itself; its binary *send* format is decoded here
//!   (bool, integers, oid/xid, floats, `numeric` stored as Decimal, bytea,
//!   date/time/timestamp/timestamptz, text-like types and enums, `"char"`,
//!   json/jsonb, uuid, one-dimensional arrays of those; domains by their
//!   base type).
//! - **Text**: every other type (interval, inet, cidr, macaddr, money,
//!   timetz, unconstrained numeric, ranges, unknown and extension types and
//!   arrays of those). Decoding their send formats would mean
//!   re-implementing their output functions (interval and money formatting
//!   depend on session settings), so the server formats them: the column is
//!   selected as text and its UTF-8 bytes go through [`parse_text`] exactly
//!   as pgoutput's text would. The expression ([`select_expr`]) must call the
//!   type's *output function*, which is what pgoutput sends, and `::text` is
//!   not always that: a cast with an explicit cast function wins over I/O
//!   conversion (`inet::text` is `text(inet)`, which always appends the mask
//!   length: `'1.2.3.4'::inet::text = '1.2.3.4/32'`; `bpchar::text` drops the
//!   padding; `bool::text` is `true`, not `t`; `xml::text` keeps the XML
//!   declaration that `xml_out` rewrites). So `::text` is used only for
//!   built-in types known to cast by I/O conversion, and for whole arrays
//!   (an array's cast to text is always `array_out`, exactly pgoutput's
//!   array text, which [`parse_text`] splits; `::text[]` would instead cast
//!   each element and hit the same cast-function problem). Anything else,
//!   including domains and extension types that may carry their own casts,
//!   is selected as `format('%s', c)`, which always calls the output
//!   function (guarded by `CASE`, since `format` turns NULL into '').
//!
//! Hot path: a snapshot decodes millions of rows, so values that are common
//! (years 1–9999, decimals that fit) are converted arithmetically with no
//! allocation beyond the [`Value`] itself. The rare ones (infinities, BC
//! dates, years past 9999, NaN or over-long numerics) are rendered as exactly
//! the text PostgreSQL would print and handed to [`parse_text`] /
//! [`parse_decimal`], so accepted values and refusals agree with the stream
//! path by construction. [`fast_date`] and [`fast_timestamp`] expose the
//! common case for callers that append to typed builders directly; their
//! `None` means "call [`decode_field`]", never "invalid".

use std::error::Error;
use std::fmt::Write as _;

use tokio_postgres::types::{FromSql, Type};
use tributary_postgres::{PgTypeInfo, PgTypeKind};

use super::text_value::{ValueError, parse_decimal, parse_text};
use crate::envelope::Value;
use crate::schema::ColumnType;

/// Built-in type OIDs (from `pg_type.dat`).
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const XID: u32 = 28;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    /// OIDs below this are built in (`FirstNormalObjectId`).
    pub const FIRST_NORMAL: u32 = 16384;
}

/// Built-in types whose cast to text is not their output function, so
/// selecting them `::text` would not give pgoutput's text: those with a cast
/// function (`SELECT castsource::regtype, castfunc FROM pg_cast WHERE
/// casttarget = 'text'::regtype AND castmethod = 'f'`), and `xml`, whose
/// binary-coercible cast keeps the stored text while `xml_out` rewrites the
/// XML declaration (`<?xml version="1.0" encoding="UTF-8"?><a/>` prints as
/// `<a/>`).
const CAST_TO_TEXT_DIFFERS: [u32; 7] = [
    oid::BOOL,
    oid::CHAR,
    oid::NAME,
    oid::BPCHAR,
    oid::INET,
    oid::CIDR,
    oid::XML,
];

/// The binary send format of one scalar (or array element) type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// One byte, 0 or 1.
    Bool,
    /// Big-endian i16.
    Int2,
    /// Big-endian i32.
    Int4,
    /// Big-endian i64.
    Int8,
    /// Big-endian u32 (`oid`, `xid`).
    Uint32,
    /// Big-endian IEEE single.
    Float4,
    /// Big-endian IEEE double.
    Float8,
    /// ndigits, weight, sign, dscale, base-10000 digits.
    Numeric,
    /// The bytes themselves.
    Bytea,
    /// Big-endian i32 days since 2000-01-01 (`i32::MAX`/`MIN` = ±infinity).
    Date,
    /// Big-endian i64 microseconds since midnight.
    Time,
    /// Big-endian i64 microseconds since 2000-01-01 (`i64::MAX`/`MIN` = ±infinity).
    Timestamp,
    /// As [`Scalar::Timestamp`], in UTC.
    TimestampTz,
    /// The text itself in the client encoding (UTF-8): text, varchar,
    /// bpchar (padding kept, as in its text output), name, json, enum labels.
    Utf8,
    /// `"char"`: one raw byte.
    Char,
    /// Version byte 1, then the text.
    Jsonb,
    /// 16 bytes.
    Uuid,
}

/// The binary wire format of a column selected in [`CopyForm::Binary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Scalar(Scalar),
    /// A (one-dimensional) array of this element format.
    Array(Scalar),
}

/// How a snapshot selects one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyForm {
    /// The column itself; its binary send format (described by the [`Wire`])
    /// is decoded natively.
    Binary(Wire),
    /// The column is selected as text formatted by the type's output function
    /// (see [`select_expr`]); its UTF-8 bytes go through [`parse_text`].
    Text,
}

/// The binary format of a (domain-free) type, when we decode it natively.
fn scalar_of(info: &PgTypeInfo) -> Option<Scalar> {
    let info = info.without_domains();
    match info.kind {
        PgTypeKind::Enum => Some(Scalar::Utf8),
        PgTypeKind::Base => Some(match info.oid {
            oid::BOOL => Scalar::Bool,
            oid::INT2 => Scalar::Int2,
            oid::INT4 => Scalar::Int4,
            oid::INT8 => Scalar::Int8,
            oid::OID | oid::XID => Scalar::Uint32,
            oid::FLOAT4 => Scalar::Float4,
            oid::FLOAT8 => Scalar::Float8,
            oid::NUMERIC => Scalar::Numeric,
            oid::BYTEA => Scalar::Bytea,
            oid::DATE => Scalar::Date,
            oid::TIME => Scalar::Time,
            oid::TIMESTAMP => Scalar::Timestamp,
            oid::TIMESTAMPTZ => Scalar::TimestampTz,
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON => Scalar::Utf8,
            oid::CHAR => Scalar::Char,
            oid::JSONB => Scalar::Jsonb,
            oid::UUID => Scalar::Uuid,
            _ => return None,
        }),
        _ => None,
    }
}

/// Whether decoding `scalar` natively yields values of `column_type` (the
/// pairs [`super::map_type`] produces; anything else is read as text, which
/// is always faithful).
fn produces(scalar: Scalar, column_type: &ColumnType) -> bool {
    matches!(
        (scalar, column_type),
        (Scalar::Bool, ColumnType::Bool)
            | (Scalar::Int2, ColumnType::Int16)
            | (Scalar::Int4, ColumnType::Int32)
            | (Scalar::Int8 | Scalar::Uint32, ColumnType::Int64)
            | (Scalar::Float4, ColumnType::Float32)
            | (Scalar::Float8, ColumnType::Float64)
            | (Scalar::Numeric, ColumnType::Decimal { .. })
            | (Scalar::Bytea, ColumnType::Binary)
            | (Scalar::Date, ColumnType::Date)
            | (Scalar::Time, ColumnType::Time)
            | (Scalar::Timestamp, ColumnType::Timestamp)
            | (Scalar::TimestampTz, ColumnType::TimestampTz)
            | (
                Scalar::Utf8 | Scalar::Char | Scalar::Jsonb | Scalar::Uuid,
                ColumnType::Text
            )
    )
}

/// How a column of PostgreSQL type `info` (domains allowed) mapped to the
/// lake type `column_type` (by [`super::map_type`]) is selected and decoded.
pub fn copy_form(info: &PgTypeInfo, column_type: &ColumnType) -> CopyForm {
    let base = info.without_domains();
    let wire = match (&base.kind, column_type) {
        (PgTypeKind::Array { element }, ColumnType::List { element: lake }) => scalar_of(element)
            .filter(|s| produces(*s, lake))
            .map(Wire::Array),
        (PgTypeKind::Array { .. }, _) => None,
        _ => scalar_of(base)
            .filter(|s| produces(*s, column_type))
            .map(Wire::Scalar),
    };
    wire.map_or(CopyForm::Text, CopyForm::Binary)
}

/// The SELECT-list expression for a column, given its already-quoted
/// identifier: `"c"` for [`CopyForm::Binary`]; for [`CopyForm::Text`],
/// `"c"::text` when that is the type's output function (built-in types
/// without a text cast function, and arrays), else
/// `CASE WHEN "c" IS NULL THEN NULL ELSE format('%s', "c") END` (domains,
/// inet, extension types: see the module doc).
pub fn select_expr(quoted_column: &str, info: &PgTypeInfo, column_type: &ColumnType) -> String {
    match copy_form(info, column_type) {
        CopyForm::Binary(_) => quoted_column.to_string(),
        CopyForm::Text => {
            let io_cast = info.oid < oid::FIRST_NORMAL
                && match info.kind {
                    PgTypeKind::Array { .. } => true,
                    PgTypeKind::Base => !CAST_TO_TEXT_DIFFERS.contains(&info.oid),
                    _ => false,
                };
            if io_cast {
                format!("{quoted_column}::text")
            } else {
                format!(
                    "CASE WHEN {quoted_column} IS NULL THEN NULL ELSE format('%s', {quoted_column}) END"
                )
            }
        }
    }
}

/// Decodes one non-NULL field of a binary COPY row selected by
/// [`select_expr`] in `form`, for a column of lake type `column_type`.
pub fn decode_field(
    form: CopyForm,
    column_type: &ColumnType,
    bytes: &[u8],
) -> Result<Value, ValueError> {
    match form {
        CopyForm::Text => parse_text(column_type, utf8(bytes)?),
        CopyForm::Binary(Wire::Scalar(scalar)) => decode_scalar(scalar, column_type, bytes),
        CopyForm::Binary(Wire::Array(scalar)) => match column_type {
            ColumnType::List { element } => decode_array(scalar, element, column_type, bytes),
            other => Err(ValueError(format!(
                "binary array read for a {other:?} column"
            ))),
        },
    }
}

/// A field of a [`tokio_postgres::binary_copy::BinaryCopyOutRow`] as raw
/// bytes: accepts every declared type; read it as `Option<RawField>` (`None`
/// for NULL) and pass the bytes to [`decode_field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawField<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawField<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawField(raw))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn malformed(what: &str, bytes: &[u8]) -> ValueError {
    ValueError(format!(
        "malformed binary {what} value ({} bytes)",
        bytes.len()
    ))
}

fn utf8(bytes: &[u8]) -> Result<&str, ValueError> {
    std::str::from_utf8(bytes).map_err(|e| ValueError(format!("value is not valid UTF-8: {e}")))
}

fn fixed<const N: usize>(what: &str, bytes: &[u8]) -> Result<[u8; N], ValueError> {
    bytes.try_into().map_err(|_| malformed(what, bytes))
}

/// The error the text path gives for `text` (which it is known to refuse).
fn text_refusal(column_type: &ColumnType, text: &str) -> ValueError {
    match parse_text(column_type, text) {
        Err(e) => e,
        Ok(_) => ValueError(format!("{text:?} cannot be read as {column_type:?}")),
    }
}

fn decode_scalar(
    scalar: Scalar,
    column_type: &ColumnType,
    bytes: &[u8],
) -> Result<Value, ValueError> {
    Ok(match scalar {
        Scalar::Bool => match bytes {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return Err(malformed("bool", bytes)),
        },
        Scalar::Int2 => Value::Int16(i16::from_be_bytes(fixed("int2", bytes)?)),
        Scalar::Int4 => Value::Int32(i32::from_be_bytes(fixed("int4", bytes)?)),
        Scalar::Int8 => Value::Int64(i64::from_be_bytes(fixed("int8", bytes)?)),
        Scalar::Uint32 => Value::Int64(i64::from(u32::from_be_bytes(fixed("oid", bytes)?))),
        // The text path parses float4 text as f64, then narrows; from the
        // exact f32 that is the identity.
        Scalar::Float4 => Value::Float32(f32::from_be_bytes(fixed("float4", bytes)?)),
        Scalar::Float8 => Value::Float64(f64::from_be_bytes(fixed("float8", bytes)?)),
        Scalar::Numeric => match column_type {
            ColumnType::Decimal { precision, scale } => {
                Value::Decimal(decode_numeric(bytes, *precision, *scale)?)
            }
            other => {
                return Err(ValueError(format!(
                    "binary numeric read for a {other:?} column"
                )));
            }
        },
        Scalar::Bytea => Value::Bytes(bytes.to_vec()),
        Scalar::Date => decode_date(i32::from_be_bytes(fixed("date", bytes)?), column_type)?,
        Scalar::Time => Value::Time(i64::from_be_bytes(fixed("time", bytes)?)),
        Scalar::Timestamp | Scalar::TimestampTz => decode_timestamp(
            i64::from_be_bytes(fixed("timestamp", bytes)?),
            scalar == Scalar::TimestampTz,
            column_type,
        )?,
        Scalar::Utf8 => Value::Text(utf8(bytes)?.to_owned()),
        Scalar::Char => Value::Text(char_text(bytes)?),
        Scalar::Jsonb => match bytes.split_first() {
            Some((1, json)) => Value::Text(utf8(json)?.to_owned()),
            _ => return Err(malformed("jsonb (version 1)", bytes)),
        },
        Scalar::Uuid => Value::Text(uuid_text(&fixed("uuid", bytes)?)),
    })
}

/// `"char"` as `charout` prints it: NUL → empty, a high-bit byte → `\ooo`.
fn char_text(bytes: &[u8]) -> Result<String, ValueError> {
    Ok(match bytes {
        [] | [0] => String::new(),
        [b] if b.is_ascii() => char::from(*b).to_string(),
        [b] => format!("\\{b:03o}"),
        _ => return Err(malformed("\"char\"", bytes)),
    })
}

/// Lowercase hyphenated, as `uuid_out` prints it.
fn uuid_text(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    s
}

/// A big-endian reader over a binary value.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
    whole: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader {
            bytes,
            what,
            whole: bytes,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        if self.bytes.len() < n {
            return Err(malformed(self.what, self.whole));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, ValueError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16(&mut self) -> Result<u16, ValueError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// `array_send`: ndim, has-nulls flag, element OID, (length, lower bound)
/// per dimension, then each element as length (-1 = NULL) and bytes.
fn decode_array(
    scalar: Scalar,
    element: &ColumnType,
    column_type: &ColumnType,
    bytes: &[u8],
) -> Result<Value, ValueError> {
    let mut r = Reader::new(bytes, "array");
    let ndim = r.i32()?;
    let _flags = r.i32()?;
    let _element_oid = r.take(4)?;
    match ndim {
        0 => return Ok(Value::List(Vec::new())),
        1 => {}
        // The text path sees `{{…}}` and refuses it; give its message.
        n if n > 1 => return Err(text_refusal(column_type, "{{}}")),
        _ => return Err(malformed("array", bytes)),
    }
    let len = usize::try_from(r.i32()?).map_err(|_| malformed("array", bytes))?;
    let _lower_bound = r.i32()?;
    // Each element takes at least its 4-byte length: do not trust `len` for
    // the allocation beyond what the bytes can hold.
    let mut values = Vec::with_capacity(len.min(r.bytes.len() / 4));
    for _ in 0..len {
        let n = r.i32()?;
        if n == -1 {
            values.push(Value::Null);
        } else {
            let n = usize::try_from(n).map_err(|_| malformed("array", bytes))?;
            values.push(decode_scalar(scalar, element, r.take(n)?)?);
        }
    }
    if !r.bytes.is_empty() {
        return Err(malformed("array", bytes));
    }
    Ok(Value::List(values))
}

// ---- numeric ----------------------------------------------------------------

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// 10^0 … 10^38.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// `numeric_send` → unscaled i128 at `scale`, checked against `precision`
/// exactly like [`parse_decimal`] checks the text form.
fn decode_numeric(bytes: &[u8], precision: u8, scale: i8) -> Result<i128, ValueError> {
    let mut r = Reader::new(bytes, "numeric");
    let ndigits = usize::from(r.u16()?);
    let weight = r.u16()? as i16;
    let sign = r.u16()?;
    let dscale = r.u16()?;
    let digits = r.take(ndigits * 2)?;
    if !r.bytes.is_empty() || dscale > 0x3FFF {
        return Err(malformed("numeric", bytes));
    }
    let special = match sign {
        NUMERIC_POS | NUMERIC_NEG => None,
        NUMERIC_NAN => Some("NaN"),
        NUMERIC_PINF => Some("Infinity"),
        NUMERIC_NINF => Some("-Infinity"),
        _ => return Err(malformed("numeric", bytes)),
    };
    if let Some(text) = special {
        return parse_decimal(text, precision, scale);
    }
    let mut acc: i128 = 0;
    let mut overflow = false;
    for pair in digits.chunks_exact(2) {
        let digit = u16::from_be_bytes([pair[0], pair[1]]);
        if digit > 9999 {
            return Err(malformed("numeric", bytes));
        }
        match acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(i128::from(digit)))
        {
            Some(a) => acc = a,
            None => overflow = true,
        }
    }
    let negative = sign == NUMERIC_NEG;
    if !overflow {
        // value = acc × 10000^(weight − ndigits + 1); unscaled = value × 10^scale.
        let exp = 4 * (i32::from(weight) - ndigits as i32 + 1) + i32::from(scale.max(0));
        let unscaled = if acc == 0 {
            Some(0)
        } else if exp >= 0 {
            POW10.get(exp as usize).and_then(|p| acc.checked_mul(*p))
        } else {
            // Digits below the scale must all be zero.
            POW10
                .get(exp.unsigned_abs() as usize)
                .and_then(|p| (acc % p == 0).then(|| acc / p))
        };
        if let Some(unscaled) = unscaled.filter(|u| *u < POW10[usize::from(precision.min(38))]) {
            return Ok(if negative { -unscaled } else { unscaled });
        }
    }
    // Refused (or too long for the arithmetic above): the text path decides,
    // on exactly the text PostgreSQL would have printed.
    let text = numeric_text(negative, weight, dscale, digits);
    parse_decimal(&text, precision, scale)
}

/// `numeric_out` (get_str_from_var) from the binary fields.
fn numeric_text(negative: bool, weight: i16, dscale: u16, digits: &[u8]) -> String {
    let digit = |d: i32| -> u16 {
        usize::try_from(d)
            .ok()
            .and_then(|d| digits.get(d * 2..d * 2 + 2))
            .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
    };
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    let weight = i32::from(weight);
    let mut d;
    if weight < 0 {
        d = weight + 1;
        s.push('0');
    } else {
        let _ = write!(s, "{}", digit(0));
        for i in 1..=weight {
            let _ = write!(s, "{:04}", digit(i));
        }
        d = weight + 1;
    }
    if dscale > 0 {
        s.push('.');
        let end = s.len() + usize::from(dscale);
        while s.len() < end {
            let _ = write!(s, "{:04}", digit(d));
            d += 1;
        }
        s.truncate(end);
    }
    s
}

// ---- dates and timestamps ---------------------------------------------------

/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;
/// Days since 1970-01-01 of 0001-01-01 and 10000-01-01: the text path reads
/// exactly the four-digit AD years on its fast path; the rest is decided by
/// rendering the text.
const FIRST_FAST_DAY: i64 = -719_162;
const END_FAST_DAY: i64 = 2_932_897;

/// The allocation-free common case of decoding a binary `date` (big-endian
/// i32 days since 2000-01-01): days since 1970-01-01 when the value is in
/// years 1–9999 AD, which the text path always accepts as is. `None` for
/// everything else (BC, past 9999, ±infinity): use [`decode_field`], which
/// lets the text path decide (it refuses infinities and years past 9999).
/// For callers that append to typed builders without a [`Value`].
#[inline]
pub fn fast_date(pg_days: i32) -> Option<i32> {
    let days = i64::from(pg_days) + PG_EPOCH_DAYS;
    (FIRST_FAST_DAY..END_FAST_DAY)
        .contains(&days)
        .then_some(days as i32)
}

/// As [`fast_date`] for a binary `timestamp`/`timestamptz` (big-endian i64
/// microseconds since 2000-01-01): microseconds since 1970-01-01 when the
/// value is in years 1–9999 AD, else `None` (use [`decode_field`]).
#[inline]
pub fn fast_timestamp(pg_micros: i64) -> Option<i64> {
    // Checked first: the addition would overflow for ±infinity.
    if (FIRST_FAST_DAY * MICROS_PER_DAY - PG_EPOCH_MICROS
        ..END_FAST_DAY * MICROS_PER_DAY - PG_EPOCH_MICROS)
        .contains(&pg_micros)
    {
        Some(pg_micros + PG_EPOCH_MICROS)
    } else {
        None
    }
}

/// `date_send` → days since 1970-01-01.
fn decode_date(pg_days: i32, column_type: &ColumnType) -> Result<Value, ValueError> {
    match fast_date(pg_days) {
        Some(days) => Ok(Value::Date(days)),
        None => parse_text(column_type, &date_text(pg_days)),
    }
}

/// `timestamp_send` → microseconds since 1970-01-01.
fn decode_timestamp(
    pg_micros: i64,
    with_zone: bool,
    column_type: &ColumnType,
) -> Result<Value, ValueError> {
    match fast_timestamp(pg_micros) {
        Some(micros) => Ok(Value::Timestamp(micros)),
        None => parse_text(column_type, &timestamp_text(pg_micros, with_zone)),
    }
}

/// Proleptic Gregorian (year, month, day) of days since 1970-01-01; year 0
/// is 1 BC (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` (more digits past 9999) and whether it is BC, as
/// `EncodeDateOnly` prints in ISO style.
fn push_date(s: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    let _ = write!(s, "{shown:04}-{month:02}-{day:02}");
    bc
}

/// `date_out` in DateStyle ISO.
fn date_text(pg_days: i32) -> String {
    match pg_days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let mut s = String::with_capacity(16);
            if push_date(&mut s, i64::from(pg_days) + PG_EPOCH_DAYS) {
                s.push_str(" BC");
            }
            s
        }
    }
}

/// `timestamp_out` / `timestamptz_out` in DateStyle ISO, TimeZone UTC.
fn timestamp_text(pg_micros: i64, with_zone: bool) -> String {
    match pg_micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        _ => {
            let micros = i128::from(pg_micros) + i128::from(PG_EPOCH_MICROS);
            let per_day = i128::from(MICROS_PER_DAY);
            let days = micros.div_euclid(per_day) as i64;
            let of_day = micros.rem_euclid(per_day) as i64;
            let mut s = String::with_capacity(40);
            let bc = push_date(&mut s, days);
            let seconds = of_day / 1_000_000;
            let fraction = of_day % 1_000_000;
            let _ = write!(
                s,
                " {:02}:{:02}:{:02}",
                seconds / 3600,
                seconds / 60 % 60,
                seconds % 60
            );
            if fraction != 0 {
                let digits = format!("{fraction:06}");
                s.push('.');
                s.push_str(digits.trim_end_matches('0'));
            }
            if with_zone {
                s.push_str("+00");
            }
            if bc {
                s.push_str(" BC");
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(oid: u32) -> PgTypeInfo {
        PgTypeInfo {
            oid,
            name: format!("t{oid}"),
            schema: "pg_catalog".into(),
            typmod: -1,
            kind: PgTypeKind::Base,
        }
    }

    fn domain(over: PgTypeInfo) -> PgTypeInfo {
        PgTypeInfo {
            oid: 70_000,
            name: "d".into(),
            schema: "public".into(),
            typmod: -1,
            kind: PgTypeKind::Domain {
                base: Box::new(over),
            },
        }
    }

    fn array(oid: u32, element: PgTypeInfo) -> PgTypeInfo {
        PgTypeInfo {
            oid,
            name: "a[]".into(),
            schema: "pg_catalog".into(),
            typmod: -1,
            kind: PgTypeKind::Array {
                element: Box::new(element),
            },
        }
    }

    fn list(element: ColumnType) -> ColumnType {
        ColumnType::List {
            element: Box::new(element),
        }
    }

    const DEC_12_3: ColumnType = ColumnType::Decimal {
        precision: 12,
        scale: 3,
    };

    fn scalar(s: Scalar) -> CopyForm {
        CopyForm::Binary(Wire::Scalar(s))
    }

    /// `numeric_send` bytes.
    fn numeric(sign: u16, weight: i16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((digits.len() as u16).to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(dscale.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    /// `array_send` bytes of a one-dimensional array.
    fn array_bytes(lower: i32, elements: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(1i32.to_be_bytes());
        b.extend(i32::from(elements.iter().any(Option::is_none)).to_be_bytes());
        b.extend(23u32.to_be_bytes());
        b.extend((elements.len() as i32).to_be_bytes());
        b.extend(lower.to_be_bytes());
        for e in elements {
            match e {
                None => b.extend((-1i32).to_be_bytes()),
                Some(bytes) => {
                    b.extend((bytes.len() as i32).to_be_bytes());
                    b.extend(*bytes);
                }
            }
        }
        b
    }

    fn dec(bytes: &[u8], precision: u8, scale: i8) -> Result<Value, ValueError> {
        decode_field(
            scalar(Scalar::Numeric),
            &ColumnType::Decimal { precision, scale },
            bytes,
        )
    }

    #[test]
    fn forms_follow_the_base_type() {
        assert_eq!(
            copy_form(&domain(base(oid::INT4)), &ColumnType::Int32),
            scalar(Scalar::Int4)
        );
        assert_eq!(
            copy_form(&base(oid::BPCHAR), &ColumnType::Text),
            scalar(Scalar::Utf8)
        );
        assert_eq!(
            copy_form(&base(oid::NUMERIC), &DEC_12_3),
            scalar(Scalar::Numeric)
        );
        // Unconstrained numeric is text in the lake: read as text.
        assert_eq!(
            copy_form(&base(oid::NUMERIC), &ColumnType::Text),
            CopyForm::Text
        );
        assert_eq!(
            copy_form(&array(1007, base(oid::INT4)), &list(ColumnType::Int32)),
            CopyForm::Binary(Wire::Array(Scalar::Int4))
        );
        assert_eq!(
            copy_form(
                &domain(array(1007, domain(base(oid::INT4)))),
                &list(ColumnType::Int32)
            ),
            CopyForm::Binary(Wire::Array(Scalar::Int4))
        );
        let enum_type = PgTypeInfo {
            kind: PgTypeKind::Enum,
            ..base(80_000)
        };
        assert_eq!(
            copy_form(&enum_type, &ColumnType::Text),
            scalar(Scalar::Utf8)
        );
        for text_typed in [1186, 869, 650, 790, 1266, 600] {
            assert_eq!(
                copy_form(&base(text_typed), &ColumnType::Text),
                CopyForm::Text
            );
        }
        assert_eq!(
            copy_form(&array(1041, base(oid::INET)), &list(ColumnType::Text)),
            CopyForm::Text
        );
    }

    #[test]
    fn text_forms_use_the_output_function() {
        let q = "\"c\"";
        assert_eq!(select_expr(q, &base(oid::INT8), &ColumnType::Int64), q);
        assert_eq!(select_expr(q, &base(oid::BPCHAR), &ColumnType::Text), q);
        assert_eq!(
            select_expr(q, &base(1186), &ColumnType::Text),
            "\"c\"::text"
        );
        assert_eq!(
            select_expr(q, &base(oid::NUMERIC), &ColumnType::Text),
            "\"c\"::text"
        );
        assert_eq!(
            select_expr(q, &array(1041, base(oid::INET)), &list(ColumnType::Text)),
            "\"c\"::text"
        );
        let guarded = "CASE WHEN \"c\" IS NULL THEN NULL ELSE format('%s', \"c\") END";
        assert_eq!(select_expr(q, &base(oid::INET), &ColumnType::Text), guarded);
        assert_eq!(select_expr(q, &base(oid::CIDR), &ColumnType::Text), guarded);
        assert_eq!(
            select_expr(q, &domain(base(1186)), &ColumnType::Text),
            guarded
        );
        assert_eq!(select_expr(q, &base(90_000), &ColumnType::Text), guarded);
        // A type/lake-type pair we do not decode natively (never produced by
        // map_type) is still read faithfully.
        assert_eq!(
            select_expr(q, &base(oid::BPCHAR), &ColumnType::Int32),
            guarded
        );
    }

    #[test]
    fn raw_field_accepts_everything() {
        assert!(<RawField as FromSql>::accepts(&Type::INTERVAL));
        assert_eq!(
            RawField::from_sql(&Type::TEXT, b"ab").unwrap(),
            RawField(b"ab")
        );
        assert_eq!(
            <Option<RawField> as FromSql>::from_sql_null(&Type::TEXT).unwrap(),
            None
        );
    }

    #[test]
    fn fixed_width_scalars() {
        let f = |s, ct: ColumnType, b: &[u8]| decode_field(scalar(s), &ct, b);
        assert_eq!(
            f(Scalar::Bool, ColumnType::Bool, &[1]),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            f(Scalar::Bool, ColumnType::Bool, &[0]),
            Ok(Value::Bool(false))
        );
        assert!(f(Scalar::Bool, ColumnType::Bool, &[2]).is_err());
        assert_eq!(
            f(Scalar::Int2, ColumnType::Int16, &(-2i16).to_be_bytes()),
            Ok(Value::Int16(-2))
        );
        assert_eq!(
            f(Scalar::Int4, ColumnType::Int32, &i32::MIN.to_be_bytes()),
            Ok(Value::Int32(i32::MIN))
        );
        assert_eq!(
            f(Scalar::Int8, ColumnType::Int64, &i64::MAX.to_be_bytes()),
            Ok(Value::Int64(i64::MAX))
        );
        assert!(f(Scalar::Int8, ColumnType::Int64, &[0; 4]).is_err());
        assert_eq!(
            f(Scalar::Uint32, ColumnType::Int64, &u32::MAX.to_be_bytes()),
            Ok(Value::Int64(4_294_967_295))
        );
        let nan = f(Scalar::Float8, ColumnType::Float64, &f64::NAN.to_be_bytes()).unwrap();
        assert_eq!(
            format!("{nan:?}"),
            format!("{:?}", parse_text(&ColumnType::Float64, "NaN").unwrap())
        );
        let nan32 = f(Scalar::Float4, ColumnType::Float32, &f32::NAN.to_be_bytes()).unwrap();
        assert_eq!(
            format!("{nan32:?}"),
            format!("{:?}", parse_text(&ColumnType::Float32, "NaN").unwrap())
        );
        assert_eq!(
            f(
                Scalar::Float4,
                ColumnType::Float32,
                &f32::NEG_INFINITY.to_be_bytes()
            ),
            parse_text(&ColumnType::Float32, "-Infinity")
        );
        assert_eq!(
            f(Scalar::Float8, ColumnType::Float64, &0.1f64.to_be_bytes()),
            Ok(Value::Float64(0.1))
        );
        assert_eq!(
            f(
                Scalar::Time,
                ColumnType::Time,
                &86_400_000_000i64.to_be_bytes()
            ),
            parse_text(&ColumnType::Time, "24:00:00")
        );
    }

    #[test]
    fn text_like_scalars() {
        let f = |s, b: &[u8]| decode_field(scalar(s), &ColumnType::Text, b);
        // bpchar's binary form keeps the padding, like its text output.
        assert_eq!(f(Scalar::Utf8, b"ab   "), Ok(Value::Text("ab   ".into())));
        assert!(f(Scalar::Utf8, &[0xff]).is_err());
        assert_eq!(
            f(Scalar::Jsonb, b"\x01{\"a\": 1}"),
            Ok(Value::Text("{\"a\": 1}".into()))
        );
        assert!(f(Scalar::Jsonb, b"\x02{}").is_err());
        assert_eq!(
            f(
                Scalar::Uuid,
                &[
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11
                ]
            ),
            Ok(Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()))
        );
        assert!(f(Scalar::Uuid, &[0; 15]).is_err());
        assert_eq!(f(Scalar::Char, b"x"), Ok(Value::Text("x".into())));
        assert_eq!(f(Scalar::Char, &[0]), Ok(Value::Text(String::new())));
        assert_eq!(f(Scalar::Char, &[0xe9]), Ok(Value::Text("\\351".into())));
        assert_eq!(
            decode_field(scalar(Scalar::Bytea), &ColumnType::Binary, &[0, 255]),
            parse_text(&ColumnType::Binary, "\\x00ff")
        );
        assert_eq!(
            decode_field(CopyForm::Text, &ColumnType::Text, b"1 day 02:00:00"),
            Ok(Value::Text("1 day 02:00:00".into()))
        );
        assert_eq!(
            decode_field(CopyForm::Text, &list(ColumnType::Text), b"{a,\"b c\",NULL}"),
            Ok(Value::List(vec![
                Value::Text("a".into()),
                Value::Text("b c".into()),
                Value::Null
            ]))
        );
    }

    #[test]
    fn numerics_become_exact_decimals() {
        let pos = NUMERIC_POS;
        let neg = NUMERIC_NEG;
        // 12.345
        assert_eq!(
            dec(&numeric(pos, 0, 3, &[12, 3450]), 12, 3),
            Ok(Value::Decimal(12_345))
        );
        // -12.5 at scale 3: the scale pads.
        assert_eq!(
            dec(&numeric(neg, 0, 1, &[12, 5000]), 12, 3),
            Ok(Value::Decimal(-12_500))
        );
        // 7 in numeric(5,2) → 7.00
        assert_eq!(
            dec(&numeric(pos, 0, 2, &[7]), 5, 2),
            Ok(Value::Decimal(700))
        );
        // 0.0005 and -0.00012 (weight −1: the first group is the 10⁻⁴ one).
        assert_eq!(
            dec(&numeric(pos, -1, 4, &[5]), 10, 4),
            Ok(Value::Decimal(5))
        );
        assert_eq!(
            dec(&numeric(neg, -1, 5, &[1, 2000]), 10, 5),
            Ok(Value::Decimal(-12))
        );
        // 0.00000001 has weight −2.
        assert_eq!(
            dec(&numeric(pos, -2, 8, &[1]), 10, 8),
            Ok(Value::Decimal(1))
        );
        // 100000000 = 1 × 10000², trailing zero groups stripped.
        assert_eq!(
            dec(&numeric(pos, 2, 0, &[1]), 12, 0),
            Ok(Value::Decimal(100_000_000))
        );
        assert_eq!(dec(&numeric(pos, 0, 3, &[]), 12, 3), Ok(Value::Decimal(0)));
        // 38 nines in numeric(38,0): the largest value.
        let mut digits = vec![99u16];
        digits.extend([9999; 9]);
        assert_eq!(
            dec(&numeric(pos, 9, 0, &digits), 38, 0),
            Ok(Value::Decimal(POW10[38] - 1))
        );
    }

    #[test]
    fn numeric_refusals_match_the_text_path() {
        for (sign, text) in [
            (NUMERIC_NAN, "NaN"),
            (NUMERIC_PINF, "Infinity"),
            (NUMERIC_NINF, "-Infinity"),
        ] {
            assert_eq!(
                dec(&numeric(sign, 0, 0, &[]), 10, 2),
                parse_text(
                    &ColumnType::Decimal {
                        precision: 10,
                        scale: 2
                    },
                    text
                )
            );
        }
        // 123456 in decimal(5,0)
        let e = dec(&numeric(NUMERIC_POS, 1, 0, &[12, 3456]), 5, 0).unwrap_err();
        assert_eq!(Err(e), parse_decimal("123456", 5, 0));
        // 1.2345 at scale 2: digits below the scale.
        let e = dec(&numeric(NUMERIC_NEG, 0, 4, &[1, 2345]), 10, 2).unwrap_err();
        assert_eq!(Err(e), parse_decimal("-1.2345", 10, 2));
        // 1.2300 at scale 2 is fine (zero digits below the scale).
        assert_eq!(
            dec(&numeric(NUMERIC_POS, 0, 4, &[1, 2300]), 10, 2),
            Ok(Value::Decimal(123))
        );
        // 44 digits: too long for i128, refused with the text path's message.
        let digits = [1234u16; 11];
        let e = dec(&numeric(NUMERIC_POS, 10, 0, &digits), 38, 0).unwrap_err();
        assert_eq!(Err(e), parse_decimal(&"1234".repeat(11), 38, 0));
        assert!(dec(&[0, 1, 0, 0], 10, 2).is_err());
        assert!(dec(&numeric(NUMERIC_POS, 0, 0, &[10_000]), 10, 2).is_err());
        assert!(dec(&numeric(0x1234, 0, 0, &[]), 10, 2).is_err());
    }

    #[test]
    fn numeric_text_matches_numeric_out() {
        let digits = |ds: &[u16]| ds.iter().flat_map(|d| d.to_be_bytes()).collect::<Vec<_>>();
        for (neg, weight, dscale, ds, want) in [
            (false, 0, 3, vec![12, 3450], "12.345"),
            (true, 0, 1, vec![12, 5000], "-12.5"),
            (false, -1, 4, vec![5], "0.0005"),
            (false, -2, 8, vec![1], "0.00000001"),
            (false, 2, 0, vec![1], "100000000"),
            (false, 2, 2, vec![1], "100000000.00"),
            (false, 0, 0, vec![], "0"),
            (false, 0, 5, vec![], "0.00000"),
            (false, 1, 4, vec![1, 0, 1], "10000.0001"),
            (false, 1, 6, vec![1, 0, 1], "10000.000100"),
        ] {
            assert_eq!(numeric_text(neg, weight, dscale, &digits(&ds)), want);
        }
    }

    #[test]
    fn fast_numeric_path_agrees_with_the_text_path() {
        // Deterministic pseudo-random numerics, decoded both ways.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let ndigits = (next() % 12) as usize;
            let mut ds: Vec<u16> = (0..ndigits).map(|_| (next() % 10_000) as u16).collect();
            if let Some(first) = ds.first_mut() {
                *first = (*first).max(1);
            }
            let weight = (next() % 14) as i16 - 4;
            let dscale = (next() % 16) as u16;
            let precision = (next() % 38 + 1) as u8;
            let scale = (next() % (u64::from(precision) + 1)) as i8;
            let sign = if next() % 2 == 0 {
                NUMERIC_POS
            } else {
                NUMERIC_NEG
            };
            let bytes = numeric(sign, weight, dscale, &ds);
            let raw: Vec<u8> = ds.iter().flat_map(|d| d.to_be_bytes()).collect();
            let text = numeric_text(sign == NUMERIC_NEG, weight, dscale, &raw);
            // numeric_out truncates at dscale; keep only values whose text is exact.
            let exact_text = 4 * (ndigits as i32 - i32::from(weight) - 1) <= i32::from(dscale);
            if !exact_text {
                continue;
            }
            assert_eq!(
                dec(&bytes, precision, scale),
                parse_decimal(&text, precision, scale).map(Value::Decimal),
                "{text} as decimal({precision},{scale})"
            );
        }
    }

    #[test]
    fn dates_and_timestamps() {
        let date = |d: i32| decode_field(scalar(Scalar::Date), &ColumnType::Date, &d.to_be_bytes());
        let ts = |m: i64| {
            decode_field(
                scalar(Scalar::Timestamp),
                &ColumnType::Timestamp,
                &m.to_be_bytes(),
            )
        };
        let tstz = |m: i64| {
            decode_field(
                scalar(Scalar::TimestampTz),
                &ColumnType::TimestampTz,
                &m.to_be_bytes(),
            )
        };
        assert_eq!(date(0), Ok(Value::Date(10_957)));
        assert_eq!(date(-10_957), Ok(Value::Date(0)));
        assert_eq!(date(i32::MAX), parse_text(&ColumnType::Date, "infinity"));
        assert_eq!(date(i32::MIN), parse_text(&ColumnType::Date, "-infinity"));
        assert!(date(i32::MAX).is_err());
        assert_eq!(
            date(date_days("0001-12-31 BC")),
            parse_text(&ColumnType::Date, "0001-12-31 BC")
        );
        assert_eq!(
            date(date_days("0044-03-15 BC")),
            parse_text(&ColumnType::Date, "0044-03-15 BC")
        );
        assert_eq!(date_text(date_days("0044-03-15 BC")), "0044-03-15 BC");
        // Past 9999 the text path refuses; so do we, with its message.
        let far = date_days("9999-12-31") + 1;
        assert_eq!(date_text(far), "10000-01-01");
        assert_eq!(date(far), parse_text(&ColumnType::Date, "10000-01-01"));
        assert!(date(far).is_err());
        assert_eq!(date(far - 1), parse_text(&ColumnType::Date, "9999-12-31"));

        assert_eq!(fast_date(0), Some(10_957));
        assert_eq!(fast_date(far), None);
        assert_eq!(fast_date(far - 1), Some(far - 1 + 10_957));
        assert_eq!(fast_date(date_days("0001-12-31 BC")), None);
        assert_eq!(fast_timestamp(i64::MAX), None);
        assert_eq!(fast_timestamp(i64::MIN), None);
        assert_eq!(fast_timestamp(i64::from(far) * MICROS_PER_DAY), None);
        assert_eq!(fast_timestamp(0), Some(946_684_800_000_000));
        assert_eq!(ts(0), Ok(Value::Timestamp(946_684_800_000_000)));
        assert_eq!(
            ts(-1),
            parse_text(&ColumnType::Timestamp, "1999-12-31 23:59:59.999999")
        );
        assert_eq!(ts(i64::MAX), parse_text(&ColumnType::Timestamp, "infinity"));
        assert!(ts(i64::MAX).is_err());
        assert_eq!(
            tstz(i64::MIN),
            parse_text(&ColumnType::TimestampTz, "-infinity")
        );
        assert_eq!(tstz(1_500_000), Ok(Value::Timestamp(946_684_801_500_000)));
        let bc_micros =
            i64::from(date_days("0044-03-15 BC")) * MICROS_PER_DAY + 12 * 3_600_000_000 + 500;
        assert_eq!(
            timestamp_text(bc_micros, true),
            "0044-03-15 12:00:00.0005+00 BC"
        );
        assert_eq!(
            tstz(bc_micros),
            parse_text(&ColumnType::TimestampTz, "0044-03-15 12:00:00.0005+00 BC")
        );
        assert!(tstz(bc_micros).is_ok());
        assert_eq!(
            ts(bc_micros),
            parse_text(&ColumnType::Timestamp, "0044-03-15 12:00:00.0005 BC")
        );
        let far = i64::from(far) * MICROS_PER_DAY + 1;
        assert_eq!(timestamp_text(far, false), "10000-01-01 00:00:00.000001");
        assert_eq!(
            ts(far),
            parse_text(&ColumnType::Timestamp, "10000-01-01 00:00:00.000001")
        );
        // The fast path's edges agree with the text path.
        let first = (FIRST_FAST_DAY - PG_EPOCH_DAYS) * MICROS_PER_DAY;
        let end = (END_FAST_DAY - PG_EPOCH_DAYS) * MICROS_PER_DAY;
        for m in [first - 1, first, end - 1, end] {
            assert_eq!(
                ts(m),
                parse_text(&ColumnType::Timestamp, &timestamp_text(m, false)),
                "{m}"
            );
            assert_eq!(
                tstz(m),
                parse_text(&ColumnType::TimestampTz, &timestamp_text(m, true)),
                "{m}"
            );
        }
        for d in [
            FIRST_FAST_DAY - 1,
            FIRST_FAST_DAY,
            END_FAST_DAY - 1,
            END_FAST_DAY,
        ] {
            let pg = (d - PG_EPOCH_DAYS) as i32;
            assert_eq!(
                date(pg),
                parse_text(&ColumnType::Date, &date_text(pg)),
                "{d}"
            );
        }
    }

    /// Days since 2000-01-01 of an ISO date text (via the text path).
    fn date_days(text: &str) -> i32 {
        match parse_text(&ColumnType::Date, text) {
            Ok(Value::Date(d)) => d - PG_EPOCH_DAYS as i32,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn civil_dates_agree_with_chrono() {
        use chrono::NaiveDate;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-800_000i64..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            let want = epoch + chrono::Duration::days(days);
            use chrono::Datelike;
            assert_eq!(
                (y, m, d),
                (
                    i64::from(want.year()),
                    i64::from(want.month()),
                    i64::from(want.day())
                )
            );
        }
    }

    #[test]
    fn arrays() {
        let ints = list(ColumnType::Int32);
        let form = CopyForm::Binary(Wire::Array(Scalar::Int4));
        let bytes = array_bytes(
            1,
            &[
                Some(&1i32.to_be_bytes()),
                None,
                Some(&(-3i32).to_be_bytes()),
            ],
        );
        assert_eq!(
            decode_field(form, &ints, &bytes),
            Ok(Value::List(vec![
                Value::Int32(1),
                Value::Null,
                Value::Int32(-3)
            ]))
        );
        // Lower bounds other than 1 (`[2:3]={…}`) read like the text path.
        let bytes = array_bytes(2, &[Some(&7i32.to_be_bytes())]);
        assert_eq!(
            decode_field(form, &ints, &bytes),
            parse_text(&ints, "[2:2]={7}")
        );
        // Empty array: ndim 0.
        let mut empty = Vec::new();
        empty.extend(0i32.to_be_bytes());
        empty.extend(0i32.to_be_bytes());
        empty.extend(23u32.to_be_bytes());
        assert_eq!(decode_field(form, &ints, &empty), Ok(Value::List(vec![])));
        assert_eq!(parse_text(&ints, "{}"), Ok(Value::List(vec![])));
        // Two dimensions: refused like the text path refuses `{{1},{2}}`.
        let mut nested = Vec::new();
        for v in [2i32, 0, 23, 2, 1, 1, 1, 4, 1, 4, 2] {
            nested.extend(v.to_be_bytes());
        }
        let refusal = decode_field(form, &ints, &nested);
        assert!(refusal.is_err());
        assert_eq!(refusal, parse_text(&ints, "{{1},{2}}"));
        // Truncated and trailing bytes.
        let bytes = array_bytes(1, &[Some(&1i32.to_be_bytes())]);
        assert!(decode_field(form, &ints, &bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_field(form, &ints, &long).is_err());
        // Element refusals are the element's refusals.
        let dates = list(ColumnType::Date);
        let bytes = array_bytes(1, &[Some(&i32::MAX.to_be_bytes())]);
        assert_eq!(
            decode_field(CopyForm::Binary(Wire::Array(Scalar::Date)), &dates, &bytes),
            parse_text(&dates, "{infinity}")
        );
        // Text elements keep bpchar padding.
        let texts = list(ColumnType::Text);
        let bytes = array_bytes(1, &[Some(b"ab   "), None, Some(b"")]);
        assert_eq!(
            decode_field(CopyForm::Binary(Wire::Array(Scalar::Utf8)), &texts, &bytes),
            parse_text(&texts, r#"{"ab   ",NULL,""}"#)
        );
    }
}
