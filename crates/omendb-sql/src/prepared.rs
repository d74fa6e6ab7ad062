//! Prepared queries. A query's logical plan is kept by its SQL text, so
//! running it again (a driver's prepared statement: Bind and Execute with
//! new parameters) skips parsing and SQL planning. A query that reads the
//! rows of one table by primary key,
//! `SELECT cols FROM t WHERE k1 = $1 AND k2 >= $2 AND k2 < $3`, takes the
//! fast path: its key range is built from the parameters and read straight
//! from storage, without DataFusion.
//!
//! A kept plan names the table definitions it was made against; when one
//! has changed (ALTER, DROP and CREATE again) the query is planned anew.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Query, SetExpr, Statement, Value as Literal,
};
use omendb_storage::{Catalog, KeyRange, ScanRequest, TableDef, Value};

use crate::engine::{SqlSession, logical_plan, renamed};
use crate::error::Result;
use crate::names;
use crate::provider::{StorageTable, unchanged};
use crate::pushdown::{ColumnBounds, conjuncts, key_value, range_of};

/// Plans kept at most per session; when full, the cache starts over.
const CACHE_CAPACITY: usize = 256;

/// A session's prepared queries, by SQL text.
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    queries: HashMap<String, Arc<PreparedQuery>>,
}

impl PlanCache {
    pub(crate) fn get(&self, sql: &str) -> Option<Arc<PreparedQuery>> {
        self.queries.get(sql).cloned()
    }

    pub(crate) fn insert(&mut self, query: Arc<PreparedQuery>) {
        if self.queries.len() >= CACHE_CAPACITY && !self.queries.contains_key(&query.sql) {
            self.queries.clear();
        }
        self.queries.insert(query.sql.clone(), query);
    }
}

/// A query planned once, to run with any parameters.
#[derive(Debug)]
pub(crate) struct PreparedQuery {
    /// The SQL text it was planned from.
    pub(crate) sql: String,
    /// The logical plan, parameters still `$n` placeholders.
    pub(crate) plan: LogicalPlan,
    /// PostgreSQL's names for the result columns, when they differ from
    /// DataFusion's.
    pub(crate) names: Option<Vec<String>>,
    /// The result columns, PostgreSQL-named.
    pub(crate) schema: SchemaRef,
    /// The tables the plan reads, as they were when it was made.
    tables: Vec<Arc<TableDef>>,
    /// The `search_path` setting its unqualified names were resolved
    /// along, as set (compared without parsing on every run).
    search_path: String,
    /// Set when the query can take the fast path.
    lookup: Option<KeyLookup>,
}

impl PreparedQuery {
    /// Plans `query` (the text `sql`) in `session`, whose statement reader
    /// must be set.
    pub(crate) async fn plan(
        session: &SqlSession,
        sql: String,
        mut query: Box<Query>,
    ) -> Result<PreparedQuery> {
        let names = names::output_names(&query);
        names::alias_repeated_names(&mut query);
        let plan = logical_plan(session, Statement::Query(query)).await?;
        let schema = renamed(&Arc::new(plan.schema().as_arrow().clone()), names.clone());
        let mut tables = Vec::new();
        plan.apply_with_subqueries(|node| {
            tables.extend(scanned_table(node));
            Ok(TreeNodeRecursion::Continue)
        })?;
        let lookup = KeyLookup::of(&plan);
        Ok(PreparedQuery {
            sql,
            plan,
            names,
            schema,
            tables,
            search_path: session.search_path_setting(),
            lookup,
        })
    }

    /// Whether the plan still holds: the tables it reads are as they were
    /// (in `catalog`) and names resolve along the same `search_path`.
    pub(crate) fn is_current(&self, catalog: &Catalog, search_path: &str) -> bool {
        self.search_path == search_path && self.tables.iter().all(|def| unchanged(catalog, def))
    }

    /// The storage read that answers the query with `params`, when it
    /// takes the fast path with them. `None` sends it through DataFusion:
    /// no fast path, or a parameter whose type does not convert exactly to
    /// its key column's (DataFusion then decides).
    pub(crate) fn fast_path(&self, params: &[ScalarValue]) -> Option<FastRead<'_>> {
        self.lookup.as_ref()?.read(params)
    }
}

/// A query whose WHERE compares columns with constants, with those
/// constants as parameters: sent as text with its values written in (the
/// simple protocol), a key lookup is planned once for every value, as a
/// prepared statement's is, instead of once per text.
#[derive(Clone, Debug)]
pub(crate) struct GenericQuery {
    /// The query as written.
    pub(crate) sql: String,
    pub(crate) query: Box<Query>,
    /// The query with `$1`, `$2`... in place of the constants.
    pub(crate) generic_sql: String,
    pub(crate) generic: Box<Query>,
    /// The constants, in parameter order.
    pub(crate) values: Vec<ScalarValue>,
}

impl GenericQuery {
    /// `query` (the text `sql`) made generic, when its WHERE has
    /// `column = constant` conjuncts (integers and strings); else `query`
    /// back.
    pub(crate) fn of(sql: &str, query: Box<Query>) -> Result<GenericQuery, Box<Query>> {
        let mut generic = query.clone();
        let SetExpr::Select(select) = generic.body.as_mut() else {
            return Err(query);
        };
        let mut values = Vec::new();
        let mut pending: Vec<&mut SqlExpr> = select.selection.iter_mut().collect();
        while let Some(expr) = pending.pop() {
            let SqlExpr::BinaryOp { left, op, right } = expr else {
                continue;
            };
            match op {
                BinaryOperator::And => pending.extend([left.as_mut(), right.as_mut()]),
                BinaryOperator::Eq => {
                    let constant = match (left.as_mut(), right.as_mut()) {
                        (SqlExpr::Identifier(_), constant) | (constant, SqlExpr::Identifier(_)) => {
                            constant
                        }
                        _ => continue,
                    };
                    let SqlExpr::Value(literal) = constant else {
                        continue;
                    };
                    let value = match &literal.value {
                        Literal::Number(n, false) => match n.parse::<i64>() {
                            Ok(n) => ScalarValue::Int64(Some(n)),
                            Err(_) => continue,
                        },
                        Literal::SingleQuotedString(s) => ScalarValue::Utf8(Some(s.clone())),
                        _ => continue,
                    };
                    values.push(value);
                    literal.value = Literal::Placeholder(format!("${}", values.len()));
                }
                _ => {}
            }
        }
        if values.is_empty() {
            return Err(query);
        }
        Ok(GenericQuery {
            sql: sql.into(),
            query,
            generic_sql: generic.to_string(),
            generic,
            values,
        })
    }
}

/// What the fast path reads.
#[derive(Debug)]
pub(crate) struct FastRead<'a> {
    pub(crate) def: &'a TableDef,
    pub(crate) target: FastTarget,
    /// The columns returned, in order, by name and by position.
    pub(crate) columns: &'a [String],
    pub(crate) positions: &'a [usize],
}

/// The rows the fast path reads.
#[derive(Debug)]
pub(crate) enum FastTarget {
    /// One whole key: a point read (a segment's row file), not a scan.
    Key(Vec<Value>),
    Range(KeyRange),
}

impl FastRead<'_> {
    /// The storage scan of the rows.
    pub(crate) fn request(&self) -> ScanRequest {
        let range = match &self.target {
            FastTarget::Key(key) => KeyRange {
                start: Bound::Included(key.clone()),
                end: Bound::Included(key.clone()),
            },
            FastTarget::Range(range) => range.clone(),
        };
        ScanRequest {
            range,
            columns: Some(self.columns.to_vec()),
            ..ScanRequest::default()
        }
    }
}

/// The definition of the storage table a plan node scans, if it is a
/// scan of one.
fn scanned_table(node: &LogicalPlan) -> Option<Arc<TableDef>> {
    let LogicalPlan::TableScan(scan) = node else {
        return None;
    };
    let provider = source_as_provider(&scan.source).ok()?;
    Some(provider.downcast_ref::<StorageTable>()?.def().clone())
}

/// A query that reads one table's rows by primary key.
#[derive(Debug)]
struct KeyLookup {
    def: Arc<TableDef>,
    /// The columns the query returns, in order, by name and by position.
    columns: Vec<String>,
    positions: Vec<usize>,
    /// Comparisons of key columns with parameters or constants; together
    /// they are exactly one key range.
    conditions: Vec<KeyCondition>,
    /// How many parameters the query takes.
    params: usize,
}

#[derive(Debug)]
struct KeyCondition {
    /// Which key column (0 is the first).
    key: usize,
    /// As seen from the column: `k < $1`.
    op: Operator,
    operand: Operand,
}

#[derive(Debug)]
enum Operand {
    /// `$n`, as an index into the parameters.
    Param(usize),
    Literal(ScalarValue),
}

impl KeyLookup {
    /// The lookup `plan` is, if it is `Projection(columns) <- Filter(key
    /// conditions) <- scan of a storage table`, and the conditions are
    /// equalities on a prefix of the key, then at most a lower and an upper
    /// bound on the next key column: nothing else, so the key range they
    /// make holds exactly the rows the query returns.
    fn of(plan: &LogicalPlan) -> Option<KeyLookup> {
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
            return None;
        };
        let mut input = filter.input.as_ref();
        if let LogicalPlan::SubqueryAlias(alias) = input {
            input = alias.input.as_ref();
        }
        let def = scanned_table(input)?;
        let LogicalPlan::TableScan(scan) = input else {
            return None;
        };
        // The internal twin schema's tables carry `_key`: not for clients.
        if !scan.filters.is_empty()
            || scan.fetch.is_some()
            || scan.source.schema().fields().len() != def.columns.len()
        {
            return None;
        }
        let mut columns: Vec<String> = Vec::new();
        let mut positions = Vec::new();
        for expr in &projection.expr {
            let Expr::Column(column) = strip_alias(expr) else {
                return None;
            };
            if columns.contains(&column.name) {
                return None;
            }
            positions.push(def.columns.iter().position(|c| c.name == column.name)?);
            columns.push(column.name.clone());
        }
        if columns.is_empty() {
            return None;
        }
        let keys = def.key_positions();
        let mut parts = Vec::new();
        conjuncts(&filter.predicate, &mut parts);
        let mut conditions = Vec::new();
        for part in &parts {
            let (column, op, operand) = comparison(part)?;
            let position = def.columns.iter().position(|c| c.name == column)?;
            let key = keys.iter().position(|&k| k == position)?;
            conditions.push(KeyCondition { key, op, operand });
        }
        // Equalities on keys 0..n, each once; bounds only on key n.
        let equal = conditions.iter().filter(|c| c.op == Operator::Eq).count();
        let mut seen = vec![(0, 0, 0); keys.len()];
        for c in &conditions {
            let (eq, lower, upper) = &mut seen[c.key];
            match c.op {
                Operator::Eq if c.key < equal => *eq += 1,
                Operator::Gt | Operator::GtEq if c.key == equal => *lower += 1,
                Operator::Lt | Operator::LtEq if c.key == equal => *upper += 1,
                _ => return None,
            }
        }
        if conditions.is_empty() || seen.iter().any(|&(e, l, u)| e > 1 || l > 1 || u > 1) {
            return None;
        }
        if seen[..equal].iter().any(|&(e, _, _)| e != 1) {
            return None;
        }
        let params = conditions
            .iter()
            .filter_map(|c| match c.operand {
                Operand::Param(i) => Some(i + 1),
                Operand::Literal(_) => None,
            })
            .max()
            .unwrap_or(0);
        Some(KeyLookup {
            def,
            columns,
            positions,
            conditions,
            params,
        })
    }

    /// The read for `params`; `None` when a value does not convert exactly
    /// to its column's type (or is NULL).
    fn read(&self, params: &[ScalarValue]) -> Option<FastRead<'_>> {
        if params.len() != self.params {
            return None;
        }
        let keys = self.def.key_positions();
        let mut bounds: Vec<ColumnBounds> = keys.iter().map(|_| ColumnBounds::default()).collect();
        for c in &self.conditions {
            let value = match &c.operand {
                Operand::Param(i) => &params[*i],
                Operand::Literal(v) => v,
            };
            let value = key_value(&self.def, keys[c.key], value)?;
            // `of` keeps only comparisons.
            if !bounds[c.key].narrow(c.op, value) {
                return None;
            }
        }
        let target = if bounds.iter().all(|b| b.eq.is_some()) {
            FastTarget::Key(bounds.into_iter().filter_map(|b| b.eq).collect())
        } else {
            FastTarget::Range(range_of(bounds))
        };
        Some(FastRead {
            def: &self.def,
            target,
            columns: &self.columns,
            positions: &self.positions,
        })
    }
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => strip_alias(&alias.expr),
        other => other,
    }
}

/// `column op operand` (either way round, `op` as seen from the column),
/// or `None` if `expr` is anything else.
fn comparison(expr: &Expr) -> Option<(String, Operator, Operand)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    if !matches!(
        op,
        Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    ) {
        return None;
    }
    let (column, op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), value) => (c, *op, value),
        (value, Expr::Column(c)) => (c, op.swap()?, value),
        _ => return None,
    };
    Some((column.name.clone(), op, operand(value)?))
}

/// A parameter or a non-NULL constant.
fn operand(expr: &Expr) -> Option<Operand> {
    match expr {
        Expr::Placeholder(p) => {
            let n: usize = p.id.strip_prefix('$')?.parse().ok()?;
            Some(Operand::Param(n.checked_sub(1)?))
        }
        Expr::Literal(value, _) if !value.is_null() => Some(Operand::Literal(value.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::parse;

    fn generic(sql: &str) -> Option<(String, Vec<ScalarValue>)> {
        let Some(Statement::Query(query)) = parse(sql).unwrap().pop() else {
            panic!("{sql} is not a query");
        };
        GenericQuery::of(sql, query)
            .ok()
            .map(|g| (g.generic_sql, g.values))
    }

    #[test]
    fn constants_compared_with_columns_become_parameters_and_nothing_else_does() {
        let (sql, values) =
            generic("SELECT abalance, 5 FROM acct WHERE aid = 7 AND 'x' = name AND n > 3").unwrap();
        assert_eq!(
            sql,
            "SELECT abalance, 5 FROM acct WHERE aid = $2 AND $1 = name AND n > 3"
        );
        assert_eq!(
            values,
            vec![
                ScalarValue::Utf8(Some("x".into())),
                ScalarValue::Int64(Some(7))
            ]
        );
        // Not an equality with a column, or not an integer: left alone.
        assert_eq!(generic("SELECT a FROM t WHERE a = 2.5 OR b = 1"), None);
        assert_eq!(generic("SELECT a FROM t WHERE 1 = 1"), None);
        assert_eq!(generic("SELECT 1"), None);
    }
}
