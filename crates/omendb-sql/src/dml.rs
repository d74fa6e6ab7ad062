//! UPDATE and DELETE: DataFusion finds the target rows (and computes their
//! new values) with a query over the table's `_key`-carrying twin in the
//! internal schema, so WHERE, FROM/USING and subqueries mean what they mean
//! in a SELECT; then the rows are written through the transaction. All rows
//! are found before any is written, so a statement never sees its own
//! changes.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Delete, FromTable, TableFactor, TableWithJoins, Update, UpdateTableFromKind,
};
use omendb_storage::{TableDef, Value, value_at};

use crate::engine::{SqlSession, cast_column, column_name, command, query_text, table_name};
use crate::error::{ErrorClass, Result, SqlError};
use crate::handler::StatementResult;
use crate::provider::KEYS_SCHEMA;

/// The target table of a DML statement and how the statement names it.
struct Target {
    def: Arc<TableDef>,
    /// The alias (or the table name) the statement's expressions use.
    alias: String,
}

impl Target {
    fn of(session: &SqlSession, table: &TableWithJoins) -> Result<Target> {
        let TableFactor::Table { name, alias, .. } = &table.relation else {
            return Err(SqlError::unsupported("DML on something other than a table"));
        };
        if !table.joins.is_empty() {
            return Err(SqlError::new(
                ErrorClass::SyntaxError,
                "a DML target cannot be a join",
            ));
        }
        let table_name = table_name(name)?;
        let def = session.txn().with(|txn| Ok(txn.table(&table_name)?))?;
        let alias = match alias {
            Some(alias) => alias.name.to_string(),
            None => quoted(&table_name),
        };
        Ok(Target { def, alias })
    }

    /// `_omendb_keys."t" AS alias`, the table with its keys.
    fn keyed_relation(&self) -> String {
        format!(
            "{}.{} AS {}",
            KEYS_SCHEMA,
            quoted(&self.def.name),
            self.alias
        )
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) async fn update(session: &SqlSession, update: Update) -> Result<StatementResult> {
    if update.returning.is_some() {
        return Err(SqlError::unsupported(
            "UPDATE ... RETURNING is not supported yet",
        ));
    }
    let target = Target::of(session, &update.table)?;
    let def = &target.def;
    let mut assigned: Vec<Option<String>> = vec![None; def.columns.len()];
    for assignment in &update.assignments {
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
    let values: Vec<String> = def
        .columns
        .iter()
        .zip(assigned)
        .map(|(c, a)| a.unwrap_or_else(|| format!("{}.{}", target.alias, quoted(&c.name))))
        .collect();
    let from = match &update.from {
        None => String::new(),
        Some(UpdateTableFromKind::AfterSet(tables) | UpdateTableFromKind::BeforeSet(tables)) => {
            tables.iter().map(|t| format!(", {t}")).collect()
        }
    };
    let sql = format!(
        "SELECT {}.\"_key\", {} FROM {}{from}{}",
        target.alias,
        values.join(", "),
        target.keyed_relation(),
        where_clause(&update.selection),
    );
    let batches = query_text(session, &sql).await?;
    let mut seen = HashSet::new();
    let mut updated = 0;
    for batch in &batches {
        let keys = batch.column(0).as_binary::<i32>();
        let columns = table_columns(def, batch, 1)?;
        for row in 0..batch.num_rows() {
            let key = keys.value(row);
            // A row joined to several FROM rows is updated once.
            if !seen.insert(key.to_vec()) {
                continue;
            }
            let values = columns
                .iter()
                .zip(&def.columns)
                .map(|(array, c)| value_at(array.as_ref(), row, &c.data_type))
                .collect::<omendb_storage::Result<Vec<Value>>>()?;
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
                        txn.insert(&def.name, values)?;
                    }
                    _ => txn.update(&def.name, key, values)?,
                }
                Ok(())
            })?;
            updated += 1;
        }
    }
    Ok(command(&format!("UPDATE {updated}")))
}

pub(crate) async fn delete(session: &SqlSession, delete: Delete) -> Result<StatementResult> {
    if delete.returning.is_some() {
        return Err(SqlError::unsupported(
            "DELETE ... RETURNING is not supported yet",
        ));
    }
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
    let sql = format!(
        "SELECT {}.\"_key\" FROM {}{using}{}",
        target.alias,
        target.keyed_relation(),
        where_clause(&delete.selection),
    );
    let batches = query_text(session, &sql).await?;
    let mut deleted = 0;
    for batch in &batches {
        let keys = batch.column(0).as_binary::<i32>();
        for row in 0..keys.len() {
            let key = keys.value(row);
            // A key seen twice (USING joins) is gone the second time.
            if session
                .txn()
                .with(|txn| Ok(txn.delete(&target.def.name, key)?))?
            {
                deleted += 1;
            }
        }
    }
    Ok(command(&format!("DELETE {deleted}")))
}

fn where_clause(selection: &Option<datafusion::sql::sqlparser::ast::Expr>) -> String {
    match selection {
        Some(expr) => format!(" WHERE {expr}"),
        None => String::new(),
    }
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
