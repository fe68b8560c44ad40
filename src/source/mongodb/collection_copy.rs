//! The initial copy of a MongoDB source: every captured collection split
//! into `_id` ranges (`snapshot_parallelism` of them, by `_id` index
//! position) read in parallel, before the change stream starts at the
//! cluster time taken before the copy.
//!
//! Reads use read concern `majority` and no snapshot (a snapshot read is
//! bounded by the server's ~5-minute snapshot window, which a large
//! collection outlasts): a document changed while the copy runs may be read
//! in its newer state, and the change stream, starting at the cluster time
//! taken *before* the copy, replays that change on top (full documents or
//! deletes), so the lake converges to the collection. Each batch of
//! `snapshot_batch` documents is durable with the state of every range
//! (the cursor: one entry per unfinished range, its bounds as Extended
//! JSON): after a crash each range continues where it stopped.

use std::ops::Bound;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tributary_mongodb::bson::{Bson, Document};
use tributary_mongodb::mongodb::Client;
use tributary_mongodb::{
    IdRange, RangeScan, ScanConsistency, extended_json_value, scan_range, split_id_ranges,
};

use super::document_row::bson_from_extended_json;

use crate::snapshot::ChunkCursor;
use crate::source::SourceError;

/// A batch of one range.
#[derive(Debug)]
struct RangeBatch {
    range: usize,
    documents: Vec<Document>,
    /// The range is read to its end.
    done: bool,
}

/// One collection's parallel copy.
#[derive(Debug)]
pub struct CollectionCopy {
    pub collection: String,
    /// Every range of the copy and what is left of it (`None`: done).
    ranges: Vec<Option<IdRange>>,
    batches: mpsc::Receiver<Result<RangeBatch, SourceError>>,
    /// The range readers; aborted when the copy is dropped.
    _readers: JoinSet<()>,
}

/// A batch of documents and where the copy stands after it (`None`: done).
#[derive(Debug)]
pub struct CopyBatch {
    pub documents: Vec<Document>,
    pub next: Option<ChunkCursor>,
}

impl CollectionCopy {
    /// Starts the copy of `collection` (split into `parallelism` ranges), or
    /// continues the unfinished ranges `cursor` records.
    pub async fn open(
        client: &Client,
        database: &str,
        collection: &str,
        cursor: Option<&ChunkCursor>,
        batch: u32,
        parallelism: usize,
    ) -> Result<CollectionCopy, SourceError> {
        let handle = client.database(database).collection::<Document>(collection);
        let ranges = match cursor {
            None => split_id_ranges(&handle, parallelism)
                .await
                .map_err(SourceError::from)?,
            Some(cursor) => decode_ranges(cursor).ok_or_else(|| {
                SourceError::definite(format!(
                    "snapshot cursor {cursor:?} of {database}.{collection} cannot be read; reset the checkpoint (--to current) to copy again"
                ))
            })?,
        };
        let (send, batches) = mpsc::channel(ranges.len().max(1) * 2);
        let mut readers = JoinSet::new();
        for (index, range) in ranges.iter().enumerate() {
            let (handle, range, send) = (handle.clone(), range.clone(), send.clone());
            readers.spawn(async move {
                let result = read_range(&handle, index, &range, batch, &send).await;
                if let Err(e) = result {
                    let _ = send.send(Err(e)).await;
                }
            });
        }
        Ok(CollectionCopy {
            collection: collection.to_string(),
            ranges: ranges.into_iter().map(Some).collect(),
            batches,
            _readers: readers,
        })
    }

    /// The next batch of any range, with the cursor of the whole copy after
    /// it (`next: None` once every range is done).
    pub async fn next_batch(&mut self) -> Result<CopyBatch, SourceError> {
        if self.ranges.iter().all(Option::is_none) {
            return Ok(CopyBatch {
                documents: Vec::new(),
                next: None,
            });
        }
        let batch = self
            .batches
            .recv()
            .await
            .ok_or_else(|| SourceError::Transient {
                message: format!("the readers of {} stopped", self.collection),
            })??;
        let slot = &mut self.ranges[batch.range];
        if batch.done {
            *slot = None;
        } else if let (Some(range), Some(last)) = (slot.as_ref(), batch.documents.last()) {
            let last_id = last.get("_id").cloned().unwrap_or(Bson::Null);
            *slot = Some(range.after(last_id));
        }
        let next = (!self.ranges.iter().all(Option::is_none)).then(|| encode_ranges(&self.ranges));
        Ok(CopyBatch {
            documents: batch.documents,
            next,
        })
    }
}

/// Reads one range to its end in batches.
async fn read_range(
    collection: &tributary_mongodb::mongodb::Collection<Document>,
    index: usize,
    range: &IdRange,
    batch: u32,
    send: &mpsc::Sender<Result<RangeBatch, SourceError>>,
) -> Result<(), SourceError> {
    let mut scan = scan_range(collection, range, batch, ScanConsistency::Majority)
        .await
        .map_err(SourceError::from)?;
    loop {
        let (documents, done) = read_batch(&mut scan, batch).await?;
        if send
            .send(Ok(RangeBatch {
                range: index,
                documents,
                done,
            }))
            .await
            .is_err()
            || done
        {
            return Ok(());
        }
    }
}

/// Unfinished ranges as a cursor: one JSON object per range,
/// `{"lower": {"from"|"after": <id>} | null, "upper": <id> | null}`.
fn encode_ranges(ranges: &[Option<IdRange>]) -> ChunkCursor {
    ChunkCursor::KeyAfter {
        values: ranges
            .iter()
            .flatten()
            .map(|range| {
                let id = |b: &Bson| serde_json::Value::String(extended_json_value(b));
                let lower = match &range.lower {
                    Bound::Unbounded => serde_json::Value::Null,
                    Bound::Included(b) => serde_json::json!({ "from": id(b) }),
                    Bound::Excluded(b) => serde_json::json!({ "after": id(b) }),
                };
                let upper = range.upper.as_ref().map_or(serde_json::Value::Null, id);
                serde_json::json!({ "lower": lower, "upper": upper }).to_string()
            })
            .collect(),
    }
}

/// Inverse of [`encode_ranges`].
fn decode_ranges(cursor: &ChunkCursor) -> Option<Vec<IdRange>> {
    let ChunkCursor::KeyAfter { values } = cursor else {
        return None;
    };
    let id = |v: &serde_json::Value| bson_from_extended_json(v.as_str()?);
    values
        .iter()
        .map(|text| {
            let range: serde_json::Value = serde_json::from_str(text).ok()?;
            let lower = match &range["lower"] {
                serde_json::Value::Null => Bound::Unbounded,
                l if l.get("from").is_some() => Bound::Included(id(&l["from"])?),
                l => Bound::Excluded(id(l.get("after")?)?),
            };
            let upper = match &range["upper"] {
                serde_json::Value::Null => None,
                u => Some(id(u)?),
            };
            Some(IdRange { lower, upper })
        })
        .collect()
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
        .map_err(SourceError::from)?;
    let (documents, done) = read_batch(&mut scan, batch).await?;
    let next = match (done, scan.last_id()) {
        (false, Some(id)) => Some(ChunkCursor::KeyAfter {
            values: vec![extended_json_value(id)],
        }),
        _ => None,
    };
    Ok(CopyBatch { documents, next })
}

/// Up to `batch` documents of `scan`, and whether it reached its end.
async fn read_batch(
    scan: &mut RangeScan,
    batch: u32,
) -> Result<(Vec<Document>, bool), SourceError> {
    let mut documents = Vec::with_capacity(batch as usize);
    while documents.len() < batch as usize {
        match scan.next_document().await.map_err(SourceError::from)? {
            Some(document) => documents.push(document),
            None => return Ok((documents, true)),
        }
    }
    Ok((documents, false))
}

/// The `_id` a cursor holds (canonical Extended JSON).
fn cursor_id(cursor: &ChunkCursor) -> Option<Bson> {
    let ChunkCursor::KeyAfter { values } = cursor else {
        return None;
    };
    bson_from_extended_json(values.first()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_mongodb::bson::oid::ObjectId;

    #[test]
    fn range_cursors_round_trip() {
        let ranges = vec![
            Some(IdRange {
                lower: Bound::Unbounded,
                upper: Some(Bson::Int32(10)),
            }),
            None,
            Some(IdRange {
                lower: Bound::Excluded(Bson::String("a\"b".into())),
                upper: None,
            }),
            Some(IdRange {
                lower: Bound::Included(Bson::ObjectId(
                    ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap(),
                )),
                upper: Some(Bson::Document(tributary_mongodb::bson::doc! { "a": 1i32 })),
            }),
        ];
        let decoded = decode_ranges(&encode_ranges(&ranges)).unwrap();
        let expected: Vec<IdRange> = ranges.into_iter().flatten().collect();
        assert_eq!(decoded, expected);
    }

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
