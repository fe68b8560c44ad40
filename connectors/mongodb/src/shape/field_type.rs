//! The type inferred for one field, and how two types widen into one.

use mongodb::bson::{Bson, spec::BinarySubtype};
use serde::{Deserialize, Serialize};

/// The type of a field, as far as the documents seen so far tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Only `null` (or `undefined`, or an empty array's elements) seen.
    Null,
    /// BSON boolean.
    Bool,
    /// BSON int (32 bits).
    Int32,
    /// BSON long (64 bits).
    Int64,
    /// BSON double.
    Double,
    /// BSON decimal (IEEE 754-2008 decimal128).
    Decimal128,
    /// BSON string.
    String,
    /// BSON ObjectId (12 bytes).
    ObjectId,
    /// BSON date: milliseconds since the Unix epoch, UTC.
    DateTime,
    /// BSON timestamp (seconds, increment): the oplog's clock.
    Timestamp,
    /// BSON binary data of any subtype but UUID.
    Binary,
    /// BSON binary data of subtype 4 (UUID), 16 bytes.
    Uuid,
    /// An embedded document: its fields in first-seen order.
    Document(Vec<(String, FieldType)>),
    /// An array whose elements all widen to this type.
    Array(Box<FieldType>),
    /// Anything without a better common type, kept as canonical Extended
    /// JSON text (see [`crate::extended_json()`]).
    Json,
}

impl FieldType {
    /// The type of one value.
    pub fn of(value: &Bson) -> FieldType {
        match value {
            Bson::Null | Bson::Undefined => FieldType::Null,
            Bson::Boolean(_) => FieldType::Bool,
            Bson::Int32(_) => FieldType::Int32,
            Bson::Int64(_) => FieldType::Int64,
            Bson::Double(_) => FieldType::Double,
            Bson::Decimal128(_) => FieldType::Decimal128,
            Bson::String(_) => FieldType::String,
            Bson::ObjectId(_) => FieldType::ObjectId,
            Bson::DateTime(_) => FieldType::DateTime,
            Bson::Timestamp(_) => FieldType::Timestamp,
            Bson::Binary(binary) if is_uuid(binary.subtype, binary.bytes.len()) => FieldType::Uuid,
            Bson::Binary(_) => FieldType::Binary,
            Bson::Document(document) => FieldType::Document(
                document
                    .iter()
                    .map(|(name, value)| (name.clone(), FieldType::of(value)))
                    .collect(),
            ),
            Bson::Array(items) => FieldType::Array(Box::new(
                items
                    .iter()
                    .fold(FieldType::Null, |acc, item| acc.widen(&FieldType::of(item))),
            )),
            Bson::RegularExpression(_)
            | Bson::JavaScriptCode(_)
            | Bson::JavaScriptCodeWithScope(_)
            | Bson::DbPointer(_)
            | Bson::Symbol(_)
            | Bson::MinKey
            | Bson::MaxKey => FieldType::Json,
        }
    }

    /// The narrowest type both `self` and `other` fit in (the rules are in
    /// [`crate::shape`]'s documentation).
    pub fn widen(&self, other: &FieldType) -> FieldType {
        use FieldType::*;
        match (self, other) {
            (Json, _) | (_, Json) => Json,
            (Null, t) | (t, Null) => t.clone(),
            (Document(a), Document(b)) => Document(union_fields(a, b)),
            (Array(a), Array(b)) => Array(Box::new(a.widen(b))),
            (a, b) if a == b => a.clone(),
            (Int32, Int64) | (Int64, Int32) => Int64,
            (Int32 | Int64, Double) | (Double, Int32 | Int64) => Double,
            (Int32 | Int64 | Double, Decimal128) | (Decimal128, Int32 | Int64 | Double) => {
                Decimal128
            }
            (Uuid, Binary) | (Binary, Uuid) => Binary,
            _ => Json,
        }
    }

    /// Whether values of type `other` fit in `self` unchanged or converted
    /// (that is, widening `self` by `other` gives `self`).
    pub fn admits(&self, other: &FieldType) -> bool {
        self.widen(other) == *self
    }
}

/// A UUID is subtype 4 with 16 bytes (anything else of subtype 4 is kept as
/// plain binary).
pub(super) fn is_uuid(subtype: BinarySubtype, len: usize) -> bool {
    subtype == BinarySubtype::Uuid && len == 16
}

/// Field-wise union: `a`'s fields in order (widened by `b`'s), then the
/// fields only `b` has, in `b`'s order.
fn union_fields(a: &[(String, FieldType)], b: &[(String, FieldType)]) -> Vec<(String, FieldType)> {
    let mut fields: Vec<(String, FieldType)> = a
        .iter()
        .map(
            |(name, ty)| match b.iter().find(|(other, _)| other == name) {
                Some((_, other)) => (name.clone(), ty.widen(other)),
                None => (name.clone(), ty.clone()),
            },
        )
        .collect();
    for (name, ty) in b {
        if !a.iter().any(|(own, _)| own == name) {
            fields.push((name.clone(), ty.clone()));
        }
    }
    fields
}
