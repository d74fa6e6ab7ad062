//! The system catalogs: `pg_catalog` and `information_schema` as tables
//! DataFusion scans, built from the running statement's storage catalog
//! when the scan starts (so a cached plan never shows a stale catalog),
//! and the catalog functions clients call with them (`functions.rs`).
//!
//! What exists is what clients read: psql's `\d` family, drivers' type
//! and metadata queries, ORMs' introspection. Catalogs of features OmenDB
//! does not have (policies, publications, inheritance, ...) exist and are
//! always empty (see [`always_empty`]).
//!
//! OIDs are stable: a table's is `16384 + 2 * id` (its storage id), its
//! primary key index the next one; a unique constraint's index is its
//! hidden index table's. Schemas other than `public` get a hash of their
//! name, above every table's OID.

mod functions;
mod information_schema;
mod relations;
mod rows;
pub(crate) mod types;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use omendb_storage::{
    Catalog, PUBLIC_SCHEMA, TableDef, TableId, TxnReader, UniqueIndex, name_in_schema, schema_of,
};

use crate::provider::ReaderSlot;
use crate::schemas::search_path;
use crate::settings::SharedSettings;
use rows::{Columns, Table};

pub(crate) use functions::{EXPAND_ARRAY, REG_NAME, REG_OID, functions};

pub(crate) const PG_CATALOG: &str = "pg_catalog";
pub(crate) const INFORMATION_SCHEMA: &str = "information_schema";

/// The bootstrap superuser `omendb` (PostgreSQL's is OID 10 too).
pub(crate) const SUPERUSER_OID: u32 = 10;
pub(crate) const SUPERUSER: &str = "omendb";
/// The one database, `omendb`.
pub(crate) const DATABASE_OID: u32 = 5;
/// PostgreSQL's first OID for user objects.
const FIRST_USER_OID: u32 = 16_384;

/// The OID of the table (or hidden index table) with storage id `id`.
pub(crate) fn table_oid(id: TableId) -> u32 {
    u32::try_from(u64::from(FIRST_USER_OID) + 2 * id).unwrap_or(u32::MAX)
}

/// The OID of a table's primary key index (and constraint).
pub(crate) fn primary_key_oid(table: &TableDef) -> u32 {
    table_oid(table.id) + 1
}

/// The OID of a unique constraint's index (and the constraint).
pub(crate) fn unique_oid(unique: &UniqueIndex) -> u32 {
    table_oid(unique.table)
}

/// The OID of schema `name`.
pub(crate) fn schema_oid(name: &str) -> u32 {
    match name {
        PG_CATALOG => 11,
        PUBLIC_SCHEMA => 2200,
        INFORMATION_SCHEMA => 13_207,
        _ => {
            // FNV-1a: stable across runs and versions.
            let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            0x4000_0000 | (hash & 0x3fff_ffff)
        }
    }
}

/// An index as `pg_index` and `pg_class` show it: a primary key or the
/// index of a unique constraint.
#[derive(Debug)]
pub(crate) struct Index<'a> {
    pub oid: u32,
    pub name: String,
    pub table: &'a TableDef,
    pub primary: bool,
    /// Positions of the indexed columns in the table.
    pub positions: Vec<usize>,
}

impl Index<'_> {
    /// `pg_get_indexdef`: the CREATE INDEX that would make it.
    pub(crate) fn definition(&self) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote_ident(&self.name),
            quote_ident(schema_of(&self.table.name)),
            quote_ident(name_in_schema(&self.table.name)),
            self.column_list()
        )
    }

    /// `pg_get_constraintdef`: `PRIMARY KEY (a, b)` or `UNIQUE (a)`.
    pub(crate) fn constraint(&self) -> String {
        let kind = if self.primary {
            "PRIMARY KEY"
        } else {
            "UNIQUE"
        };
        format!("{kind} ({})", self.column_list())
    }

    fn column_list(&self) -> String {
        self.positions
            .iter()
            .map(|&p| quote_ident(&self.table.columns[p].name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `name` quoted where PostgreSQL's `quote_ident` would.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !crate::keywords::is_reserved(name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The storage catalog and search path a catalog scan shows.
pub(crate) struct CatalogView {
    pub catalog: Arc<Catalog>,
    /// The statement's view of storage (segment sizes).
    pub reader: TxnReader,
    /// The session's search path, `pg_catalog` first.
    pub path: Vec<String>,
    pub settings: Vec<(&'static str, String)>,
}

impl CatalogView {
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Arc<TableDef>> {
        self.catalog.tables()
    }

    /// Every schema, the system ones first.
    pub(crate) fn schemas(&self) -> impl Iterator<Item = &str> {
        [PG_CATALOG, INFORMATION_SCHEMA]
            .into_iter()
            .chain(self.catalog.schemas())
    }

    /// The indexes of `table`: its primary key, then its unique constraints.
    pub(crate) fn indexes<'a>(&self, table: &'a TableDef) -> Vec<Index<'a>> {
        let primary = (!table.has_row_id()).then(|| Index {
            oid: primary_key_oid(table),
            name: table.primary_key_name(),
            table,
            primary: true,
            positions: table.key_positions(),
        });
        let unique = table.unique.iter().map(|u| Index {
            oid: unique_oid(u),
            name: u.name.clone(),
            table,
            primary: false,
            positions: table.unique_positions(u),
        });
        primary.into_iter().chain(unique).collect()
    }

    /// `pg_table_size` and its siblings: the bytes of the segments of the
    /// relation `oid` (for a table, with `indexes` its unique constraints'
    /// index tables too; a primary key's learned index lives inside the
    /// table's segments, so it counts as 0 on its own).
    pub(crate) fn relation_bytes(&self, oid: u32, table: bool, indexes: bool) -> Option<u64> {
        if let Some(def) = self.table(oid) {
            let own = if table {
                self.reader.segment_bytes(def.id)
            } else {
                0
            };
            let unique: u64 = match indexes {
                true => def
                    .unique
                    .iter()
                    .map(|u| self.reader.segment_bytes(u.table))
                    .sum(),
                false => 0,
            };
            return Some(own + unique);
        }
        let index = self.index(oid)?;
        Some(match index.primary {
            true => 0,
            false => index
                .table
                .unique
                .iter()
                .find(|u| unique_oid(u) == oid)
                .map_or(0, |u| self.reader.segment_bytes(u.table)),
        })
    }

    /// The table with OID `oid`.
    pub(crate) fn table(&self, oid: u32) -> Option<&Arc<TableDef>> {
        self.tables().find(|t| table_oid(t.id) == oid)
    }

    /// The index with OID `oid`.
    pub(crate) fn index(&self, oid: u32) -> Option<Index<'_>> {
        self.tables()
            .flat_map(|t| self.indexes(t))
            .find(|i| i.oid == oid)
    }

    /// The OID of the relation (table or index) `name` means: `s.t`, or
    /// `t` along the search path.
    pub(crate) fn relation_oid(&self, name: &str) -> Option<u32> {
        let (schema, relation) = match name.split_once('.') {
            Some((s, r)) => (Some(s.trim_matches('"')), r.trim_matches('"')),
            None => (None, name.trim_matches('"')),
        };
        let path: Vec<&str> = match schema {
            Some(s) => vec![s],
            None => self.path.iter().map(String::as_str).collect(),
        };
        path.iter().find_map(|schema| {
            if let Some(oid) = system_relation_oid(schema, relation) {
                return Some(oid);
            }
            self.tables()
                .filter(|t| schema_of(&t.name) == *schema)
                .find_map(|t| {
                    if name_in_schema(&t.name) == relation {
                        return Some(table_oid(t.id));
                    }
                    self.indexes(t)
                        .into_iter()
                        .find(|i| i.name == relation)
                        .map(|i| i.oid)
                })
        })
    }

    /// Whether an unqualified reference to the relation `oid` finds it
    /// (`pg_table_is_visible`).
    pub(crate) fn is_visible(&self, oid: u32) -> bool {
        let named = self
            .table(oid)
            .map(|t| (t.name.clone(), name_in_schema(&t.name).to_owned()))
            .or_else(|| {
                self.index(oid)
                    .map(|i| (i.table.name.clone(), i.name.clone()))
            });
        let Some((table, relation)) = named else {
            return false;
        };
        let schema = schema_of(&table);
        self.path.iter().any(|s| s == schema) && self.relation_oid(&relation) == Some(oid)
    }
}

/// A catalog table: where it lives, its columns, and how its rows are
/// made (`None`: always empty).
struct Definition {
    schema: &'static str,
    name: &'static str,
    columns: &'static str,
    rows: Option<fn(&CatalogView, &mut Table)>,
}

fn definitions() -> impl Iterator<Item = &'static Definition> {
    relations::DEFINITIONS
        .iter()
        .chain(information_schema::DEFINITIONS)
}

fn definition(schema: &str, name: &str) -> Option<&'static Definition> {
    definitions().find(|d| d.schema == schema && d.name == name)
}

/// The OID of the system catalog `schema.name`: PostgreSQL's for the
/// catalogs clients name (`'pg_class'::regclass` is 1259 everywhere),
/// else one of a range PostgreSQL leaves unassigned, by position.
fn system_relation_oid(schema: &str, name: &str) -> Option<u32> {
    const KNOWN: &[(&str, u32)] = &[
        ("pg_type", 1247),
        ("pg_attribute", 1249),
        ("pg_proc", 1255),
        ("pg_class", 1259),
        ("pg_database", 1262),
        ("pg_am", 2601),
        ("pg_attrdef", 2604),
        ("pg_constraint", 2606),
        ("pg_description", 2609),
        ("pg_index", 2610),
        ("pg_namespace", 2615),
        ("pg_collation", 3456),
    ];
    let position = definitions().position(|d| d.schema == schema && d.name == name)?;
    let known = KNOWN
        .iter()
        .find(|(n, _)| schema == PG_CATALOG && *n == name);
    Some(
        known.map_or(9_100 + u32::try_from(position).unwrap_or(0), |(_, oid)| {
            *oid
        }),
    )
}

/// Whether `pg_catalog.name` exists and never has a row here: a query
/// that inner-joins it returns no rows (see `pg_syntax`).
pub(crate) fn always_empty(name: &str) -> bool {
    definition(PG_CATALOG, name).is_some_and(|d| d.rows.is_none())
}

/// What a catalog scan reads: the statement's catalog and the session's
/// settings.
#[derive(Debug, Clone)]
pub(crate) struct CatalogSource {
    pub reader: Arc<ReaderSlot>,
    pub settings: Arc<SharedSettings>,
}

impl CatalogSource {
    pub(crate) fn view(&self) -> DfResult<CatalogView> {
        let reader = self.reader.get().ok_or_else(|| {
            DataFusionError::Internal("system catalog read outside a statement".into())
        })?;
        let settings = self.settings.lock();
        let setting = settings
            .get("search_path")
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let path = std::iter::once(PG_CATALOG.to_owned())
            .chain(
                search_path(&setting)
                    .into_iter()
                    .filter(|s| s != PG_CATALOG),
            )
            .collect();
        Ok(CatalogView {
            catalog: reader.catalog().clone(),
            reader,
            path,
            settings: settings.all(),
        })
    }

    /// The catalog table `schema.name`, if there is one.
    pub(crate) fn table(&self, schema: &str, name: &str) -> Option<Arc<dyn TableProvider>> {
        let definition = definition(schema, name)?;
        Some(Arc::new(SystemTable {
            definition,
            schema: Columns::parse(definition.columns).schema(),
            source: self.clone(),
        }))
    }
}

/// `pg_catalog` or `information_schema`.
#[derive(Debug)]
pub(crate) struct SystemSchema {
    pub name: &'static str,
    pub source: CatalogSource,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        definitions()
            .filter(|d| d.schema == self.name)
            .map(|d| d.name.to_owned())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.source.table(self.name, name))
    }

    fn table_exist(&self, name: &str) -> bool {
        definition(self.name, name).is_some()
    }
}

/// One catalog table; its rows are made when it is scanned.
struct SystemTable {
    definition: &'static Definition,
    schema: SchemaRef,
    source: CatalogSource,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.definition.schema, self.definition.name)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut table = Table::new(self.definition.columns);
        if let Some(rows) = self.definition.rows {
            rows(&self.source.view()?, &mut table);
        }
        let batch = table.batch()?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
