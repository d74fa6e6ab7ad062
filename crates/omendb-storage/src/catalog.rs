//! The catalog: which schemas and tables exist, the tables' columns and
//! primary keys.
//!
//! Tables live in one namespace of names. A table of a schema other than
//! `public` is named `schema.table`; a schema must exist before tables go
//! into it, and can be dropped only once it holds none. (The SQL layer
//! refuses identifiers with a `.`, so the mapping is one to one.)
//!
//! Columns have ids that never change or get reused, and stored rows name
//! columns by id, so renaming, adding or dropping a column never rewrites
//! data. A table without a declared primary key gets a hidden `bigint` row
//! id as its key. Catalog changes are [`CatalogOp`]s that travel in the same
//! WAL record as the data of their transaction, so they commit and recover
//! with it.

mod codec;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(crate) use codec::{decode_catalog, decode_op, encode_catalog, encode_op};

use crate::error::{Result, StorageError};
use crate::types::{DataType, KeyCodec, Value};

/// The schema of tables whose name has no schema part.
pub const PUBLIC_SCHEMA: &str = "public";

/// The schema of the table named `name` (`s` of `s.t`; else `public`).
pub fn schema_of(name: &str) -> &str {
    name.split_once('.')
        .map_or(PUBLIC_SCHEMA, |(schema, _)| schema)
}

/// The name of the table named `name` within its schema (`t` of `s.t`).
pub fn name_in_schema(name: &str) -> &str {
    name.split_once('.').map_or(name, |(_, table)| table)
}

/// Identifies a table for its whole life; never reused.
pub type TableId = u64;

/// Identifies a column within its table; never reused.
pub type ColumnId = u32;

/// A column as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// The default expression as SQL text; the SQL layer evaluates it.
    pub default: Option<String>,
}

impl ColumnSpec {
    /// A nullable column without default.
    pub fn new(name: impl Into<String>, data_type: DataType) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            data_type,
            nullable: true,
            default: None,
        }
    }

    /// The same column, NOT NULL.
    pub fn not_null(mut self) -> ColumnSpec {
        self.nullable = false;
        self
    }
}

/// A column of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub id: ColumnId,
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    pub default: Option<String>,
    /// The value of this column in rows written before it was added
    /// (PostgreSQL's "missing value" of `ADD COLUMN ... DEFAULT`).
    pub missing: Value,
}

/// A UNIQUE constraint. It is kept as a hidden index table whose key is
/// the constrained columns and whose last column is the row's key; rows
/// with a NULL in any constrained column are not indexed (NULLs are
/// distinct, as in PostgreSQL).
#[derive(Clone, Debug, PartialEq)]
pub struct UniqueIndex {
    /// The constraint's name.
    pub name: String,
    pub columns: Vec<ColumnId>,
    /// The index table.
    pub table: TableId,
}

/// A table: its columns, primary key and unique constraints.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub id: TableId,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Column ids of the primary key, in key order; empty when the table
    /// has the hidden row id as its key.
    pub primary_key: Vec<ColumnId>,
    pub unique: Vec<UniqueIndex>,
    /// Set on the hidden index table of a unique constraint: the table
    /// it indexes. Index tables have no name in the catalog's namespace.
    pub index_of: Option<TableId>,
    next_column_id: ColumnId,
    key_codec: KeyCodec,
}

impl TableDef {
    /// A new table definition. `primary_key` names key columns in order;
    /// they become NOT NULL, as in PostgreSQL.
    pub fn new(
        id: TableId,
        name: impl Into<String>,
        columns: Vec<ColumnSpec>,
        primary_key: &[&str],
    ) -> Result<TableDef> {
        let name = name.into();
        let mut defs = Vec::with_capacity(columns.len());
        for (i, spec) in columns.into_iter().enumerate() {
            spec.data_type.validate()?;
            if defs.iter().any(|c: &ColumnDef| c.name == spec.name) {
                return Err(StorageError::DuplicateColumn {
                    table: name,
                    column: spec.name,
                });
            }
            defs.push(ColumnDef {
                id: i as ColumnId,
                name: spec.name,
                data_type: spec.data_type,
                nullable: spec.nullable,
                default: spec.default,
                missing: Value::Null,
            });
        }
        let mut key = Vec::with_capacity(primary_key.len());
        for &column in primary_key {
            let Some(def) = defs.iter_mut().find(|c| c.name == column) else {
                return Err(StorageError::UndefinedColumn {
                    table: name,
                    column: column.into(),
                });
            };
            if key.contains(&def.id) {
                return Err(StorageError::invalid(format!(
                    "column \"{column}\" appears twice in primary key constraint"
                )));
            }
            def.nullable = false;
            key.push(def.id);
        }
        TableDef::assemble(id, name, defs, key)
    }

    /// Builds the derived parts (the key codec) and checks the whole.
    fn assemble(
        id: TableId,
        name: String,
        columns: Vec<ColumnDef>,
        primary_key: Vec<ColumnId>,
    ) -> Result<TableDef> {
        let key_types = if primary_key.is_empty() {
            vec![DataType::Int64]
        } else {
            primary_key
                .iter()
                .map(|&id| {
                    let column = columns.iter().find(|c| c.id == id);
                    column.map(|c| c.data_type.clone()).ok_or_else(|| {
                        StorageError::internal(format!(
                            "primary key column id {id} missing from {name}"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        let key_codec = KeyCodec::new(key_types)?;
        let next_column_id = columns.iter().map(|c| c.id + 1).max().unwrap_or(0);
        Ok(TableDef {
            id,
            name,
            columns,
            primary_key,
            unique: Vec::new(),
            index_of: None,
            next_column_id,
            key_codec,
        })
    }

    /// The hidden index table (id `id`) of a unique constraint `name` on
    /// `columns` of this table: the constrained columns, NOT NULL, as its
    /// key, then the indexed row's key.
    pub fn unique_index(&self, id: TableId, name: &str, columns: &[&str]) -> Result<TableDef> {
        if columns.is_empty() {
            return Err(StorageError::invalid("a unique constraint needs a column"));
        }
        let mut specs = Vec::with_capacity(columns.len() + 1);
        for (i, &column) in columns.iter().enumerate() {
            let def = self.column(column)?;
            if columns[..i].contains(&column) {
                return Err(StorageError::invalid(format!(
                    "column \"{column}\" appears twice in unique constraint"
                )));
            }
            specs.push(ColumnSpec::new(column, def.data_type.clone()).not_null());
        }
        let mut row_key = String::from("row_key");
        while columns.contains(&row_key.as_str()) {
            row_key.push('_');
        }
        specs.push(ColumnSpec::new(row_key, DataType::Bytea).not_null());
        let mut index = TableDef::new(id, name, specs, columns)?;
        index.index_of = Some(self.id);
        Ok(index)
    }

    /// Positions in `columns` of the columns of `unique`.
    pub fn unique_positions(&self, unique: &UniqueIndex) -> Vec<usize> {
        unique
            .columns
            .iter()
            .filter_map(|&id| self.position(id))
            .collect()
    }

    /// The name of the primary key constraint, as PostgreSQL names it.
    pub fn primary_key_name(&self) -> String {
        format!("{}_pkey", name_in_schema(&self.name))
    }

    /// Whether the key is the hidden row id.
    pub fn has_row_id(&self) -> bool {
        self.primary_key.is_empty()
    }

    /// The codec of this table's keys.
    pub fn key_codec(&self) -> &KeyCodec {
        &self.key_codec
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Result<&ColumnDef> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| StorageError::UndefinedColumn {
                table: self.name.clone(),
                column: name.into(),
            })
    }

    /// Position in `columns` of the column with this id.
    pub fn position(&self, id: ColumnId) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }

    /// Positions in `columns` of the key columns, in key order.
    pub fn key_positions(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .filter_map(|&id| self.position(id))
            .collect()
    }

    /// The table with one more column. `missing` is its value in rows that
    /// exist already (NULL, or the constant default of `ADD COLUMN`).
    pub fn with_column_added(&self, spec: ColumnSpec, missing: Value) -> Result<TableDef> {
        spec.data_type.validate()?;
        if self.columns.iter().any(|c| c.name == spec.name) {
            return Err(StorageError::DuplicateColumn {
                table: self.name.clone(),
                column: spec.name,
            });
        }
        spec.data_type.check(&missing)?;
        if !spec.nullable && missing.is_null() {
            return Err(StorageError::NotNullViolation {
                table: self.name.clone(),
                column: spec.name,
            });
        }
        let mut columns = self.columns.clone();
        columns.push(ColumnDef {
            id: self.next_column_id,
            name: spec.name,
            data_type: spec.data_type,
            nullable: spec.nullable,
            default: spec.default,
            missing,
        });
        let mut def = TableDef::assemble(
            self.id,
            self.name.clone(),
            columns,
            self.primary_key.clone(),
        )?;
        def.unique = self.unique.clone();
        Ok(def)
    }

    /// The table without the column `name` (which must not be in the key).
    pub fn with_column_dropped(&self, name: &str) -> Result<TableDef> {
        let id = self.column(name)?.id;
        if self.primary_key.contains(&id) {
            return Err(StorageError::Unsupported {
                message: format!("cannot drop column \"{name}\": it is part of the primary key"),
            });
        }
        let columns = self
            .columns
            .iter()
            .filter(|c| c.id != id)
            .cloned()
            .collect();
        let mut def = TableDef::assemble(
            self.id,
            self.name.clone(),
            columns,
            self.primary_key.clone(),
        )?;
        // Keep the dropped id retired.
        def.next_column_id = self.next_column_id;
        // Constraints on the column go with it, as in PostgreSQL.
        def.unique = self
            .unique
            .iter()
            .filter(|u| !u.columns.contains(&id))
            .cloned()
            .collect();
        Ok(def)
    }

    /// The table with column `from` renamed to `to`.
    pub fn with_column_renamed(&self, from: &str, to: &str) -> Result<TableDef> {
        let id = self.column(from)?.id;
        if self.columns.iter().any(|c| c.name == to) {
            return Err(StorageError::DuplicateColumn {
                table: self.name.clone(),
                column: to.into(),
            });
        }
        let mut def = self.clone();
        if let Some(column) = def.columns.iter_mut().find(|c| c.id == id) {
            column.name = to.into();
        }
        Ok(def)
    }

    /// The table under another name.
    pub fn renamed(&self, to: &str) -> TableDef {
        TableDef {
            name: to.into(),
            ..self.clone()
        }
    }
}

/// A change to the catalog, as a transaction's write set and the WAL hold it.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogOp {
    CreateTable(TableDef),
    DropTable(TableId),
    /// Replaces a table's definition (columns or name changed).
    AlterTable(TableDef),
    CreateSchema(String),
    DropSchema(String),
}

impl CatalogOp {
    /// The table the operation is about, if any.
    pub fn table_id(&self) -> Option<TableId> {
        match self {
            CatalogOp::CreateTable(def) | CatalogOp::AlterTable(def) => Some(def.id),
            CatalogOp::DropTable(id) => Some(*id),
            CatalogOp::CreateSchema(_) | CatalogOp::DropSchema(_) => None,
        }
    }
}

/// All schemas, and all tables by id and by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    tables: BTreeMap<TableId, Arc<TableDef>>,
    names: BTreeMap<String, TableId>,
    /// Schemas besides `public`, which always exists.
    schemas: BTreeSet<String>,
    next_table_id: TableId,
}

impl Catalog {
    /// Whether the schema `name` exists.
    pub fn has_schema(&self, name: &str) -> bool {
        name == PUBLIC_SCHEMA || self.schemas.contains(name)
    }

    /// Every schema, `public` first.
    pub fn schemas(&self) -> impl Iterator<Item = &str> {
        std::iter::once(PUBLIC_SCHEMA).chain(self.schemas.iter().map(String::as_str))
    }

    /// An error unless the schema of the table named `name` exists.
    fn check_schema_of(&self, name: &str) -> Result<()> {
        let schema = schema_of(name);
        match self.has_schema(schema) {
            true => Ok(()),
            false => Err(StorageError::UndefinedSchema {
                schema: schema.into(),
            }),
        }
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Result<&Arc<TableDef>> {
        self.names
            .get(name)
            .and_then(|id| self.tables.get(id))
            .ok_or_else(|| StorageError::UndefinedTable { table: name.into() })
    }

    /// The table with id `id`, if it exists.
    pub fn table_by_id(&self, id: TableId) -> Option<&Arc<TableDef>> {
        self.tables.get(&id)
    }

    /// Every table, in id order (not the hidden index tables).
    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableDef>> {
        self.tables.values().filter(|t| t.index_of.is_none())
    }

    /// The id the next created table gets.
    pub fn next_table_id(&self) -> TableId {
        self.next_table_id
    }

    /// Applies `op`, checking that it makes sense against this catalog.
    pub fn apply(&mut self, op: &CatalogOp) -> Result<()> {
        match op {
            CatalogOp::CreateTable(def) => {
                if self.tables.contains_key(&def.id) {
                    return Err(StorageError::internal(format!(
                        "table id {} reused",
                        def.id
                    )));
                }
                if def.index_of.is_none() {
                    self.check_schema_of(&def.name)?;
                    if self.names.contains_key(&def.name) {
                        return Err(StorageError::DuplicateTable {
                            table: def.name.clone(),
                        });
                    }
                    self.names.insert(def.name.clone(), def.id);
                }
                self.tables.insert(def.id, Arc::new(def.clone()));
                self.next_table_id = self.next_table_id.max(def.id + 1);
            }
            CatalogOp::DropTable(id) => {
                let def = self
                    .tables
                    .remove(id)
                    .ok_or_else(|| StorageError::UndefinedTable {
                        table: format!("with id {id}"),
                    })?;
                if self.names.get(&def.name) == Some(id) {
                    self.names.remove(&def.name);
                }
            }
            CatalogOp::AlterTable(def) => {
                let old = self
                    .tables
                    .get(&def.id)
                    .ok_or_else(|| StorageError::UndefinedTable {
                        table: def.name.clone(),
                    })?;
                if old.name != def.name && def.index_of.is_none() {
                    self.check_schema_of(&def.name)?;
                    if self.names.contains_key(&def.name) {
                        return Err(StorageError::DuplicateTable {
                            table: def.name.clone(),
                        });
                    }
                    self.names.remove(&old.name);
                    self.names.insert(def.name.clone(), def.id);
                }
                self.tables.insert(def.id, Arc::new(def.clone()));
            }
            CatalogOp::CreateSchema(name) => {
                if self.has_schema(name) {
                    return Err(StorageError::DuplicateSchema {
                        schema: name.clone(),
                    });
                }
                if name.contains('.') {
                    return Err(StorageError::InvalidInput {
                        message: format!("schema name \"{name}\" contains a \".\""),
                    });
                }
                self.schemas.insert(name.clone());
            }
            CatalogOp::DropSchema(name) => {
                if !self.schemas.contains(name) {
                    return Err(StorageError::UndefinedSchema {
                        schema: name.clone(),
                    });
                }
                if self.names.keys().any(|table| schema_of(table) == name) {
                    return Err(StorageError::SchemaNotEmpty {
                        schema: name.clone(),
                    });
                }
                self.schemas.remove(name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> TableDef {
        TableDef::new(
            1,
            "metrics",
            vec![
                ColumnSpec::new("device", DataType::Int32),
                ColumnSpec::new("ts", DataType::Timestamp),
                ColumnSpec::new("cpu", DataType::Float64),
            ],
            &["device", "ts"],
        )
        .unwrap()
    }

    #[test]
    fn key_columns_become_not_null_and_ids_are_never_reused() {
        let def = metrics();
        assert!(!def.column("device").unwrap().nullable);
        assert!(def.column("cpu").unwrap().nullable);
        assert_eq!(def.key_positions(), vec![0, 1]);
        let dropped = def.with_column_dropped("cpu").unwrap();
        let added = dropped
            .with_column_added(ColumnSpec::new("cpu", DataType::Float32), Value::Null)
            .unwrap();
        assert_eq!(
            added.column("cpu").unwrap().id,
            3,
            "the dropped id 2 stays retired"
        );
        assert!(
            def.with_column_dropped("ts").is_err(),
            "key columns cannot be dropped"
        );
    }

    #[test]
    fn bad_definitions_are_refused() {
        let spec = || {
            vec![
                ColumnSpec::new("a", DataType::Int32),
                ColumnSpec::new("a", DataType::Int32),
            ]
        };
        assert!(
            TableDef::new(1, "t", spec(), &[]).is_err(),
            "duplicate column"
        );
        let one = vec![ColumnSpec::new("a", DataType::Jsonb)];
        assert!(
            TableDef::new(1, "t", one.clone(), &["a"]).is_err(),
            "jsonb key"
        );
        assert!(
            TableDef::new(1, "t", one, &["b"]).is_err(),
            "unknown key column"
        );
        let def = metrics();
        let spec = ColumnSpec::new("mem", DataType::Float64).not_null();
        assert!(
            def.with_column_added(spec, Value::Null).is_err(),
            "NOT NULL without a value"
        );
    }

    #[test]
    fn qualified_names_split_into_schema_and_table() {
        assert_eq!((schema_of("s.t"), name_in_schema("s.t")), ("s", "t"));
        assert_eq!((schema_of("t"), name_in_schema("t")), ("public", "t"));
    }

    #[test]
    fn catalog_tracks_names_through_create_rename_and_drop() {
        let mut catalog = Catalog::default();
        let def = metrics();
        catalog.apply(&CatalogOp::CreateTable(def.clone())).unwrap();
        assert!(catalog.apply(&CatalogOp::CreateTable(def.clone())).is_err());
        catalog
            .apply(&CatalogOp::AlterTable(def.renamed("m2")))
            .unwrap();
        assert!(catalog.table("metrics").is_err());
        assert_eq!(catalog.table("m2").unwrap().id, 1);
        assert_eq!(catalog.next_table_id(), 2);
        catalog.apply(&CatalogOp::DropTable(1)).unwrap();
        assert!(catalog.table("m2").is_err());
        assert_eq!(catalog.next_table_id(), 2, "ids are never reused");
    }
}
