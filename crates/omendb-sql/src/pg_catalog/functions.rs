//! The catalog functions clients call with the catalogs:
//! `pg_table_is_visible`, `format_type`, `pg_get_indexdef`,
//! `pg_get_constraintdef`, `pg_get_expr`, `pg_get_userbyid`,
//! `current_schemas`, the privilege checks (always true: there is one
//! superuser), the description lookups (always NULL: no COMMENT), the
//! sizes (`pg_table_size` and friends: the segment files on disk, so
//! writes not yet flushed count nothing), and the `reg*` conversions
//! `pg_syntax` turns `::regclass` casts into.
//!
//! Each evaluates row by row on scalars: catalog queries are small. A
//! result stream runs after its statement has handed back the reader, so
//! planning (DataFusion's `simplify`, run while the statement's reader is
//! set) gives each call the catalog it will read.

use std::cell::OnceCell;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use omendb_storage::{name_in_schema, schema_of};

use super::types::{self, format_type};
use super::{CatalogSource, CatalogView, SUPERUSER, SUPERUSER_OID, quote_ident, schema_oid};
use crate::error::{ErrorClass, SqlError};

/// The function `pg_syntax` makes of `x::regclass` (and the other `reg*`
/// types): the OID `x` names. Its first argument is the type's name.
pub(crate) const REG_OID: &str = "omendb_reg_oid";
/// The function `pg_syntax` makes of `x::regclass::text`: the name.
pub(crate) const REG_NAME: &str = "omendb_reg_name";

/// The function `pg_syntax` makes of `information_schema._pg_expandarray`
/// (whose rows pair each element with its position): that list of pairs,
/// `{x, n}`, to unnest.
pub(crate) const EXPAND_ARRAY: &str = "omendb_expand_array";

/// PostgreSQL's OID of `array_in`, the one `regproc` clients look up.
const ARRAY_IN_OID: u32 = 750;

type Body = fn(&Call<'_>, &[ScalarValue]) -> DfResult<ScalarValue>;

/// One catalog function: its name, the argument counts it takes, what it
/// returns and how it computes a row.
#[derive(Clone)]
struct CatalogFunction {
    name: &'static str,
    returns: DataType,
    body: Body,
    source: CatalogSource,
    signature: Signature,
    /// The catalog the planned call reads (set by `simplify`).
    view: Option<Arc<CatalogView>>,
}

impl std::fmt::Debug for CatalogFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.source.reader, &other.source.reader)
    }
}

impl Eq for CatalogFunction {}

impl std::hash::Hash for CatalogFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// One evaluation: the catalog is read once, when a row first needs it.
struct Call<'a> {
    function: &'a CatalogFunction,
    view: OnceCell<Arc<CatalogView>>,
}

impl Call<'_> {
    fn view(&self) -> DfResult<&CatalogView> {
        if let Some(view) = self.view.get() {
            return Ok(view);
        }
        let view = match &self.function.view {
            Some(view) => view.clone(),
            None => Arc::new(self.function.source.view()?),
        };
        Ok(self.view.get_or_init(|| view))
    }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        if self.view.is_some() {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let Ok(view) = self.source.view() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let planned = CatalogFunction {
            view: Some(Arc::new(view)),
            ..self.clone()
        };
        let udf = Arc::new(ScalarUDF::from(planned));
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf, args),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let call = Call {
            function: self,
            view: OnceCell::new(),
        };
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        // All-scalar arguments make one value (the batch may have no rows).
        let rows = if scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let values = arrays
                .iter()
                .map(|a| ScalarValue::try_from_array(a, row))
                .collect::<DfResult<Vec<_>>>()?;
            out.push((self.body)(&call, &values)?);
        }
        if scalar {
            let value = out
                .pop()
                .map_or_else(|| ScalarValue::try_from(&self.returns), Ok)?;
            return Ok(ColumnarValue::Scalar(value));
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.returns),
            ));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

/// The catalog functions of a session reading `source`.
pub(crate) fn functions(source: &CatalogSource) -> Vec<ScalarUDF> {
    use DataType::{Boolean, Int64, UInt32, Utf8};
    let text_list = DataType::List(Arc::new(Field::new("item", Utf8, true)));
    let pairs = DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(pair_fields()),
        true,
    )));
    let table: Vec<(&'static str, &[usize], DataType, Body)> = vec![
        ("pg_table_is_visible", &[1], Boolean, table_is_visible),
        ("pg_type_is_visible", &[1], Boolean, type_is_visible),
        ("pg_get_userbyid", &[1], Utf8, user_by_id),
        ("format_type", &[2], Utf8, format_type_of),
        ("pg_get_expr", &[2, 3], Utf8, expression),
        ("pg_get_indexdef", &[1, 3], Utf8, index_definition),
        ("pg_get_constraintdef", &[1, 2], Utf8, constraint_definition),
        ("pg_encoding_to_char", &[1], Utf8, encoding_name),
        ("obj_description", &[1, 2], Utf8, null_text),
        ("col_description", &[2], Utf8, null_text),
        ("shobj_description", &[2], Utf8, null_text),
        ("pg_get_statisticsobjdef_columns", &[1], Utf8, null_text),
        ("has_table_privilege", &[2, 3], Boolean, granted),
        ("has_schema_privilege", &[2, 3], Boolean, granted),
        ("has_database_privilege", &[2, 3], Boolean, granted),
        ("has_column_privilege", &[3, 4], Boolean, granted),
        ("has_any_column_privilege", &[2, 3], Boolean, granted),
        ("pg_relation_is_publishable", &[1], Boolean, not_publishable),
        ("current_schemas", &[1], text_list, current_schemas),
        ("to_regclass", &[1], UInt32, to_regclass),
        ("to_regtype", &[1], UInt32, to_regtype),
        ("to_regnamespace", &[1], UInt32, to_regnamespace),
        (REG_OID, &[2], UInt32, reg_oid),
        (REG_NAME, &[2], Utf8, reg_name),
        (EXPAND_ARRAY, &[1], pairs, expand_array),
        ("pg_size_pretty", &[1], Utf8, size_pretty),
        ("pg_table_size", &[1], Int64, table_size),
        // The main fork (the second argument's default) is all there is.
        ("pg_relation_size", &[1, 2], Int64, table_size),
        ("pg_indexes_size", &[1], Int64, indexes_size),
        ("pg_total_relation_size", &[1], Int64, total_relation_size),
        ("pg_database_size", &[1], Int64, database_size),
    ];
    table
        .into_iter()
        .map(|(name, arities, returns, body)| {
            let signatures = arities
                .iter()
                .map(|&n| match n {
                    0 => TypeSignature::Nullary,
                    n => TypeSignature::Any(n),
                })
                .collect();
            ScalarUDF::from(CatalogFunction {
                name,
                returns,
                body,
                source: source.clone(),
                signature: Signature::one_of(signatures, Volatility::Stable),
                view: None,
            })
        })
        .collect()
}

/// `pg_size_pretty(bytes)`, as PostgreSQL 15 writes it: bytes below 10
/// kB, then the first of kB, MB, GB, TB, PB whose count in half-units is
/// below 20,479, rounded half away from zero.
fn size_pretty(_call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    text(int_arg(arg(args, 0)).map(pretty_size))
}

fn pretty_size(bytes: i64) -> String {
    let half_rounded = |n: i64| (n + if n < 0 { -1 } else { 1 }) / 2;
    if bytes.abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    // In half-units of kB from here on: the last bit is for rounding.
    let mut size = bytes / 512;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < 20 * 1024 - 1 {
            return format!("{} {unit}", half_rounded(size));
        }
        size /= 1024;
    }
    format!("{} PB", half_rounded(size))
}

fn relation_bytes(
    call: &Call<'_>,
    args: &[ScalarValue],
    table: bool,
    indexes: bool,
) -> DfResult<ScalarValue> {
    // The relation as an OID, or by name (PostgreSQL takes a `regclass`).
    let view = call.view()?;
    let oid = match arg(args, 0) {
        ScalarValue::Utf8(Some(name)) | ScalarValue::Utf8View(Some(name))
            if name.trim().parse::<u32>().is_err() =>
        {
            view.relation_oid(&unquote(name))
        }
        other => oid_arg(other),
    };
    let bytes = oid.and_then(|oid| view.relation_bytes(oid, table, indexes));
    Ok(ScalarValue::Int64(
        bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
    ))
}

fn table_size(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    relation_bytes(call, args, true, false)
}

fn indexes_size(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    relation_bytes(call, args, false, true)
}

fn total_relation_size(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    relation_bytes(call, args, true, true)
}

/// `pg_database_size(name or oid)`: every table's segments.
fn database_size(call: &Call<'_>, _args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let view = call.view()?;
    let bytes: u64 = view
        .tables()
        .filter_map(|t| view.relation_bytes(super::table_oid(t.id), true, true))
        .sum();
    Ok(ScalarValue::Int64(Some(
        i64::try_from(bytes).unwrap_or(i64::MAX),
    )))
}

/// The fields of `_pg_expandarray`'s rows: the element and its position.
fn pair_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("n", DataType::Int32, false),
    ])
}

/// The elements of an integer array with their positions (from 1).
fn expand_array(_call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let elements: Vec<Option<i64>> = match arg(args, 0) {
        ScalarValue::List(list) if !list.is_null(0) => {
            let values = cast(list.value(0).as_ref(), &DataType::Int64)?;
            values.as_primitive::<Int64Type>().iter().collect()
        }
        _ => Vec::new(),
    };
    let positions = (1..=elements.len()).map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let pairs = StructArray::new(
        pair_fields(),
        vec![
            Arc::new(Int64Array::from(elements)) as ArrayRef,
            Arc::new(Int32Array::from_iter_values(positions)),
        ],
        None,
    );
    let field = Arc::new(Field::new("item", DataType::Struct(pair_fields()), true));
    let list = ListArray::new(
        field,
        OffsetBuffer::from_lengths([pairs.len()]),
        Arc::new(pairs),
        None,
    );
    Ok(ScalarValue::List(Arc::new(list)))
}

/// An OID argument: any integer, or text holding one.
fn oid_arg(value: &ScalarValue) -> Option<u32> {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.trim().parse().ok(),
        v if v.is_null() => None,
        v => v.cast_to(&DataType::Int64).ok().and_then(|v| match v {
            ScalarValue::Int64(Some(n)) => u32::try_from(n).ok(),
            _ => None,
        }),
    }
}

fn int_arg(value: &ScalarValue) -> Option<i64> {
    match value.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(n) => n,
        _ => None,
    }
}

fn text_arg(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => s.clone(),
        v if v.is_null() => None,
        v => Some(v.to_string()),
    }
}

fn text(value: Option<String>) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Utf8(value))
}

fn arg(args: &[ScalarValue], i: usize) -> &ScalarValue {
    args.get(i).unwrap_or(&ScalarValue::Null)
}

fn table_is_visible(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Boolean(match oid_arg(arg(args, 0)) {
        Some(oid) => Some(call.view()?.is_visible(oid)),
        None => None,
    }))
}

/// Every type is in `pg_catalog` or `public`, both on the path.
fn type_is_visible(_call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Boolean(
        oid_arg(arg(args, 0)).map(|oid| types::by_oid(oid).is_some()),
    ))
}

fn user_by_id(_call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    text(oid_arg(arg(args, 0)).map(|oid| match oid {
        SUPERUSER_OID => SUPERUSER.to_owned(),
        other => format!("unknown (OID={other})"),
    }))
}

fn format_type_of(_call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let Some(oid) = oid_arg(arg(args, 0)) else {
        return text(None);
    };
    let typmod = int_arg(arg(args, 1))
        .and_then(|m| i32::try_from(m).ok())
        .unwrap_or(-1);
    text(Some(
        format_type(oid, typmod).unwrap_or_else(|| "???".into()),
    ))
}

/// `pg_get_expr`: expressions are kept as their SQL text.
fn expression(_call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    text(text_arg(arg(args, 0)))
}

fn index_definition(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let Some(oid) = oid_arg(arg(args, 0)) else {
        return text(None);
    };
    let column = int_arg(arg(args, 1)).unwrap_or(0);
    let view = call.view()?;
    text(view.index(oid).and_then(|index| {
        match column {
            0 => Some(index.definition()),
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| index.positions.get(i))
                .map(|&p| index.table.columns[p].name.clone()),
        }
    }))
}

fn constraint_definition(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let Some(oid) = oid_arg(arg(args, 0)) else {
        return text(None);
    };
    text(call.view()?.index(oid).map(|index| index.constraint()))
}

fn encoding_name(_call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    text(int_arg(arg(args, 0)).map(|n| match n {
        0 => "SQL_ASCII".into(),
        6 => "UTF8".into(),
        _ => String::new(),
    }))
}

fn null_text(_call: &Call<'_>, _args: &[ScalarValue]) -> DfResult<ScalarValue> {
    text(None)
}

fn granted(_call: &Call<'_>, _args: &[ScalarValue]) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Boolean(Some(true)))
}

fn not_publishable(_call: &Call<'_>, _args: &[ScalarValue]) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Boolean(Some(false)))
}

/// `current_schemas(include_implicit)`: the search path's schemas that
/// exist, `pg_catalog` first when implicit ones are asked for.
fn current_schemas(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let implicit = matches!(arg(args, 0), ScalarValue::Boolean(Some(true)));
    let view = call.view()?;
    let schemas: Vec<ScalarValue> = view
        .path
        .iter()
        .skip(usize::from(!implicit))
        .filter(|s| view.schemas().any(|known| known == s.as_str()))
        .map(|s| ScalarValue::Utf8(Some(s.clone())))
        .collect();
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(
        &schemas,
        &DataType::Utf8,
    )))
}

/// `to_regclass(name)` and its siblings: the OID, or NULL where the cast
/// would fail.
fn to_reg(kind: &str, call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let value = match arg(args, 0) {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.clone(),
        _ => return Ok(ScalarValue::UInt32(None)),
    };
    let args = [
        ScalarValue::Utf8(Some(kind.to_owned())),
        ScalarValue::Utf8(Some(value)),
    ];
    match reg_oid(call, &args) {
        Err(DataFusionError::External(_)) => Ok(ScalarValue::UInt32(None)),
        other => other,
    }
}

fn to_regclass(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    to_reg("regclass", call, args)
}

fn to_regtype(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    to_reg("regtype", call, args)
}

fn to_regnamespace(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    to_reg("regnamespace", call, args)
}

/// A name as written in a `reg*` literal: `"Mixed"` keeps its case,
/// unquoted names fold to lower case.
fn unquote(name: &str) -> String {
    name.split('.')
        .map(
            |part| match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => part.to_lowercase(),
            },
        )
        .collect::<Vec<_>>()
        .join(".")
}

fn reg_error(class: ErrorClass, message: String) -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::new(class, message)))
}

/// `value::regclass` (or regtype, ...): an OID as it is, a name looked up.
fn reg_oid(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let kind = text_arg(arg(args, 0)).unwrap_or_default();
    let value = arg(args, 1);
    let name = match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s))
            if s.trim().parse::<u32>().is_err() =>
        {
            unquote(s.trim())
        }
        v => return Ok(ScalarValue::UInt32(oid_arg(v))),
    };
    let bare = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let oid = match kind.as_str() {
        "regclass" => call.view()?.relation_oid(&name).ok_or_else(|| {
            reg_error(
                ErrorClass::UndefinedTable,
                format!("relation \"{name}\" does not exist"),
            )
        })?,
        "regtype" => types::by_name(bare).map(|t| t.oid).ok_or_else(|| {
            reg_error(
                ErrorClass::UndefinedObject,
                format!("type \"{name}\" does not exist"),
            )
        })?,
        "regnamespace" => call
            .view()?
            .schemas()
            .find(|s| *s == name)
            .map(schema_oid)
            .ok_or_else(|| {
                reg_error(
                    ErrorClass::InvalidSchemaName,
                    format!("schema \"{name}\" does not exist"),
                )
            })?,
        "regrole" if name == SUPERUSER => SUPERUSER_OID,
        "regproc" | "regprocedure" if bare == "array_in" => ARRAY_IN_OID,
        _ => {
            return Err(reg_error(
                ErrorClass::UndefinedObject,
                format!("{kind} \"{name}\" does not exist"),
            ));
        }
    };
    Ok(ScalarValue::UInt32(Some(oid)))
}

/// `value::regclass::text`: the name of what the OID (or name) means.
fn reg_name(call: &Call<'_>, args: &[ScalarValue]) -> DfResult<ScalarValue> {
    let ScalarValue::UInt32(oid) = reg_oid(call, args)? else {
        return text(None);
    };
    let Some(oid) = oid else {
        return text(None);
    };
    let kind = text_arg(arg(args, 0)).unwrap_or_default();
    let name = match kind.as_str() {
        // Qualified when the search path would not find it.
        "regclass" => {
            let view = call.view()?;
            let named = view
                .table(oid)
                .map(|t| (schema_of(&t.name), name_in_schema(&t.name).to_owned()))
                .or_else(|| view.index(oid).map(|i| (schema_of(&i.table.name), i.name)));
            named.map(|(schema, name)| match view.is_visible(oid) {
                true => quote_ident(&name),
                false => format!("{}.{}", quote_ident(schema), quote_ident(&name)),
            })
        }
        "regtype" => format_type(oid, -1),
        "regnamespace" => call
            .view()?
            .schemas()
            .find(|s| schema_oid(s) == oid)
            .map(str::to_owned),
        "regrole" if oid == SUPERUSER_OID => Some(SUPERUSER.to_owned()),
        "regproc" | "regprocedure" if oid == ARRAY_IN_OID => Some("array_in".to_owned()),
        _ => None,
    };
    text(Some(name.unwrap_or_else(|| oid.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        // Each answer is PostgreSQL 15's `pg_size_pretty` of the same number.
        for (bytes, shown) in [
            (0, "0 bytes"),
            (10_239, "10239 bytes"),
            (10_240, "10 kB"),
            (10_485_247, "10239 kB"),
            (10_485_248, "10 MB"),
            (20_971_520, "20 MB"),
            (1_000_000_000, "954 MB"),
            (123_456_789_012, "115 GB"),
            (-5_000_000, "-4883 kB"),
            (i64::MAX, "8192 PB"),
        ] {
            assert_eq!(pretty_size(bytes), shown, "{bytes}");
        }
    }
}
