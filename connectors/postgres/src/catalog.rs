//! Catalog queries over an ordinary (non-replication) `tokio-postgres` connection.
//!
//! pgoutput describes columns only by type OID and typmod. Before the first
//! change of a relation reaches the daemon, [`crate::decoder`] resolves every
//! column type here (through a [`TypeCache`]), so the schema mapper sees
//! `numeric(12,2)`, domains unwrapped to their base type, and arrays with
//! their element type. The remaining queries serve start-up and
//! `tributary check`: which tables a publication or schema covers, each
//! table's replica identity, key and TOAST-able columns, and nullability.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::Client;

use crate::decoder::ReplicaIdentity;
use crate::error::PgError;

/// A resolved PostgreSQL type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTypeInfo {
    /// The type OID.
    pub oid: u32,
    /// The type as `format_type(oid, typmod)` prints it, e.g. `numeric(12,2)`, `character varying(20)[]`.
    pub name: String,
    /// The schema of the type (`pg_catalog` for built-ins).
    pub schema: String,
    /// The type modifier this info was resolved with (`-1` = none).
    pub typmod: i32,
    /// What kind of type it is.
    pub kind: PgTypeKind,
}

/// The kind of a type, with the resolved base/element type where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTypeKind {
    /// A base (scalar) type such as `int8` or `text`.
    Base,
    /// An enum; values arrive as their label text.
    Enum,
    /// A domain, with its base type resolved recursively (the domain's own typmod applied).
    Domain { base: Box<PgTypeInfo> },
    /// An array, with its element type resolved (the column typmod applies to the element).
    Array { element: Box<PgTypeInfo> },
    /// A composite (row) type.
    Composite,
    /// A range or multirange type.
    Range,
    /// Pseudo types and anything else.
    Other,
}

impl PgTypeInfo {
    /// The type with all domains unwrapped (a domain over a domain gives the innermost base).
    pub fn without_domains(&self) -> &PgTypeInfo {
        match &self.kind {
            PgTypeKind::Domain { base } => base.without_domains(),
            _ => self,
        }
    }

    /// Whether `oid` appears anywhere in this type (itself, a domain base, an array element).
    pub fn mentions(&self, oid: u32) -> bool {
        self.oid == oid
            || match &self.kind {
                PgTypeKind::Domain { base } => base.mentions(oid),
                PgTypeKind::Array { element } => element.mentions(oid),
                _ => false,
            }
    }
}

/// Type infos keyed by `(oid, typmod)`; invalidated by pgoutput `Type` messages.
#[derive(Debug, Default, Clone)]
pub struct TypeCache {
    entries: HashMap<(u32, i32), PgTypeInfo>,
}

impl TypeCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached info, if any.
    pub fn get(&self, oid: u32, typmod: i32) -> Option<&PgTypeInfo> {
        self.entries.get(&(oid, typmod))
    }

    /// Remember an info.
    pub fn insert(&mut self, info: PgTypeInfo) {
        self.entries.insert((info.oid, info.typmod), info);
    }

    /// Forget `oid` and every cached type built on it (domains over it, arrays of it).
    pub fn invalidate(&mut self, oid: u32) {
        self.entries.retain(|_, info| !info.mentions(oid));
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Resolve through the cache, querying `client` on a miss.
    pub async fn resolve(
        &mut self,
        client: &Client,
        oid: u32,
        typmod: i32,
    ) -> Result<PgTypeInfo, PgError> {
        if let Some(hit) = self.get(oid, typmod) {
            return Ok(hit.clone());
        }
        let info = resolve_type(client, oid, typmod).await?;
        self.insert(info.clone());
        Ok(info)
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Resolve one type without a cache (recursing into domain bases and array elements).
pub async fn resolve_type(client: &Client, oid: u32, typmod: i32) -> Result<PgTypeInfo, PgError> {
    resolve_boxed(client, oid, typmod, 0).await
}

fn resolve_boxed(
    client: &Client,
    oid: u32,
    typmod: i32,
    depth: u32,
) -> BoxFut<'_, Result<PgTypeInfo, PgError>> {
    Box::pin(async move {
        if depth > 16 {
            return Err(PgError::Decode {
                message: format!("type {oid} nests domains/arrays more than 16 levels deep"),
            });
        }
        let row = client
            .query_opt(
                "SELECT format_type(t.oid, $2::int4), n.nspname::text, t.typtype::text, t.typbasetype, \
                        t.typtypmod, t.typelem, t.typcategory::text, t.typlen \
                 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
                 WHERE t.oid = $1",
                &[&oid, &typmod],
            )
            .await?
            .ok_or_else(|| PgError::Decode { message: format!("type OID {oid} does not exist in pg_type (dropped concurrently?)") })?;
        let name: String = row.get(0);
        let schema: String = row.get(1);
        let typtype: String = row.get(2);
        let basetype: u32 = row.get(3);
        let domain_typmod: i32 = row.get(4);
        let elem: u32 = row.get(5);
        let category: String = row.get(6);
        let typlen: i16 = row.get(7);
        let kind = match typtype.as_str() {
            "d" => {
                // The domain's own typmod (e.g. `CREATE DOMAIN d AS numeric(5,1)`) applies to its base.
                let base_mod = if domain_typmod >= 0 {
                    domain_typmod
                } else {
                    typmod
                };
                PgTypeKind::Domain {
                    base: Box::new(resolve_boxed(client, basetype, base_mod, depth + 1).await?),
                }
            }
            "e" => PgTypeKind::Enum,
            "c" => PgTypeKind::Composite,
            "r" | "m" => PgTypeKind::Range,
            "b" if category == "A" && elem != 0 && typlen == -1 => PgTypeKind::Array {
                element: Box::new(resolve_boxed(client, elem, typmod, depth + 1).await?),
            },
            "b" => PgTypeKind::Base,
            _ => PgTypeKind::Other,
        };
        Ok(PgTypeInfo {
            oid,
            name,
            schema,
            typmod,
            kind,
        })
    })
}

/// How the decoder resolves column types when a `Relation` message arrives.
///
/// Injectable so that decoding can be unit-tested without a server.
pub trait TypeResolver: Send {
    /// Resolve `(oid, typmod)`.
    fn resolve(&mut self, oid: u32, typmod: i32) -> BoxFut<'_, Result<PgTypeInfo, PgError>>;
    /// A pgoutput `Type` message announced that `oid` may have changed.
    fn invalidate(&mut self, oid: u32);
}

/// The production resolver: a catalog connection plus a [`TypeCache`].
#[derive(Debug)]
pub struct CatalogTypeResolver {
    client: Arc<Client>,
    cache: TypeCache,
}

impl CatalogTypeResolver {
    /// Resolve through `client`, caching results.
    pub fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            cache: TypeCache::new(),
        }
    }

    /// The cache (for inspection).
    pub fn cache(&self) -> &TypeCache {
        &self.cache
    }
}

impl TypeResolver for CatalogTypeResolver {
    fn resolve(&mut self, oid: u32, typmod: i32) -> BoxFut<'_, Result<PgTypeInfo, PgError>> {
        Box::pin(async move { self.cache.resolve(&self.client, oid, typmod).await })
    }

    fn invalidate(&mut self, oid: u32) {
        self.cache.invalidate(oid);
    }
}

/// A resolver without a server: knows common built-in types by OID and treats
/// every other OID as [`PgTypeKind::Other`] named `oid:<n>`. For tests and tools.
#[derive(Debug, Default, Clone)]
pub struct BuiltinTypeResolver {
    /// Extra types to answer with (looked up by OID, typmod ignored).
    pub extra: HashMap<u32, PgTypeInfo>,
}

impl BuiltinTypeResolver {
    /// The name of a built-in type OID, if known.
    pub fn builtin_name(oid: u32) -> Option<&'static str> {
        Some(match oid {
            16 => "boolean",
            17 => "bytea",
            20 => "bigint",
            21 => "smallint",
            23 => "integer",
            25 => "text",
            114 => "json",
            700 => "real",
            701 => "double precision",
            1043 => "character varying",
            1082 => "date",
            1083 => "time without time zone",
            1114 => "timestamp without time zone",
            1184 => "timestamp with time zone",
            1700 => "numeric",
            2950 => "uuid",
            3802 => "jsonb",
            _ => return None,
        })
    }

    fn describe(&self, oid: u32, typmod: i32) -> PgTypeInfo {
        if let Some(t) = self.extra.get(&oid) {
            return t.clone();
        }
        let name = match (Self::builtin_name(oid), oid) {
            (Some("numeric"), _) if typmod >= 4 => {
                let m = typmod - 4;
                format!("numeric({},{})", (m >> 16) & 0xFFFF, m & 0xFFFF)
            }
            (Some("character varying"), _) if typmod >= 4 => {
                format!("character varying({})", typmod - 4)
            }
            (Some(n), _) => n.to_owned(),
            (None, o) => format!("oid:{o}"),
        };
        let kind = if Self::builtin_name(oid).is_some() {
            PgTypeKind::Base
        } else {
            PgTypeKind::Other
        };
        PgTypeInfo {
            oid,
            name,
            schema: "pg_catalog".into(),
            typmod,
            kind,
        }
    }
}

impl TypeResolver for BuiltinTypeResolver {
    fn resolve(&mut self, oid: u32, typmod: i32) -> BoxFut<'_, Result<PgTypeInfo, PgError>> {
        let info = self.describe(oid, typmod);
        Box::pin(async move { Ok(info) })
    }

    fn invalidate(&mut self, _oid: u32) {}
}

/// Replica identity, keys and TOAST-able columns of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableIdentity {
    /// `pg_class.relreplident`.
    pub replica_identity: ReplicaIdentity,
    /// Primary-key columns in key order (empty without a primary key).
    pub primary_key: Vec<String>,
    /// Columns of the `REPLICA IDENTITY USING INDEX` index (empty unless identity is `Index`).
    pub identity_index_columns: Vec<String>,
    /// Variable-length columns whose values can be stored out of line; unchanged
    /// ones arrive as [`crate::Cell::Unchanged`] in updates unless identity is FULL.
    pub toastable_columns: Vec<String>,
}

/// Tables of a publication, as `(schema, table)` sorted by name.
pub async fn publication_tables(
    client: &Client,
    publication: &str,
) -> Result<Vec<(String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables \
             WHERE pubname = $1 ORDER BY 1, 2",
            &[&publication],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Ordinary and partitioned tables of a schema, as `(schema, table)` sorted by name.
pub async fn schema_tables(
    client: &Client,
    schema: &str,
) -> Result<Vec<(String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 2",
            &[&schema],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The OID of `schema.table` (exact, case-sensitive names), if it exists.
pub async fn table_oid(client: &Client, schema: &str, table: &str) -> Result<Option<u32>, PgError> {
    let row = client
        .query_opt(
            "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&schema, &table],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

async fn require_table(client: &Client, schema: &str, table: &str) -> Result<u32, PgError> {
    table_oid(client, schema, table).await?.ok_or_else(|| PgError::Config {
        message: format!(
            "table {schema}.{table} does not exist (names are case-sensitive); create it or remove it from the configured tables"
        ),
    })
}

/// Replica identity, primary key, identity index and TOAST-able columns of a table.
pub async fn table_identity(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<TableIdentity, PgError> {
    let oid = require_table(client, schema, table).await?;
    let ident: String = client
        .query_one(
            "SELECT relreplident::text FROM pg_catalog.pg_class WHERE oid = $1",
            &[&oid],
        )
        .await?
        .get(0);
    let replica_identity = ReplicaIdentity::from_code(ident.bytes().next().unwrap_or(b'd'));
    let index_columns = |flag: &'static str| {
        format!(
            "SELECT a.attname::text FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[]) \
             WHERE i.indrelid = $1 AND i.{flag} \
             ORDER BY array_position(i.indkey::int2[], a.attnum)"
        )
    };
    let names = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let primary_key = names(
        client
            .query(&index_columns("indisprimary"), &[&oid])
            .await?,
    );
    let identity_index_columns = if replica_identity == ReplicaIdentity::Index {
        names(
            client
                .query(&index_columns("indisreplident"), &[&oid])
                .await?,
        )
    } else {
        Vec::new()
    };
    let toastable_columns = names(
        client
            .query(
                "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                   AND a.attlen = -1 AND a.attstorage <> 'p' ORDER BY a.attnum",
                &[&oid],
            )
            .await?,
    );
    Ok(TableIdentity {
        replica_identity,
        primary_key,
        identity_index_columns,
        toastable_columns,
    })
}

/// One column of a table as the catalog describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDetail {
    pub name: String,
    /// `pg_attribute.attnum`: stable across renames, never reused.
    pub attnum: i16,
    /// `!pg_attribute.attnotnull`.
    pub nullable: bool,
    /// The default expression (`pg_get_expr` of `pg_attrdef`), if any.
    pub default: Option<String>,
    /// `pg_attribute.atttypid`.
    pub type_oid: u32,
}

/// Columns of relation `oid` (not dropped) in attribute order, with what
/// pgoutput's Relation message leaves out: attribute numbers, nullability
/// and defaults. Empty when the relation no longer exists.
pub async fn column_details(client: &Client, oid: u32) -> Result<Vec<ColumnDetail>, PgError> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.attnum, NOT a.attnotnull, \
                    pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.atttypid \
             FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ColumnDetail {
            name: r.get(0),
            attnum: r.get(1),
            nullable: r.get(2),
            default: r.get(3),
            type_oid: r.get(4),
        })
        .collect())
}

/// The relation as a pgoutput `Relation` message would describe it now:
/// published columns (not dropped, not generated) in attribute order with
/// resolved types, and the replica-identity key flags pgoutput sets (every
/// column under FULL, the primary key under DEFAULT, the index under USING
/// INDEX, none under NOTHING). A snapshot builds its schema from this so its
/// rows carry exactly the schema the stream will. `None` if the table is gone.
pub async fn relation_desc(
    client: &Client,
    types: &mut TypeCache,
    schema: &str,
    table: &str,
) -> Result<Option<crate::RelationDesc>, PgError> {
    let Some(oid) = table_oid(client, schema, table).await? else {
        return Ok(None);
    };
    let identity = table_identity(client, schema, table).await?;
    let key: &[String] = match identity.replica_identity {
        ReplicaIdentity::Default => &identity.primary_key,
        ReplicaIdentity::Index => &identity.identity_index_columns,
        ReplicaIdentity::Full | ReplicaIdentity::Nothing => &[],
    };
    let rows = client
        .query(
            "SELECT attname::text, atttypid, atttypmod FROM pg_catalog.pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' \
             ORDER BY attnum",
            &[&oid],
        )
        .await?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get(0);
        let type_oid: u32 = row.get(1);
        let type_modifier: i32 = row.get(2);
        let type_info = types.resolve(client, type_oid, type_modifier).await?;
        let is_key = identity.replica_identity == ReplicaIdentity::Full || key.contains(&name);
        columns.push(crate::RelColumn {
            name,
            type_oid,
            type_modifier,
            is_key,
            type_info,
        });
    }
    Ok(Some(crate::RelationDesc {
        oid,
        namespace: schema.to_string(),
        name: table.to_string(),
        replica_identity: identity.replica_identity,
        columns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(oid: u32, kind: PgTypeKind) -> PgTypeInfo {
        PgTypeInfo {
            oid,
            name: format!("t{oid}"),
            schema: "public".into(),
            typmod: -1,
            kind,
        }
    }

    #[test]
    fn domains_unwrap_and_invalidation_is_transitive() {
        let base = t(1700, PgTypeKind::Base);
        let dom = t(
            9000,
            PgTypeKind::Domain {
                base: Box::new(base.clone()),
            },
        );
        let dom2 = t(
            9001,
            PgTypeKind::Domain {
                base: Box::new(dom.clone()),
            },
        );
        let arr = t(
            9002,
            PgTypeKind::Array {
                element: Box::new(dom.clone()),
            },
        );
        assert_eq!(dom2.without_domains(), &base);
        assert!(arr.mentions(1700) && arr.mentions(9000) && !arr.mentions(9001));

        let mut cache = TypeCache::new();
        for info in [base, dom, dom2, arr, t(25, PgTypeKind::Base)] {
            cache.insert(info);
        }
        cache.invalidate(9000);
        assert_eq!(
            cache.len(),
            2,
            "the domain, its domain and its array go; numeric and text stay"
        );
        assert!(cache.get(1700, -1).is_some() && cache.get(25, -1).is_some());
    }

    #[tokio::test]
    async fn builtin_resolver_formats_typmods() {
        let mut r = BuiltinTypeResolver::default();
        assert_eq!(
            r.resolve(1700, (12 << 16 | 2) + 4).await.unwrap().name,
            "numeric(12,2)"
        );
        assert_eq!(
            r.resolve(1043, 24).await.unwrap().name,
            "character varying(20)"
        );
        assert_eq!(r.resolve(20, -1).await.unwrap().name, "bigint");
        assert_eq!(
            r.resolve(123_456, -1).await.unwrap().kind,
            PgTypeKind::Other
        );
    }
}
