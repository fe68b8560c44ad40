//! Per-collection shape inference: which fields the documents of a
//! collection have and one type per field, widened as documents arrive, so
//! the daemon can give a schemaless collection typed columns (plus the
//! whole document as canonical Extended JSON in a `_doc` column, see
//! [`crate::extended_json()`]).
//!
//! Sits between the documents (snapshot scans, change events' full
//! documents) and the daemon's schema registry: the daemon calls
//! [`CollectionShape::observe`] on every document, registers a new schema
//! version when it returns `true`, and writes
//! [`CollectionShape::values`].
//!
//! Widening rules ([`FieldType::widen`]), symmetric:
//!
//! | seen                                   | becomes                          |
//! |----------------------------------------|----------------------------------|
//! | `Null` + any `T`                       | `T`                              |
//! | `T` + `T`                              | `T`                              |
//! | `Int32` + `Int64`                      | `Int64`                          |
//! | `Int32`/`Int64` + `Double`             | `Double`                         |
//! | `Int32`/`Int64`/`Double` + `Decimal128`| `Decimal128`                     |
//! | `Uuid` + `Binary`                      | `Binary`                         |
//! | `Document` + `Document`                | field-wise union (first-seen order) |
//! | `Array(a)` + `Array(b)`                | `Array(widen(a, b))`             |
//! | anything else, and `Json` + any        | `Json`                           |
//!
//! Values with no typed column (regular expressions, `MinKey`/`MaxKey`,
//! JavaScript, `DBPointer`, symbols) are `Json` from the start; `undefined`
//! counts as `null`; an empty array is `Array(Null)`. Every field is
//! nullable: a field absent from a document, or `null` in it, converts to
//! `null`, so a field some documents lack needs no type change. `_id` is
//! always the first field.

mod convert;
mod field_type;

use mongodb::bson::{Bson, Document};
use serde::{Deserialize, Serialize};

pub use field_type::FieldType;

/// The fields of a collection's documents and their types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionShape {
    /// `_id` first (once seen), then the other fields in first-seen order.
    pub fields: Vec<(String, FieldType)>,
}

impl CollectionShape {
    /// A shape with no fields.
    pub fn new() -> CollectionShape {
        CollectionShape::default()
    }

    /// Widens the shape so `document` fits; `true` when it changed (a new
    /// field, or a field's type widened).
    pub fn observe(&mut self, document: &Document) -> bool {
        let seen = FieldType::Document(
            document
                .iter()
                .map(|(name, value)| (name.clone(), FieldType::of(value)))
                .collect(),
        );
        let FieldType::Document(mut widened) =
            FieldType::Document(self.fields.clone()).widen(&seen)
        else {
            // Two documents always widen to a document.
            return false;
        };
        if let Some(at) = widened.iter().position(|(name, _)| name == "_id") {
            let id = widened.remove(at);
            widened.insert(0, id);
        }
        let changed = widened != self.fields;
        self.fields = widened;
        changed
    }

    /// The type of a field, if seen.
    pub fn field(&self, name: &str) -> Option<&FieldType> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, ty)| ty)
    }

    /// One value per field of the shape, in its order, converted to the
    /// field's type (see [`FieldType::convert`]); `None` when the document
    /// does not fit the shape (observe it first).
    pub fn values(&self, document: &Document) -> Option<Vec<Bson>> {
        let converted = convert::convert_document(&self.fields, document)?;
        Some(converted.into_iter().map(|(_, value)| value).collect())
    }

    /// The value of one field of `document` converted to the field's type:
    /// `null` when the document lacks it, `None` when the shape has no such
    /// field or the value does not fit.
    pub fn value(&self, document: &Document, name: &str) -> Option<Bson> {
        let ty = self.field(name)?;
        match document.get(name) {
            Some(value) => ty.convert(value),
            None => Some(Bson::Null),
        }
    }
}

#[cfg(test)]
mod tests;
