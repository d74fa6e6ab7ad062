//! INSERT: the source rows are a DataFusion query (VALUES or SELECT), cast
//! to the column types with defaults filled in; `ON CONFLICT DO NOTHING`
//! skips rows whose key exists, `ON CONFLICT DO UPDATE` updates them with
//! the new row readable as `excluded`; `RETURNING` evaluates over the rows
//! written.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    ConflictTarget, Insert, OnConflict, OnConflictAction, OnInsert, TableObject,
};
use omendb_storage::{TableDef, Value, value_at};

use crate::dml::{Target, apply_updates, assigned_values, quoted, returning, rows_batch};
use crate::engine::{SqlSession, cast_column, column_name, command, default_value, ident, query};
use crate::error::{ErrorClass, Result, SqlError};
use crate::handler::StatementResult;

pub(crate) async fn insert(session: &SqlSession, insert: Insert) -> Result<StatementResult> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(SqlError::unsupported("INSERT into a table function"));
    };
    let Some(source) = insert.source else {
        return Err(SqlError::unsupported("INSERT without VALUES or SELECT"));
    };
    let name = session.table_name(name)?;
    let def = session.txn().with(|txn| Ok(txn.table(&name)?))?;
    let alias = insert
        .table_alias
        .as_ref()
        .map_or_else(|| quoted(&def.name), |a| a.alias.to_string());
    let targets = insert
        .columns
        .iter()
        .map(column_name)
        .collect::<Result<Vec<_>>>()?;
    let batches = query(session, *source).await?;
    let rows = source_rows(session, &def, &targets, &batches).await?;
    let written = match &insert.on {
        None => {
            for row in &rows {
                session
                    .txn()
                    .with(|txn| Ok(txn.insert(&def.name, row.clone())?))?;
            }
            rows
        }
        Some(OnInsert::OnConflict(on)) => on_conflict(session, &def, &alias, rows, on).await?,
        Some(other) => {
            return Err(SqlError::unsupported(format!("{other} is not supported")));
        }
    };
    let tag = format!("INSERT 0 {}", written.len());
    match &insert.returning {
        None => Ok(command(&tag)),
        Some(items) => returning(session, &def, &alias, &written, items, tag).await,
    }
}

/// The positions of the columns `targets` names (every column in table
/// order when it names none).
pub(crate) fn target_positions(def: &TableDef, targets: &[String]) -> Result<Vec<usize>> {
    if targets.is_empty() {
        return Ok((0..def.columns.len()).collect());
    }
    targets
        .iter()
        .map(|name| {
            def.columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| {
                    SqlError::new(
                        ErrorClass::UndefinedColumn,
                        format!(
                            "column \"{name}\" of relation \"{}\" does not exist",
                            def.name
                        ),
                    )
                })
        })
        .collect()
}

/// The rows to insert: the source columns into `targets` (every column in
/// table order when empty), the other columns their defaults.
async fn source_rows(
    session: &SqlSession,
    def: &Arc<TableDef>,
    targets: &[String],
    batches: &[RecordBatch],
) -> Result<Vec<Vec<Value>>> {
    let positions = target_positions(def, targets)?;
    let mut defaults = Vec::with_capacity(def.columns.len());
    for (i, column) in def.columns.iter().enumerate() {
        defaults.push(match (&column.default, positions.contains(&i)) {
            (Some(expr), false) => default_value(session, expr, column).await?,
            _ => Value::Null,
        });
    }
    let mut rows = Vec::new();
    for batch in batches {
        if batch.num_columns() > positions.len() {
            return Err(SqlError::new(
                ErrorClass::SyntaxError,
                "INSERT has more expressions than target columns",
            ));
        }
        let columns: Vec<(usize, ArrayRef)> = positions
            .iter()
            .zip(batch.columns())
            .map(|(&i, array)| Ok((i, cast_column(array, &def.columns[i].data_type)?)))
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let mut values = defaults.clone();
            for (i, array) in &columns {
                values[*i] = value_at(
                    array.as_ref() as &dyn Array,
                    row,
                    &def.columns[*i].data_type,
                )?;
            }
            rows.push(values);
        }
    }
    Ok(rows)
}

/// Inserts `rows`, handling those whose key exists as `on` says; returns
/// the rows written (inserted, then updated).
async fn on_conflict(
    session: &SqlSession,
    def: &Arc<TableDef>,
    alias: &str,
    rows: Vec<Vec<Value>>,
    on: &OnConflict,
) -> Result<Vec<Vec<Value>>> {
    check_target(def, on)?;
    let mut written = Vec::new();
    // Keys this statement inserted or updated: PostgreSQL refuses to
    // update one of them again.
    let mut touched: HashSet<Vec<u8>> = HashSet::new();
    let mut conflicts: Vec<(Vec<u8>, Vec<Value>)> = Vec::new();
    for row in rows {
        if def.has_row_id() {
            // No key to conflict on: a hidden row id is always new.
            session
                .txn()
                .with(|txn| Ok(txn.insert(&def.name, row.clone())?))?;
            written.push(row);
            continue;
        }
        let (key, exists) = session.txn().with(|txn| {
            let key_values: Vec<Value> = def
                .key_positions()
                .iter()
                .map(|&i| row[i].clone())
                .collect();
            let key = txn.key(&def.name, &key_values)?;
            let exists = txn.get(&def.name, &key)?.is_some();
            Ok((key.to_vec(), exists))
        })?;
        if !exists {
            session
                .txn()
                .with(|txn| Ok(txn.insert(&def.name, row.clone())?))?;
            touched.insert(key);
            written.push(row);
            continue;
        }
        if let OnConflictAction::DoUpdate(_) = on.action {
            if touched.contains(&key) || conflicts.iter().any(|(k, _)| *k == key) {
                return Err(SqlError::new(
                    ErrorClass::CardinalityViolation,
                    "ON CONFLICT DO UPDATE command cannot affect row a second time",
                ));
            }
            conflicts.push((key, row));
        }
    }
    if let OnConflictAction::DoUpdate(update) = &on.action
        && !conflicts.is_empty()
    {
        let (keys, rows): (Vec<Vec<u8>>, Vec<Vec<Value>>) = conflicts.into_iter().unzip();
        let excluded = rows_batch(def, &rows, Some(&keys))?;
        let values = assigned_values(def, alias, &update.assignments)?;
        let target = Target {
            def: def.clone(),
            alias: alias.to_string(),
        };
        let (_, batches) = session
            .with_rows_table("excluded", excluded, |relation| {
                let join =
                    format!(" JOIN {relation} AS excluded ON {alias}.\"_key\" = excluded.\"_key\"");
                target.keyed_query(&format!(", {values}"), &join, &update.selection)
            })
            .await?;
        written.extend(apply_updates(session, def, &batches, &mut touched)?);
    }
    Ok(written)
}

/// The conflict target must name the primary key, the only unique
/// constraint; DO UPDATE needs one.
fn check_target(def: &TableDef, on: &OnConflict) -> Result<()> {
    let key: Vec<&str> = def
        .key_positions()
        .iter()
        .map(|&i| def.columns[i].name.as_str())
        .collect();
    match &on.conflict_target {
        None if matches!(on.action, OnConflictAction::DoUpdate(_)) => Err(SqlError::new(
            ErrorClass::SyntaxError,
            "ON CONFLICT DO UPDATE requires inference specification or constraint name",
        )),
        None => Ok(()),
        Some(ConflictTarget::Columns(columns)) => {
            let mut named: Vec<String> = columns.iter().map(ident).collect();
            let mut key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
            named.sort();
            key.sort();
            if named == key && !key.is_empty() {
                Ok(())
            } else {
                Err(SqlError::new(
                    ErrorClass::InvalidColumnReference,
                    "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                ))
            }
        }
        Some(ConflictTarget::OnConstraint(name)) => {
            if !key.is_empty() && name.to_string() == format!("{}_pkey", def.name) {
                Ok(())
            } else {
                Err(SqlError::new(
                    ErrorClass::UndefinedObject,
                    format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        def.name
                    ),
                ))
            }
        }
    }
}
