//! DDL: CREATE TABLE, ALTER TABLE (ADD / DROP / RENAME COLUMN, RENAME TO),
//! TRUNCATE, CREATE / DROP SCHEMA, as catalog changes in the session's
//! transaction.

use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef as SqlColumnDef, ColumnOption, CreateTable,
    NullsDistinctOption, ObjectName, PrimaryKeyConstraint, RenameTableNameKind, SchemaName,
    TableConstraint, Truncate, UniqueConstraint,
};
use omendb_storage::{ColumnSpec, KeyRange, PUBLIC_SCHEMA, Value, schema_of};

use crate::dml::quoted;
use crate::engine::{SqlSession, command, default_value, ident, query_text};
use crate::error::{ErrorClass, Result, SqlError};
use crate::handler::StatementResult;
use crate::provider::KEYS_SCHEMA;
use crate::schemas::{self, TableName};
use crate::types::column_type;

/// A column as declared: whether it is the primary key, and its UNIQUE
/// constraint (with its name, if given).
struct DeclaredColumn {
    spec: ColumnSpec,
    is_key: bool,
    unique: Option<Option<String>>,
}

fn column_spec(column: &SqlColumnDef) -> Result<DeclaredColumn> {
    let mut declared = DeclaredColumn {
        spec: ColumnSpec::new(ident(&column.name), column_type(&column.data_type)?),
        is_key: false,
        unique: None,
    };
    for option in &column.options {
        match &option.option {
            ColumnOption::Null => {}
            ColumnOption::NotNull => declared.spec.nullable = false,
            ColumnOption::Default(expr) => declared.spec.default = Some(expr.to_string()),
            ColumnOption::PrimaryKey(_) => declared.is_key = true,
            ColumnOption::Unique(unique) => {
                check_unique(unique)?;
                let name = option.name.as_ref().or(unique.name.as_ref());
                declared.unique = Some(name.map(ident));
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "column option {other} is not supported yet"
                )));
            }
        }
    }
    Ok(declared)
}

/// Refuses the UNIQUE variants not supported.
fn check_unique(unique: &UniqueConstraint) -> Result<()> {
    match unique.nulls_distinct {
        NullsDistinctOption::NotDistinct => Err(SqlError::unsupported(
            "UNIQUE NULLS NOT DISTINCT is not supported",
        )),
        _ => Ok(()),
    }
}

/// The columns of a UNIQUE table constraint.
fn unique_columns(unique: &UniqueConstraint) -> Result<Vec<String>> {
    check_unique(unique)?;
    unique
        .columns
        .iter()
        .map(|column| match &column.column.expr {
            datafusion::sql::sqlparser::ast::Expr::Identifier(id) => Ok(ident(id)),
            other => Err(SqlError::unsupported(format!(
                "unique constraint on expression {other}"
            ))),
        })
        .collect()
}

/// Adds a unique constraint on `columns` of the table stored as `table`,
/// named `name` or as PostgreSQL would name it (`t_a_b_key`, then
/// `t_a_b_key1`, ... while taken).
fn add_unique(
    session: &SqlSession,
    table: &str,
    name: Option<String>,
    columns: &[String],
) -> Result<()> {
    session.txn().with(|txn| {
        let def = txn.table(table)?;
        let name = name.unwrap_or_else(|| {
            let base = format!(
                "{}_{}_key",
                omendb_storage::name_in_schema(table),
                columns.join("_")
            );
            let taken = |n: &str| def.unique.iter().any(|u| u.name == n);
            (0..)
                .map(|i| match i {
                    0 => base.clone(),
                    i => format!("{base}{i}"),
                })
                .find(|n| !taken(n))
                .unwrap_or(base)
        });
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        Ok(txn.add_unique(table, &name, &columns)?)
    })
}

pub(crate) fn create_table(session: &SqlSession, create: CreateTable) -> Result<StatementResult> {
    if create.query.is_some() {
        return Err(SqlError::unsupported(
            "CREATE TABLE ... AS is not supported yet",
        ));
    }
    let table = TableName::of(&create.name)?;
    let path = session.search_path();
    let name = session
        .txn()
        .with(|txn| table.for_create(&txn.catalog(), &path))?;
    let mut specs = Vec::with_capacity(create.columns.len());
    let mut primary_key: Vec<String> = Vec::new();
    let mut uniques: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for column in &create.columns {
        let DeclaredColumn {
            spec,
            is_key,
            unique,
        } = column_spec(column)?;
        if let Some(name) = unique {
            uniques.push((name, vec![spec.name.clone()]));
        }
        if is_key {
            if !primary_key.is_empty() {
                return Err(SqlError::new(
                    ErrorClass::SyntaxError,
                    format!("multiple primary keys for table \"{name}\" are not allowed"),
                ));
            }
            primary_key.push(spec.name.clone());
        }
        specs.push(spec);
    }
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(multiple_primary_keys(&name));
                }
                primary_key = primary_key_columns(pk)?;
            }
            TableConstraint::Unique(unique) => {
                uniques.push((unique.name.as_ref().map(ident), unique_columns(unique)?));
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "table constraint {other} is not supported yet"
                )));
            }
        }
    }
    // Key columns are NOT NULL, as in PostgreSQL.
    for spec in &mut specs {
        if primary_key.contains(&spec.name) {
            spec.nullable = false;
        }
    }
    let created = session.txn().with(|txn| {
        if create.if_not_exists && txn.table(&name).is_ok() {
            return Ok(false);
        }
        let key: Vec<&str> = primary_key.iter().map(String::as_str).collect();
        txn.create_table(&name, specs, &key)?;
        Ok(true)
    })?;
    if created {
        for (constraint, columns) in uniques {
            add_unique(session, &name, constraint, &columns)?;
        }
    }
    Ok(command("CREATE TABLE"))
}

/// The name of a schema as written (one identifier).
fn schema_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => {
            let name = part
                .as_ident()
                .map(ident)
                .ok_or_else(|| SqlError::unsupported(format!("schema name {name}")))?;
            schemas::check_identifier(&name)?;
            Ok(name)
        }
        _ => Err(SqlError::new(
            ErrorClass::SyntaxError,
            format!("improper schema name: {name}"),
        )),
    }
}

pub(crate) fn create_schema(
    session: &SqlSession,
    name: &SchemaName,
    if_not_exists: bool,
) -> Result<StatementResult> {
    let SchemaName::Simple(name) = name else {
        return Err(SqlError::unsupported(
            "CREATE SCHEMA ... AUTHORIZATION is not supported",
        ));
    };
    let name = schema_name(name)?;
    session.txn().with(|txn| {
        let exists =
            txn.catalog().has_schema(&name) || schemas::SYSTEM_SCHEMAS.contains(&name.as_str());
        match (exists, if_not_exists) {
            (true, true) => Ok(()),
            (true, false) => Err(SqlError::new(
                ErrorClass::DuplicateSchema,
                format!("schema \"{name}\" already exists"),
            )),
            (false, _) => Ok(txn.create_schema(&name)?),
        }
    })?;
    Ok(command("CREATE SCHEMA"))
}

/// `DROP SCHEMA`; with CASCADE the schemas' tables go too.
pub(crate) fn drop_schemas(
    session: &SqlSession,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> Result<StatementResult> {
    for name in names {
        let name = schema_name(name)?;
        if name == PUBLIC_SCHEMA || schemas::SYSTEM_SCHEMAS.contains(&name.as_str()) {
            return Err(SqlError::unsupported(format!(
                "dropping schema {name} is not supported"
            )));
        }
        session.txn().with(|txn| {
            let catalog = txn.catalog();
            if !catalog.has_schema(&name) {
                return match if_exists {
                    true => Ok(()),
                    false => Err(SqlError::new(
                        ErrorClass::InvalidSchemaName,
                        format!("schema \"{name}\" does not exist"),
                    )),
                };
            }
            if cascade {
                for table in catalog.tables().filter(|t| schema_of(&t.name) == name) {
                    txn.drop_table(&table.name)?;
                }
            }
            Ok(txn.drop_schema(&name)?)
        })?;
    }
    Ok(command("DROP SCHEMA"))
}

fn multiple_primary_keys(table: &str) -> SqlError {
    SqlError::new(
        ErrorClass::InvalidTableDefinition,
        format!("multiple primary keys for table \"{table}\" are not allowed"),
    )
}

/// The columns of a PRIMARY KEY constraint, in key order.
fn primary_key_columns(pk: &PrimaryKeyConstraint) -> Result<Vec<String>> {
    pk.columns
        .iter()
        .map(|column| match &column.column.expr {
            datafusion::sql::sqlparser::ast::Expr::Identifier(id) => Ok(ident(id)),
            other => Err(SqlError::unsupported(format!(
                "primary key on expression {other}"
            ))),
        })
        .collect()
}

pub(crate) async fn alter_table(
    session: &SqlSession,
    alter: AlterTable,
) -> Result<StatementResult> {
    let name = match session.find_table(&alter.name)? {
        Some(name) => name,
        None if alter.if_exists => return Ok(command("ALTER TABLE")),
        None => {
            return Err(SqlError::new(
                ErrorClass::UndefinedTable,
                format!(
                    "relation \"{}\" does not exist",
                    TableName::of(&alter.name)?
                ),
            ));
        }
    };
    // UNIQUE columns added: their constraints follow the column.
    let mut added_uniques: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for operation in alter.operations {
        let def = session.txn().with(|txn| Ok(txn.table(&name)?))?;
        let next = match operation {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let DeclaredColumn {
                    spec,
                    is_key,
                    unique,
                } = column_spec(&column_def)?;
                if is_key {
                    return Err(SqlError::unsupported("ADD COLUMN ... PRIMARY KEY"));
                }
                if let Some(constraint) = unique {
                    added_uniques.push((constraint, vec![spec.name.clone()]));
                }
                if def.columns.iter().any(|c| c.name == spec.name) {
                    if if_not_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        ErrorClass::DuplicateColumn,
                        format!(
                            "column \"{}\" of relation \"{name}\" already exists",
                            spec.name
                        ),
                    ));
                }
                // Rows already there get the default, evaluated once.
                let missing = match &spec.default {
                    Some(expr) => {
                        let column = def
                            .with_column_added(spec.clone(), Value::Null)?
                            .columns
                            .last()
                            .cloned()
                            .ok_or_else(|| SqlError::internal("added column missing"))?;
                        default_value(session, expr, &column).await?
                    }
                    None => Value::Null,
                };
                if !spec.nullable && missing.is_null() {
                    let (_, batches) = query_text(
                        session,
                        &format!("SELECT 1 FROM {KEYS_SCHEMA}.{} LIMIT 1", quoted(&name)),
                    )
                    .await?;
                    if batches.iter().any(|b| b.num_rows() > 0) {
                        return Err(SqlError::new(
                            ErrorClass::NotNullViolation,
                            format!(
                                "column \"{}\" of relation \"{name}\" contains null values",
                                spec.name
                            ),
                        ));
                    }
                }
                def.with_column_added(spec, missing)?
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                let mut next = def.as_ref().clone();
                for column in &column_names {
                    let column = ident(column);
                    if if_exists && next.column(&column).is_err() {
                        continue;
                    }
                    if next
                        .key_positions()
                        .iter()
                        .any(|&i| next.columns[i].name == column)
                    {
                        return Err(SqlError::unsupported(format!(
                            "dropping primary key column \"{column}\""
                        )));
                    }
                    next = next.with_column_dropped(&column)?;
                }
                next
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => def.with_column_renamed(&ident(&old_column_name), &ident(&new_column_name))?,
            AlterTableOperation::RenameTable { table_name: to } => {
                let (RenameTableNameKind::As(to) | RenameTableNameKind::To(to)) = to;
                let to = TableName::of(&to)?;
                if to.schema.is_some() {
                    return Err(SqlError::new(
                        ErrorClass::SyntaxError,
                        format!("RENAME TO takes a name without a schema: {to}"),
                    ));
                }
                let stored = schemas::storage_name(schema_of(&def.name), &to.table);
                if session.txn().with(|txn| Ok(txn.table(&stored).is_ok()))? {
                    return Err(SqlError::new(
                        ErrorClass::DuplicateTable,
                        format!("relation \"{to}\" already exists"),
                    ));
                }
                def.renamed(&stored)
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::PrimaryKey(pk),
                ..
            } => {
                if !def.has_row_id() {
                    return Err(multiple_primary_keys(omendb_storage::name_in_schema(&name)));
                }
                let columns = primary_key_columns(&pk)?;
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                session
                    .txn()
                    .with(|txn| Ok(txn.add_primary_key(&name, &columns)?))?;
                continue;
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::Unique(unique),
                ..
            } => {
                let columns = unique_columns(&unique)?;
                add_unique(session, &name, unique.name.as_ref().map(ident), &columns)?;
                continue;
            }
            AlterTableOperation::DropConstraint {
                if_exists,
                name: constraint,
                ..
            } => {
                let constraint = ident(&constraint);
                let mut next = def.as_ref().clone();
                next.unique.retain(|u| u.name != constraint);
                if next.unique.len() == def.unique.len() {
                    if if_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        ErrorClass::UndefinedObject,
                        format!(
                            "constraint \"{constraint}\" of relation \"{}\" does not exist",
                            omendb_storage::name_in_schema(&name)
                        ),
                    ));
                }
                next
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "ALTER TABLE {other} is not supported yet"
                )));
            }
        };
        session.txn().with(|txn| Ok(txn.alter_table(next)?))?;
        for (constraint, columns) in added_uniques.drain(..) {
            add_unique(session, &name, constraint, &columns)?;
        }
    }
    Ok(command("ALTER TABLE"))
}

pub(crate) fn truncate(session: &SqlSession, truncate: Truncate) -> Result<StatementResult> {
    for target in &truncate.table_names {
        let name = session.table_name(&target.name)?;
        session.txn().with(|txn| {
            txn.delete_range(&name, KeyRange::all())?;
            Ok(())
        })?;
    }
    Ok(command("TRUNCATE TABLE"))
}
