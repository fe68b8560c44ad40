//! The HTTP API served for real on 127.0.0.1:0, spoken to in raw HTTP/1.1:
//! Confluent's paths, bodies, codes and content type; the probes; the
//! read-only refusals; graceful shutdown.

use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::{Compatibility, OnIncompatible};
use crate::registry::SchemaVersion;
use crate::schema::{ColumnSchema, ColumnType, TableSchema};
use crate::sink::LakeStore;

const SUBJECT: &str = "app.public.items-value";
const OTHER: &str = "billing.public.items-value";

/// A response: status, content type, body.
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Json {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.1 exchange with the server on `port`.
async fn request(port: u16, method: &str, path: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// `GET path`, expecting `status` and Confluent's content type.
async fn get(port: u16, path: &str, status: u16) -> Json {
    let reply = request(port, "GET", path).await;
    assert_eq!(reply.status, status, "GET {path}: {}", reply.body);
    assert_eq!(
        reply.content_type,
        registry_routes::CONTENT_TYPE,
        "GET {path}"
    );
    reply.json()
}

fn column(
    name: &str,
    data_type: ColumnType,
    source: &str,
    nullable: bool,
    id: u32,
) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        data_type,
        source_type: source.into(),
        nullable,
        id: Some(id),
        default: None,
    }
}

fn items(extra: bool) -> TableSchema {
    let mut columns = vec![
        column("id", ColumnType::Int32, "int4", false, 1),
        column("name", ColumnType::Text, "text", false, 2),
    ];
    if extra {
        columns.push(column("note", ColumnType::Text, "text", true, 3));
    }
    TableSchema::new("public", "items", columns, vec![0])
}

/// Two registries (two lake roots): `app` with two versions of `items`,
/// `billing` with the first shape again (same schema text, same id).
async fn registries(dirs: &[tempfile::TempDir; 2]) -> (Vec<SchemaRegistry>, [SchemaVersion; 2]) {
    let app = SchemaRegistry::open(LakeStore::local(dirs[0].path()).unwrap())
        .await
        .unwrap();
    let billing = SchemaRegistry::open(LakeStore::local(dirs[1].path()).unwrap())
        .await
        .unwrap();
    let mut versions = Vec::new();
    for table in [items(false), items(true)] {
        let registered = app
            .register(
                SUBJECT,
                "tributary.app.public",
                &table,
                Compatibility::Full,
                OnIncompatible::Fail,
            )
            .await
            .unwrap();
        versions.push(registered.version);
    }
    billing
        .register(
            OTHER,
            "tributary.app.public",
            &items(false),
            Compatibility::Backward,
            OnIncompatible::Fail,
        )
        .await
        .unwrap();
    let [v1, v2] = <[SchemaVersion; 2]>::try_from(versions).unwrap();
    (vec![app, billing], [v1, v2])
}

/// Serves `registries` and `health` on a free port until the token is
/// cancelled.
async fn start(
    registries: Vec<SchemaRegistry>,
    health: Health,
) -> (
    u16,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, registries, health, shutdown.clone()));
    (port, shutdown, server)
}

#[tokio::test]
async fn confluent_registry_api() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (registries, [v1, v2]) = registries(&dirs).await;
    let (port, shutdown, server) = start(registries, Health::default()).await;

    assert_eq!(get(port, "/subjects", 200).await, json!([SUBJECT, OTHER]));
    assert_eq!(
        get(port, &format!("/subjects/{SUBJECT}/versions"), 200).await,
        json!([1, 2])
    );
    assert_eq!(
        get(port, &format!("/subjects/{OTHER}/versions"), 200).await,
        json!([1])
    );
    for (path, want) in [("1", &v1), ("2", &v2), ("latest", &v2), ("-1", &v2)] {
        let got = get(port, &format!("/subjects/{SUBJECT}/versions/{path}"), 200).await;
        // Exactly Confluent's keys (no schemaType for AVRO).
        assert_eq!(
            got,
            json!({"subject": SUBJECT, "version": want.version, "id": want.id, "schema": want.schema}),
            "version {path}"
        );
    }
    // The raw schema.
    let raw = get(port, &format!("/subjects/{SUBJECT}/versions/1/schema"), 200).await;
    assert_eq!(raw, serde_json::from_str::<Json>(&v1.schema).unwrap());
    assert_eq!(raw["type"], "record");
    assert_eq!(raw["name"], "items");

    // By id; the same schema under both subjects (and lakes) has one id.
    assert_eq!(
        get(port, &format!("/schemas/ids/{}", v2.id), 200).await,
        json!({"schema": v2.schema})
    );
    assert_eq!(
        get(port, &format!("/schemas/ids/{}/versions", v1.id), 200).await,
        json!([{"subject": SUBJECT, "version": 1}, {"subject": OTHER, "version": 1}])
    );
    assert_eq!(
        get(port, &format!("/schemas/ids/{}/subjects", v1.id), 200).await,
        json!([SUBJECT, OTHER])
    );
    assert_eq!(get(port, "/schemas/types", 200).await, json!(["AVRO"]));

    // Config: the default, and the mode a subject was last checked under.
    assert_eq!(
        get(port, "/config", 200).await,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        get(port, &format!("/config/{SUBJECT}"), 200).await,
        json!({"compatibilityLevel": "FULL"})
    );

    // Confluent's errors.
    assert_eq!(
        get(port, "/subjects/nope-value/versions", 404).await,
        json!({"error_code": 40401, "message": "Subject 'nope-value' not found."})
    );
    assert_eq!(
        get(port, "/subjects/nope-value/versions/1", 404).await,
        json!({"error_code": 40401, "message": "Subject 'nope-value' not found."})
    );
    assert_eq!(
        get(port, "/config/nope-value", 404).await["error_code"],
        40401
    );
    assert_eq!(
        get(port, &format!("/subjects/{SUBJECT}/versions/9"), 404).await,
        json!({"error_code": 40402, "message": "Version 9 not found."})
    );
    assert_eq!(
        get(port, &format!("/subjects/{SUBJECT}/versions/9/schema"), 404).await["error_code"],
        40402
    );
    for bad in ["-3", "0", "abc", "2147483648"] {
        assert_eq!(
            get(port, &format!("/subjects/{SUBJECT}/versions/{bad}"), 422).await,
            json!({
                "error_code": 42202,
                "message": format!("The specified version '{bad}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")
            })
        );
    }
    // An invalid version is reported before an unknown subject, as Confluent does.
    assert_eq!(
        get(port, "/subjects/nope-value/versions/0", 422).await["error_code"],
        42202
    );
    let missing = v1.id.wrapping_add(12345) & 0x7fff_ffff;
    assert_eq!(
        get(port, &format!("/schemas/ids/{missing}"), 404).await,
        json!({"error_code": 40403, "message": format!("Schema {missing} not found")})
    );
    assert_eq!(
        get(port, &format!("/schemas/ids/{missing}/versions"), 404).await["error_code"],
        40403
    );
    assert_eq!(
        get(port, "/no/such/path", 404).await,
        json!({"error_code": 404, "message": "HTTP 404 Not Found"})
    );

    // Writes are refused, on known and unknown paths.
    for (method, path) in [
        ("POST", format!("/subjects/{SUBJECT}/versions")),
        ("DELETE", format!("/subjects/{SUBJECT}/versions/1")),
        ("POST", format!("/subjects/{SUBJECT}")),
        ("DELETE", format!("/subjects/{SUBJECT}")),
        ("PUT", "/config".to_string()),
        ("PUT", format!("/config/{SUBJECT}")),
        (
            "POST",
            format!("/compatibility/subjects/{SUBJECT}/versions/latest"),
        ),
    ] {
        let reply = request(port, method, &path).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.content_type, registry_routes::CONTENT_TYPE);
        assert_eq!(
            reply.json(),
            json!({"error_code": 405, "message": "this registry is read-only: schemas are registered by the tributary daemon"}),
            "{method} {path}"
        );
    }

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn health_probes() {
    let health = Health::new(["app".to_string(), "billing".to_string()]);
    let (port, shutdown, server) = start(Vec::new(), health.clone()).await;

    let live = request(port, "GET", "/healthz").await;
    assert_eq!((live.status, live.json()), (200, json!({"status": "ok"})));

    let ready = request(port, "GET", "/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json(),
        json!({"status": "not ready", "sources": {"app": {"state": "starting"}, "billing": {"state": "starting"}}})
    );

    health.set_source_state("app", SourceState::Snapshotting);
    health.set_source_state("billing", SourceState::Streaming);
    let ready = request(port, "GET", "/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.json(),
        json!({"status": "ready", "sources": {"app": {"state": "snapshotting"}, "billing": {"state": "streaming"}}})
    );

    health.set_source_state(
        "billing",
        SourceState::Retrying {
            error: "connection refused".into(),
        },
    );
    let ready = request(port, "GET", "/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json()["sources"]["billing"],
        json!({"state": "retrying", "error": "connection refused"})
    );
    health.set_source_state(
        "billing",
        SourceState::Failed {
            error: "incompatible".into(),
        },
    );
    assert_eq!(request(port, "GET", "/readyz").await.status, 503);
    // Liveness does not depend on the sources.
    assert_eq!(request(port, "GET", "/healthz").await.status, 200);

    // No registries: an empty subject list, not an error.
    assert_eq!(get(port, "/subjects", 200).await, json!([]));

    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the port is closed after shutdown"
    );
}

#[tokio::test]
async fn bind_names_the_setting_and_the_fix() {
    let taken = bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = bind(&addr).await.unwrap_err().to_string();
    assert!(err.contains("daemon.http_listen"), "{err}");
    assert!(err.contains(&addr), "{err}");
    assert!(err.contains("choose another port"), "{err}");
}
