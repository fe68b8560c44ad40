use super::*;
use crate::schema::{ColumnSchema, ColumnType};

fn col(name: &str, ty: ColumnType, source: &str, nullable: bool, id: u32) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        data_type: ty,
        source_type: source.into(),
        nullable,
        id: Some(id),
        default: None,
    }
}

fn shape(extra: Vec<ColumnSchema>) -> TableSchema {
    let mut columns = vec![col("id", ColumnType::Int64, "int8", false, 1)];
    columns.extend(extra);
    TableSchema::new("public", "t", columns, vec![0])
}

async fn open(dir: &std::path::Path) -> SchemaRegistry {
    SchemaRegistry::open(LakeStore::local(dir).unwrap())
        .await
        .unwrap()
}

const S: &str = "app.public.t-value";

async fn register(
    registry: &SchemaRegistry,
    table: &TableSchema,
    on_incompatible: OnIncompatible,
) -> Result<Registered, RegistryError> {
    registry
        .register(
            S,
            "tributary.app.public",
            table,
            Compatibility::Backward,
            on_incompatible,
        )
        .await
}

#[tokio::test]
async fn versions_ids_and_policies() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path()).await;
    let v1 = shape(vec![col("a", ColumnType::Int64, "int8", false, 2)]);
    let first = register(&registry, &v1, OnIncompatible::Fail)
        .await
        .unwrap();
    assert!(first.new);
    assert_eq!(first.version.version, 1);
    assert!(first.version.changes.is_empty());
    // The same shape again: the same version, nothing written.
    let again = register(&registry, &v1, OnIncompatible::Fail)
        .await
        .unwrap();
    assert!(!again.new);
    assert_eq!(again.version, first.version);

    // Compatible: a nullable column added.
    let v2 = shape(vec![
        col("a", ColumnType::Int64, "int8", false, 2),
        col("b", ColumnType::Text, "text", true, 3),
    ]);
    let second = register(&registry, &v2, OnIncompatible::Fail)
        .await
        .unwrap();
    assert_eq!(second.version.version, 2);
    assert!(second.version.compatible);
    assert_eq!(
        second.version.changes,
        vec!["added column b (text, nullable)"]
    );
    assert_ne!(second.version.id, first.version.id);

    // Incompatible under fail: an error naming the change, nothing written.
    let narrowed = shape(vec![
        col("a", ColumnType::Int32, "int4", false, 2),
        col("b", ColumnType::Text, "text", true, 3),
    ]);
    let err = register(&registry, &narrowed, OnIncompatible::Fail)
        .await
        .unwrap_err()
        .to_string();
    for needle in [
        "public.t",
        "BACKWARD",
        "version 2",
        "column a: type int8 → int4",
        "new_version",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert_eq!(registry.versions(S), Some(vec![1, 2]));
    assert_eq!(open(dir.path()).await.versions(S), Some(vec![1, 2]));

    // Incompatible under new_version: registered, marked.
    let third = register(&registry, &narrowed, OnIncompatible::NewVersion)
        .await
        .unwrap();
    assert_eq!(third.version.version, 3);
    assert!(!third.version.compatible);
    assert!(!third.version.problems.is_empty());

    // Reopened: everything identical, ids stable.
    let reopened = open(dir.path()).await;
    assert_eq!(reopened.subjects(), vec![S.to_string()]);
    for v in 1..=3 {
        assert_eq!(reopened.version(S, v), registry.version(S, v));
    }
    assert_eq!(reopened.latest(S).unwrap().version, 3);
    assert_eq!(reopened.by_id(third.version.id).unwrap().version, 3);
    assert_eq!(reopened.lookup(S, &v1.fingerprint).unwrap().version, 1);

    // The same schema text under another subject has the same id.
    let other = reopened
        .register(
            "other.public.t-value",
            "tributary.app.public",
            &v1,
            Compatibility::Backward,
            OnIncompatible::Fail,
        )
        .await
        .unwrap();
    assert_eq!(other.version.id, first.version.id);
    assert_eq!(reopened.subjects_of_id(first.version.id).len(), 2);
}

#[tokio::test]
async fn damaged_and_newer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path()).await;
    register(&registry, &shape(vec![]), OnIncompatible::Fail)
        .await
        .unwrap();
    let path = dir.path().join(version_path(S, 1));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"format_version\": 1", "\"format_version\": 9"),
    )
    .unwrap();
    let err = SchemaRegistry::open(LakeStore::local(dir.path()).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("upgrade tributary"), "{err}");
    std::fs::write(&path, "{").unwrap();
    let err = SchemaRegistry::open(LakeStore::local(dir.path()).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a tributary registry file"), "{err}");
    // A gap in the versions.
    std::fs::write(&path, text).unwrap();
    std::fs::copy(&path, dir.path().join(version_path(S, 3))).unwrap();
    let err = SchemaRegistry::open(LakeStore::local(dir.path()).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("version 1") || err.contains("expected"),
        "{err}"
    );
}
