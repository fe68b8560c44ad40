//! Helpers for a collection's initial snapshot: split its `_id`s into
//! ranges ([`split_id_ranges`]), read each range in `_id` order
//! ([`scan_range`]), resume a range after the last `_id` read.
//!
//! Sits beside [`crate::stream`]: the daemon takes [`crate::cluster_time`]
//! first, copies the collections range by range, then opens the change
//! stream at that time ([`crate::StartAt::OperationTime`]). Changes made
//! while the copy runs appear in the copy or not, and again in the stream;
//! since every event is keyed by `_id` and carries the whole document (or
//! its delete), replaying them over the copy converges to the collection's
//! state at the end of the copy.
//!
//! Ranges are bounds on the `_id` index, given to the server as the
//! `min`/`max` of a `find` hinted to that index (lower bound inclusive,
//! upper exclusive). Unlike `$gt`/`$lt` filters, which only match values of
//! the bound's own type, index bounds follow BSON order across types, so
//! ranges of a collection whose `_id`s mix numbers, strings and ObjectIds
//! still cover every document exactly once.
//!
//! Splitting: the boundaries are the `_id`s at evenly spaced positions of
//! the `_id` index (`estimatedDocumentCount`, then for each boundary a
//! covered `find` sorted on `_id`, projected to `_id`, with `skip`). That
//! reads index keys only and gives even ranges. Not `$sample` (random,
//! uneven, may repeat documents), not `splitVector` (needs cluster
//! privileges and is unavailable on some hosted tiers), not `$bucketAuto`
//! (fetches and sorts every document in one aggregation). The skips cost
//! about `parts / 2` index walks, cheap next to the copy itself.
//!
//! Reads use read concern `majority` (what the copy sees cannot be rolled
//! back), or a snapshot session at a cluster time
//! ([`ScanConsistency::SnapshotAt`]: one point in time across all ranges,
//! limited by the server's `minSnapshotHistoryWindowInSeconds`, 5 minutes
//! by default; a longer scan fails with `SnapshotTooOld`).

use std::ops::Bound;

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, Timestamp, doc};
use mongodb::options::{FindOptions, Hint, ReadConcern};
use mongodb::{ClientSession, Collection, Cursor, SessionCursor};

use crate::error::MongoError;
use crate::extended_json::extended_json_value;

/// A range of `_id`s in the order of the `_id` index.
#[derive(Debug, Clone, PartialEq)]
pub struct IdRange {
    /// Where the range starts: from the first `_id`, from this `_id`
    /// (included), or after this `_id` (a resumed range).
    pub lower: Bound<Bson>,
    /// Where the range ends: before this `_id` (excluded), or at the last.
    pub upper: Option<Bson>,
}

impl IdRange {
    /// Every `_id`.
    pub fn all() -> IdRange {
        IdRange {
            lower: Bound::Unbounded,
            upper: None,
        }
    }

    /// The rest of this range after `last_id` (the last document read).
    pub fn after(&self, last_id: Bson) -> IdRange {
        IdRange {
            lower: Bound::Excluded(last_id),
            upper: self.upper.clone(),
        }
    }

    /// The `find` filter and options that read this range in `_id` order.
    pub fn query(&self, batch_size: u32) -> (Document, FindOptions) {
        let (filter, min) = match &self.lower {
            Bound::Unbounded => (doc! {}, None),
            Bound::Included(id) => (doc! {}, Some(doc! { "_id": id.clone() })),
            // Index bounds are inclusive: start at the last `_id` read and
            // leave it out.
            Bound::Excluded(id) => (
                doc! { "_id": { "$ne": id.clone() } },
                Some(doc! { "_id": id.clone() }),
            ),
        };
        let mut options = FindOptions::default();
        options.sort = Some(doc! { "_id": 1 });
        options.hint = Some(Hint::Keys(doc! { "_id": 1 }));
        options.min = min;
        options.max = self.upper.clone().map(|id| doc! { "_id": id });
        options.batch_size = Some(batch_size);
        (filter, options)
    }

    /// The range for messages: `[1, 5)`, `(abc, ∞)`.
    pub fn describe(&self) -> String {
        let lower = match &self.lower {
            Bound::Unbounded => "(-∞".to_string(),
            Bound::Included(id) => format!("[{}", extended_json_value(id)),
            Bound::Excluded(id) => format!("({}", extended_json_value(id)),
        };
        let upper = self
            .upper
            .as_ref()
            .map_or_else(|| "∞".to_string(), extended_json_value);
        format!("{lower}, {upper})")
    }
}

/// How a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanConsistency {
    /// Read concern `majority`.
    Majority,
    /// A snapshot session at this cluster time (read concern `snapshot`,
    /// `atClusterTime`).
    SnapshotAt(Timestamp),
}

/// Splits `collection`'s `_id`s into up to `parts` ranges of about equal
/// size, in `_id` order, together covering every `_id` (see the module
/// documentation for how). Fewer ranges when the collection has fewer
/// documents than `parts`.
pub async fn split_id_ranges(
    collection: &Collection<Document>,
    parts: usize,
) -> Result<Vec<IdRange>, MongoError> {
    let namespace = collection.namespace();
    let context = format!("splitting {namespace} into ranges");
    let count = collection
        .estimated_document_count()
        .await
        .map_err(|e| MongoError::from_driver(e, &context))?;
    let parts = parts.max(1) as u64;
    let mut bounds: Vec<Bson> = Vec::new();
    for part in 1..parts {
        let skip = count * part / parts;
        if skip == 0 {
            continue;
        }
        let boundary = collection
            .find_one(doc! {})
            .sort(doc! { "_id": 1 })
            .projection(doc! { "_id": 1 })
            .hint(Hint::Keys(doc! { "_id": 1 }))
            .skip(skip)
            .await
            .map_err(|e| MongoError::from_driver(e, &context))?;
        // The estimate may exceed the documents left: no more boundaries.
        let Some(id) = boundary.and_then(|mut d| d.remove("_id")) else {
            break;
        };
        if bounds.last() != Some(&id) {
            bounds.push(id);
        }
    }
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut lower = Bound::Unbounded;
    for bound in bounds {
        ranges.push(IdRange {
            lower,
            upper: Some(bound.clone()),
        });
        lower = Bound::Included(bound);
    }
    ranges.push(IdRange { lower, upper: None });
    Ok(ranges)
}

#[derive(Debug)]
enum ScanCursor {
    Plain(Cursor<Document>),
    Snapshot {
        cursor: SessionCursor<Document>,
        session: Box<ClientSession>,
    },
}

/// Documents of one range in `_id` order.
#[derive(Debug)]
pub struct RangeScan {
    cursor: ScanCursor,
    range: IdRange,
    last_id: Option<Bson>,
    context: String,
}

/// Starts reading `range` of `collection`, `batch_size` documents per
/// round trip.
pub async fn scan_range(
    collection: &Collection<Document>,
    range: &IdRange,
    batch_size: u32,
    consistency: ScanConsistency,
) -> Result<RangeScan, MongoError> {
    let context = format!(
        "reading {} _id range {}",
        collection.namespace(),
        range.describe()
    );
    let (filter, mut options) = range.query(batch_size);
    let cursor = match consistency {
        ScanConsistency::Majority => {
            options.read_concern = Some(ReadConcern::majority());
            let cursor = collection
                .find(filter)
                .with_options(options)
                .await
                .map_err(|e| MongoError::from_driver(e, &context))?;
            ScanCursor::Plain(cursor)
        }
        ScanConsistency::SnapshotAt(time) => {
            let mut session = collection
                .client()
                .start_session()
                .snapshot(true)
                .snapshot_time(time)
                .await
                .map_err(|e| MongoError::from_driver(e, &context))?;
            let cursor = collection
                .find(filter)
                .with_options(options)
                .session(&mut session)
                .await
                .map_err(|e| MongoError::from_driver(e, &context))?;
            ScanCursor::Snapshot {
                cursor,
                session: Box::new(session),
            }
        }
    };
    Ok(RangeScan {
        cursor,
        range: range.clone(),
        last_id: None,
        context,
    })
}

impl RangeScan {
    /// The next document, `None` at the end of the range.
    pub async fn next_document(&mut self) -> Result<Option<Document>, MongoError> {
        let next = match &mut self.cursor {
            ScanCursor::Plain(cursor) => cursor.try_next().await,
            ScanCursor::Snapshot { cursor, session } => cursor.next(session).await.transpose(),
        }
        .map_err(|e| MongoError::from_driver(e, &self.context))?;
        if let Some(document) = &next {
            self.last_id = document.get("_id").cloned();
        }
        Ok(next)
    }

    /// The `_id` of the last document returned.
    pub fn last_id(&self) -> Option<&Bson> {
        self.last_id.as_ref()
    }

    /// What is left of the range: resume a scan interrupted after the last
    /// document it returned with this.
    pub fn remaining(&self) -> IdRange {
        match &self.last_id {
            Some(id) => self.range.after(id.clone()),
            None => self.range.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;

    #[test]
    fn whole_collections_are_read_in_id_order_without_bounds() {
        let (filter, options) = IdRange::all().query(500);
        assert_eq!(filter, doc! {});
        assert_eq!(options.sort, Some(doc! { "_id": 1 }));
        assert!(matches!(options.hint, Some(Hint::Keys(ref keys)) if *keys == doc! { "_id": 1 }));
        assert_eq!(options.min, None);
        assert_eq!(options.max, None);
        assert_eq!(options.batch_size, Some(500));
    }

    #[test]
    fn ranges_are_index_bounds() {
        let range = IdRange {
            lower: Bound::Included(Bson::Int32(10)),
            upper: Some(Bson::String("m".into())),
        };
        let (filter, options) = range.query(10);
        assert_eq!(filter, doc! {});
        assert_eq!(options.min, Some(doc! { "_id": 10 }));
        assert_eq!(options.max, Some(doc! { "_id": "m" }));
        assert_eq!(range.describe(), r#"[{"$numberInt":"10"}, "m")"#);
    }

    #[test]
    fn resumed_ranges_start_after_the_last_id() {
        let id = ObjectId::parse_str("599af247bb69cd89961c986d").unwrap();
        let range = IdRange {
            lower: Bound::Included(Bson::Int32(10)),
            upper: Some(Bson::Int32(20)),
        };
        let resumed = range.after(Bson::ObjectId(id));
        let (filter, options) = resumed.query(10);
        assert_eq!(filter, doc! { "_id": { "$ne": id } });
        assert_eq!(options.min, Some(doc! { "_id": id }));
        assert_eq!(options.max, Some(doc! { "_id": 20 }), "the end stays");
        assert!(resumed.describe().starts_with(r#"({"$oid":"#));
    }
}
