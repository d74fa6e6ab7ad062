//! PostgreSQL spellings sqlparser does not read or DataFusion does not
//! plan, rewritten into ones they do. Before parsing, a COPY option's
//! `on`/`off` (`WITH (FREEZE on)`, as pgbench writes it) becomes
//! `TRUE`/`FALSE`, and VACUUM's options (`VACUUM ANALYZE t`, `VACUUM
//! (VERBOSE) t`) are dropped: sqlparser reads Redshift's VACUUM, and
//! VACUUM does nothing here. After parsing (clients' catalog queries are
//! full of these):
//!
//! - `a OPERATOR(pg_catalog.~) b` is `a ~ b`;
//! - `x COLLATE pg_catalog.default` (or `"C"`, `"POSIX"`) is `x`: text
//!   compares bytewise here, which is the C collation;
//! - `pg_catalog.f(...)` is `f(...)`, `x::pg_catalog.int4` is `x::int4`;
//! - `x::regclass` (and `regtype`, `regnamespace`, `regrole`, `regproc`)
//!   is the OID `x` names, and `x::regclass::text` its name (see
//!   `pg_catalog/functions.rs`); `x::oid` is an unsigned 32-bit integer;
//! - `generate_subscripts(a, d)` is `unnest(generate_series(1,
//!   array_length(a, d)))`: beside `unnest(a)` in a SELECT list the two
//!   zip, as in PostgreSQL (SQLAlchemy reads key columns so);
//! - `information_schema._pg_expandarray(a)` (pgjdbc's key columns) is
//!   `unnest` of `a`'s `{x, n}` pairs, and `(_pg_expandarray(a)).x` /
//!   `.n` are `unnest(a)` / the positions; `(row).field` is `row['field']`;
//! - `ARRAY(SELECT e FROM ... ORDER BY ...)` is
//!   `(SELECT array_agg(e ORDER BY ...) FROM ...)`;
//! - a scalar subquery without an aggregate, `(SELECT e FROM ...)`, is
//!   `(SELECT omendb_single_row(e) FROM ...)`: DataFusion plans correlated
//!   ones only when aggregated, and that aggregate fails on a second row
//!   as PostgreSQL does (`single_row.rs`);
//! - in a scalar subquery's WHERE, an outer column equated to an inner one
//!   is replaced by the inner one in the other conditions, and conditions
//!   on outer columns alone move out (`CASE WHEN cond THEN (subquery)
//!   END`): DataFusion decorrelates equalities between the two sides only;
//! - a SELECT that inner-joins a catalog that is always empty here
//!   (`pg_policy`, `pg_inherits`, ...) returns no rows, so it becomes a
//!   SELECT of no rows with the same column names: psql's `\d` asks such
//!   catalogs with expressions (array subscripts over `generate_series`,
//!   say) that only matter when they have rows.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::functions_aggregate::all_default_aggregate_functions;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, DataType as SqlType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, JoinOperator, ObjectName, ObjectNamePart, OrderByKind,
    Query, Select, SelectItem, SetExpr, SetOperator, Statement, TableFactor, TableWithJoins, Value,
    Visit, VisitMut, Visitor, VisitorMut, visit_expressions, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::engine::own_aggregates;
use crate::pg_catalog::{self, PG_CATALOG};
use crate::single_row::SINGLE_ROW;

/// The `reg*` types a cast turns into an OID lookup.
const REG_TYPES: &[&str] = &[
    "regclass",
    "regtype",
    "regnamespace",
    "regrole",
    "regproc",
    "regprocedure",
];

/// The names (and aliases) of every aggregate a session has: a SELECT
/// with one returns a row even over no rows, and a scalar subquery with
/// one needs no `omendb_single_row`.
static AGGREGATES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let defaults = all_default_aggregate_functions()
        .into_iter()
        .map(|f| f.as_ref().clone());
    defaults
        .chain(own_aggregates())
        .flat_map(|f| {
            let aliases = f.aliases().to_vec();
            std::iter::once(f.name().to_owned()).chain(aliases)
        })
        .collect()
});

/// The statements of `sql` in PostgreSQL's grammar, COPY options' `on`
/// and `off` read as `TRUE` and `FALSE`.
pub(crate) fn parse_statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let dialect = PostgreSqlDialect {};
    let mut tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()?;
    drop_vacuum_options(&mut tokens);
    let mut in_copy = None;
    let mut previous = Keyword::NoKeyword;
    for token in &mut tokens {
        match &mut token.token {
            Token::Whitespace(_) => continue,
            Token::SemiColon => in_copy = None,
            Token::Word(word) => {
                let copy = *in_copy.get_or_insert(word.keyword == Keyword::COPY);
                let option = matches!(previous, Keyword::FREEZE | Keyword::HEADER);
                if copy && option && word.quote_style.is_none() {
                    let value = match word.keyword {
                        Keyword::ON => Some(("TRUE", Keyword::TRUE)),
                        Keyword::OFF => Some(("FALSE", Keyword::FALSE)),
                        _ => None,
                    };
                    if let Some((value, keyword)) = value {
                        word.value = value.to_owned();
                        word.keyword = keyword;
                    }
                }
                previous = word.keyword;
                continue;
            }
            _ => {}
        }
        in_copy.get_or_insert(false);
        previous = Keyword::NoKeyword;
    }
    Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
}

/// Removes the options after a VACUUM that begins a statement: the words
/// FULL, FREEZE, VERBOSE, ANALYZE and a parenthesized list.
fn drop_vacuum_options(tokens: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    let mut statement_start = true;
    while i < tokens.len() {
        match &tokens[i].token {
            Token::Whitespace(_) => {}
            Token::SemiColon => statement_start = true,
            _ if statement_start && is_word(&tokens[i], Keyword::VACUUM) => {
                statement_start = false;
                i = drop_options_after(tokens, i + 1);
                continue;
            }
            _ => statement_start = false,
        }
        i += 1;
    }
}

fn is_word(token: &TokenWithSpan, keyword: Keyword) -> bool {
    matches!(&token.token, Token::Word(w) if w.keyword == keyword)
}

/// Drops VACUUM's options from `start`; where the statement goes on.
fn drop_options_after(tokens: &mut Vec<TokenWithSpan>, start: usize) -> usize {
    const OPTIONS: [Keyword; 4] = [
        Keyword::FULL,
        Keyword::FREEZE,
        Keyword::VERBOSE,
        Keyword::ANALYZE,
    ];
    let mut j = start;
    loop {
        while tokens
            .get(j)
            .is_some_and(|t| matches!(t.token, Token::Whitespace(_)))
        {
            j += 1;
        }
        let Some(token) = tokens.get(j) else {
            return j;
        };
        if OPTIONS.into_iter().any(|k| is_word(token, k)) {
            tokens.remove(j);
        } else if token.token == Token::LParen {
            let Some(close) = tokens[j..].iter().position(|t| t.token == Token::RParen) else {
                return j;
            };
            tokens.drain(j..=j + close);
        } else {
            return j;
        }
    }
}

/// Rewrites the PostgreSQL spellings in `statement` (see the module).
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut Rewriter);
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(names) = empty_result(&query.body)
            && let Some(body) = no_rows(&names)
        {
            query.body = body;
            query.order_by = None;
            query.limit_clause = None;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(rewritten) = rewrite_expr(expr) {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}

/// What `expr` becomes, if it is one of the spellings rewritten.
fn rewrite_expr(expr: &mut Expr) -> Option<Expr> {
    match expr {
        Expr::BinaryOp { left, op, right } => {
            let BinaryOperator::PGCustomBinaryOperator(parts) = op else {
                return None;
            };
            let [schema, symbol] = parts.as_slice() else {
                return None;
            };
            if !schema.eq_ignore_ascii_case(PG_CATALOG) {
                return None;
            }
            Some(Expr::BinaryOp {
                left: left.clone(),
                op: operator(symbol)?,
                right: right.clone(),
            })
        }
        Expr::Collate { expr, collation } => {
            let name = last_part(collation)?;
            ["default", "C", "POSIX"]
                .contains(&name.as_str())
                .then(|| (**expr).clone())
        }
        Expr::Function(function) => {
            if let FunctionArguments::Subquery(query) = &function.args
                && function.name.0.len() == 1
                && last_part(&function.name)?.eq_ignore_ascii_case("array")
            {
                return array_of(query).map(|q| Expr::Subquery(Box::new(q)));
            }
            if last_part(&function.name)?.eq_ignore_ascii_case("_pg_expandarray")
                && let FunctionArguments::List(list) = &function.args
                && let [array] = list.args.as_slice()
            {
                return parse_expr(&format!("unnest({}({array}))", pg_catalog::EXPAND_ARRAY));
            }
            unqualify(&mut function.name);
            if last_part(&function.name)?.eq_ignore_ascii_case("generate_subscripts")
                && let FunctionArguments::List(list) = &function.args
                && let [array, dimension] = list.args.as_slice()
            {
                return parse_expr(&format!(
                    "unnest(generate_series(1, array_length({array}, {dimension})))"
                ));
            }
            None
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
                return None;
            };
            let Some(array) = expanded_array(root) else {
                // `(row).field`: DataFusion reads a struct field as `row['field']`.
                let name = field.value.replace('\'', "''");
                return parse_expr(&format!("{root}['{name}']"));
            };
            match field.value.to_lowercase().as_str() {
                "x" => parse_expr(&format!("unnest({array})")),
                "n" => parse_expr(&format!(
                    "unnest(generate_series(1, array_length({array}, 1)))"
                )),
                _ => None,
            }
        }
        Expr::Subquery(query) => {
            // Both rewrite the subquery in place; only a guard wraps it.
            let guard = outer_conditions(query);
            if let Some(wrapped) = single_row(query) {
                **query = wrapped;
            }
            parse_expr(&format!("CASE WHEN {} THEN {expr} END", guard?))
        }
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr: inner,
            data_type,
            ..
        } => {
            if let Some(plain) = unqualified_type(data_type) {
                *data_type = plain;
            }
            cast(inner, data_type)
        }
        _ => None,
    }
}

/// `a` of `unnest(omendb_expand_array(a))` (possibly parenthesized): what
/// `_pg_expandarray(a)` became.
fn expanded_array(expr: &Expr) -> Option<String> {
    let expr = match expr {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    let Expr::Function(unnest) = expr else {
        return None;
    };
    let FunctionArguments::List(list) = &unnest.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Function(expand)))] =
        list.args.as_slice()
    else {
        return None;
    };
    if !last_part(&unnest.name)?.eq_ignore_ascii_case("unnest")
        || last_part(&expand.name)? != pg_catalog::EXPAND_ARRAY
    {
        return None;
    }
    let FunctionArguments::List(inner) = &expand.args else {
        return None;
    };
    let [array] = inner.args.as_slice() else {
        return None;
    };
    Some(array.to_string())
}

/// The operator `OPERATOR(pg_catalog.<symbol>)` means.
fn operator(symbol: &str) -> Option<BinaryOperator> {
    Some(match symbol {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "||" => BinaryOperator::StringConcat,
        _ => return None,
    })
}

fn last_part(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(ObjectNamePart::as_ident)
        .map(|i| i.value.clone())
}

/// Drops a `pg_catalog.` qualifier from a function name.
fn unqualify(name: &mut ObjectName) {
    let qualified = name.0.len() == 2
        && name.0[0]
            .as_ident()
            .is_some_and(|i| i.value.eq_ignore_ascii_case(PG_CATALOG));
    if qualified {
        name.0.remove(0);
    }
}

/// `ty` without a `pg_catalog.` qualifier, read as the SQL type it names.
fn unqualified_type(ty: &SqlType) -> Option<SqlType> {
    match ty {
        SqlType::Custom(name, modifiers) if name.0.len() == 2 => {
            let mut name = name.clone();
            unqualify(&mut name);
            if name.0.len() != 1 {
                return None;
            }
            let mut text = last_part(&name)?;
            if !modifiers.is_empty() {
                text = format!("{text}({})", modifiers.join(","));
            }
            Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&text)
                .ok()?
                .parse_data_type()
                .ok()
        }
        SqlType::Array(element) => {
            use datafusion::sql::sqlparser::ast::ArrayElemTypeDef;
            match element {
                ArrayElemTypeDef::SquareBracket(inner, size) => Some(SqlType::Array(
                    ArrayElemTypeDef::SquareBracket(Box::new(unqualified_type(inner)?), *size),
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A cast to a `reg*` type, to `oid`, to `name`, or of a `reg*` to text.
fn cast(inner: &Expr, ty: &SqlType) -> Option<Expr> {
    let name = match ty {
        SqlType::Regclass => "regclass".to_owned(),
        SqlType::Custom(name, _) if name.0.len() == 1 => last_part(name)?,
        ty if is_text(ty) => return reg_name(inner),
        _ => return None,
    };
    let as_type = |data_type| Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(inner.clone()),
        data_type,
        array: false,
        format: None,
    };
    match name.as_str() {
        reg if REG_TYPES.contains(&reg) => {
            parse_expr(&format!("{}('{reg}', {inner})", pg_catalog::REG_OID))
        }
        "oid" => Some(as_type(SqlType::IntUnsigned(None))),
        "name" => Some(as_type(SqlType::Text)),
        _ => None,
    }
}

fn is_text(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Text | SqlType::Varchar(_) | SqlType::CharacterVarying(_) | SqlType::String(_)
    )
}

/// `x::regclass::text`: the function giving the name instead of the OID.
fn reg_name(inner: &Expr) -> Option<Expr> {
    let Expr::Function(function) = inner else {
        return None;
    };
    if last_part(&function.name)? != pg_catalog::REG_OID {
        return None;
    }
    let mut renamed = function.clone();
    renamed.name = ObjectName::from(vec![Ident::new(pg_catalog::REG_NAME)]);
    Some(Expr::Function(renamed))
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

/// `ARRAY(query)` as a scalar subquery aggregating the query's one column,
/// in the query's order.
fn array_of(query: &Query) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if query.limit_clause.is_some() || select.distinct.is_some() || !is_ungrouped(select) {
        return None;
    }
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let (value, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return None,
    };
    let mut order = Vec::new();
    if let Some(order_by) = &query.order_by {
        let OrderByKind::Expressions(exprs) = &order_by.kind else {
            return None;
        };
        for o in exprs {
            let mut o = o.clone();
            let positional =
                matches!(&o.expr, Expr::Value(v) if v.value == Value::Number("1".into(), false));
            let aliased =
                matches!((&o.expr, &alias), (Expr::Identifier(i), Some(a)) if i.value == a.value);
            if positional || aliased {
                o.expr = value.clone();
            }
            order.push(o.to_string());
        }
    }
    let order = match order.is_empty() {
        true => String::new(),
        false => format!(" ORDER BY {}", order.join(", ")),
    };
    let aggregate = parse_expr(&format!("array_agg({value}{order})"))?;
    let mut select = select.clone();
    select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
    let mut query = query.clone();
    query.body = Box::new(SetExpr::Select(select));
    query.order_by = None;
    Some(query)
}

/// A scalar subquery with its one column wrapped in `omendb_single_row`,
/// if it has no aggregate of its own.
fn single_row(query: &Query) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = query.limit_clause.is_none()
        && query.fetch.is_none()
        && select.distinct.is_none()
        && is_ungrouped(select)
        && !has_aggregate(select);
    if !plain {
        return None;
    }
    let [item] = select.projection.as_slice() else {
        return None;
    };
    let wrap = |e: &Expr| parse_expr(&format!("{SINGLE_ROW}({e})"));
    let item = match item {
        SelectItem::UnnamedExpr(e) => SelectItem::UnnamedExpr(wrap(e)?),
        SelectItem::ExprWithAlias { expr, alias } => SelectItem::ExprWithAlias {
            expr: wrap(expr)?,
            alias: alias.clone(),
        },
        _ => return None,
    };
    let mut select = select.clone();
    select.projection = vec![item];
    let mut query = query.clone();
    query.body = Box::new(SetExpr::Select(select));
    query.order_by = None;
    Some(query)
}

/// Rewrites the WHERE of a scalar subquery so that only equalities join it
/// to the outer query (see the module); returns the conditions on outer
/// columns alone, which it removes.
fn outer_conditions(query: &mut Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let inner = relation_names(&select.from);
    let selection = select.selection.take()?;
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    // Outer columns equated with inner ones: these join the subquery.
    let equal: Vec<(Expr, Expr)> = conjuncts
        .iter()
        .filter_map(|c| correlation(c, &inner))
        .collect();
    let mut kept = Vec::new();
    let mut outer = Vec::new();
    for mut c in conjuncts {
        if correlation(&c, &inner).is_none() {
            let _ = visit_expressions_mut(&mut c, |e| {
                if let Some((_, to)) = equal.iter().find(|(from, _)| from == e) {
                    *e = to.clone();
                }
                ControlFlow::<()>::Continue(())
            });
        }
        match side(&c, &inner) {
            Side::Outer => outer.push(c),
            _ => kept.push(c),
        }
    }
    select.selection = join_and(kept);
    join_and(outer)
}

/// `(outer, inner)` of an equality between an outer and an inner column
/// expression.
fn correlation(conjunct: &Expr, inner: &[String]) -> Option<(Expr, Expr)> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = conjunct
    else {
        return None;
    };
    match (side(left, inner), side(right, inner)) {
        (Side::Outer, Side::Inner) => Some(((**left).clone(), (**right).clone())),
        (Side::Inner, Side::Outer) => Some(((**right).clone(), (**left).clone())),
        _ => None,
    }
}

/// Which side of a subquery an expression's columns come from.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// No column at all.
    Neither,
    Inner,
    Outer,
    Both,
}

/// The side of `expr`'s columns: `q.c` is outer when `q` names no relation
/// of the subquery's FROM; an unqualified column is taken as inner.
fn side(expr: &Expr, inner: &[String]) -> Side {
    let mut side = Side::Neither;
    let _ = visit_expressions(expr, |e| {
        let this = match e {
            Expr::Identifier(_) => Side::Inner,
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let qualifier = &parts[parts.len() - 2].value;
                if inner.iter().any(|n| n == qualifier) {
                    Side::Inner
                } else {
                    Side::Outer
                }
            }
            // A nested subquery's columns are its own business.
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => Side::Both,
            _ => return ControlFlow::<()>::Continue(()),
        };
        side = match (side, this) {
            (Side::Neither, s) => s,
            (s, t) if s == t => s,
            _ => Side::Both,
        };
        ControlFlow::Continue(())
    });
    side
}

/// The names the relations of a FROM clause are known by in it.
fn relation_names(from: &[TableWithJoins]) -> Vec<String> {
    let factors = from
        .iter()
        .flat_map(|f| std::iter::once(&f.relation).chain(f.joins.iter().map(|j| &j.relation)));
    factors
        .filter_map(|factor| match factor {
            TableFactor::Table {
                alias: Some(alias), ..
            }
            | TableFactor::Derived {
                alias: Some(alias), ..
            } => Some(alias.name.value.clone()),
            TableFactor::Table { name, .. } => last_part(name),
            _ => None,
        })
        .collect()
}

fn split_and(expr: Expr, into: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(*left, into);
            split_and(*right, into);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, into);
        }
        other => into.push(other),
    }
}

fn join_and(conjuncts: Vec<Expr>) -> Option<Expr> {
    conjuncts.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}

fn is_ungrouped(select: &Select) -> bool {
    select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
}

/// The column names of `body` if it can have no rows: a SELECT over an
/// always-empty catalog, or a UNION of such.
fn empty_result(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(select) => {
            let empty = is_ungrouped(select)
                && !has_aggregate(select)
                && select.from.iter().any(from_is_empty);
            empty.then(|| column_names(select)).flatten()
        }
        SetExpr::SetOperation {
            op: SetOperator::Union,
            left,
            right,
            ..
        } => {
            let names = empty_result(left)?;
            empty_result(right)?;
            Some(names)
        }
        _ => None,
    }
}

/// Whether the SELECT list calls an aggregate (not counting those inside
/// its subqueries).
fn has_aggregate(select: &Select) -> bool {
    struct Finder {
        depth: usize,
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Function(f)
                    if self.depth == 0
                        && last_part(&f.name)
                            .is_some_and(|n| AGGREGATES.contains(&n.to_lowercase())) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    select.projection.visit(&mut Finder { depth: 0 }).is_break()
}

/// Whether a FROM item has no rows: an always-empty catalog joined so
/// that its emptiness empties the join.
fn from_is_empty(from: &TableWithJoins) -> bool {
    let mut empty = is_empty_catalog(&from.relation);
    for join in &from.joins {
        let right = is_empty_catalog(&join.relation);
        empty = match &join.join_operator {
            JoinOperator::Join(_)
            | JoinOperator::Inner(_)
            | JoinOperator::CrossJoin(_)
            | JoinOperator::StraightJoin(_) => empty || right,
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => empty,
            JoinOperator::Right(_) | JoinOperator::RightOuter(_) => right,
            JoinOperator::FullOuter(_) => empty && right,
            _ => false,
        };
    }
    empty
}

fn is_empty_catalog(factor: &TableFactor) -> bool {
    let TableFactor::Table {
        name, args: None, ..
    } = factor
    else {
        return false;
    };
    let parts: Vec<&str> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.as_str()))
        .collect();
    match parts.as_slice() {
        [schema, table] if schema.eq_ignore_ascii_case(PG_CATALOG) => {
            pg_catalog::always_empty(table)
        }
        [table] => pg_catalog::always_empty(table),
        _ => false,
    }
}

/// The names PostgreSQL gives a SELECT's columns (made unique, as
/// DataFusion needs); `None` with a `*`.
fn column_names(select: &Select) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for item in &select.projection {
        let name = match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(expr) => expr_name(expr),
            _ => return None,
        };
        let mut unique = name.clone();
        let mut n = 1;
        while names.contains(&unique) {
            n += 1;
            unique = format!("{name}_{n}");
        }
        names.push(unique);
    }
    Some(names)
}

fn expr_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map_or("?column?".into(), |i| i.value.clone())
        }
        Expr::Function(f) => last_part(&f.name).unwrap_or_else(|| "?column?".into()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => expr_name(expr),
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

/// A SELECT of no rows with text columns named `names`.
fn no_rows(names: &[String]) -> Option<Box<SetExpr>> {
    let columns: Vec<String> = names
        .iter()
        .map(|n| format!("CAST(NULL AS TEXT) AS \"{}\"", n.replace('"', "\"\"")))
        .collect();
    let sql = format!("SELECT {} WHERE false", columns.join(", "));
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql).ok()?;
    match statements.pop()? {
        Statement::Query(query) => Some(query.body),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap();
        rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn operators_collations_and_qualified_names_lose_their_pg_catalog() {
        assert_eq!(
            rewritten(
                "SELECT pg_catalog.lower(c.relname) FROM pg_class c \
                 WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default"
            ),
            "SELECT lower(c.relname) FROM pg_class c WHERE c.relname ~ '^(t)$'"
        );
        assert_eq!(rewritten("SELECT 1::pg_catalog.int4"), "SELECT 1::INT4");
    }

    #[test]
    fn copy_options_take_on_and_off_but_other_statements_keep_them() {
        let copy = parse_statements("COPY t FROM STDIN WITH (FREEZE on, HEADER off)").unwrap();
        assert_eq!(
            copy[0].to_string(),
            "COPY t FROM STDIN (FREEZE, HEADER FALSE)"
        );
        let join = "SELECT 1 FROM a JOIN b AS header ON a.x = header.x";
        assert_eq!(parse_statements(join).unwrap()[0].to_string(), join);
    }

    #[test]
    fn vacuum_options_are_dropped() {
        for sql in [
            "VACUUM ANALYZE t",
            "VACUUM (VERBOSE, ANALYZE) t",
            "vacuum full t",
        ] {
            assert_eq!(
                parse_statements(sql).unwrap()[0].to_string(),
                "VACUUM t",
                "{sql}"
            );
        }
        assert_eq!(parse_statements("VACUUM").unwrap()[0].to_string(), "VACUUM");
        // Only a statement's first word is VACUUM.
        let call = "SELECT vacuum(1)";
        assert_eq!(parse_statements(call).unwrap()[0].to_string(), call);
        let second = parse_statements("SELECT 1; VACUUM VERBOSE t").unwrap();
        assert_eq!(second[1].to_string(), "VACUUM t");
    }

    #[test]
    fn reg_casts_become_lookups_and_names() {
        assert_eq!(
            rewritten("SELECT 't'::regclass"),
            "SELECT omendb_reg_oid('regclass', 't')"
        );
        assert_eq!(
            rewritten("SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM c"),
            "SELECT omendb_reg_name('regclass', c.oid) FROM c"
        );
    }

    #[test]
    fn array_of_a_subquery_aggregates_in_its_order() {
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT rolname FROM pg_roles WHERE oid > 1 ORDER BY 1)"),
            "SELECT (SELECT array_agg(rolname ORDER BY rolname) FROM pg_roles WHERE oid > 1)"
        );
    }

    #[test]
    fn selects_over_always_empty_catalogs_become_no_rows() {
        assert_eq!(
            rewritten(
                "SELECT pol.polname, pg_catalog.pg_get_expr(pol.polqual, pol.polrelid) AS q, NULL, NULL \
                 FROM pg_catalog.pg_policy pol WHERE pol.polrelid = '1' ORDER BY 1"
            ),
            "SELECT CAST(NULL AS TEXT) AS \"polname\", CAST(NULL AS TEXT) AS \"q\", \
             CAST(NULL AS TEXT) AS \"?column?\", CAST(NULL AS TEXT) AS \"?column?_2\" WHERE false"
        );
        // An outer join to an empty catalog keeps the left side's rows.
        let kept =
            "SELECT c.relname FROM pg_class AS c LEFT JOIN pg_inherits AS i ON c.oid = i.inhrelid";
        assert_eq!(rewritten(kept), kept);
        // An aggregate returns a row over nothing.
        let counted = "SELECT count(*) FROM pg_inherits";
        assert_eq!(rewritten(counted), counted);
    }
}
