//! What a server says about itself in its `hello` reply: replica set,
//! `mongos` or standalone, and the cluster time.
//!
//! Used by [`crate::preflight()`] and, through [`cluster_time`], by the
//! daemon before an initial snapshot: the stream that follows the snapshot
//! starts at that time ([`crate::StartAt::OperationTime`]) so no change
//! made while the snapshot runs is missed.

use mongodb::Client;
use mongodb::bson::{Bson, Document, Timestamp, doc};

use crate::error::MongoError;

const COMMAND_NOT_FOUND: i32 = 59;

/// How the server is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// A replica set member (`setName`).
    ReplicaSet {
        /// The replica set's name.
        name: String,
    },
    /// A sharded cluster's router (`msg: "isdbgrid"`).
    Sharded,
    /// A standalone `mongod`: no oplog, no change streams.
    Standalone,
}

/// The parts of a `hello` reply the connector uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// Replica set, `mongos` or standalone.
    pub topology: Topology,
    /// Whether this server accepts writes (a primary, a `mongos`, a
    /// standalone).
    pub writable_primary: bool,
    /// `maxWireVersion` (21 is MongoDB 7.0, 25 is 8.0).
    pub max_wire_version: Option<i32>,
    /// `$clusterTime.clusterTime` (replica sets and sharded clusters).
    pub cluster_time: Option<Timestamp>,
    /// `operationTime` of the reply.
    pub operation_time: Option<Timestamp>,
}

impl Hello {
    /// Reads a `hello` (or legacy `isMaster`) reply.
    pub fn from_reply(reply: &Document) -> Hello {
        let topology = if let Ok(name) = reply.get_str("setName") {
            Topology::ReplicaSet {
                name: name.to_string(),
            }
        } else if reply.get_str("msg") == Ok("isdbgrid") {
            Topology::Sharded
        } else {
            Topology::Standalone
        };
        let writable_primary = [reply.get("isWritablePrimary"), reply.get("ismaster")]
            .into_iter()
            .any(|flag| flag == Some(&Bson::Boolean(true)));
        let max_wire_version = match reply.get("maxWireVersion") {
            Some(Bson::Int32(n)) => Some(*n),
            Some(Bson::Int64(n)) => i32::try_from(*n).ok(),
            _ => None,
        };
        let cluster_time = reply
            .get_document("$clusterTime")
            .ok()
            .and_then(|ct| ct.get_timestamp("clusterTime").ok());
        Hello {
            topology,
            writable_primary,
            max_wire_version,
            cluster_time,
            operation_time: reply.get_timestamp("operationTime").ok(),
        }
    }
}

/// Runs `hello` (`isMaster` on servers older than 4.4.2) on the admin
/// database.
pub async fn hello(client: &Client) -> Result<Hello, MongoError> {
    let admin = client.database("admin");
    let reply = match admin.run_command(doc! { "hello": 1 }).await {
        Ok(reply) => reply,
        Err(e) if command_not_found(&e) => admin
            .run_command(doc! { "isMaster": 1 })
            .await
            .map_err(|e| MongoError::from_driver(e, "asking the server who it is (isMaster)"))?,
        Err(e) => {
            return Err(MongoError::from_driver(
                e,
                "asking the server who it is (hello)",
            ));
        }
    };
    Ok(Hello::from_reply(&reply))
}

fn command_not_found(error: &mongodb::error::Error) -> bool {
    matches!(
        error.kind.as_ref(),
        mongodb::error::ErrorKind::Command(command) if command.code == COMMAND_NOT_FOUND
    )
}

/// The cluster's current time (`$clusterTime`, else `operationTime`, of a
/// `hello`): where the change stream following an initial snapshot starts.
pub async fn cluster_time(client: &Client) -> Result<Timestamp, MongoError> {
    let hello = hello(client).await?;
    hello
        .cluster_time
        .or(hello.operation_time)
        .ok_or_else(|| match hello.topology {
            Topology::Standalone => MongoError::NotReplicaSet {
                context: "reading the cluster time".into(),
                detail: "hello reports no setName and no $clusterTime".into(),
            },
            _ => MongoError::Definite {
                message: "reading the cluster time: the hello reply has neither $clusterTime nor operationTime".into(),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(t: u32) -> Timestamp {
        Timestamp {
            time: t,
            increment: 1,
        }
    }

    #[test]
    fn replica_set_members_name_their_set() {
        let hello = Hello::from_reply(&doc! {
            "isWritablePrimary": true,
            "setName": "rs0",
            "maxWireVersion": 21,
            "$clusterTime": { "clusterTime": time(10), "signature": { "keyId": 0_i64 } },
            "operationTime": time(9),
            "ok": 1.0,
        });
        assert_eq!(hello.topology, Topology::ReplicaSet { name: "rs0".into() });
        assert!(hello.writable_primary);
        assert_eq!(hello.max_wire_version, Some(21));
        assert_eq!(hello.cluster_time, Some(time(10)));
        assert_eq!(hello.operation_time, Some(time(9)));
    }

    #[test]
    fn routers_and_standalones_are_told_apart() {
        let mongos = Hello::from_reply(&doc! { "ismaster": true, "msg": "isdbgrid" });
        assert_eq!(mongos.topology, Topology::Sharded);
        assert!(mongos.writable_primary);
        let standalone = Hello::from_reply(&doc! { "isWritablePrimary": true, "ok": 1 });
        assert_eq!(standalone.topology, Topology::Standalone);
        assert_eq!(standalone.cluster_time, None);
    }
}
