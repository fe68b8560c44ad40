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

#[tokio::test]
async fn opens_thousands_of_versions() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path()).await;
    let first = register(&registry, &shape(vec![]), OnIncompatible::Fail)
        .await
        .unwrap()
        .version;
    // 50 subjects × 60 versions, written directly (registering them one by
    // one would fsync 3000 times).
    for s in 0..50 {
        let subject = format!("app.public.t{s}-value");
        for v in 1..=60 {
            let version = SchemaVersion {
                subject: subject.clone(),
                version: v,
                fingerprint: format!("{s}-{v}"),
                ..first.clone()
            };
            let path = dir.path().join(version_path(&subject, v));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_vec_pretty(&version).unwrap()).unwrap();
        }
    }
    let started = std::time::Instant::now();
    let reopened = open(dir.path()).await;
    let took = started.elapsed();
    eprintln!("opened 3001 versions in {took:?}");
    assert_eq!(reopened.subjects().len(), 51);
    assert_eq!(reopened.versions("app.public.t7-value").unwrap().len(), 60);
    assert_eq!(
        reopened
            .lookup("app.public.t7-value", "7-33")
            .unwrap()
            .version,
        33
    );
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_registered_shape_is_found_without_storage() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path()).await;
    let v1 = shape(vec![col("a", ColumnType::Int32, "int4", true, 2)]);
    let first = register(&registry, &v1, OnIncompatible::Fail)
        .await
        .unwrap();
    // With the file gone, the same shape still resolves from memory (and
    // is not written again).
    let path = dir.path().join(version_path(S, 1));
    std::fs::remove_file(&path).unwrap();
    let again = register(&registry, &v1, OnIncompatible::Fail)
        .await
        .unwrap();
    assert!(!again.new);
    assert_eq!(again.version, first.version);
    assert!(!path.exists());
}

#[tokio::test]
async fn concurrent_registrations_get_distinct_versions() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path()).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                // Each task adds one more nullable column: every shape is
                // compatible with every other.
                let extra = (0..=i)
                    .map(|c| col(&format!("c{c}"), ColumnType::Text, "text", true, c + 2))
                    .collect();
                register(&registry, &shape(extra), OnIncompatible::NewVersion)
                    .await
                    .unwrap()
                    .version
                    .version
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=8).collect::<Vec<u32>>());
    assert_eq!(open(dir.path()).await.versions(S), Some(numbers));
}

#[tokio::test]
async fn subject_names_and_id_collisions() {
    let table = shape(vec![]);
    assert_eq!(
        SchemaRegistry::subject_name("app", &table),
        "app.public.t-value"
    );
    // An id taken by another schema text: the next free id is used; the
    // same text keeps its id.
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path()).await;
    let taken = register(&registry, &table, OnIncompatible::Fail)
        .await
        .unwrap()
        .version;
    let mut state = State::default();
    state.add(SchemaVersion {
        schema: "{\"type\":\"string\"}".into(),
        ..taken.clone()
    });
    assert_eq!(state.id_for(&taken.schema), taken.id + 1);
    let mut state = State::default();
    state.add(taken.clone());
    assert_eq!(state.id_for(&taken.schema), taken.id);
    assert!(taken.id > 0 && taken.id <= 0x7fff_ffff);
}

#[tokio::test]
async fn incompatible_error_is_the_operator_message() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path()).await;
    let wide = shape(vec![col("a", ColumnType::Int64, "int8", false, 2)]);
    let narrow = shape(vec![col("a", ColumnType::Int32, "int4", false, 2)]);
    register(&registry, &wide, OnIncompatible::Fail)
        .await
        .unwrap();
    let err = register(&registry, &narrow, OnIncompatible::Fail)
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let RegistryError::Incompatible {
        subject,
        table,
        latest_version,
        mode,
        changes,
        problems,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (subject.as_str(), table.as_str(), *latest_version, *mode),
        (S, "public.t", 1, Compatibility::Backward)
    );
    assert_eq!(changes, &["column a: type int8 → int4"]);
    assert_eq!(problems.len(), 1);
    assert_eq!(
        err.to_string(),
        "table public.t changed shape incompatibly (BACKWARD) after schema version 1 of app.public.t-value: column a: type int8 → int4; consumers on the new version cannot read data written with version 1: Incompatible schemata! Field 'a' in reader schema does not match the type in the writer schema: Incompatible schema types! The readers_schema should have been [Long, Float, Double, TimeMicros, TimestampMillis, TimestampMicros, TimestampNanos, LocalTimestampMillis, LocalTimestampMicros, LocalTimestampNanos] (written as \"long\", read as \"int\"). Options: revert the change at the source; or set on_incompatible_schema = \"new_version\" for this source to register version 2 and continue (the manifest marks the boundary); or relax schema_compatibility / table_compatibility. The checkpoint has not moved past this change; restart after changing the config"
    );
    assert!(!dir.path().join(version_path(S, 2)).exists());
}
