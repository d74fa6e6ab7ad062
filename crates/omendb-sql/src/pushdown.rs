//! A scan's filters turned into what storage can use: the key range the
//! learned index serves (equalities on a prefix of the key columns, then a
//! range — `<`, `<=`, `>`, `>=`, `BETWEEN` — on the next one), and
//! comparisons of any column with a constant for zone-map pruning. The
//! filters stay in the plan (pushdown is inexact), so storage only has to
//! keep every matching row.

use std::ops::Bound;

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use omendb_storage::{CmpOp, DataType, KeyRange, Predicate, TableDef, Value, value_at};

use crate::engine::cast_column;

/// What the filters say about one key column: an equal value, or bounds
/// (each with whether it is included).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ColumnBounds {
    pub(crate) eq: Option<Value>,
    pub(crate) lower: Option<(Value, bool)>,
    pub(crate) upper: Option<(Value, bool)>,
}

impl ColumnBounds {
    /// Narrows the bounds by `column op value`; false for an operator
    /// that is not a comparison.
    pub(crate) fn narrow(&mut self, op: Operator, value: Value) -> bool {
        match op {
            Operator::Eq => self.eq = Some(value),
            Operator::Gt => self.lower = Some((value, false)),
            Operator::GtEq => self.lower = Some((value, true)),
            Operator::Lt => self.upper = Some((value, false)),
            Operator::LtEq => self.upper = Some((value, true)),
            _ => return false,
        }
        true
    }
}

/// Whether storage can use `filter`: it compares a column of `def` with a
/// constant (a key column narrows the key range, any column prunes by
/// zone maps).
pub(crate) fn is_usable(def: &TableDef, filter: &Expr) -> bool {
    !predicates(def, std::slice::from_ref(filter)).is_empty()
        || key_range(def, std::slice::from_ref(filter)) != KeyRange::all()
}

/// The comparisons of a column with a constant among `filters`, for
/// zone-map pruning.
pub(crate) fn predicates(def: &TableDef, filters: &[Expr]) -> Vec<Predicate> {
    let mut parts = Vec::new();
    for filter in filters {
        conjuncts(filter, &mut parts);
    }
    parts
        .iter()
        .filter_map(|part| {
            let (column, op, literal) = comparison(part)?;
            let position = def.columns.iter().position(|c| c.name == column.name)?;
            let op = match op {
                Operator::Eq => CmpOp::Eq,
                Operator::Lt => CmpOp::Lt,
                Operator::LtEq => CmpOp::Le,
                Operator::Gt => CmpOp::Gt,
                Operator::GtEq => CmpOp::Ge,
                _ => return None,
            };
            Some(Predicate {
                column: column.name.clone(),
                op,
                value: key_value(def, position, literal)?,
            })
        })
        .collect()
}

/// The smallest key range holding every row that satisfies all `filters`.
pub(crate) fn key_range(def: &TableDef, filters: &[Expr]) -> KeyRange {
    range_of(key_bounds(def, filters))
}

/// The bounds on the second key column when the first has no equality:
/// a skip scan then reads, for each value of the first key column, only
/// its keys within them (`ts` in one hour, for every `device`). `None`
/// when the key has one column, the first is fixed (an ordinary key
/// range serves) or the second is unbounded.
pub(crate) fn skip_bounds(def: &TableDef, filters: &[Expr]) -> Option<ColumnBounds> {
    let mut bounds = key_bounds(def, filters).into_iter();
    let first = bounds.next()?;
    let mut second = bounds.next()?;
    if first.eq.is_some() {
        return None;
    }
    if let Some(value) = second.eq.take() {
        second.lower = Some((value.clone(), true));
        second.upper = Some((value, true));
    }
    (second.lower.is_some() || second.upper.is_some()).then_some(second)
}

/// What `filters` say about each key column, in key order.
fn key_bounds(def: &TableDef, filters: &[Expr]) -> Vec<ColumnBounds> {
    let keys = def.key_positions();
    let mut bounds: Vec<ColumnBounds> = keys.iter().map(|_| ColumnBounds::default()).collect();
    let mut parts = Vec::new();
    for filter in filters {
        conjuncts(filter, &mut parts);
    }
    for part in &parts {
        // `k IN (a, b, c)` narrows k to [min, max]: one range holds them all.
        if let Some((column, values)) = in_list(part)
            && let Some(k) = key_index(def, &column)
        {
            let converted: Option<Vec<Value>> =
                values.iter().map(|v| key_value(def, keys[k], v)).collect();
            let Some(mut converted) = converted.filter(|c| !c.is_empty()) else {
                continue;
            };
            converted
                .sort_by(|a, b| omendb_storage::compare(a, b).unwrap_or(std::cmp::Ordering::Equal));
            let b = &mut bounds[k];
            match converted.as_slice() {
                [only] => b.eq = Some(only.clone()),
                [low, .., high] => {
                    b.lower = Some((low.clone(), true));
                    b.upper = Some((high.clone(), true));
                }
                [] => {}
            }
            continue;
        }
        let Some((column, op, literal)) = comparison(part) else {
            continue;
        };
        let Some(k) = key_index(def, &column) else {
            continue;
        };
        let Some(value) = key_value(def, keys[k], literal) else {
            continue;
        };
        bounds[k].narrow(op, value);
    }
    bounds
}

/// The key range of per-key-column `bounds` (in key order): the equalities
/// of the leading columns, then the bounds of the first column without one.
pub(crate) fn range_of(bounds: Vec<ColumnBounds>) -> KeyRange {
    let mut prefix = Vec::new();
    let mut next = None;
    for b in bounds {
        match b.eq {
            Some(value) => prefix.push(value),
            None => {
                next = Some(b);
                break;
            }
        }
    }
    let with = |value: Value| {
        let mut key = prefix.clone();
        key.push(value);
        key
    };
    let (lower, upper) = next.map_or((None, None), |b| (b.lower, b.upper));
    let start = match lower {
        Some((v, true)) => Bound::Included(with(v)),
        Some((v, false)) => Bound::Excluded(with(v)),
        None if prefix.is_empty() => Bound::Unbounded,
        None => Bound::Included(prefix.clone()),
    };
    let end = match upper {
        Some((v, true)) => Bound::Included(with(v)),
        Some((v, false)) => Bound::Excluded(with(v)),
        None if prefix.is_empty() => Bound::Unbounded,
        None => Bound::Included(prefix.clone()),
    };
    KeyRange { start, end }
}

/// Splits `AND`s, and `BETWEEN` into its two comparisons.
pub(crate) fn conjuncts(expr: &Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            out.push(expr.as_ref().clone().gt_eq(low.as_ref().clone()));
            out.push(expr.as_ref().clone().lt_eq(high.as_ref().clone()));
        }
        other => out.push(other.clone()),
    }
}

/// `column IN (literal, ...)`, or the `column = a OR column = b ...` that
/// DataFusion makes of a short IN list.
fn in_list(expr: &Expr) -> Option<(Column, Vec<&ScalarValue>)> {
    if let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Or,
        right,
    }) = expr
    {
        let (column, mut values) = in_list(left)?;
        let (other, more) = in_list(right)?;
        if other != column {
            return None;
        }
        values.extend(more);
        return Some((column, values));
    }
    if let Some((column, Operator::Eq, value)) = comparison(expr) {
        return Some((column, vec![value]));
    }
    let Expr::InList(InList {
        expr,
        list,
        negated: false,
    }) = expr
    else {
        return None;
    };
    let Expr::Column(column) = expr.as_ref() else {
        return None;
    };
    let values = list
        .iter()
        .map(|e| match e {
            Expr::Literal(v, _) => Some(v),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((column.clone(), values))
}

/// `column op literal` (either way round), with `op` as seen from the
/// column's side.
fn comparison(expr: &Expr) -> Option<(Column, Operator, &ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => Some((c.clone(), *op, v)),
        (Expr::Literal(v, _), Expr::Column(c)) => Some((c.clone(), op.swap()?, v)),
        _ => None,
    }
}

/// The position among the key columns of `column`, if it is one.
fn key_index(def: &TableDef, column: &Column) -> Option<usize> {
    let position = def.columns.iter().position(|c| c.name == column.name)?;
    def.key_positions().iter().position(|&p| p == position)
}

/// `literal` as a value of the column at `position`; `None` when it does
/// not convert exactly (the filter then just is not pushed). Not only key
/// columns: zone maps compare values of any column.
pub(crate) fn key_value(def: &TableDef, position: usize, literal: &ScalarValue) -> Option<Value> {
    if literal.is_null() {
        return None;
    }
    let column = &def.columns[position];
    if let Some(value) = same_type_value(literal, &column.data_type) {
        return Some(value);
    }
    let array = literal.to_array().ok()?;
    // Only conversions that cannot round: `device < 2.5` must not become
    // `device < 2`. DataFusion casts literals to the column's type first.
    let target = column.data_type.arrow_type();
    let exact =
        array.data_type() == &target || (array.data_type().is_integer() && target.is_integer());
    if !exact {
        return None;
    }
    let array = cast_column(&array, &column.data_type).ok()?;
    value_at(array.as_ref(), 0, &column.data_type).ok()
}

/// `literal` as a value of type `ty` for the common key types it needs no
/// conversion for (the fast path's parameters); `None` otherwise.
fn same_type_value(literal: &ScalarValue, ty: &DataType) -> Option<Value> {
    Some(match (literal, ty) {
        (ScalarValue::Int16(Some(v)), DataType::Int16) => Value::Int16(*v),
        (ScalarValue::Int32(Some(v)), DataType::Int32) => Value::Int32(*v),
        (ScalarValue::Int64(Some(v)), DataType::Int64) => Value::Int64(*v),
        (ScalarValue::TimestampMicrosecond(Some(v), None), DataType::Timestamp) => {
            Value::Timestamp(*v)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};
    use omendb_storage::{ColumnSpec, DataType};

    use super::*;

    fn table() -> TableDef {
        let columns = vec![
            ColumnSpec::new("device", DataType::Int32),
            ColumnSpec::new("ts", DataType::Int64),
            ColumnSpec::new("v", DataType::Float64),
        ];
        TableDef::new(1, "t", columns, &["device", "ts"]).unwrap()
    }

    #[test]
    fn equalities_on_a_key_prefix_then_a_range_on_the_next_column() {
        let def = table();
        let range = key_range(
            &def,
            &[col("device")
                .eq(lit(5))
                .and(col("ts").gt_eq(lit(10i64)))
                .and(col("ts").lt(lit(20i64)))
                .and(col("v").gt(lit(1.0)))],
        );
        assert_eq!(
            range.start,
            Bound::Included(vec![Value::Int32(5), Value::Int64(10)])
        );
        assert_eq!(
            range.end,
            Bound::Excluded(vec![Value::Int32(5), Value::Int64(20)])
        );

        let range = key_range(&def, &[col("device").eq(lit(5))]);
        assert_eq!(range, KeyRange::prefix(vec![Value::Int32(5)]));

        let range = key_range(&def, &[col("device").between(lit(3), lit(4))]);
        assert_eq!(range.start, Bound::Included(vec![Value::Int32(3)]));
        assert_eq!(range.end, Bound::Included(vec![Value::Int32(4)]));

        // A range on the second key column alone says nothing of the key order.
        let range = key_range(&def, &[col("ts").gt(lit(1i64)), col("v").eq(lit(2.0))]);
        assert_eq!(range, KeyRange::all());
        assert!(is_usable(&def, &col("v").eq(lit(2.0))));
        assert!(is_usable(&def, &lit(7).lt(col("device"))));
        assert!(!is_usable(&def, &col("v").eq(col("ts"))));
        let zone = predicates(&def, &[col("v").gt(lit(1.5)).and(col("device").eq(lit(3)))]);
        assert_eq!(zone.len(), 2);
        assert_eq!(zone[0].op, CmpOp::Gt);
        assert_eq!(zone[0].value, Value::Float64(1.5));
        let range = key_range(&def, &[lit(7).lt(col("device"))]);
        assert_eq!(range.start, Bound::Excluded(vec![Value::Int32(7)]));
        // A literal that would round is not pushed.
        let range = key_range(&def, &[col("device").lt(lit(2.5))]);
        assert_eq!(range, KeyRange::all());
    }
}
