//! A value converted to the type its field was given: the form the daemon
//! writes to the field's column.

use mongodb::bson::{Bson, Decimal128, Document};

use super::field_type::{FieldType, is_uuid};
use crate::extended_json::extended_json_value;

impl FieldType {
    /// `value` as a value of this type: numbers widened (`Int32` → `Int64`,
    /// integers → `Double`, any number → `Decimal128`), embedded documents
    /// with exactly this type's fields in its order (absent ones `null`),
    /// array elements converted one by one, anything under
    /// [`FieldType::Json`] as a string of canonical Extended JSON; `null`
    /// and `undefined` stay `null` (every field is nullable).
    ///
    /// `None` when the value does not fit (its type was not observed: the
    /// shape must be widened first, see
    /// [`CollectionShape::observe`](super::CollectionShape::observe)).
    /// Integers beyond 2^53 lose precision as `Double`, like everywhere.
    pub fn convert(&self, value: &Bson) -> Option<Bson> {
        use FieldType as T;
        Some(match (self, value) {
            (_, Bson::Null | Bson::Undefined) => Bson::Null,
            (T::Json, value) => Bson::String(extended_json_value(value)),
            (T::Bool, Bson::Boolean(_))
            | (T::Int32, Bson::Int32(_))
            | (T::Int64, Bson::Int64(_))
            | (T::Double, Bson::Double(_))
            | (T::Decimal128, Bson::Decimal128(_))
            | (T::String, Bson::String(_))
            | (T::ObjectId, Bson::ObjectId(_))
            | (T::DateTime, Bson::DateTime(_))
            | (T::Timestamp, Bson::Timestamp(_))
            | (T::Binary, Bson::Binary(_)) => value.clone(),
            (T::Uuid, Bson::Binary(binary)) if is_uuid(binary.subtype, binary.bytes.len()) => {
                value.clone()
            }
            (T::Int64, Bson::Int32(n)) => Bson::Int64(i64::from(*n)),
            (T::Double, Bson::Int32(n)) => Bson::Double(f64::from(*n)),
            (T::Double, Bson::Int64(n)) => Bson::Double(*n as f64),
            (T::Decimal128, Bson::Int32(n)) => Bson::Decimal128(decimal(&n.to_string())?),
            (T::Decimal128, Bson::Int64(n)) => Bson::Decimal128(decimal(&n.to_string())?),
            // Shortest digits that read back as the same double.
            (T::Decimal128, Bson::Double(f)) => Bson::Decimal128(decimal(&format!("{f:e}"))?),
            (T::Document(fields), Bson::Document(document)) => {
                Bson::Document(convert_document(fields, document)?)
            }
            (T::Array(item), Bson::Array(items)) => Bson::Array(
                items
                    .iter()
                    .map(|value| item.convert(value))
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }
}

/// `document` with exactly `fields`, each converted; `None` when a value
/// does not fit or the document has a field `fields` lacks.
pub(super) fn convert_document(
    fields: &[(String, FieldType)],
    document: &Document,
) -> Option<Document> {
    if document
        .keys()
        .any(|name| !fields.iter().any(|(field, _)| field == name))
    {
        return None;
    }
    let mut converted = Document::new();
    for (name, ty) in fields {
        let value = match document.get(name) {
            Some(value) => ty.convert(value)?,
            None => Bson::Null,
        };
        converted.insert(name.clone(), value);
    }
    Some(converted)
}

fn decimal(text: &str) -> Option<Decimal128> {
    // NaN and infinities parse too ("NaN", "inf", "-inf").
    text.parse().ok()
}
