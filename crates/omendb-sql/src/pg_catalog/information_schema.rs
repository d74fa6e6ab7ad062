//! The SQL standard's `information_schema` views that clients read:
//! `schemata`, `tables`, `columns`, `table_constraints`,
//! `key_column_usage` (and `views`, `routines`: empty). They list the
//! user's tables, not the system catalogs'.

use omendb_storage::{DataType, name_in_schema, schema_of};

use super::rows::{Row, Table};
use super::types::{self, format_type};
use super::{CatalogView, Definition, INFORMATION_SCHEMA, Index, SUPERUSER};

const CATALOG: &str = "omendb";

const COLUMNS: &str = "table_catalog table_schema table_name column_name \
    ordinal_position:cardinal column_default is_nullable data_type \
    character_maximum_length:cardinal character_octet_length:cardinal numeric_precision:cardinal \
    numeric_precision_radix:cardinal numeric_scale:cardinal datetime_precision:cardinal interval_type \
    interval_precision:cardinal character_set_catalog character_set_schema character_set_name \
    collation_catalog collation_schema collation_name domain_catalog domain_schema \
    domain_name udt_catalog udt_schema udt_name scope_catalog scope_schema scope_name \
    maximum_cardinality:cardinal dtd_identifier is_self_referencing is_identity \
    identity_generation identity_start identity_increment identity_maximum \
    identity_minimum identity_cycle is_generated generation_expression is_updatable";

pub(super) const DEFINITIONS: &[Definition] = &[
    Definition {
        schema: INFORMATION_SCHEMA,
        name: "schemata",
        columns: "catalog_name schema_name schema_owner default_character_set_catalog \
            default_character_set_schema default_character_set_name sql_path",
        rows: Some(schemata),
    },
    Definition {
        schema: INFORMATION_SCHEMA,
        name: "tables",
        columns: "table_catalog table_schema table_name table_type \
            self_referencing_column_name reference_generation user_defined_type_catalog \
            user_defined_type_schema user_defined_type_name is_insertable_into is_typed \
            commit_action",
        rows: Some(tables),
    },
    Definition {
        schema: INFORMATION_SCHEMA,
        name: "columns",
        columns: COLUMNS,
        rows: Some(columns),
    },
    Definition {
        schema: INFORMATION_SCHEMA,
        name: "table_constraints",
        columns: "constraint_catalog constraint_schema constraint_name table_catalog \
            table_schema table_name constraint_type is_deferrable initially_deferred enforced \
            nulls_distinct",
        rows: Some(table_constraints),
    },
    Definition {
        schema: INFORMATION_SCHEMA,
        name: "key_column_usage",
        columns: "constraint_catalog constraint_schema constraint_name table_catalog \
            table_schema table_name column_name ordinal_position:cardinal \
            position_in_unique_constraint:cardinal",
        rows: Some(key_column_usage),
    },
    Definition {
        schema: INFORMATION_SCHEMA,
        name: "views",
        columns: "table_catalog table_schema table_name view_definition check_option \
            is_updatable is_insertable_into is_trigger_updatable is_trigger_deletable \
            is_trigger_insertable_into",
        rows: None,
    },
    Definition {
        schema: INFORMATION_SCHEMA,
        name: "routines",
        columns: "specific_catalog specific_schema specific_name routine_catalog \
            routine_schema routine_name routine_type data_type type_udt_name routine_body \
            routine_definition external_language is_deterministic",
        rows: None,
    },
];

fn yes_no(b: bool) -> &'static str {
    if b { "YES" } else { "NO" }
}

fn schemata(view: &CatalogView, table: &mut Table) {
    for schema in view.schemas() {
        table
            .row()
            .set("catalog_name", CATALOG)
            .set("schema_name", schema)
            .set("schema_owner", SUPERUSER);
    }
}

fn tables(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        table
            .row()
            .set("table_catalog", CATALOG)
            .set("table_schema", schema_of(&def.name))
            .set("table_name", name_in_schema(&def.name))
            .set("table_type", "BASE TABLE")
            .set("is_insertable_into", "YES")
            .set("is_typed", "NO");
    }
}

fn columns(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for (i, column) in def.columns.iter().enumerate() {
            let (oid, typmod) = types::column_type(&column.data_type);
            let udt = types::by_oid(oid).map_or("", |t| t.name);
            let data_type = match column.data_type {
                DataType::Vector { .. } => "USER-DEFINED".to_owned(),
                DataType::Numeric { .. } => "numeric".to_owned(),
                DataType::Text { max_chars: Some(_) } => "character varying".to_owned(),
                DataType::Char { .. } => "character".to_owned(),
                _ => format_type(oid, typmod).unwrap_or_default(),
            };
            let mut row = table.row();
            row.set("table_catalog", CATALOG)
                .set("table_schema", schema_of(&def.name))
                .set("table_name", name_in_schema(&def.name))
                .set("column_name", column.name.as_str())
                .set("ordinal_position", i64::try_from(i + 1).unwrap_or(i64::MAX))
                .set("column_default", column.default.clone())
                .set("is_nullable", yes_no(column.nullable))
                .set("data_type", data_type)
                .set("udt_catalog", CATALOG)
                .set("udt_schema", "pg_catalog")
                .set("udt_name", udt)
                .set("dtd_identifier", (i + 1).to_string())
                .set("is_self_referencing", "NO")
                .set("is_identity", "NO")
                .set("identity_cycle", "NO")
                .set("is_generated", "NEVER")
                .set("is_updatable", "YES");
            // What the unset precision columns are NULL for.
            let (precision, radix, scale): (Option<i64>, Option<i64>, Option<i64>) =
                match column.data_type {
                    DataType::Int16 => (Some(16), Some(2), Some(0)),
                    DataType::Int32 => (Some(32), Some(2), Some(0)),
                    DataType::Int64 => (Some(64), Some(2), Some(0)),
                    DataType::Float32 => (Some(24), Some(2), None),
                    DataType::Float64 => (Some(53), Some(2), None),
                    DataType::Numeric { precision, scale } => {
                        (Some(precision.into()), Some(10), Some(scale.into()))
                    }
                    _ => (None, None, None),
                };
            row.set("numeric_precision", precision)
                .set("numeric_precision_radix", radix)
                .set("numeric_scale", scale);
            match column.data_type {
                DataType::Char { len } => {
                    row.set("character_maximum_length", i64::from(len))
                        .set("character_octet_length", i64::from(len) * 4);
                }
                DataType::Text { max_chars } => {
                    row.set("character_maximum_length", max_chars.map(i64::from))
                        .set(
                            "character_octet_length",
                            Some(max_chars.map_or(1_073_741_824, |n| i64::from(n) * 4)),
                        );
                }
                DataType::Timestamp | DataType::TimestampTz | DataType::Interval => {
                    row.set("datetime_precision", 6i32);
                }
                DataType::Date => {
                    row.set("datetime_precision", 0i32);
                }
                _ => {}
            }
        }
    }
}

/// A row naming `index`'s constraint and its table.
fn constraint_row<'t>(table: &'t mut Table, index: &Index<'_>) -> Row<'t> {
    let def = index.table;
    let mut row = table.row();
    row.set("constraint_catalog", CATALOG)
        .set("constraint_schema", schema_of(&def.name))
        .set("constraint_name", index.name.as_str())
        .set("table_catalog", CATALOG)
        .set("table_schema", schema_of(&def.name))
        .set("table_name", name_in_schema(&def.name));
    row
}

fn table_constraints(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for index in view.indexes(def) {
            constraint_row(table, &index)
                .set(
                    "constraint_type",
                    if index.primary {
                        "PRIMARY KEY"
                    } else {
                        "UNIQUE"
                    },
                )
                .set("is_deferrable", "NO")
                .set("initially_deferred", "NO")
                .set("enforced", "YES")
                .set("nulls_distinct", "YES");
        }
    }
}

fn key_column_usage(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for index in view.indexes(def) {
            for (i, &p) in index.positions.iter().enumerate() {
                constraint_row(table, &index)
                    .set("column_name", def.columns[p].name.as_str())
                    .set("ordinal_position", i64::try_from(i + 1).unwrap_or(i64::MAX));
            }
        }
    }
}
