//! Single-row DML without a query plan, whose planning is most of an OLTP
//! statement's time. UPDATE and DELETE of the one row a statement names by
//! its whole primary key with constants (`WHERE id = 7`, `WHERE a = 1 AND
//! b = 'x'`): the row is read by its key, and an UPDATE's new values are
//! expressions evaluated over that one row; the row comes out as the
//! general path's query gives it (`_key`, then every column), so `dml.rs`
//! writes it, and returns it, the same way. INSERT of one VALUES row: its
//! expressions evaluated once, as the batch the VALUES query would give.
//!
//! Only plain shapes take this path: column names, constants, operators,
//! casts and the clock (`now()`, `CURRENT_TIMESTAMP`, ...). Anything else
//! (other functions, subqueries, parameters, FROM/USING) returns `None`
//! and takes the general path, which also reports every error.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryArray};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::DFSchema;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, Delete, Expr, ExprWithAlias, FunctionArguments,
    Ident, Query, SetExpr, UnaryOperator, Update, Value as Literal,
};
use omendb_storage::{DataType, TableDef, Value};

use crate::dml::rows_batch;
use crate::engine::{SqlSession, ident};
use crate::error::{Result, SqlError};

/// The row a DELETE names by `def`'s whole primary key, as a batch of
/// `_key` and every column (no rows when there is no such row); `None`
/// when the DELETE is not of that shape.
pub(crate) fn deleted_row(
    session: &SqlSession,
    def: &TableDef,
    delete: &Delete,
) -> Result<Option<RecordBatch>> {
    if delete.using.is_some() {
        return Ok(None);
    }
    let Some((key, row)) = find_row(session, def, delete.selection.as_ref())? else {
        return Ok(None);
    };
    let Some(row) = row else {
        return no_rows(def).map(Some);
    };
    let batch = rows_batch(def, &[row], None)?;
    with_keys(&[&key], batch.columns().to_vec()).map(Some)
}

/// The row an UPDATE names by `def`'s whole primary key, with every
/// column's new value, as [`deleted_row`] gives rows; `None` when the
/// UPDATE is not of that shape.
pub(crate) fn updated_row(
    session: &SqlSession,
    def: &TableDef,
    update: &Update,
) -> Result<Option<RecordBatch>> {
    if update.from.is_some() {
        return Ok(None);
    }
    let Some(assigned) = assigned(def, &update.assignments) else {
        return Ok(None);
    };
    let Some((key, row)) = find_row(session, def, update.selection.as_ref())? else {
        return Ok(None);
    };
    let Some(row) = row else {
        return no_rows(def).map(Some);
    };
    let batch = rows_batch(def, &[row], None)?;
    let evaluated = evaluate(session, &batch, &assigned)?;
    let columns = evaluated
        .into_iter()
        .enumerate()
        .map(|(position, column)| column.unwrap_or_else(|| batch.column(position).clone()))
        .collect();
    with_keys(&[&key], columns).map(Some)
}

/// No rows, as the general path's query gives none.
fn no_rows(def: &TableDef) -> Result<RecordBatch> {
    with_keys(&[], rows_batch(def, &[], None)?.columns().to_vec())
}

/// The one row of an INSERT's `VALUES (...)` of plain expressions, as the
/// batch the VALUES query would give; `None` for any other source.
pub(crate) fn values_row(session: &SqlSession, source: &Query) -> Result<Option<RecordBatch>> {
    let plain_query = source.with.is_none()
        && source.order_by.is_none()
        && source.limit_clause.is_none()
        && source.fetch.is_none();
    let SetExpr::Values(values) = source.body.as_ref() else {
        return Ok(None);
    };
    let [row] = values.rows.as_slice() else {
        return Ok(None);
    };
    if !plain_query || !row.iter().all(|e| plain(None, e)) {
        return Ok(None);
    }
    let none = Arc::new(Schema::empty());
    let batch = RecordBatch::try_new_with_options(
        none,
        Vec::new(),
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| SqlError::internal(e.to_string()))?;
    let exprs: Vec<Option<&Expr>> = row.iter().map(Some).collect();
    let columns: Vec<ArrayRef> = evaluate(session, &batch, &exprs)?
        .into_iter()
        .flatten()
        .collect();
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("column{}", i + 1), c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map(Some)
        .map_err(|e| SqlError::internal(e.to_string()))
}

/// `exprs` (where given) evaluated over the one row of `batch`, as
/// DataFusion plans each in a query over it, with the clock read now.
fn evaluate(
    session: &SqlSession,
    batch: &RecordBatch,
    exprs: &[Option<&Expr>],
) -> Result<Vec<Option<ArrayRef>>> {
    let schema = DFSchema::try_from(batch.schema().as_ref().clone())?;
    let state = session.ctx.state_ref();
    let mut state = state.write();
    // What planning a query does first: now() is the statement's start.
    let config = state.config_options().clone();
    state
        .execution_props_mut()
        .mark_start_execution(config.clone());
    // Coerced and simplified as the optimizer would: that is also where
    // now() becomes the start time.
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .with_config_options(config)
            .with_query_execution_start_time(state.execution_props().query_execution_start_time)
            .build(),
    );
    let mut columns = Vec::with_capacity(exprs.len());
    for expr in exprs {
        let Some(expr) = expr else {
            columns.push(None);
            continue;
        };
        let logical = state.create_logical_expr_from_sql_expr(
            ExprWithAlias {
                expr: (*expr).clone(),
                alias: None,
            },
            &schema,
        )?;
        let simplified = simplifier.simplify(simplifier.coerce(logical, &schema)?)?;
        let physical = state.create_physical_expr(simplified, &schema)?;
        columns.push(Some(physical.evaluate(batch)?.into_array(1)?));
    }
    Ok(columns)
}

/// Each column's assigned expression, when every one is plain.
fn assigned<'a>(def: &TableDef, assignments: &'a [Assignment]) -> Option<Vec<Option<&'a Expr>>> {
    let mut assigned = vec![None; def.columns.len()];
    for assignment in assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            return None;
        };
        let [part] = name.0.as_slice() else {
            return None;
        };
        let position = column(def, part.as_ident()?)?;
        // A column assigned twice is an error the general path reports.
        if assigned[position].is_some() || !plain(Some(def), &assignment.value) {
            return None;
        }
        assigned[position] = Some(&assignment.value);
    }
    Some(assigned)
}

/// An encoded primary key, and the row it names if there is one.
type KeyedRow = (Vec<u8>, Option<Vec<Value>>);

/// The encoded key and the row (if any) `selection` names by `def`'s whole
/// primary key; `None` when it does not.
fn find_row(
    session: &SqlSession,
    def: &TableDef,
    selection: Option<&Expr>,
) -> Result<Option<KeyedRow>> {
    if def.has_row_id() {
        return Ok(None);
    }
    let Some(values) = selection.and_then(|s| key_values(def, s)) else {
        return Ok(None);
    };
    session.txn().with(|txn| {
        // A constant the key cannot hold (too long, say) matches nothing,
        // as the general path decides.
        let Ok(key) = txn.key(&def.name, &values) else {
            return Ok(None);
        };
        let row = txn.get(&def.name, &key)?;
        Ok(Some((key.to_vec(), row)))
    })
}

/// The key `selection` names: equalities of every key column, once each,
/// with a constant of the column's kind, and nothing else.
fn key_values(def: &TableDef, selection: &Expr) -> Option<Vec<Value>> {
    let key_positions = def.key_positions();
    let mut values: Vec<Option<Value>> = vec![None; key_positions.len()];
    let mut pending = vec![selection];
    while let Some(expr) = pending.pop() {
        let (left, right) = match expr {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                pending.extend([left.as_ref(), right.as_ref()]);
                continue;
            }
            Expr::Nested(inner) => {
                pending.push(inner);
                continue;
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => (left.as_ref(), right.as_ref()),
            _ => return None,
        };
        let (name, literal) = match (left, right) {
            (Expr::Identifier(name), Expr::Value(literal))
            | (Expr::Value(literal), Expr::Identifier(name)) => (name, &literal.value),
            _ => return None,
        };
        let position = column(def, name)?;
        let slot = key_positions.iter().position(|&p| p == position)?;
        let value = key_constant(&def.columns[position].data_type, literal)?;
        if values[slot].replace(value).is_some() {
            return None;
        }
    }
    values.into_iter().collect()
}

/// `literal` as a value of a key column of type `ty`, when it is one
/// exactly: an integer in range, or a string for a text column.
fn key_constant(ty: &DataType, literal: &Literal) -> Option<Value> {
    match (ty, literal) {
        (DataType::Int16, Literal::Number(n, _)) => n.parse().ok().map(Value::Int16),
        (DataType::Int32, Literal::Number(n, _)) => n.parse().ok().map(Value::Int32),
        (DataType::Int64, Literal::Number(n, _)) => n.parse().ok().map(Value::Int64),
        (DataType::Text { .. }, Literal::SingleQuotedString(s)) => Some(Value::Text(s.clone())),
        _ => None,
    }
}

/// The position of the column `name` names in `def`.
fn column(def: &TableDef, name: &Ident) -> Option<usize> {
    let name = ident(name);
    def.columns.iter().position(|c| c.name == name)
}

/// The functions that read the clock, which a plain expression may call
/// (without arguments).
const CLOCK: [&str; 6] = [
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "localtime",
];

/// Whether `expr` is made of `def`'s columns (unqualified), constants,
/// arithmetic and comparison operators, casts and the clock only.
fn plain(def: Option<&TableDef>, expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(name) => def.and_then(|def| column(def, name)).is_some(),
        Expr::Function(function) => {
            let [part] = function.name.0.as_slice() else {
                return false;
            };
            let bare = match &function.args {
                FunctionArguments::None => true,
                FunctionArguments::List(list) => list.args.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            bare && function.filter.is_none()
                && function.over.is_none()
                && part
                    .as_ident()
                    .is_some_and(|name| CLOCK.contains(&ident(name).as_str()))
        }
        Expr::Value(literal) => matches!(
            literal.value,
            Literal::Number(..)
                | Literal::SingleQuotedString(_)
                | Literal::Boolean(_)
                | Literal::Null
        ),
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide
                    | BinaryOperator::Modulo
                    | BinaryOperator::StringConcat
                    | BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
                    | BinaryOperator::And
                    | BinaryOperator::Or
            ) && plain(def, left)
                && plain(def, right)
        }
        Expr::UnaryOp { op, expr } => {
            matches!(
                op,
                UnaryOperator::Minus | UnaryOperator::Plus | UnaryOperator::Not
            ) && plain(def, expr)
        }
        Expr::Nested(inner) => plain(def, inner),
        Expr::Cast { expr, format, .. } => format.is_none() && plain(def, expr),
        _ => false,
    }
}

/// A batch of `_key` (`keys`) followed by `columns`, positionally named.
fn with_keys(keys: &[&[u8]], columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let mut fields = vec![Field::new("_key", ArrowType::Binary, false)];
    fields.extend(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true)),
    );
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(BinaryArray::from_iter_values(keys.iter()))];
    arrays.extend(columns);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| SqlError::internal(e.to_string()))
}
