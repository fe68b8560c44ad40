//! A scripted MongoDB server: answers what the driver and the connector
//! send (`hello`/`isMaster`, `ping`, `buildInfo`, `endSessions`,
//! `listCollections`, `aggregate` with `$changeStream`, `getMore`,
//! `killCursors`, and `count`/`find` on one collection) from a [`Script`],
//! and records every command so tests can assert what the server saw.
//!
//! The change stream serves the script's recorded events in order, in
//! batches of the planned sizes. Resume tokens encode a position in the
//! event list: event `i` has `{_data: "<i + 1 as 16 hex digits>01"}` (its
//! position after it), the `postBatchResumeToken` of an empty batch is
//! `"<position>02"` (a high-water mark, as real servers send); an
//! `aggregate` with `startAfter`/`resumeAfter` continues after the token's
//! position, and fails with `ChangeStreamHistoryLost` (286) when that
//! position is older than [`Script::oldest_position`] (the oplog rolled
//! over).
//!
//! `find` reads [`Script::documents`] (integer `_id`s, kept sorted) with
//! what the snapshot helpers send: `min`/`max` index bounds on `_id`, a
//! `{_id: {$ne: …}}` filter, `skip`, `limit`, an `_id`-only projection, and
//! `getMore` for the rest.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mongodb::bson::{Binary, Bson, DateTime, Document, Timestamp, doc, spec::BinarySubtype};
use tokio::net::{TcpListener, TcpStream};

use super::framing::{read_request, write_reply};

/// What the server is and what its change stream holds.
#[derive(Debug, Clone)]
pub struct Script {
    /// A replica set primary (`setName: "rs0"`) or a standalone.
    pub replica_set: bool,
    /// Change events (their `_id` is replaced by the positional token).
    pub events: Vec<Document>,
    /// Sizes of the first batch and of each `getMore` batch after it;
    /// `default_batch` once used up.
    pub batches: Vec<usize>,
    pub default_batch: usize,
    /// Close the connection instead of answering these `getMore`s
    /// (1-based, counted over the server's life).
    pub close_on_get_more: Vec<usize>,
    /// Tokens before this position are lost.
    pub oldest_position: usize,
    /// `listCollections` entries.
    pub collections: Vec<Document>,
    /// `buildInfo.version`.
    pub version: String,
    /// The documents `find` reads, sorted by their integer `_id`s.
    pub documents: Vec<Document>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            replica_set: true,
            events: Vec::new(),
            batches: Vec::new(),
            default_batch: 2,
            close_on_get_more: Vec::new(),
            oldest_position: 0,
            collections: Vec::new(),
            version: "7.0.14".into(),
            documents: Vec::new(),
        }
    }
}

/// The cluster time every reply reports.
pub const CLUSTER_TIME: Timestamp = Timestamp {
    time: 1_700_000_000,
    increment: 7,
};

/// The resume token after `position` events: an event's own (`kind` 1)
/// or an empty batch's high-water mark (`kind` 2).
pub fn token(position: usize, kind: u8) -> Document {
    doc! { "_data": format!("{position:016X}{kind:02X}") }
}

fn token_position(token: &Document) -> Option<usize> {
    let data = token.get_str("_data").ok()?;
    usize::from_str_radix(data.get(..16)?, 16).ok()
}

#[derive(Debug)]
struct State {
    script: Script,
    commands: Vec<Document>,
    batches: VecDeque<usize>,
    /// Next event of the open cursor.
    position: usize,
    cursor_ns: String,
    get_mores: usize,
    /// What each open `find` cursor has left, and its namespace (several
    /// may be open at once: parallel range scans).
    found: std::collections::HashMap<i64, (String, VecDeque<Document>)>,
    next_find_cursor: i64,
}

/// Cursor ids: the change stream's and the `find`'s.
const CHANGE_STREAM_CURSOR: i64 = 42;
const FIRST_FIND_CURSOR: i64 = 43;

/// A running scripted server.
#[derive(Debug, Clone)]
pub struct ScriptedServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

/// What to do with a request.
enum Answer {
    Reply(Document),
    Hangup,
}

impl ScriptedServer {
    /// Listens on 127.0.0.1 (any free port) and serves `script`.
    pub async fn start(script: Script) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            batches: script.batches.iter().copied().collect(),
            script,
            commands: Vec::new(),
            position: 0,
            cursor_ns: String::new(),
            get_mores: 0,
            found: std::collections::HashMap::new(),
            next_find_cursor: FIRST_FIND_CURSOR,
        }));
        let server = ScriptedServer { port, state };
        let serving = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(stream));
            }
        });
        server
    }

    /// The connection string (direct connection, short timeouts).
    pub fn uri(&self) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=5000&connectTimeoutMS=2000",
            self.port
        )
    }

    /// Commands received with this name, in order.
    pub fn commands(&self, name: &str) -> Vec<Document> {
        let state = self.state.lock().unwrap();
        state
            .commands
            .iter()
            .filter(|c| c.keys().next().map(String::as_str) == Some(name))
            .cloned()
            .collect()
    }

    /// The `$changeStream` stage of every `aggregate` received.
    pub fn change_stream_stages(&self) -> Vec<Document> {
        self.commands("aggregate")
            .iter()
            .filter_map(|c| {
                c.get_array("pipeline")
                    .ok()?
                    .first()?
                    .as_document()?
                    .get_document("$changeStream")
                    .ok()
                    .cloned()
            })
            .collect()
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut reply_id = 1;
        while let Ok(Some(request)) = read_request(&mut stream).await {
            match self.answer(request.command) {
                Answer::Reply(reply) => {
                    reply_id += 1;
                    if write_reply(&mut stream, reply_id, request.request_id, &reply)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Answer::Hangup => return,
            }
        }
    }

    fn answer(&self, command: Document) -> Answer {
        let mut state = self.state.lock().unwrap();
        state.commands.push(command.clone());
        let name = command.keys().next().cloned().unwrap_or_default();
        let reply = match name.as_str() {
            "hello" | "isMaster" | "ismaster" => hello(&state.script, self.port),
            "ping" | "endSessions" => doc! { "ok": 1.0 },
            "buildInfo" | "buildinfo" => {
                doc! { "version": state.script.version.clone(), "ok": 1.0 }
            }
            "listCollections" => doc! {
                "cursor": {
                    "id": 0_i64,
                    "ns": format!("{}.$cmd.listCollections", command.get_str("$db").unwrap_or("test")),
                    "firstBatch": state.script.collections.iter().cloned().map(Bson::Document).collect::<Vec<_>>(),
                },
                "ok": 1.0,
            },
            "aggregate" => state.open_change_stream(&command),
            "count" => doc! { "n": state.script.documents.len() as i32, "ok": 1.0 },
            "find" => state.find(&command),
            "getMore"
                if command
                    .get_i64("getMore")
                    .is_ok_and(|id| state.found.contains_key(&id)) =>
            {
                let size = command.get_i32("batchSize").unwrap_or(101) as usize;
                let id = command.get_i64("getMore").unwrap();
                state.found_batch(id, size, "nextBatch", false)
            }
            "getMore" => {
                state.get_mores += 1;
                if state.script.close_on_get_more.contains(&state.get_mores) {
                    return Answer::Hangup;
                }
                state.next_batch("nextBatch")
            }
            "killCursors" => doc! {
                "cursorsKilled": command.get_array("cursors").cloned().unwrap_or_default(),
                "cursorsNotFound": [], "cursorsAlive": [], "cursorsUnknown": [],
                "ok": 1.0,
            },
            other => doc! {
                "ok": 0.0,
                "errmsg": format!("no such command: '{other}'"),
                "code": 59,
                "codeName": "CommandNotFound",
            },
        };
        Answer::Reply(with_times(&state.script, reply))
    }
}

impl State {
    fn open_change_stream(&mut self, command: &Document) -> Document {
        let stage = command
            .get_array("pipeline")
            .ok()
            .and_then(|p| p.first())
            .and_then(Bson::as_document)
            .and_then(|s| s.get_document("$changeStream").ok());
        let Some(stage) = stage else {
            return doc! { "ok": 0.0, "errmsg": "only $changeStream aggregates are scripted", "code": 2, "codeName": "BadValue" };
        };
        let start = ["startAfter", "resumeAfter"]
            .iter()
            .find_map(|option| stage.get_document(option).ok());
        let position = match start {
            None => 0,
            Some(token) => match token_position(token) {
                Some(position) if position >= self.script.oldest_position => position,
                _ => {
                    return doc! {
                        "ok": 0.0,
                        "errmsg": "PlanExecutor error during aggregation :: caused by :: Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
                        "code": 286,
                        "codeName": "ChangeStreamHistoryLost",
                    };
                }
            },
        };
        self.position = position;
        let collection = match command.get("aggregate") {
            Some(Bson::String(name)) => name.clone(),
            _ => "$cmd.aggregate".into(),
        };
        self.cursor_ns = format!("{}.{collection}", command.get_str("$db").unwrap_or("test"));
        self.next_batch("firstBatch")
    }

    fn next_batch(&mut self, field: &str) -> Document {
        let size = self
            .batches
            .pop_front()
            .unwrap_or(self.script.default_batch);
        let end = (self.position + size).min(self.script.events.len());
        let events: Vec<Bson> = (self.position..end)
            .map(|i| {
                let mut event = self.script.events[i].clone();
                event.insert("_id", token(i + 1, 1));
                Bson::Document(event)
            })
            .collect();
        let post_batch = if end > self.position {
            token(end, 1)
        } else {
            token(self.position, 2)
        };
        self.position = end;
        doc! {
            "cursor": {
                field: events,
                "postBatchResumeToken": post_batch,
                "id": CHANGE_STREAM_CURSOR,
                "ns": self.cursor_ns.clone(),
            },
            "ok": 1.0,
        }
    }

    fn find(&mut self, command: &Document) -> Document {
        let id_of = |d: &Document| d.get("_id").and_then(integer);
        let bound = |name: &str| {
            command
                .get_document(name)
                .ok()
                .and_then(|b| b.get("_id"))
                .and_then(integer)
        };
        let (min, max) = (bound("min"), bound("max"));
        let excluded = command
            .get_document("filter")
            .ok()
            .and_then(|f| f.get_document("_id").ok())
            .and_then(|c| c.get("$ne"))
            .and_then(integer);
        let ids_only = command.get_document("projection").ok() == Some(&doc! { "_id": 1 });
        let skip = command.get_i64("skip").unwrap_or(0) as usize;
        let limit = command
            .get_i64("limit")
            .map_or(usize::MAX, |l| l.unsigned_abs() as usize);
        let found: VecDeque<Document> = self
            .script
            .documents
            .iter()
            .filter(|d| {
                let id = id_of(d).unwrap();
                min.is_none_or(|min| id >= min)
                    && max.is_none_or(|max| id < max)
                    && excluded != Some(id)
            })
            .skip(skip)
            .take(limit)
            .map(|d| {
                if ids_only {
                    doc! { "_id": d.get("_id").unwrap().clone() }
                } else {
                    d.clone()
                }
            })
            .collect();
        let size = command.get_i32("batchSize").unwrap_or(101) as usize;
        let single = command.get_bool("singleBatch").unwrap_or(false);
        let ns = format!(
            "{}.{}",
            command.get_str("$db").unwrap_or("test"),
            command.get_str("find").unwrap_or("c")
        );
        let id = self.next_find_cursor;
        self.next_find_cursor += 1;
        self.found.insert(id, (ns, found));
        self.found_batch(id, size, "firstBatch", single)
    }

    fn found_batch(&mut self, cursor: i64, size: usize, field: &str, single: bool) -> Document {
        let (ns, found) = self.found.get_mut(&cursor).expect("an open find cursor");
        let take = size.min(found.len());
        let batch: Vec<Bson> = found.drain(..take).map(Bson::Document).collect();
        let ns = ns.clone();
        let id = if single || found.is_empty() {
            self.found.remove(&cursor);
            0
        } else {
            cursor
        };
        doc! {
            "cursor": { field: batch, "id": id, "ns": ns },
            "ok": 1.0,
        }
    }
}

fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

fn hello(script: &Script, port: u16) -> Document {
    let mut reply = doc! {
        "helloOk": true,
        "isWritablePrimary": true,
        "ismaster": true,
        "maxBsonObjectSize": 16_777_216,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "localTime": DateTime::now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "readOnly": false,
        "ok": 1.0,
    };
    if script.replica_set {
        reply.insert("setName", "rs0");
        reply.insert("setVersion", 1);
        reply.insert("hosts", vec![Bson::String(format!("127.0.0.1:{port}"))]);
        reply.insert("primary", format!("127.0.0.1:{port}"));
        reply.insert("me", format!("127.0.0.1:{port}"));
        reply.insert("secondary", false);
    }
    reply
}

/// Replica set replies carry `$clusterTime` and `operationTime`.
fn with_times(script: &Script, mut reply: Document) -> Document {
    if script.replica_set {
        reply.insert("operationTime", CLUSTER_TIME);
        reply.insert(
            "$clusterTime",
            doc! {
                "clusterTime": CLUSTER_TIME,
                "signature": {
                    "hash": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] },
                    "keyId": 0_i64,
                },
            },
        );
    }
    reply
}
