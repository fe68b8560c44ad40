//! The registry over HTTP, in the Confluent Schema Registry REST shape
//! (https://docs.confluent.io/platform/current/schema-registry/develop/api.html),
//! served on the daemon's `http_listen` port next to `/healthz` and
//! `/readyz`: the documented response shapes, status codes, error codes and
//! content type, for a table with two versions.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_streaming};
use crate::harness::postgres::PgCluster;
use crate::harness::schemas::{settle, subject, versions};

/// One HTTP/1.1 exchange: (status, content type, body).
async fn http(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connecting to the daemon's HTTP port {port}: {e}"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/vnd.schemaregistry.v1+json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked body for {path}"
    );
    (status, content_type, body.to_string())
}

async fn json(port: u16, path: &str, want_status: u16) -> Json {
    let (status, content_type, body) = http(port, "GET", path).await;
    assert_eq!(status, want_status, "GET {path}: {body}");
    assert!(
        content_type.starts_with("application/vnd.schemaregistry.v1+json")
            || path.starts_with("/healthz")
            || path.starts_with("/readyz"),
        "GET {path}: content type {content_type:?}"
    );
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

fn keys(value: &Json) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_shaped_endpoints() {
    let _seed = crate::harness::seed("schema_registry_http::confluent_shaped_endpoints");
    let db = PgCluster::shared().create_database("schema_http").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), seen timestamptz);
         INSERT INTO items SELECT g, 'n' || g, g * 1.5, now() FROM generate_series(1, 100) g;",
    )
    .await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = TestConfig::new(&db, "app", &["items"]);
    config
        .daemon_extra
        .push(format!("http_listen = \"127.0.0.1:{port}\""));
    let mut daemon = DaemonProcess::start(&config);
    wait_streaming(&db, &config, &mut daemon).await;
    settle(&db, &config, &["public.items"], &mut daemon).await;
    db.execute("ALTER TABLE items ADD COLUMN note text; INSERT INTO items (id, name, note) VALUES (1000, 'x', 'y');")
        .await;
    settle(&db, &config, &["public.items"], &mut daemon).await;
    let subject = subject("app", "public.items");
    let persisted = versions(&config.lake, &subject);
    assert_eq!(persisted.len(), 2);

    // Liveness and readiness.
    let health = json(port, "/healthz", 200).await;
    assert_eq!(health["status"], "ok", "{health}");
    let ready = json(port, "/readyz", 200).await;
    assert!(ready.to_string().contains("app"), "{ready}");

    // GET /subjects → array of subject names.
    let subjects = json(port, "/subjects", 200).await;
    let list: Vec<&str> = subjects
        .as_array()
        .expect("/subjects is an array")
        .iter()
        .map(|s| s.as_str().expect("subject names are strings"))
        .collect();
    assert!(list.contains(&subject.as_str()), "{subjects}");

    // GET /subjects/{s}/versions → array of version numbers.
    let listed = json(port, &format!("/subjects/{subject}/versions"), 200).await;
    assert_eq!(listed, serde_json::json!([1, 2]));

    // GET /subjects/{s}/versions/{v} → {subject, id, version, schema}.
    for (v, path) in [
        (1, "1".to_string()),
        (2, "2".to_string()),
        (2, "latest".to_string()),
    ] {
        let got = json(port, &format!("/subjects/{subject}/versions/{path}"), 200).await;
        assert_eq!(keys(&got), ["id", "schema", "subject", "version"], "{got}");
        assert_eq!(got["subject"], subject.as_str());
        assert_eq!(got["version"], v);
        assert_eq!(got["id"], persisted[v as usize - 1]["id"]);
        assert!(
            got["id"]
                .as_u64()
                .is_some_and(|id| id > 0 && id < (1 << 31))
        );
        let schema: Json =
            serde_json::from_str(got["schema"].as_str().expect("schema is a string"))
                .expect("schema is Avro JSON text");
        assert_eq!(schema["type"], "record");
        assert_eq!(schema["name"], "items");
        let fields: Vec<&str> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let mut expected = vec!["id", "name", "price", "seen"];
        if v == 2 {
            expected.push("note");
        }
        assert_eq!(fields, expected, "{schema}");
        // The raw schema endpoint returns the same schema, unwrapped.
        let raw = json(
            port,
            &format!("/subjects/{subject}/versions/{path}/schema"),
            200,
        )
        .await;
        assert_eq!(raw, schema);
        // GET /schemas/ids/{id} → {schema}.
        let by_id = json(port, &format!("/schemas/ids/{}", got["id"]), 200).await;
        assert_eq!(keys(&by_id), ["schema"], "{by_id}");
        assert_eq!(by_id["schema"], got["schema"]);
        let id_versions = json(port, &format!("/schemas/ids/{}/versions", got["id"]), 200).await;
        assert!(
            id_versions
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["subject"] == subject.as_str() && e["version"] == v),
            "{id_versions}"
        );
    }
    let config_level = json(port, "/config", 200).await;
    assert_eq!(config_level["compatibilityLevel"], "BACKWARD");
    let subject_level = json(port, &format!("/config/{subject}"), 200).await;
    assert_eq!(subject_level["compatibilityLevel"], "BACKWARD");

    // Documented errors.
    let missing = json(port, "/subjects/nope-value/versions", 404).await;
    assert_eq!(missing["error_code"], 40401, "{missing}");
    assert!(missing["message"].as_str().is_some());
    let missing = json(port, &format!("/subjects/{subject}/versions/9"), 404).await;
    assert_eq!(missing["error_code"], 40402, "{missing}");
    let missing = json(port, "/schemas/ids/7", 404).await;
    assert_eq!(missing["error_code"], 40403, "{missing}");
    let invalid = json(port, &format!("/subjects/{subject}/versions/-3"), 422).await;
    assert_eq!(invalid["error_code"], 42202, "{invalid}");
    // Read-only.
    let (status, _, body) = http(port, "POST", &format!("/subjects/{subject}/versions")).await;
    assert_eq!(status, 405, "{body}");

    daemon.stop_gracefully(Duration::from_secs(30));
    // The port is released on shutdown.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} still bound after shutdown"
    );
}
