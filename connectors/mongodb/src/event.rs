//! One change-stream event, decoded from the raw BSON document the server
//! sends (the documented shapes of
//! <https://www.mongodb.com/docs/manual/reference/change-events/>).
//!
//! Sits right after [`crate::stream`]: the stream reads events as plain
//! [`Document`]s (unknown fields never fail there) and decodes each with
//! [`ChangeEvent::from_document`]; the daemon's MongoDB source adapter
//! turns [`ChangeEvent`]s into its own envelopes. Decoding is strict about
//! what the connector relies on (`_id`, `operationType`, the types of the
//! fields present) and ignores fields it does not use (`collectionUUID`,
//! `operationDescription`, …).

use mongodb::bson::{Bson, DateTime, Document, Timestamp};

use crate::error::MongoError;
use crate::extended_json::extended_json;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    /// A document was inserted (`fullDocument` holds it).
    Insert,
    /// A document was updated (`updateDescription` says how).
    Update,
    /// A document was replaced (`fullDocument` holds the new one).
    Replace,
    /// A document was deleted.
    Delete,
    /// A collection was dropped.
    Drop,
    /// A collection was renamed (`to` is the new name).
    Rename,
    /// A database was dropped.
    DropDatabase,
    /// The stream cannot continue (its collection or database is gone); the
    /// server closes the cursor after this event.
    Invalidate,
    /// A documented event the connector does not act on (`create`,
    /// `createIndexes`, `dropIndexes`, `modify`, `shardCollection`,
    /// `reshardCollection`, `refineCollectionShardKey`); callers skip it.
    Other(String),
}

/// The `operationType`s decoded as [`ChangeOp::Other`]: the "expanded"
/// events servers send with `showExpandedEvents`.
const OTHER_OPERATIONS: [&str; 7] = [
    "create",
    "createIndexes",
    "dropIndexes",
    "modify",
    "shardCollection",
    "reshardCollection",
    "refineCollectionShardKey",
];

impl ChangeOp {
    /// The operation an `operationType` names, `None` when it is not a
    /// documented one.
    pub fn parse(operation_type: &str) -> Option<ChangeOp> {
        Some(match operation_type {
            "insert" => ChangeOp::Insert,
            "update" => ChangeOp::Update,
            "replace" => ChangeOp::Replace,
            "delete" => ChangeOp::Delete,
            "drop" => ChangeOp::Drop,
            "rename" => ChangeOp::Rename,
            "dropDatabase" => ChangeOp::DropDatabase,
            "invalidate" => ChangeOp::Invalidate,
            other if OTHER_OPERATIONS.contains(&other) => ChangeOp::Other(other.to_string()),
            _ => return None,
        })
    }
}

/// A database, and the collection when the event concerns one (`ns` of a
/// `dropDatabase` event has no `coll`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Database name.
    pub db: String,
    /// Collection name.
    pub coll: Option<String>,
}

/// An array an update shortened (pipeline updates report truncations
/// instead of the whole array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedArray {
    /// Dotted path of the array.
    pub field: String,
    /// Elements kept (the first `new_size`).
    pub new_size: u32,
}

/// How an `update` event changed a document.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateDescription {
    /// Dotted paths set, with their new values.
    pub updated_fields: Document,
    /// Dotted paths removed.
    pub removed_fields: Vec<String>,
    /// Arrays shortened.
    pub truncated_arrays: Vec<TruncatedArray>,
    /// For paths whose components are ambiguous (numeric field names, dots
    /// in names): the path → its components, strings for field names and
    /// integers for array indexes (MongoDB 6.1+, `showExpandedEvents`; 8.2+
    /// always). Empty when no path is ambiguous.
    pub disambiguated_paths: Document,
}

/// The transaction an event belongs to: events of one multi-document
/// transaction share it.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnId {
    /// The session (`lsid`: `{id: UUID, uid: BinData}`).
    pub lsid: Document,
    /// The transaction's number within the session.
    pub txn_number: i64,
}

/// One change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The event's `_id`: the token to resume after it.
    pub resume_token: Document,
    /// What happened.
    pub op: ChangeOp,
    /// Where (`ns`); absent for `invalidate`.
    pub namespace: Option<Namespace>,
    /// The new name of a renamed collection (`to`).
    pub to: Option<Namespace>,
    /// `_id` (and the shard key on sharded collections) of the document.
    pub document_key: Option<Document>,
    /// The document after the change (inserts and replaces always; updates
    /// with `updateLookup` or post-images; `None` when the looked-up
    /// document is already gone).
    pub full_document: Option<Document>,
    /// The document before the change (pre-images, MongoDB 6.0+).
    pub full_document_before_change: Option<Document>,
    /// The fields an update changed.
    pub update: Option<UpdateDescription>,
    /// The oplog time of the change (shared by the events of a transaction).
    pub cluster_time: Option<Timestamp>,
    /// The server's wall clock at the change (MongoDB 6.0+).
    pub wall_time: Option<DateTime>,
    /// The transaction, for events of a multi-document transaction.
    pub txn: Option<TxnId>,
}

impl ChangeEvent {
    /// The changed document's `_id`.
    pub fn key(&self) -> Option<&Bson> {
        self.document_key.as_ref()?.get("_id")
    }

    /// Decodes a raw change-stream document.
    pub fn from_document(raw: &Document) -> Result<ChangeEvent, MongoError> {
        let resume_token = match raw.get("_id") {
            Some(Bson::Document(token)) => token.clone(),
            Some(other) => {
                return Err(malformed(
                    raw,
                    format!("_id (resume token) is {}, not a document", type_name(other)),
                ));
            }
            None => return Err(malformed(raw, "no _id (resume token)".to_string())),
        };
        let fields = Fields {
            raw,
            token: &resume_token,
        };
        let op = match raw.get("operationType") {
            Some(Bson::String(name)) => ChangeOp::parse(name).ok_or_else(|| {
                fields.error(format!(
                    "unknown operationType {name:?}; this version of the connector knows insert, update, replace, delete, drop, rename, dropDatabase, invalidate and {}",
                    OTHER_OPERATIONS.join(", ")
                ))
            })?,
            Some(other) => {
                return Err(fields.error(format!(
                    "operationType is {}, not a string",
                    type_name(other)
                )));
            }
            None => return Err(fields.error("no operationType".to_string())),
        };
        let txn = match (fields.document("lsid")?, fields.integer("txnNumber")?) {
            (Some(lsid), Some(txn_number)) => Some(TxnId { lsid, txn_number }),
            _ => None,
        };
        Ok(ChangeEvent {
            op,
            namespace: fields.namespace("ns")?,
            to: fields.namespace("to")?,
            document_key: fields.document("documentKey")?,
            full_document: fields.document("fullDocument")?,
            full_document_before_change: fields.document("fullDocumentBeforeChange")?,
            update: fields.update_description()?,
            cluster_time: fields.timestamp("clusterTime")?,
            wall_time: fields.date_time("wallTime")?,
            txn,
            resume_token,
        })
    }
}

/// Typed access to the fields of one raw event, with errors that name the
/// field and the event's resume token.
struct Fields<'a> {
    raw: &'a Document,
    token: &'a Document,
}

impl Fields<'_> {
    fn error(&self, message: String) -> MongoError {
        MongoError::Decode {
            message: format!("{message} (event {})", extended_json(self.token)),
        }
    }

    fn mistyped(&self, path: &str, value: &Bson, expected: &str) -> MongoError {
        self.error(format!("{path} is {}, not {expected}", type_name(value)))
    }

    /// A document field; `null` counts as absent (an `updateLookup` whose
    /// document is gone).
    fn document(&self, name: &str) -> Result<Option<Document>, MongoError> {
        match self.raw.get(name) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Document(d)) => Ok(Some(d.clone())),
            Some(other) => Err(self.mistyped(name, other, "a document")),
        }
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, MongoError> {
        match self.raw.get(name) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Int64(n)) => Ok(Some(*n)),
            Some(Bson::Int32(n)) => Ok(Some(i64::from(*n))),
            Some(other) => Err(self.mistyped(name, other, "an integer")),
        }
    }

    fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, MongoError> {
        match self.raw.get(name) {
            None => Ok(None),
            Some(Bson::Timestamp(t)) => Ok(Some(*t)),
            Some(other) => Err(self.mistyped(name, other, "a timestamp")),
        }
    }

    fn date_time(&self, name: &str) -> Result<Option<DateTime>, MongoError> {
        match self.raw.get(name) {
            None => Ok(None),
            Some(Bson::DateTime(t)) => Ok(Some(*t)),
            Some(other) => Err(self.mistyped(name, other, "a date")),
        }
    }

    fn namespace(&self, name: &str) -> Result<Option<Namespace>, MongoError> {
        let Some(ns) = self.document(name)? else {
            return Ok(None);
        };
        let db = match ns.get("db") {
            Some(Bson::String(db)) => db.clone(),
            Some(other) => return Err(self.mistyped(&format!("{name}.db"), other, "a string")),
            None => return Err(self.error(format!("{name} has no db"))),
        };
        let coll = match ns.get("coll") {
            None => None,
            Some(Bson::String(coll)) => Some(coll.clone()),
            Some(other) => {
                return Err(self.mistyped(&format!("{name}.coll"), other, "a string"));
            }
        };
        Ok(Some(Namespace { db, coll }))
    }

    fn update_description(&self) -> Result<Option<UpdateDescription>, MongoError> {
        const NAME: &str = "updateDescription";
        let Some(description) = self.document(NAME)? else {
            return Ok(None);
        };
        let sub_document = |field: &str| match description.get(field) {
            None => Ok(Document::new()),
            Some(Bson::Document(d)) => Ok(d.clone()),
            Some(other) => Err(self.mistyped(&format!("{NAME}.{field}"), other, "a document")),
        };
        let array = |field: &str| match description.get(field) {
            None => Ok(Vec::new()),
            Some(Bson::Array(items)) => Ok(items.clone()),
            Some(other) => Err(self.mistyped(&format!("{NAME}.{field}"), other, "an array")),
        };
        let removed_fields = array("removedFields")?
            .into_iter()
            .map(|item| match item {
                Bson::String(path) => Ok(path),
                other => Err(self.mistyped("an item of removedFields", &other, "a string")),
            })
            .collect::<Result<_, _>>()?;
        let truncated_arrays = array("truncatedArrays")?
            .into_iter()
            .map(|item| self.truncated_array(&item))
            .collect::<Result<_, _>>()?;
        Ok(Some(UpdateDescription {
            updated_fields: sub_document("updatedFields")?,
            removed_fields,
            truncated_arrays,
            disambiguated_paths: sub_document("disambiguatedPaths")?,
        }))
    }

    fn truncated_array(&self, item: &Bson) -> Result<TruncatedArray, MongoError> {
        const WHAT: &str = "an item of truncatedArrays";
        let Bson::Document(item) = item else {
            return Err(self.mistyped(WHAT, item, "a document"));
        };
        let field = match item.get("field") {
            Some(Bson::String(field)) => field.clone(),
            _ => return Err(self.error(format!("{WHAT} has no string field"))),
        };
        let new_size = match item.get("newSize") {
            Some(Bson::Int32(n)) => u32::try_from(*n).ok(),
            Some(Bson::Int64(n)) => u32::try_from(*n).ok(),
            _ => None,
        }
        .ok_or_else(|| self.error(format!("{WHAT} has no non-negative integer newSize")))?;
        Ok(TruncatedArray { field, new_size })
    }
}

/// At most this many characters of a malformed event go into its error.
const QUOTED_EVENT_CHARS: usize = 500;

fn malformed(raw: &Document, message: String) -> MongoError {
    let mut quoted = extended_json(raw);
    if let Some((cut, _)) = quoted.char_indices().nth(QUOTED_EVENT_CHARS) {
        quoted.truncate(cut);
        quoted.push('…');
    }
    MongoError::Decode {
        message: format!("{message}: {quoted}"),
    }
}

/// The BSON type of a value, as MongoDB's `$type` names it, for messages.
pub(crate) fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::DbPointer(_) => "dbPointer",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}

#[cfg(test)]
mod tests;
