//! Schemas and the search path: which storage table a SQL table name means.
//!
//! Storage keeps tables in one namespace: a table `t` of schema `public` is
//! stored as `t`, of schema `s` as `s.t` (see the storage catalog). A
//! qualified name `s.t` means that table; an unqualified one the first
//! table of that name along `search_path`, and a new table goes into the
//! first schema of the path that exists. Identifiers with a `.` are
//! refused, so that mapping is one to one.
//!
//! DataFusion sees the storage schemas through [`StorageCatalog`]; an
//! unqualified name goes to its search-path schema.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::sql::sqlparser::ast::ObjectName;
use omendb_storage::{Catalog, PUBLIC_SCHEMA, TableDef, name_in_schema, schema_of};

use crate::engine::ident;
use crate::error::{ErrorClass, Result, SqlError};
use crate::pg_catalog::{CatalogSource, INFORMATION_SCHEMA, PG_CATALOG, SystemSchema};
use crate::provider::{KEYS_SCHEMA, ReaderSlot, StorageTable};
use crate::settings::SharedSettings;

/// The DataFusion schema unqualified table names resolve in.
pub(crate) const SEARCH_PATH_SCHEMA: &str = "_omendb_search_path";

/// Schemas PostgreSQL always has and that hold no tables here.
pub(crate) const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema"];

/// A table name as written: `[schema.]table`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TableName {
    pub(crate) schema: Option<String>,
    pub(crate) table: String,
}

impl TableName {
    /// Reads `name` (`t`, `s.t` or `omendb.s.t`), folding unquoted parts.
    pub(crate) fn of(name: &ObjectName) -> Result<TableName> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|part| {
                part.as_ident()
                    .map(ident)
                    .ok_or_else(|| SqlError::unsupported(format!("table name {name}")))
            })
            .collect::<Result<_>>()?;
        let (schema, table) = match parts.as_slice() {
            [table] => (None, table.clone()),
            [schema, table] => (Some(schema.clone()), table.clone()),
            [database, schema, table] if database == "omendb" => {
                (Some(schema.clone()), table.clone())
            }
            [_, _, _] => {
                return Err(SqlError::unsupported(format!(
                    "cross-database references are not implemented: {name}"
                )));
            }
            _ => {
                return Err(SqlError::new(
                    ErrorClass::SyntaxError,
                    format!("improper qualified name (too many dotted names): {name}"),
                ));
            }
        };
        for part in schema.iter().chain([&table]) {
            check_identifier(part)?;
        }
        Ok(TableName { schema, table })
    }

    /// The storage name of this table, if it exists in `catalog`.
    pub(crate) fn find(&self, catalog: &Catalog, path: &[String]) -> Option<String> {
        match &self.schema {
            Some(schema) => {
                let name = storage_name(schema, &self.table);
                catalog.table(&name).is_ok().then_some(name)
            }
            None => path
                .iter()
                .map(|schema| storage_name(schema, &self.table))
                .find(|name| catalog.table(name).is_ok()),
        }
    }

    /// The storage name of this existing table; 42P01 if there is none.
    pub(crate) fn resolve(&self, catalog: &Catalog, path: &[String]) -> Result<String> {
        self.find(catalog, path).ok_or_else(|| {
            SqlError::new(
                ErrorClass::UndefinedTable,
                format!("relation \"{self}\" does not exist"),
            )
        })
    }

    /// The storage name a table created under this name gets.
    pub(crate) fn for_create(&self, catalog: &Catalog, path: &[String]) -> Result<String> {
        let schema = match &self.schema {
            Some(schema) if catalog.has_schema(schema) => schema.clone(),
            Some(schema) => {
                return Err(SqlError::new(
                    ErrorClass::InvalidSchemaName,
                    format!("schema \"{schema}\" does not exist"),
                ));
            }
            None => path
                .iter()
                .find(|schema| catalog.has_schema(schema))
                .cloned()
                .ok_or_else(|| {
                    SqlError::new(
                        ErrorClass::InvalidSchemaName,
                        "no schema has been selected to create in",
                    )
                })?,
        };
        Ok(storage_name(&schema, &self.table))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// Refuses a schema or table name the storage mapping cannot hold.
pub(crate) fn check_identifier(name: &str) -> Result<()> {
    match name.contains('.') {
        false => Ok(()),
        true => Err(SqlError::unsupported(format!(
            "names containing \".\" are not supported: \"{name}\""
        ))),
    }
}

/// The storage name of table `table` of schema `schema`.
pub(crate) fn storage_name(schema: &str, table: &str) -> String {
    match schema {
        PUBLIC_SCHEMA => table.to_string(),
        _ => format!("{schema}.{table}"),
    }
}

/// The schemas of a `search_path` value, in order (`"$user"` names no
/// schema here).
pub(crate) fn search_path(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(|part| {
            let part = part.trim();
            match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => part.to_lowercase(),
            }
        })
        .filter(|schema| !schema.is_empty() && schema != "$user")
        .collect()
}

/// The session's schemas as DataFusion's catalog: one schema provider per
/// storage schema, plus the search path, the keyed tables UPDATE and
/// DELETE read, and the statement's own rows (RETURNING, EXCLUDED).
#[derive(Debug)]
pub(crate) struct StorageCatalog {
    pub(crate) reader: Arc<ReaderSlot>,
    pub(crate) settings: Arc<SharedSettings>,
    pub(crate) rows: Arc<dyn SchemaProvider>,
}

/// Internal schema holding the statement's own rows.
pub(crate) const ROWS_SCHEMA: &str = "_omendb_rows";

impl CatalogProvider for StorageCatalog {
    fn schema_names(&self) -> Vec<String> {
        match self.reader.get() {
            Some(reader) => reader.catalog().schemas().map(String::from).collect(),
            None => vec![PUBLIC_SCHEMA.to_string()],
        }
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let source = CatalogSource {
            reader: self.reader.clone(),
            settings: self.settings.clone(),
        };
        let tables = match name {
            PG_CATALOG => {
                return Some(Arc::new(SystemSchema {
                    name: PG_CATALOG,
                    source,
                }));
            }
            INFORMATION_SCHEMA => {
                return Some(Arc::new(SystemSchema {
                    name: INFORMATION_SCHEMA,
                    source,
                }));
            }
            ROWS_SCHEMA => return Some(self.rows.clone()),
            KEYS_SCHEMA => SchemaTables::Keyed,
            SEARCH_PATH_SCHEMA => SchemaTables::SearchPath(self.settings.clone()),
            schema => SchemaTables::Schema(schema.to_string()),
        };
        Some(Arc::new(StorageSchema {
            reader: self.reader.clone(),
            tables,
        }))
    }
}

/// Which tables a [`StorageSchema`] shows, under which names.
#[derive(Debug)]
enum SchemaTables {
    /// The tables of one schema, by their names within it.
    Schema(String),
    /// Unqualified names, looked up along the session's search path.
    SearchPath(Arc<SharedSettings>),
    /// Every table by its storage name, with its `_key` column.
    Keyed,
}

/// Storage tables as the running statement sees them.
#[derive(Debug)]
struct StorageSchema {
    reader: Arc<ReaderSlot>,
    tables: SchemaTables,
}

impl StorageSchema {
    fn def(&self, name: &str) -> Option<Arc<TableDef>> {
        let reader = self.reader.get()?;
        let catalog = reader.catalog();
        let stored = match &self.tables {
            SchemaTables::Schema(schema) => storage_name(schema, name),
            SchemaTables::SearchPath(settings) => {
                let path = search_path(&settings.lock().get("search_path").ok()?);
                let name = TableName {
                    schema: None,
                    table: name.to_string(),
                };
                name.find(catalog, &path)?
            }
            SchemaTables::Keyed => name.to_string(),
        };
        catalog.table(&stored).ok().cloned()
    }

    /// The `pg_catalog` table an unqualified `name` means: PostgreSQL
    /// searches `pg_catalog` before the search path.
    fn system_table(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        let SchemaTables::SearchPath(settings) = &self.tables else {
            return None;
        };
        let source = CatalogSource {
            reader: self.reader.clone(),
            settings: settings.clone(),
        };
        source.table(PG_CATALOG, name)
    }
}

#[async_trait]
impl SchemaProvider for StorageSchema {
    fn table_names(&self) -> Vec<String> {
        let Some(reader) = self.reader.get() else {
            return Vec::new();
        };
        let names = reader.catalog().tables().map(|t| t.name.as_str());
        match &self.tables {
            SchemaTables::Schema(schema) => names
                .filter(|name| schema_of(name) == schema)
                .map(|name| name_in_schema(name).to_string())
                .collect(),
            SchemaTables::SearchPath(_) => names
                .map(|name| name_in_schema(name).to_string())
                .filter(|name| self.def(name).is_some())
                .collect(),
            SchemaTables::Keyed => names.map(String::from).collect(),
        }
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(system) = self.system_table(name) {
            return Ok(Some(system));
        }
        let with_keys = matches!(self.tables, SchemaTables::Keyed);
        Ok(self.def(name).map(|def| {
            Arc::new(StorageTable::new(def, self.reader.clone(), with_keys))
                as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.system_table(name).is_some() || self.def(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_paths_read_as_postgresql_writes_them() {
        assert_eq!(search_path("\"$user\", public"), vec!["public"]);
        assert_eq!(
            search_path("Sensors, \"Mixed\"\"Case\",public"),
            vec!["sensors", "Mixed\"Case", "public"]
        );
        assert!(search_path("").is_empty());
    }

    #[test]
    fn storage_names_keep_public_tables_bare() {
        assert_eq!(storage_name("public", "t"), "t");
        assert_eq!(storage_name("s", "t"), "s.t");
    }
}
