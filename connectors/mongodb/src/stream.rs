//! The change stream of a database (optionally narrowed to some of its
//! collections) or of one collection, as decoded [`ChangeEvent`]s and the
//! resume token after each.
//!
//! Built on the driver's `watch()`: the driver already resumes by itself
//! once after a resumable error (network error, election, `CursorNotFound`:
//! it reruns the `aggregate` with `resumeAfter` the last token it cached),
//! so a dropped connection costs no event. What does reach the caller is
//! classified by [`MongoError`]: transient ones mean "reopen with backoff
//! from the last checkpoint", definite ones carry the fix.
//!
//! Delivery is at least once: the daemon checkpoints the
//! [`MongoChangeStream::resume_token`] of the last event it made durable
//! and reopens with [`StartAt::After`] (`startAfter`, which also works
//! after an `invalidate`), so events after the checkpoint may arrive again.
//! Events are read as plain documents (`with_type::<Document>()`) and
//! decoded by [`ChangeEvent::from_document`], so fields a newer server
//! adds never break the stream.

use std::time::Duration;

use mongodb::Client;
use mongodb::bson::{Bson, Document, Timestamp, doc};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::ResumeToken;
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};

use crate::error::MongoError;
use crate::event::ChangeEvent;
use crate::extended_json::extended_json;

/// Where a new stream starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StartAt {
    /// With the changes after the stream is opened.
    Now,
    /// After the event with this resume token (`startAfter`; a checkpoint).
    After(Document),
    /// At this cluster time (`startAtOperationTime`; the time taken before
    /// an initial snapshot, see [`crate::cluster_time`]).
    OperationTime(Timestamp),
}

/// What update and delete events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullDocumentMode {
    /// Updates carry the document as it is when the event is read
    /// (`fullDocument: updateLookup`; possibly newer than the event, `None`
    /// when already deleted). Works on every version.
    #[default]
    UpdateLookup,
    /// Updates, replaces and deletes carry the document after and before
    /// the change exactly (`fullDocument: required`,
    /// `fullDocumentBeforeChange: required`): MongoDB 6.0+, with
    /// `changeStreamPreAndPostImages` on for every collection; the stream
    /// fails rather than send an event without its images.
    Required,
}

/// What to watch and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeStreamConfig {
    /// The database.
    pub database: String,
    /// Collections to keep: none for the whole database, one to watch that
    /// collection alone, several for a database stream filtered on
    /// `ns.coll` (see [`collection_filter`]).
    pub collections: Vec<String>,
    /// Where to start.
    pub start: StartAt,
    /// Full-document mode.
    pub full_document: FullDocumentMode,
    /// Events per batch (server default when `None`).
    pub batch_size: Option<u32>,
    /// How long the server waits for new events before answering a
    /// `getMore` with an empty batch (server default, 1 s, when `None`).
    pub max_await_time: Option<Duration>,
}

impl ChangeStreamConfig {
    /// The whole database, from now, with `updateLookup`.
    pub fn new(database: &str) -> ChangeStreamConfig {
        ChangeStreamConfig {
            database: database.to_string(),
            collections: Vec::new(),
            start: StartAt::Now,
            full_document: FullDocumentMode::UpdateLookup,
            batch_size: None,
            max_await_time: None,
        }
    }

    /// What the stream watches, for messages: `shop`, `shop.orders`,
    /// `shop.{orders,users}`.
    pub fn target(&self) -> String {
        match self.collections.as_slice() {
            [] => self.database.clone(),
            [one] => format!("{}.{one}", self.database),
            many => format!("{}.{{{}}}", self.database, many.join(",")),
        }
    }
}

/// The `$match` stage that narrows a database stream to `collections`:
/// events on them (`ns.coll`), renames onto them (`to.coll`), and the
/// events without a collection (`dropDatabase`, `invalidate`).
pub fn collection_filter(collections: &[String]) -> Document {
    let names: Vec<Bson> = collections.iter().cloned().map(Bson::String).collect();
    doc! {
        "$match": {
            "$or": [
                { "ns.coll": { "$in": names.clone() } },
                { "to.coll": { "$in": names } },
                { "ns.coll": { "$exists": false } },
            ]
        }
    }
}

/// An open change stream.
#[derive(Debug)]
pub struct MongoChangeStream {
    stream: ChangeStream<Document>,
    target: String,
}

impl MongoChangeStream {
    /// Opens the stream `config` describes (runs the `aggregate` with the
    /// `$changeStream` stage).
    pub async fn open(
        client: &Client,
        config: &ChangeStreamConfig,
    ) -> Result<MongoChangeStream, MongoError> {
        let target = config.target();
        let database = client.database(&config.database);
        let single = match config.collections.as_slice() {
            [one] => Some(database.collection::<Document>(one)),
            _ => None,
        };
        let mut pipeline = Vec::new();
        let watch = match (&single, config.collections.as_slice()) {
            (Some(collection), _) => collection.watch(),
            (None, []) => database.watch(),
            (None, many) => {
                pipeline.push(collection_filter(many));
                database.watch()
            }
        };
        let mut watch = watch.pipeline(pipeline);
        if let Some(size) = config.batch_size {
            watch = watch.batch_size(size);
        }
        if let Some(wait) = config.max_await_time {
            watch = watch.max_await_time(wait);
        }
        watch = match config.full_document {
            FullDocumentMode::UpdateLookup => watch.full_document(FullDocumentType::UpdateLookup),
            FullDocumentMode::Required => watch
                .full_document(FullDocumentType::Required)
                .full_document_before_change(FullDocumentBeforeChangeType::Required),
        };
        watch = match &config.start {
            StartAt::Now => watch,
            StartAt::After(token) => watch.start_after(token_from_document(token)?),
            StartAt::OperationTime(time) => watch.start_at_operation_time(*time),
        };
        let context = match &config.start {
            StartAt::Now => format!("opening the change stream on {target}"),
            StartAt::After(token) => format!(
                "opening the change stream on {target} after resume token {}",
                extended_json(token)
            ),
            StartAt::OperationTime(time) => format!(
                "opening the change stream on {target} at cluster time {}.{}",
                time.time, time.increment
            ),
        };
        let stream = watch
            .await
            .map_err(|e| MongoError::from_driver(e, &context))?;
        Ok(MongoChangeStream {
            stream: stream.with_type::<Document>(),
            target,
        })
    }

    /// The next event, waiting for one (each empty batch is one `getMore`
    /// that waited `max_await_time` on the server).
    pub async fn next_event(&mut self) -> Result<ChangeEvent, MongoError> {
        loop {
            if let Some(event) = self.try_next_event().await? {
                return Ok(event);
            }
        }
    }

    /// The next event if the current batch or one more `getMore` has one;
    /// `None` after an empty batch, when [`resume_token`](Self::resume_token)
    /// moved to the batch's `postBatchResumeToken` (worth checkpointing
    /// while a watched collection is idle). [`MongoError::StreamClosed`]
    /// once the server closed the stream (after an `invalidate`).
    pub async fn try_next_event(&mut self) -> Result<Option<ChangeEvent>, MongoError> {
        match self.stream.next_if_any().await {
            Ok(Some(raw)) => ChangeEvent::from_document(&raw).map(Some),
            Ok(None) if !self.stream.is_alive() => Err(MongoError::StreamClosed {
                token: self
                    .resume_token()
                    .map_or_else(|| "none".to_string(), |t| extended_json(&t)),
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(MongoError::from_driver(
                e,
                &format!("reading the change stream on {}", self.target),
            )),
        }
    }

    /// The token to resume after the last event returned (its `_id`), or
    /// after the last empty batch (its `postBatchResumeToken`); before any,
    /// the token the stream was opened with, if any.
    pub fn resume_token(&self) -> Option<Document> {
        token_to_document(&self.stream.resume_token()?)
    }
}

/// A resume token document as the driver's type.
fn token_from_document(token: &Document) -> Result<ResumeToken, MongoError> {
    mongodb::bson::from_document(token.clone()).map_err(|e| MongoError::Definite {
        message: format!(
            "resume token {} is not usable ({e}); fix or delete the checkpoint",
            extended_json(token)
        ),
    })
}

/// The driver's resume token as a document (tokens are documents,
/// `{_data: "<hex>"}`).
fn token_to_document(token: &ResumeToken) -> Option<Document> {
    match mongodb::bson::to_bson(token).ok()? {
        Bson::Document(document) => Some(document),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens_convert_both_ways() {
        let token = doc! { "_data": "8263F0A1B2000000012B022C0100296E5A1004" };
        let driver = token_from_document(&token).unwrap();
        assert_eq!(token_to_document(&driver), Some(token));
    }

    #[test]
    fn collection_filters_keep_renames_and_database_events() {
        let filter = collection_filter(&["orders".into(), "users".into()]);
        assert_eq!(
            extended_json(&filter),
            r#"{"$match":{"$or":[{"ns.coll":{"$in":["orders","users"]}},{"to.coll":{"$in":["orders","users"]}},{"ns.coll":{"$exists":false}}]}}"#
        );
    }

    #[test]
    fn targets_name_the_watched_collections() {
        let mut config = ChangeStreamConfig::new("shop");
        assert_eq!(config.target(), "shop");
        config.collections = vec!["orders".into()];
        assert_eq!(config.target(), "shop.orders");
        config.collections.push("users".into());
        assert_eq!(config.target(), "shop.{orders,users}");
    }
}
