//! PostgreSQL's reserved keywords as relation names. sqlparser accepts
//! some where PostgreSQL does not (`SELECT FROM WHERE` parses as a query of
//! a table named `where`); an unquoted reserved keyword naming a relation
//! is a syntax error (42601), as in PostgreSQL. Quoted (`"where"`) it is
//! an ordinary name.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Statement, visit_relations};

use crate::error::{ErrorClass, Result, SqlError};

/// Reserved keywords that can never name a relation. (PostgreSQL also
/// reserves `user`, `current_date` and the like, but reads them in FROM
/// as function calls; and `ONLY` is a FROM-clause modifier.)
const RESERVED: &[&str] = &[
    "ALL",
    "ANALYSE",
    "ANALYZE",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "ASYMMETRIC",
    "BOTH",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "CONSTRAINT",
    "CREATE",
    "DEFAULT",
    "DEFERRABLE",
    "DESC",
    "DISTINCT",
    "DO",
    "ELSE",
    "END",
    "EXCEPT",
    "FALSE",
    "FETCH",
    "FOR",
    "FOREIGN",
    "FROM",
    "GRANT",
    "GROUP",
    "HAVING",
    "IN",
    "INITIALLY",
    "INTERSECT",
    "INTO",
    "LATERAL",
    "LEADING",
    "LIMIT",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "PLACING",
    "PRIMARY",
    "REFERENCES",
    "RETURNING",
    "SELECT",
    "SOME",
    "SYMMETRIC",
    "TABLE",
    "THEN",
    "TO",
    "TRAILING",
    "TRUE",
    "UNION",
    "UNIQUE",
    "USING",
    "VARIADIC",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

/// Whether `word` is one of the reserved keywords above (any case).
pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// An error if `statement` names a relation by an unquoted reserved
/// keyword.
pub(crate) fn check_relation_names(statement: &Statement) -> Result<()> {
    let found = visit_relations(statement, |name| {
        let reserved = name.0.iter().find_map(|part| {
            let ident = part.as_ident()?;
            let upper = ident.value.to_ascii_uppercase();
            (ident.quote_style.is_none() && RESERVED.contains(&upper.as_str()))
                .then(|| ident.value.clone())
        });
        match reserved {
            Some(word) => ControlFlow::Break(word),
            None => ControlFlow::Continue(()),
        }
    });
    match found {
        ControlFlow::Break(word) => Err(SqlError::new(
            ErrorClass::SyntaxError,
            format!("syntax error at or near \"{word}\""),
        )),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn check(sql: &str) -> Result<()> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .map_err(|e| SqlError::new(ErrorClass::SyntaxError, e.to_string()))?;
        statements.iter().try_for_each(check_relation_names)
    }

    #[test]
    fn unquoted_reserved_words_cannot_name_relations() {
        let error = check("SELECT FROM WHERE").unwrap_err();
        assert_eq!(error.sqlstate(), "42601");
        assert_eq!(error.to_string(), "syntax error at or near \"WHERE\"");
        assert!(check("SELECT * FROM t JOIN select ON true").is_err());
        assert!(check("INSERT INTO t SELECT * FROM \"where\"").is_ok());
        assert!(check("SELECT * FROM whereabouts, s.t").is_ok());
    }
}
