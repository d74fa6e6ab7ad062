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
use omendb_storage::{ColumnId, TableDef, Transaction, UniqueIndex, Value, value_at};

use crate::dml::{Target, apply_updates, assigned_values, quoted, returning, rows_batch};
use crate::engine::{SqlSession, cast_column, column_name, command, default_value, ident, query};
use crate::error::{ErrorClass, Result, SqlError};
use crate::handler::StatementResult;
use crate::point_dml;

pub(crate) async fn insert(session: &SqlSession, insert: Insert) -> Result<StatementResult> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(SqlError::unsupported("INSERT into a table function"));
    };
    let name = session.table_name(name)?;
    let def = session.txn().with(|txn| Ok(txn.table(&name)?))?;
    let alias = alias(&insert, &def);
    let Some(source) = insert.source else {
        return Err(SqlError::unsupported("INSERT without VALUES or SELECT"));
    };
    let targets = insert
        .columns
        .iter()
        .map(column_name)
        .collect::<Result<Vec<_>>>()?;
    let batches = match point_dml::values_row(session, &source)? {
        Some(row) => vec![row],
        None => query(session, *source).await?,
    };
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

/// How an INSERT's expressions name its target table `def`.
pub(crate) fn alias(insert: &Insert, def: &TableDef) -> String {
    insert
        .table_alias
        .as_ref()
        .map_or_else(|| quoted(&def.name), |a| a.alias.to_string())
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
pub(crate) async fn source_rows(
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
    let arbiter = arbiter(def, on)?;
    let mut written = Vec::new();
    // Keys this statement inserted or updated: PostgreSQL refuses to
    // update one of them again.
    let mut touched: HashSet<Vec<u8>> = HashSet::new();
    let mut conflicts: Vec<(Vec<u8>, Vec<Value>)> = Vec::new();
    for row in rows {
        let existing = session
            .txn()
            .with(|txn| Ok(arbiter.conflict(txn, def, &row)?))?;
        let Some(key) = existing else {
            let key = session.txn().with(|txn| {
                txn.insert(&def.name, row.clone())?;
                Ok(arbiter.conflict(txn, def, &row)?)
            })?;
            touched.extend(key);
            written.push(row);
            continue;
        };
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

/// The constraint an ON CONFLICT clause handles conflicts of.
enum Arbiter {
    PrimaryKey,
    Unique(String),
    /// `DO NOTHING` without a target: every unique constraint.
    Any,
}

impl Arbiter {
    /// The key of the row `row` conflicts with, if one does.
    fn conflict(
        &self,
        txn: &mut Transaction,
        def: &TableDef,
        row: &[Value],
    ) -> omendb_storage::Result<Option<Vec<u8>>> {
        let by_key = |txn: &mut Transaction| -> omendb_storage::Result<Option<Vec<u8>>> {
            if def.has_row_id() {
                return Ok(None);
            }
            let values: Vec<Value> = def
                .key_positions()
                .iter()
                .map(|&i| row[i].clone())
                .collect();
            let key = txn.key(&def.name, &values)?;
            Ok(txn.get(&def.name, &key)?.map(|_| key.to_vec()))
        };
        let by_unique = |txn: &mut Transaction, unique: &UniqueIndex| {
            let values: Vec<Value> = def
                .unique_positions(unique)
                .into_iter()
                .map(|i| row[i].clone())
                .collect();
            let key = txn.find_unique(&def.name, &unique.name, &values)?;
            Ok(key.map(|k| k.to_vec()))
        };
        match self {
            Arbiter::PrimaryKey => by_key(txn),
            Arbiter::Unique(name) => match def.unique.iter().find(|u| &u.name == name) {
                Some(unique) => by_unique(txn, unique),
                None => Ok(None),
            },
            Arbiter::Any => {
                if let Some(key) = by_key(txn)? {
                    return Ok(Some(key));
                }
                for unique in &def.unique {
                    if let Some(key) = by_unique(txn, unique)? {
                        return Ok(Some(key));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// The constraint the conflict target names (by its columns or its name);
/// DO UPDATE needs one.
fn arbiter(def: &TableDef, on: &OnConflict) -> Result<Arbiter> {
    let columns_of = |ids: &[ColumnId]| -> Vec<String> {
        let mut names: Vec<String> = ids
            .iter()
            .filter_map(|&id| def.position(id))
            .map(|i| def.columns[i].name.clone())
            .collect();
        names.sort();
        names
    };
    let no_match = || {
        SqlError::new(
            ErrorClass::InvalidColumnReference,
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        )
    };
    match &on.conflict_target {
        None if matches!(on.action, OnConflictAction::DoUpdate(_)) => Err(SqlError::new(
            ErrorClass::SyntaxError,
            "ON CONFLICT DO UPDATE requires inference specification or constraint name",
        )),
        None => Ok(Arbiter::Any),
        Some(ConflictTarget::Columns(columns)) => {
            let mut named: Vec<String> = columns.iter().map(ident).collect();
            named.sort();
            if !def.has_row_id() && named == columns_of(&def.primary_key) {
                return Ok(Arbiter::PrimaryKey);
            }
            def.unique
                .iter()
                .find(|u| columns_of(&u.columns) == named)
                .map(|u| Arbiter::Unique(u.name.clone()))
                .ok_or_else(no_match)
        }
        Some(ConflictTarget::OnConstraint(name)) => {
            let name = name.to_string();
            if !def.has_row_id() && name == def.primary_key_name() {
                return Ok(Arbiter::PrimaryKey);
            }
            match def.unique.iter().find(|u| u.name == name) {
                Some(unique) => Ok(Arbiter::Unique(unique.name.clone())),
                None => Err(SqlError::new(
                    ErrorClass::UndefinedObject,
                    format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        omendb_storage::name_in_schema(&def.name)
                    ),
                )),
            }
        }
    }
}
