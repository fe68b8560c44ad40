//! The initial copy of a MongoDB source: every captured collection read in
//! `_id` order, before the change stream starts at the cluster time taken
//! before the copy.
//!
//! Reads use read concern `majority` and no snapshot (a snapshot read is
//! bounded by the server's ~5-minute snapshot window, which a large
//! collection outlasts): a document changed while the copy runs may be read
//! in its newer state, and the change stream, starting at the cluster time
//! taken *before* the copy, replays that change on top (full documents or
//! deletes), so the lake converges to the collection. Each batch of
//! `snapshot_batch` documents is durable with the `_id` it ended at (the
//! cursor, as Extended JSON): after a crash the copy continues there.

use tributary_mongodb::bson::{Bson, Document};
use tributary_mongodb::mongodb::Client;
use tributary_mongodb::{IdRange, MongoError, RangeScan, ScanConsistency, scan_range};

use crate::snapshot::ChunkCursor;
use crate::source::SourceError;

/// One collection's scan.
#[derive(Debug)]
pub struct CollectionCopy {
    pub collection: String,
    scan: RangeScan,
    batch: u32,
}

/// A batch of documents and where the next starts (`None`: done).
#[derive(Debug)]
pub struct CopyBatch {
    pub documents: Vec<Document>,
    pub next: Option<ChunkCursor>,
}

impl CollectionCopy {
    /// Starts (or continues after `cursor`) the scan of `collection`.
    pub async fn open(
        client: &Client,
        database: &str,
        collection: &str,
        cursor: Option<&ChunkCursor>,
        batch: u32,
    ) -> Result<CollectionCopy, SourceError> {
        let range = match cursor {
            None => IdRange::all(),
            Some(cursor) => IdRange::all().after(cursor_id(cursor).ok_or_else(|| {
                SourceError::definite(format!(
                    "snapshot cursor {cursor:?} of {database}.{collection} cannot be read; remove the collection's pending entry from the checkpoint and snapshot it again"
                ))
            })?),
        };
        let handle = client.database(database).collection::<Document>(collection);
        let scan = scan_range(&handle, &range, batch, ScanConsistency::Majority)
            .await
            .map_err(source_error)?;
        Ok(CollectionCopy {
            collection: collection.to_string(),
            scan,
            batch,
        })
    }

    /// The next batch (possibly empty, then `next` is `None`).
    pub async fn next_batch(&mut self) -> Result<CopyBatch, SourceError> {
        let mut documents = Vec::new();
        while documents.len() < self.batch as usize {
            match self.scan.next_document().await.map_err(source_error)? {
                Some(document) => documents.push(document),
                None => {
                    return Ok(CopyBatch {
                        documents,
                        next: None,
                    });
                }
            }
        }
        let next = self.scan.last_id().map(|id| ChunkCursor::KeyAfter {
            values: vec![tributary_mongodb::extended_json_value(id)],
        });
        Ok(CopyBatch { documents, next })
    }
}

/// One chunk of an incremental snapshot: up to `batch` documents after
/// `cursor`, read in a snapshot at cluster time `at` (exactly the
/// collection as of `at`; see `super` for where the chunk is placed).
pub async fn read_chunk_at(
    client: &Client,
    database: &str,
    collection: &str,
    cursor: Option<&ChunkCursor>,
    batch: u32,
    at: tributary_mongodb::bson::Timestamp,
) -> Result<CopyBatch, SourceError> {
    let range = match cursor {
        None => IdRange::all(),
        Some(cursor) => IdRange::all().after(cursor_id(cursor).ok_or_else(|| {
            SourceError::definite(format!(
                "snapshot cursor {cursor:?} of {database}.{collection} cannot be read; request the snapshot again"
            ))
        })?),
    };
    let handle = client.database(database).collection::<Document>(collection);
    let mut scan = scan_range(&handle, &range, batch, ScanConsistency::SnapshotAt(at))
        .await
        .map_err(source_error)?;
    let mut documents = Vec::new();
    while documents.len() < batch as usize {
        match scan.next_document().await.map_err(source_error)? {
            Some(document) => documents.push(document),
            None => {
                return Ok(CopyBatch {
                    documents,
                    next: None,
                });
            }
        }
    }
    let next = scan.last_id().map(|id| ChunkCursor::KeyAfter {
        values: vec![tributary_mongodb::extended_json_value(id)],
    });
    Ok(CopyBatch { documents, next })
}

/// The `_id` a cursor holds (canonical Extended JSON).
fn cursor_id(cursor: &ChunkCursor) -> Option<Bson> {
    let ChunkCursor::KeyAfter { values } = cursor else {
        return None;
    };
    let json: serde_json::Value = serde_json::from_str(values.first()?).ok()?;
    Bson::try_from(json).ok()
}

pub fn source_error(error: MongoError) -> SourceError {
    if error.is_transient() {
        SourceError::Transient {
            message: error.to_string(),
        }
    } else {
        SourceError::Definite {
            message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_mongodb::bson::oid::ObjectId;

    #[test]
    fn cursors_hold_any_id_type() {
        for id in [
            Bson::Int32(7),
            Bson::Int64(1 << 40),
            Bson::String("a\"b".into()),
            Bson::ObjectId(ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap()),
            Bson::Document(tributary_mongodb::bson::doc! { "a": 1i32, "b": "x" }),
        ] {
            let cursor = ChunkCursor::KeyAfter {
                values: vec![tributary_mongodb::extended_json_value(&id)],
            };
            assert_eq!(cursor_id(&cursor), Some(id));
        }
    }
}
