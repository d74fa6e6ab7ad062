//! Result column names as PostgreSQL gives them (drivers and psql show
//! them): an alias, else a column's own name, a function's name, the type
//! of a cast constant, `?column?` for anything else. DataFusion names
//! columns after their whole expression (`count(*)`, `t.a + Int64(1)`).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CastKind, Expr, Ident, Query, SelectItem, SetExpr, Value as SqlValue, VisitMut, VisitorMut,
};

use crate::engine::ident;

/// The PostgreSQL name of each select-list item of `query`, or `None` when
/// the list has a wildcard (its names are the columns' own) or the body is
/// not a select.
pub(crate) fn output_names(query: &Query) -> Option<Vec<String>> {
    let select = first_select(&query.body)?;
    select
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => Some(expr_name(expr)),
            SelectItem::ExprWithAlias { alias, .. } => Some(ident(alias)),
            _ => None,
        })
        .collect()
}

/// Gives an alias of its own to each select-list item (in `query` and every
/// query nested in it) whose PostgreSQL name repeats an earlier item's:
/// PostgreSQL allows `SELECT a, a` and `sum(n), sum(n::float8)`; DataFusion
/// wants distinct names. Call after taking `output_names`.
pub(crate) fn alias_repeated_names(query: &mut Query) {
    struct Aliases;
    impl VisitorMut for Aliases {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            alias_in(&mut query.body);
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Aliases);
}

fn alias_in(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => alias_list(&mut select.projection),
        SetExpr::SetOperation { left, right, .. } => {
            alias_in(left);
            alias_in(right);
        }
        // Nested queries are visited on their own.
        _ => {}
    }
}

fn alias_list(items: &mut [SelectItem]) {
    let mut seen = HashSet::new();
    for (position, item) in items.iter_mut().enumerate() {
        let name = match item {
            SelectItem::UnnamedExpr(expr) => expr_name(expr),
            SelectItem::ExprWithAlias { alias, .. } => ident(alias),
            _ => continue,
        };
        if let SelectItem::UnnamedExpr(expr) = item
            && !seen.insert(name.clone())
        {
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::with_quote('"', format!("{name}:{}", position + 1)),
            };
        }
    }
}

/// The select list that names a query's columns: a set operation's come
/// from its first branch.
fn first_select(body: &SetExpr) -> Option<&Vec<SelectItem>> {
    match body {
        SetExpr::Select(select) => Some(&select.projection),
        SetExpr::Query(query) => first_select(&query.body),
        SetExpr::SetOperation { left, .. } => first_select(left),
        _ => None,
    }
}

fn expr_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(id) => ident(id),
        Expr::CompoundIdentifier(parts) => parts.last().map_or_else(unnamed, ident),
        Expr::Function(function) => function
            .name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map_or_else(unnamed, ident),
        Expr::Nested(inner) => expr_name(inner),
        // `x::int` is named after x; a cast constant after its type.
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr,
            data_type,
            ..
        } => match expr.as_ref() {
            Expr::Value(_) => pg_type_name(&data_type.to_string()),
            inner => {
                let name = expr_name(inner);
                if name == "?column?" {
                    pg_type_name(&data_type.to_string())
                } else {
                    name
                }
            }
        },
        Expr::Case { .. } => "case".into(),
        Expr::Value(v) if matches!(v.value, SqlValue::Boolean(_)) => "bool".into(),
        Expr::Exists { .. } => "exists".into(),
        _ => unnamed(),
    }
}

fn unnamed() -> String {
    "?column?".into()
}

/// PostgreSQL's internal name of a type as written in a cast.
fn pg_type_name(written: &str) -> String {
    match written.to_lowercase().as_str() {
        "int" | "integer" | "int4" => "int4".into(),
        "bigint" | "int8" => "int8".into(),
        "smallint" | "int2" => "int2".into(),
        "real" | "float4" => "float4".into(),
        "double precision" | "float8" => "float8".into(),
        "boolean" | "bool" => "bool".into(),
        "character varying" | "varchar" => "varchar".into(),
        other => other.split('(').next().unwrap_or(other).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn names(sql: &str) -> Option<Vec<String>> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let Some(Statement::Query(q)) = statements.first() else {
            panic!("not a query: {sql}");
        };
        output_names(q)
    }

    #[test]
    fn names_follow_postgresql() {
        // Each list checked against PostgreSQL 15's RowDescription.
        assert_eq!(
            names("SELECT id, t.Name, count(*), sum(v) AS total, 1, 1 + id, '7'::int, v::text, upper(name), CASE WHEN true THEN 1 END FROM t").unwrap(),
            vec!["id", "name", "count", "total", "?column?", "?column?", "int4", "v", "upper", "case"]
        );
        assert_eq!(
            names("SELECT a AS \"X\" FROM t UNION SELECT b FROM u").unwrap(),
            vec!["X"]
        );
        assert_eq!(names("SELECT * FROM t"), None);
    }
}
