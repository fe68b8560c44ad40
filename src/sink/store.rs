//! The lake store: where delta files, manifests and checkpoints live.
//!
//! Sits at the very end of the data path (`LakeSink → LakeStore → disk or
//! bucket`). Everything the sink persists goes through
//! [`LakeStore::put_durable`], whose return is the durability point the
//! checkpoint protocol relies on: once it returns, a crash or power loss
//! cannot lose the object.
//!
//! Supported URLs:
//! - `file:///abs/path` or a plain absolute path: local disk. The directory is
//!   created. Writes go to a staged file renamed into place; after the rename
//!   the file and every directory from it up to the lake root are fsynced.
//! - `s3://bucket/prefix`: credentials and settings from `AWS_*` variables
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, ...).
//! - `gs://bucket/prefix`: `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_SERVICE_ACCOUNT_KEY`
//!   / `GOOGLE_APPLICATION_CREDENTIALS` and other `GOOGLE_*` variables.
//! - `az://container/prefix`, `abfss://container@account.dfs.core.windows.net/prefix`:
//!   `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
//!   `AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`/`AZURE_TENANT_ID` and other
//!   `AZURE_*` variables.
//!
//! A single object store `put` is atomic (readers see the old object or the
//! whole new one), so object stores need nothing beyond one put per object.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

use super::error::SinkError;

/// Environment variable prefixes passed to the object store builders.
const CREDENTIAL_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

/// A lake root on local disk or object storage. Paths are `/`-separated and
/// relative to the root. Cheap to clone.
#[derive(Clone)]
pub struct LakeStore {
    inner: Arc<dyn ObjectStore>,
    /// Set for local disk: the root directory, for fsync.
    local_root: Option<PathBuf>,
    /// The URL without credentials, for logs and messages.
    display: String,
}

impl fmt::Debug for LakeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeStore")
            .field("root", &self.display)
            .finish()
    }
}

impl LakeStore {
    /// Opens the lake at `url` (see the module doc for the accepted forms).
    pub fn from_url(url: &str) -> Result<LakeStore, SinkError> {
        let trimmed = url.trim();
        if trimmed.starts_with('/') {
            return LakeStore::local(trimmed);
        }
        let parsed = url::Url::parse(trimmed).map_err(|e| SinkError::InvalidUrl {
            url: redact(trimmed),
            reason: e.to_string(),
        })?;
        if parsed.scheme() == "file" {
            let dir = parsed.to_file_path().map_err(|()| SinkError::InvalidUrl {
                url: redact(trimmed),
                reason: "not an absolute local path".into(),
            })?;
            return LakeStore::local(dir);
        }
        let display = redact(trimmed);
        if !matches!(
            parsed.scheme(),
            "s3" | "s3a" | "gs" | "az" | "adl" | "azure" | "abfs" | "abfss"
        ) {
            return Err(SinkError::InvalidUrl {
                url: display,
                reason: format!("unsupported scheme {:?}", parsed.scheme()),
            });
        }
        let options = std::env::vars().filter_map(|(key, value)| {
            CREDENTIAL_PREFIXES
                .iter()
                .any(|p| key.starts_with(p))
                .then(|| (key.to_ascii_lowercase(), value))
        });
        let (store, prefix) =
            object_store::parse_url_opts(&parsed, options).map_err(|e| SinkError::InvalidUrl {
                url: display.clone(),
                reason: e.to_string(),
            })?;
        let inner: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(LakeStore {
            inner,
            local_root: None,
            display,
        })
    }

    /// Opens (creating it) a lake directory on local disk.
    pub fn local(dir: impl AsRef<FsPath>) -> Result<LakeStore, SinkError> {
        let dir = dir.as_ref();
        let display = format!("file://{}", dir.display());
        if !dir.is_absolute() {
            return Err(SinkError::InvalidUrl {
                url: display,
                reason: "a local lake path must be absolute".into(),
            });
        }
        let missing = first_missing_ancestor(dir);
        std::fs::create_dir_all(dir)
            .map_err(|e| SinkError::from_io(&e, &display, "creating", "the lake directory"))?;
        if let Some(created) = missing {
            // Make the new directory chain itself durable.
            sync_dirs(dir, created.parent().unwrap_or(&created))
                .map_err(|e| SinkError::from_io(&e, &display, "syncing", "the lake directory"))?;
        }
        let inner = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| SinkError::InvalidUrl {
                url: display.clone(),
                reason: e.to_string(),
            })?
            .with_fsync(true);
        Ok(LakeStore {
            inner: Arc::new(inner),
            local_root: Some(dir.to_path_buf()),
            display,
        })
    }

    /// Wraps any object store (tests use `InMemory`).
    pub fn from_object_store(store: Arc<dyn ObjectStore>, display: impl Into<String>) -> LakeStore {
        LakeStore {
            inner: store,
            local_root: None,
            display: display.into(),
        }
    }

    /// The lake URL without credentials.
    pub fn root_display(&self) -> &str {
        &self.display
    }

    /// The root directory when the lake is on local disk.
    pub fn local_root(&self) -> Option<&FsPath> {
        self.local_root.as_deref()
    }

    fn path(&self, path: &str, action: &'static str) -> Result<Path, SinkError> {
        Path::parse(path).map_err(|e| SinkError::Store {
            url: self.display.clone(),
            action,
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    fn store_error(
        &self,
        error: &object_store::Error,
        action: &'static str,
        path: &str,
    ) -> SinkError {
        SinkError::from_store(
            error,
            &self.display,
            action,
            path,
            self.local_root.is_some(),
        )
    }

    /// Writes `bytes` at `path` so that it survives a crash or power loss
    /// once this returns. Overwrites an existing object atomically.
    pub async fn put_durable(&self, path: &str, bytes: Bytes) -> Result<(), SinkError> {
        let location = self.path(path, "writing")?;
        // Directories this put creates must be synced too (their entries in
        // their parents are new); existing ancestors did not change.
        let created = self
            .local_root
            .as_ref()
            .and_then(|root| root.join(path).parent().and_then(first_missing_ancestor));
        self.inner
            .put(&location, bytes.into())
            .await
            .map_err(|e| self.store_error(&e, "writing", path))?;
        if let Some(root) = &self.local_root {
            let root = root.clone();
            let file = root.join(path);
            let synced = tokio::task::spawn_blocking(move || {
                sync_file_and_dirs(&file, &root, created.as_deref())
            })
            .await
            .map_err(|e| SinkError::Store {
                url: self.display.clone(),
                action: "syncing",
                path: path.to_string(),
                message: e.to_string(),
            })?;
            synced.map_err(|e| SinkError::from_io(&e, &self.display, "syncing", path))?;
        }
        Ok(())
    }

    /// Reads the object at `path`; `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, SinkError> {
        let location = self.path(path, "reading")?;
        let result = match self.inner.get(&location).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error(&e, "reading", path)),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.store_error(&e, "reading", path))?;
        Ok(Some(bytes))
    }

    /// Every object path under `prefix` (a directory-like prefix), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let location = self.path(prefix, "listing")?;
        let listed: Vec<_> = self
            .inner
            .list(Some(&location))
            .try_collect()
            .await
            .map_err(|e| self.store_error(&e, "listing", prefix))?;
        let mut paths: Vec<String> = listed
            .into_iter()
            .map(|meta| meta.location.to_string())
            // The local store may show staged uploads (`name#1`) mid-write.
            .filter(|p| !p.rsplit('/').next().unwrap_or("").contains('#'))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Deletes the object at `path` (no error when it does not exist).
    pub async fn delete(&self, path: &str) -> Result<(), SinkError> {
        let location = self.path(path, "deleting")?;
        match self.inner.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error(&e, "deleting", path)),
        }
    }
}

/// fsyncs `file`, then every directory from its parent up to `root`.
fn sync_file_and_dirs(
    file: &FsPath,
    root: &FsPath,
    created: Option<&FsPath>,
) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    let Some(parent) = file.parent() else {
        return Ok(());
    };
    // The parent always changed (the file's entry is new or replaced). Above
    // it, only directories this put created, and the one that holds the
    // highest of them, have new entries.
    let stop = match created {
        Some(highest) => highest.parent().unwrap_or(root),
        None => parent,
    };
    sync_dirs(parent, if stop.starts_with(root) { stop } else { root })
}

/// fsyncs `dir` and each ancestor up to and including `stop`.
fn sync_dirs(dir: &FsPath, stop: &FsPath) -> std::io::Result<()> {
    for ancestor in dir.ancestors() {
        #[cfg(unix)]
        std::fs::File::open(ancestor)?.sync_all()?;
        if ancestor == stop || !ancestor.starts_with(stop) {
            break;
        }
    }
    Ok(())
}

/// The highest ancestor of `dir` (or `dir` itself) that does not exist yet.
fn first_missing_ancestor(dir: &FsPath) -> Option<PathBuf> {
    dir.ancestors()
        .take_while(|a| !a.exists())
        .last()
        .map(FsPath::to_path_buf)
}

/// The URL without user info or query string (where credentials hide).
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => url.split(['?', '@']).next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new/lake");
        let store = LakeStore::from_url(&format!("file://{}", root.display())).unwrap();
        assert!(root.is_dir());
        store
            .put_durable("s/a/b.json", Bytes::from_static(b"one"))
            .await
            .unwrap();
        store
            .put_durable("s/a/a.json", Bytes::from_static(b"two"))
            .await
            .unwrap();
        store
            .put_durable("s/a/b.json", Bytes::from_static(b"three"))
            .await
            .unwrap();
        assert_eq!(
            store.get("s/a/b.json").await.unwrap().unwrap(),
            Bytes::from_static(b"three")
        );
        assert_eq!(store.get("s/a/none.json").await.unwrap(), None);
        assert_eq!(
            store.list("s/a").await.unwrap(),
            vec!["s/a/a.json", "s/a/b.json"]
        );
        assert!(store.list("nothing").await.unwrap().is_empty());
        store.delete("s/a/a.json").await.unwrap();
        store.delete("s/a/a.json").await.unwrap();
        assert_eq!(store.list("s").await.unwrap(), vec!["s/a/b.json"]);
        let plain = LakeStore::from_url(root.to_str().unwrap()).unwrap();
        assert_eq!(
            plain.get("s/a/b.json").await.unwrap().unwrap().as_ref(),
            b"three"
        );
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(matches!(
            LakeStore::from_url("relative/dir"),
            Err(SinkError::InvalidUrl { .. })
        ));
        assert!(matches!(
            LakeStore::from_url("ftp://x/y"),
            Err(SinkError::InvalidUrl { .. })
        ));
        assert_eq!(redact("s3://key:secret@bucket/p?token=x"), "s3://bucket/p");
    }

    #[test]
    fn s3_url_builds_without_network() {
        // Building a client does not contact the service.
        let store = LakeStore::from_url("s3://bucket/prefix").unwrap();
        assert_eq!(store.root_display(), "s3://bucket/prefix");
        assert!(store.local_root().is_none());
    }
}
