//! The schema registry over HTTP, read-only, in the shape of Confluent
//! Schema Registry's REST API, so existing tools and client libraries can
//! read it: the same paths, response bodies, content type
//! (`application/vnd.schemaregistry.v1+json`) and error codes (`40401`
//! subject not found, `40402` version not found, `40403` schema not found,
//! `42202` invalid version). Registering, deleting and changing config are
//! refused with 405: versions are registered by the daemon itself.
//!
//! Several registries (one per lake root) are served as one; subjects are
//! unique across them because they start with the source name.
//!
//! Routes: `GET /subjects`, `/subjects/{s}/versions`,
//! `/subjects/{s}/versions/{v}` (`v` a number, `latest` or `-1`, as
//! Confluent accepts), `/subjects/{s}/versions/{v}/schema`,
//! `/schemas/ids/{id}`, `/schemas/ids/{id}/versions`,
//! `/schemas/ids/{id}/subjects`, `/schemas/types`, `/config`,
//! `/config/{s}` (the mode the subject's latest version was checked
//! under). Any other path answers 404 `{"error_code":404}` (405 for a
//! write method), as Confluent's server does.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value as Json, json};

use crate::config::Compatibility;
use crate::registry::{SchemaRegistry, SchemaVersion};

/// Confluent's content type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, Clone)]
struct Registries(Vec<SchemaRegistry>);

impl Registries {
    fn find<T>(&self, f: impl Fn(&SchemaRegistry) -> Option<T>) -> Option<T> {
        self.0.iter().find_map(f)
    }
}

/// The registry routes over `registries`.
pub fn routes(registries: Vec<SchemaRegistry>) -> Router {
    let ro = |route: MethodRouter<Registries>| route.fallback(read_only);
    Router::new()
        .route("/subjects", ro(get(subjects)))
        .route("/subjects/{subject}/versions", ro(get(versions)))
        .route("/subjects/{subject}/versions/{version}", ro(get(version)))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            ro(get(version_schema)),
        )
        .route("/schemas/ids/{id}", ro(get(schema_by_id)))
        .route("/schemas/ids/{id}/versions", ro(get(id_versions)))
        .route("/schemas/ids/{id}/subjects", ro(get(id_subjects)))
        .route("/schemas/types", ro(get(schema_types)))
        .route("/config", ro(get(config)))
        .route("/config/{subject}", ro(get(subject_config)))
        .with_state(Registries(registries))
}

fn reply(status: StatusCode, body: Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: u32, message: String) -> Response {
    reply(status, json!({"error_code": code, "message": message}))
}

fn subject_not_found(subject: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        40401,
        format!("Subject '{subject}' not found."),
    )
}

/// Any path no route serves: 404 as Confluent's server answers it, or 405
/// for a write method (a registration, deletion, config change or
/// compatibility test this registry does not take).
pub async fn unknown_route(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        error(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found".into())
    } else {
        read_only().await
    }
}

async fn read_only() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        405,
        "this registry is read-only: schemas are registered by the tributary daemon".into(),
    )
}

async fn subjects(State(r): State<Registries>) -> Response {
    let mut all: Vec<String> = r.0.iter().flat_map(SchemaRegistry::subjects).collect();
    all.sort();
    all.dedup();
    reply(StatusCode::OK, json!(all))
}

async fn versions(State(r): State<Registries>, Path(subject): Path<String>) -> Response {
    match r.find(|reg| reg.versions(&subject)) {
        Some(list) => reply(StatusCode::OK, json!(list)),
        None => subject_not_found(&subject),
    }
}

/// Resolves `{version}` (a number or `latest`) of `subject`.
fn resolve(r: &Registries, subject: &str, version: &str) -> Result<SchemaVersion, Box<Response>> {
    let invalid = || {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    };
    // Confluent's `VersionId`: `latest` (any case) or -1 is the latest.
    let trimmed = version.trim();
    let number = if trimmed.eq_ignore_ascii_case("latest") {
        None
    } else {
        match trimmed.parse::<i64>() {
            Ok(-1) => None,
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Some(n as u32),
            _ => return Err(Box::new(invalid())),
        }
    };
    if r.find(|reg| reg.versions(subject)).is_none() {
        return Err(Box::new(subject_not_found(subject)));
    }
    let found = match number {
        None => r.find(|reg| reg.latest(subject)),
        Some(n) => r.find(|reg| reg.version(subject, n)),
    };
    found.ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        ))
    })
}

async fn version(
    State(r): State<Registries>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    match resolve(&r, &subject, &version) {
        Ok(v) => reply(
            StatusCode::OK,
            json!({"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema}),
        ),
        Err(response) => *response,
    }
}

async fn version_schema(
    State(r): State<Registries>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    match resolve(&r, &subject, &version) {
        Ok(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            v.schema,
        )
            .into_response(),
        Err(response) => *response,
    }
}

fn schema_not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        40403,
        format!("Schema {id} not found"),
    )
}

async fn schema_by_id(State(r): State<Registries>, Path(id): Path<String>) -> Response {
    match id
        .parse::<u32>()
        .ok()
        .and_then(|n| r.find(|reg| reg.by_id(n)))
    {
        Some(v) => reply(StatusCode::OK, json!({"schema": v.schema})),
        None => schema_not_found(&id),
    }
}

async fn id_versions(State(r): State<Registries>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<u32>() else {
        return schema_not_found(&id);
    };
    let mut pairs: Vec<(String, u32)> = r.0.iter().flat_map(|reg| reg.subjects_of_id(n)).collect();
    if pairs.is_empty() {
        return schema_not_found(&id);
    }
    pairs.sort();
    let list: Vec<Json> = pairs
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    reply(StatusCode::OK, Json::Array(list))
}

async fn id_subjects(State(r): State<Registries>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<u32>() else {
        return schema_not_found(&id);
    };
    let mut subjects: Vec<String> =
        r.0.iter()
            .flat_map(|reg| reg.subjects_of_id(n))
            .map(|(subject, _)| subject)
            .collect();
    if subjects.is_empty() {
        return schema_not_found(&id);
    }
    subjects.sort();
    subjects.dedup();
    reply(StatusCode::OK, json!(subjects))
}

async fn schema_types() -> Response {
    reply(StatusCode::OK, json!(["AVRO"]))
}

async fn config() -> Response {
    reply(
        StatusCode::OK,
        json!({"compatibilityLevel": Compatibility::default().confluent_name()}),
    )
}

async fn subject_config(State(r): State<Registries>, Path(subject): Path<String>) -> Response {
    match r.find(|reg| reg.latest(&subject)) {
        Some(v) => reply(
            StatusCode::OK,
            json!({"compatibilityLevel": v.compatibility.confluent_name()}),
        ),
        None => subject_not_found(&subject),
    }
}
