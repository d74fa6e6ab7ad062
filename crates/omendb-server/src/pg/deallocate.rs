//! `DEALLOCATE [PREPARE] { name | ALL }`: drops prepared statements of the
//! connection. The statements are the connection's (Parse made them), so
//! the server answers it rather than the SQL engine.

/// What a DEALLOCATE drops.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Deallocate {
    All,
    Named(String),
}

/// The DEALLOCATE `sql` is, if it is one statement of that form.
pub(super) fn parse(sql: &str) -> Option<Deallocate> {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let mut words = sql.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("deallocate") {
        return None;
    }
    let mut target = words.next()?;
    if target.eq_ignore_ascii_case("prepare") {
        target = words.next()?;
    }
    if words.next().is_some() {
        return None;
    }
    if target.eq_ignore_ascii_case("all") {
        return Some(Deallocate::All);
    }
    let name = match target.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        // Inside quotes, a quote is doubled.
        Some(quoted) if !quoted.replace("\"\"", "").contains('"') => quoted.replace("\"\"", "\""),
        Some(_) => return None,
        None if target
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$') =>
        {
            target.to_lowercase()
        }
        None => return None,
    };
    Some(Deallocate::Named(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_postgresql_accepts() {
        assert_eq!(parse("DEALLOCATE ALL"), Some(Deallocate::All));
        assert_eq!(parse(" deallocate prepare all ; "), Some(Deallocate::All));
        assert_eq!(
            parse("DEALLOCATE _pg3_7"),
            Some(Deallocate::Named("_pg3_7".into()))
        );
        assert_eq!(
            parse("DEALLOCATE PREPARE \"My\"\"S\""),
            Some(Deallocate::Named("My\"S".into()))
        );
        assert_eq!(
            parse("DEALLOCATE Foo"),
            Some(Deallocate::Named("foo".into()))
        );
        assert_eq!(parse("DEALLOCATE"), None);
        assert_eq!(parse("DEALLOCATE a b"), None);
        assert_eq!(parse("SELECT 1"), None);
    }
}
