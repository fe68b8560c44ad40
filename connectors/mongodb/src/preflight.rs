//! What a server must provide before a MongoDB source can run, checked in
//! one place for `tributary check` and for the source's start-up, each
//! problem with the command that fixes it.
//!
//! Sits before [`crate::stream`]: the daemon runs [`preflight`], refuses to
//! start on a [`Preflight::problems`] entry, then opens the stream.
//!
//! Checked: the server is a replica set member or a `mongos` (`hello`'s
//! `setName` / `msg: "isdbgrid"`; change streams read the oplog), its
//! version (`buildInfo`; pre- and post-images need 6.0), that the
//! configured collections exist, and which of them lack
//! `changeStreamPreAndPostImages` (`listCollections` options), which the
//! [`FullDocumentMode::Required`] mode needs.

use futures::TryStreamExt;
use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};

use crate::error::MongoError;
use crate::hello::{Topology, hello};
use crate::stream::FullDocumentMode;

/// The preflight's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// Replica set, `mongos` or standalone.
    pub topology: Topology,
    /// `buildInfo.version` (`7.0.14`).
    pub version: String,
    /// The database checked.
    pub database: String,
    /// Configured collections the database does not have.
    pub missing_collections: Vec<String>,
    /// Collections (configured ones, or all of the database when none are)
    /// without `changeStreamPreAndPostImages: {enabled: true}`.
    pub without_pre_images: Vec<String>,
}

impl Preflight {
    /// Whether the server's version is at least `major.minor`.
    pub fn version_at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self
            .version
            .split(['.', '-'])
            .map(|part| part.parse::<u32>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        found >= (major, minor)
    }

    /// What prevents a stream in `mode`, each with its fix.
    pub fn problems(&self, mode: FullDocumentMode) -> Vec<MongoError> {
        let mut problems = Vec::new();
        if self.topology == Topology::Standalone {
            problems.push(MongoError::NotReplicaSet {
                context: "preflight".into(),
                detail: "hello reports no setName: a standalone mongod".into(),
            });
        }
        for collection in &self.missing_collections {
            problems.push(MongoError::UnknownCollection {
                database: self.database.clone(),
                collection: collection.clone(),
            });
        }
        if mode == FullDocumentMode::Required {
            if !self.version_at_least(6, 0) {
                problems.push(MongoError::Definite {
                    message: format!(
                        "the `required` full-document mode needs pre- and post-images, which MongoDB {} does not have (6.0+); upgrade the server or use the `updateLookup` mode",
                        self.version
                    ),
                });
            }
            for collection in &self.without_pre_images {
                problems.push(MongoError::PreImagesOff {
                    database: self.database.clone(),
                    collection: collection.clone(),
                });
            }
        }
        problems
    }
}

/// Runs every check for a source on `database`, narrowed to `collections`
/// (none: the whole database).
pub async fn preflight(
    client: &Client,
    database: &str,
    collections: &[String],
) -> Result<Preflight, MongoError> {
    let topology = hello(client).await?.topology;
    let build_info = client
        .database("admin")
        .run_command(doc! { "buildInfo": 1 })
        .await
        .map_err(|e| MongoError::from_driver(e, "reading the server version (buildInfo)"))?;
    let version = build_info
        .get_str("version")
        .unwrap_or("unknown")
        .to_string();
    let specs = list_collections(client, database, collections).await?;
    let missing_collections = collections
        .iter()
        .filter(|name| !specs.iter().any(|spec| spec.get_str("name") == Ok(name)))
        .cloned()
        .collect();
    let without_pre_images = specs
        .iter()
        .filter(|spec| !has_pre_images(spec))
        .filter_map(|spec| spec.get_str("name").ok().map(str::to_string))
        .collect();
    Ok(Preflight {
        topology,
        version,
        database: database.to_string(),
        missing_collections,
        without_pre_images,
    })
}

/// `listCollections` entries of the collections (not views, not
/// `system.*`) named in `collections`, or of all when it is empty.
async fn list_collections(
    client: &Client,
    database: &str,
    collections: &[String],
) -> Result<Vec<Document>, MongoError> {
    let context = format!("listing the collections of {database}");
    let mut filter = doc! { "type": "collection" };
    if collections.is_empty() {
        filter.insert("name", doc! { "$not": { "$regex": "^system\\." } });
    } else {
        let names: Vec<Bson> = collections.iter().cloned().map(Bson::String).collect();
        filter.insert("name", doc! { "$in": names });
    }
    client
        .database(database)
        .list_collections()
        .filter(filter)
        .await
        .map_err(|e| MongoError::from_driver(e, &context))?
        .with_type::<Document>()
        .try_collect()
        .await
        .map_err(|e| MongoError::from_driver(e, &context))
}

/// Whether a `listCollections` entry has pre- and post-images on.
fn has_pre_images(spec: &Document) -> bool {
    spec.get_document("options")
        .and_then(|options| options.get_document("changeStreamPreAndPostImages"))
        .and_then(|images| images.get_bool("enabled"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight(topology: Topology, version: &str) -> Preflight {
        Preflight {
            topology,
            version: version.into(),
            database: "shop".into(),
            missing_collections: Vec::new(),
            without_pre_images: Vec::new(),
        }
    }

    fn replica_set() -> Topology {
        Topology::ReplicaSet { name: "rs0".into() }
    }

    #[test]
    fn versions_compare_numerically() {
        let check = preflight(replica_set(), "10.0.1-rc0");
        assert!(check.version_at_least(6, 0));
        assert!(!preflight(replica_set(), "5.0.26").version_at_least(6, 0));
        assert!(preflight(replica_set(), "6.0.0").version_at_least(6, 0));
    }

    #[test]
    fn standalone_servers_are_a_problem_in_every_mode() {
        let check = preflight(Topology::Standalone, "7.0.14");
        for mode in [FullDocumentMode::UpdateLookup, FullDocumentMode::Required] {
            let problems = check.problems(mode);
            assert_eq!(problems.len(), 1);
            assert!(problems[0].to_string().contains("--replSet"));
        }
        assert!(
            preflight(Topology::Sharded, "7.0.14")
                .problems(FullDocumentMode::Required)
                .is_empty()
        );
    }

    #[test]
    fn pre_images_matter_only_in_required_mode() {
        let mut check = preflight(replica_set(), "5.0.26");
        check.without_pre_images = vec!["orders".into()];
        check.missing_collections = vec!["Users".into()];
        let lookup: Vec<String> = check
            .problems(FullDocumentMode::UpdateLookup)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lookup.len(), 1);
        assert!(
            lookup[0].contains("shop.Users does not exist"),
            "{lookup:?}"
        );
        let required: Vec<String> = check
            .problems(FullDocumentMode::Required)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(required.len(), 3, "{required:?}");
        assert!(required[1].contains("MongoDB 5.0.26"), "{required:?}");
        assert!(
            required[2].contains(r#"collMod: "orders", changeStreamPreAndPostImages"#),
            "{required:?}"
        );
    }

    #[test]
    fn pre_images_are_read_from_collection_options() {
        assert!(has_pre_images(&doc! {
            "name": "orders",
            "type": "collection",
            "options": { "changeStreamPreAndPostImages": { "enabled": true } },
        }));
        assert!(!has_pre_images(&doc! {
            "name": "orders",
            "options": { "changeStreamPreAndPostImages": { "enabled": false } },
        }));
        assert!(!has_pre_images(&doc! { "name": "orders", "options": {} }));
    }
}
