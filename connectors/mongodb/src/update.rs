//! Applying an `update` event's [`UpdateDescription`] to the document as it
//! was before, for when the event carries no `fullDocument` (the
//! `updateLookup` found the document already deleted, or the stream runs
//! without post-images) but the daemon knows the previous version.
//!
//! Order, as the server computes the description: arrays are truncated
//! first, then `updatedFields` are set, then `removedFields` removed.
//! Paths are dotted; each component is a field name inside a document and,
//! when numeric, an index inside an array. `disambiguatedPaths` (MongoDB
//! 6.1+) overrides the split for paths whose field names contain dots or
//! are numeric: a string component is always a field name, an integer
//! always an array index. As in MongoDB, setting a missing path creates the
//! documents on the way, setting past the end of an array pads it with
//! `null`s, and removing an array element leaves a `null` in its place.

use mongodb::bson::{Bson, Document};

use crate::event::UpdateDescription;

/// One component of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// From a plain dotted path: a field name in a document, an index in an
    /// array when numeric.
    Plain(String),
    /// From `disambiguatedPaths`: a field name, never an index.
    Field(String),
    /// From `disambiguatedPaths`: an array index.
    Index(usize),
}

/// The document after the update `update` was applied to `previous`.
pub fn apply_update(previous: &Document, update: &UpdateDescription) -> Document {
    let mut root = Bson::Document(previous.clone());
    let steps = |path: &str| path_steps(path, &update.disambiguated_paths);
    for truncated in &update.truncated_arrays {
        if let Some(Bson::Array(items)) = descend(&mut root, &steps(&truncated.field), false) {
            items.truncate(truncated.new_size as usize);
        }
    }
    for (path, value) in &update.updated_fields {
        if let Some(slot) = descend(&mut root, &steps(path), true) {
            *slot = value.clone();
        }
    }
    for path in &update.removed_fields {
        remove(&mut root, &steps(path));
    }
    match root {
        Bson::Document(document) => document,
        _ => previous.clone(),
    }
}

/// The components of `path`, from `disambiguated` when it lists the path.
fn path_steps(path: &str, disambiguated: &Document) -> Vec<Step> {
    if let Ok(parts) = disambiguated.get_array(path) {
        let steps: Option<Vec<Step>> = parts
            .iter()
            .map(|part| match part {
                Bson::String(name) => Some(Step::Field(name.clone())),
                Bson::Int32(i) => usize::try_from(*i).ok().map(Step::Index),
                Bson::Int64(i) => usize::try_from(*i).ok().map(Step::Index),
                _ => None,
            })
            .collect();
        if let Some(steps) = steps {
            return steps;
        }
    }
    path.split('.')
        .map(|s| Step::Plain(s.to_string()))
        .collect()
}

/// The value at `steps` below `node`; with `create`, missing documents on
/// the way are created (and `null`s replaced by documents), arrays padded.
fn descend<'a>(node: &'a mut Bson, steps: &[Step], create: bool) -> Option<&'a mut Bson> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(node);
    };
    if create && matches!(node, Bson::Null) {
        *node = Bson::Document(Document::new());
    }
    let child = match node {
        Bson::Document(document) => {
            let name = match step {
                Step::Plain(name) | Step::Field(name) => name,
                Step::Index(_) => return None,
            };
            if create && !document.contains_key(name) {
                document.insert(name.clone(), Bson::Null);
            }
            document.get_mut(name)?
        }
        Bson::Array(items) => {
            let index = array_index(step)?;
            if create && index >= items.len() {
                items.resize(index + 1, Bson::Null);
            }
            items.get_mut(index)?
        }
        _ => return None,
    };
    descend(child, rest, create)
}

fn array_index(step: &Step) -> Option<usize> {
    match step {
        Step::Index(i) => Some(*i),
        Step::Plain(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().ok()
        }
        _ => None,
    }
}

/// Removes the value at `steps` (an array element becomes `null`).
fn remove(root: &mut Bson, steps: &[Step]) {
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    match descend(root, parents, false) {
        Some(Bson::Document(document)) => {
            if let Step::Plain(name) | Step::Field(name) = last {
                document.remove(name);
            }
        }
        Some(Bson::Array(items)) => {
            if let Some(item) = array_index(last).and_then(|i| items.get_mut(i)) {
                *item = Bson::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TruncatedArray;
    use mongodb::bson::doc;

    fn description(updated_fields: Document, removed_fields: &[&str]) -> UpdateDescription {
        UpdateDescription {
            updated_fields,
            removed_fields: removed_fields.iter().map(|s| s.to_string()).collect(),
            truncated_arrays: Vec::new(),
            disambiguated_paths: Document::new(),
        }
    }

    #[test]
    fn top_level_fields_are_set_and_removed() {
        let previous =
            doc! { "_id": 1, "email": "old@example.com", "phoneNumber": "555", "name": "Alice" };
        let update = description(doc! { "email": "alice@10gen.com" }, &["phoneNumber"]);
        let after = apply_update(&previous, &update);
        assert_eq!(
            after,
            doc! { "_id": 1, "email": "alice@10gen.com", "name": "Alice" }
        );
        assert_eq!(
            previous.get_str("phoneNumber"),
            Ok("555"),
            "the previous document is untouched"
        );
    }

    #[test]
    fn dotted_paths_reach_into_documents_and_create_missing_ones() {
        let previous = doc! { "_id": 1, "address": { "city": "Oslo", "zip": "0150" } };
        let update = description(
            doc! { "address.city": "Bergen", "meta.created.by": "app", "new": true },
            &["address.zip"],
        );
        assert_eq!(
            apply_update(&previous, &update),
            doc! {
                "_id": 1,
                "address": { "city": "Bergen" },
                "meta": { "created": { "by": "app" } },
                "new": true,
            }
        );
    }

    #[test]
    fn numeric_components_index_arrays_and_pad_with_nulls() {
        let previous = doc! { "_id": 1, "tags": ["a", "b"], "grid": [[1, 2], [3, 4]] };
        let update = description(
            doc! { "tags.1": "B", "tags.4": "e", "grid.1.0": 30 },
            &["grid.0.1"],
        );
        assert_eq!(
            apply_update(&previous, &update),
            doc! {
                "_id": 1,
                "tags": ["a", "B", null, null, "e"],
                "grid": [[1, null], [30, 4]],
            }
        );
    }

    #[test]
    fn arrays_are_truncated_before_fields_are_set() {
        let previous = doc! { "_id": 1, "vacation_time": (0..40).collect::<Vec<i32>>(), "log": { "lines": [1, 2, 3] } };
        let update = UpdateDescription {
            updated_fields: doc! { "vacation_time.35": -1 },
            removed_fields: Vec::new(),
            truncated_arrays: vec![
                TruncatedArray {
                    field: "vacation_time".into(),
                    new_size: 36,
                },
                TruncatedArray {
                    field: "log.lines".into(),
                    new_size: 1,
                },
            ],
            disambiguated_paths: Document::new(),
        };
        let after = apply_update(&previous, &update);
        let vacation = after.get_array("vacation_time").unwrap();
        assert_eq!(vacation.len(), 36);
        assert_eq!(vacation[34], Bson::Int32(34));
        assert_eq!(vacation[35], Bson::Int32(-1));
        assert_eq!(after.get_document("log").unwrap(), &doc! { "lines": [1] });
    }

    #[test]
    fn numeric_field_names_inside_documents_are_field_names() {
        // Without disambiguation "a.0" means field "0" when `a` is a document.
        let previous = doc! { "_id": 1, "a": { "0": 0 } };
        let update = description(doc! { "a.0": 1 }, &[]);
        assert_eq!(
            apply_update(&previous, &update),
            doc! { "_id": 1, "a": { "0": 1 } }
        );
    }

    #[test]
    fn disambiguated_paths_decide_names_dots_and_indexes() {
        let previous = doc! { "_id": 1, "a.b": { "c": 1 }, "a": { "b": { "c": 2 } }, "arr": { "1": [10, 11] } };
        let update = UpdateDescription {
            updated_fields: doc! { "a.b.c": 100, "arr.1.1": 110 },
            removed_fields: Vec::new(),
            truncated_arrays: Vec::new(),
            disambiguated_paths: doc! {
                "a.b.c": ["a.b", "c"],
                "arr.1.1": ["arr", "1", 1],
            },
        };
        assert_eq!(
            apply_update(&previous, &update),
            doc! { "_id": 1, "a.b": { "c": 100 }, "a": { "b": { "c": 2 } }, "arr": { "1": [10, 110] } }
        );
        // A disambiguated index never names a document field.
        let mismatch = UpdateDescription {
            updated_fields: doc! { "arr.1": 0 },
            removed_fields: Vec::new(),
            truncated_arrays: Vec::new(),
            disambiguated_paths: doc! { "arr.1": ["arr", 1] },
        };
        assert_eq!(apply_update(&previous, &mismatch), previous);
    }

    #[test]
    fn removing_missing_paths_changes_nothing() {
        let previous = doc! { "_id": 1, "a": 5, "list": [1] };
        let update = description(doc! {}, &["nope", "a.b", "list.7", "list.x"]);
        assert_eq!(apply_update(&previous, &update), previous);
    }
}
