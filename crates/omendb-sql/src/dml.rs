//! UPDATE and DELETE: DataFusion finds the target rows (and computes their
//! new values) with a query over the table's `_key`-carrying twin in the
//! internal schema, so WHERE, FROM/USING and subqueries mean what they mean
//! in a SELECT; then the rows are written through the transaction. All rows
//! are found before any is written, so a statement never sees its own
//! changes.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, Expr, FromTable, SelectItem, TableFactor, TableWithJoins,
    Update, UpdateTableFromKind,
};
use omendb_storage::{ColumnBuilder, KEY_COLUMN, TableDef, Value, value_at};

use crate::engine::{SqlSession, cast_column, column_name, command, query_text};
use crate::error::{ErrorClass, Result, SqlError};
use crate::handler::StatementResult;
use crate::point_dml;
use crate::provider::{KEYS_SCHEMA, table_schema};

/// The target table of a DML statement and how the statement names it.
pub(crate) struct Target {
    pub(crate) def: Arc<TableDef>,
    /// The alias (or the table name) the statement's expressions use.
    pub(crate) alias: String,
}

impl Target {
    pub(crate) fn of(session: &SqlSession, table: &TableWithJoins) -> Result<Target> {
        let TableFactor::Table { name, alias, .. } = &table.relation else {
            return Err(SqlError::unsupported("DML on something other than a table"));
        };
        if !table.joins.is_empty() {
            return Err(SqlError::new(
                ErrorClass::SyntaxError,
                "a DML target cannot be a join",
            ));
        }
        let table_name = session.table_name(name)?;
        let def = session
            .reader()
            .ok_or_else(|| SqlError::internal("DML without a reader"))?
            .table(&table_name)?;
        let alias = match alias {
            Some(alias) => alias.name.to_string(),
            None => quoted(omendb_storage::name_in_schema(&table_name)),
        };
        Ok(Target { def, alias })
    }

    /// `SELECT alias._key, <list> FROM _omendb_keys."t" AS alias<from>
    /// [WHERE <selection>]`: the target rows with their keys (the `_key`
    /// twin of the table), joined to `from` (`, t2` or `JOIN ...`).
    pub(crate) fn keyed_query(&self, list: &str, from: &str, selection: &Option<Expr>) -> String {
        let where_clause = match selection {
            Some(expr) => format!(" WHERE {expr}"),
            None => String::new(),
        };
        format!(
            "SELECT {alias}.\"_key\"{list} FROM {KEYS_SCHEMA}.{table} AS {alias}{from}{where_clause}",
            alias = self.alias,
            table = quoted(&self.def.name),
        )
    }
}

pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An UPDATE's target, and the query that finds its rows (`_key`, then
/// every column's new value).
pub(crate) fn update_query(session: &SqlSession, update: &Update) -> Result<(Target, String)> {
    let target = Target::of(session, &update.table)?;
    let values = assigned_values(&target.def, &target.alias, &update.assignments)?;
    let from = match &update.from {
        None => String::new(),
        Some(UpdateTableFromKind::AfterSet(tables) | UpdateTableFromKind::BeforeSet(tables)) => {
            tables.iter().map(|t| format!(", {t}")).collect()
        }
    };
    let sql = target.keyed_query(&format!(", {values}"), &from, &update.selection);
    Ok((target, sql))
}

pub(crate) async fn update(session: &SqlSession, update: Update) -> Result<StatementResult> {
    let (target, sql) = update_query(session, &update)?;
    let batches = match point_dml::updated_row(session, &target.def, &update)? {
        Some(row) => vec![row],
        None => query_text(session, &sql).await?.1,
    };
    let updated = apply_updates(session, &target.def, &batches, &mut HashSet::new())?;
    let tag = format!("UPDATE {}", updated.len());
    match &update.returning {
        None => Ok(command(&tag)),
        Some(items) => returning(session, &target.def, &target.alias, &updated, items, tag).await,
    }
}

/// The select list of an update's new rows: each column's assigned
/// expression, or the column itself.
pub(crate) fn assigned_values(
    def: &TableDef,
    alias: &str,
    assignments: &[Assignment],
) -> Result<String> {
    let mut assigned: Vec<Option<String>> = vec![None; def.columns.len()];
    for assignment in assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            return Err(SqlError::unsupported("UPDATE of a tuple of columns"));
        };
        let column = column_name(name)?;
        let position = def
            .columns
            .iter()
            .position(|c| c.name == column)
            .ok_or_else(|| {
                SqlError::new(
                    ErrorClass::UndefinedColumn,
                    format!(
                        "column \"{column}\" of relation \"{}\" does not exist",
                        def.name
                    ),
                )
            })?;
        if assigned[position].is_some() {
            return Err(SqlError::new(
                ErrorClass::SyntaxError,
                format!("multiple assignments to same column \"{column}\""),
            ));
        }
        assigned[position] = Some(format!("({})", assignment.value));
    }
    Ok(def
        .columns
        .iter()
        .zip(assigned)
        .map(|(c, a)| a.unwrap_or_else(|| format!("{alias}.{}", quoted(&c.name))))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Writes the new rows of `batches` (`_key`, then every column) over the
/// rows their keys address, each key once (`seen` holds keys already
/// written by the statement); returns the new rows.
pub(crate) fn apply_updates(
    session: &SqlSession,
    def: &TableDef,
    batches: &[RecordBatch],
    seen: &mut HashSet<Vec<u8>>,
) -> Result<Vec<Vec<Value>>> {
    let mut updated = Vec::new();
    for batch in batches {
        let keys = batch.column(0).as_binary::<i32>();
        let columns = table_columns(def, batch, 1)?;
        for row in 0..batch.num_rows() {
            let key = keys.value(row);
            // A row joined to several FROM rows is updated once.
            if !seen.insert(key.to_vec()) {
                continue;
            }
            let values = row_values(def, &columns, row)?;
            session.txn().with(|txn| {
                let new_key = if def.has_row_id() {
                    None
                } else {
                    let key_values: Vec<Value> = def
                        .key_positions()
                        .iter()
                        .map(|&i| values[i].clone())
                        .collect();
                    Some(txn.key(&def.name, &key_values)?)
                };
                match new_key {
                    // The key changed: the row moves.
                    Some(new_key) if new_key.as_ref() != key => {
                        txn.delete(&def.name, key)?;
                        txn.insert(&def.name, values.clone())?;
                    }
                    _ => txn.update(&def.name, key, values.clone())?,
                }
                Ok(())
            })?;
            updated.push(values);
        }
    }
    Ok(updated)
}

/// The RETURNING list evaluated over `rows` of `def`, named `alias` as in
/// the statement; the result carries the statement's command tag.
pub(crate) async fn returning(
    session: &SqlSession,
    def: &TableDef,
    alias: &str,
    rows: &[Vec<Value>],
    items: &[SelectItem],
    tag: String,
) -> Result<StatementResult> {
    let batch = rows_batch(def, rows, None)?;
    let list = items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (schema, batches) = session
        .with_rows_table("returning", batch, |relation| {
            format!("SELECT {list} FROM {relation} AS {alias}")
        })
        .await?;
    Ok(StatementResult::rows(schema, batches, Some(tag)))
}

/// The columns a RETURNING list gives, without rows to return.
pub(crate) async fn returning_columns(
    session: &SqlSession,
    def: &TableDef,
    alias: &str,
    items: &[SelectItem],
) -> Result<SchemaRef> {
    returning(session, def, alias, &[], items, String::new())
        .await?
        .columns()
        .ok_or_else(|| SqlError::internal("RETURNING gave no rows"))
}

/// `rows` of `def` as one batch of the table's columns, plus `_key` when
/// `keys` are given.
pub(crate) fn rows_batch(
    def: &TableDef,
    rows: &[Vec<Value>],
    keys: Option<&[Vec<u8>]>,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(def.columns.len() + 1);
    for (i, column) in def.columns.iter().enumerate() {
        let mut builder = ColumnBuilder::new(&column.data_type, rows.len());
        for row in rows {
            builder.append(&row[i])?;
        }
        columns.push(builder.finish());
    }
    let mut schema = table_schema(def).as_ref().clone();
    if let Some(keys) = keys {
        columns.push(Arc::new(BinaryArray::from_iter_values(keys.iter())));
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(KEY_COLUMN, ArrowType::Binary, false));
        schema = Schema::new(fields);
    }
    // Nullability follows the values: a NOT NULL column may hold NULL in
    // rows a statement is about to reject.
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| SqlError::internal(e.to_string()))
}

/// A DELETE's target, and the query that finds its rows (`_key`, then
/// every column, for RETURNING).
pub(crate) fn delete_query(session: &SqlSession, delete: &Delete) -> Result<(Target, String)> {
    let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) = &delete.from;
    let [table] = tables.as_slice() else {
        return Err(SqlError::unsupported("DELETE from several tables"));
    };
    let target = Target::of(session, table)?;
    let using: String = delete
        .using
        .iter()
        .flatten()
        .map(|t| format!(", {t}"))
        .collect();
    let columns: String = target
        .def
        .columns
        .iter()
        .map(|c| format!(", {}.{}", target.alias, quoted(&c.name)))
        .collect();
    let sql = target.keyed_query(&columns, &using, &delete.selection);
    Ok((target, sql))
}

pub(crate) async fn delete(session: &SqlSession, delete: Delete) -> Result<StatementResult> {
    let (target, sql) = delete_query(session, &delete)?;
    let batches = match point_dml::deleted_row(session, &target.def, &delete)? {
        Some(row) => vec![row],
        None => query_text(session, &sql).await?.1,
    };
    let mut deleted = Vec::new();
    for batch in &batches {
        let keys = batch.column(0).as_binary::<i32>();
        let columns = table_columns(&target.def, batch, 1)?;
        for row in 0..keys.len() {
            let key = keys.value(row);
            // A key seen twice (USING joins) is gone the second time.
            if session
                .txn()
                .with(|txn| Ok(txn.delete(&target.def.name, key)?))?
            {
                deleted.push(row_values(&target.def, &columns, row)?);
            }
        }
    }
    let tag = format!("DELETE {}", deleted.len());
    match &delete.returning {
        None => Ok(command(&tag)),
        Some(items) => returning(session, &target.def, &target.alias, &deleted, items, tag).await,
    }
}

/// Row `row` of `columns` (every column of `def`, as [`table_columns`]
/// gives them) as values.
fn row_values(def: &TableDef, columns: &[Arc<dyn Array>], row: usize) -> Result<Vec<Value>> {
    Ok(columns
        .iter()
        .zip(&def.columns)
        .map(|(array, c)| value_at(array.as_ref(), row, &c.data_type))
        .collect::<omendb_storage::Result<Vec<Value>>>()?)
}

/// The columns of `batch` from `first` on, cast to `def`'s column types.
pub(crate) fn table_columns(
    def: &TableDef,
    batch: &RecordBatch,
    first: usize,
) -> Result<Vec<Arc<dyn Array>>> {
    def.columns
        .iter()
        .enumerate()
        .map(|(i, c)| cast_column(batch.column(first + i), &c.data_type))
        .collect()
}
