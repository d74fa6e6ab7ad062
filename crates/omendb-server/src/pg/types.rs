//! Arrow types as PostgreSQL types: the type (OID) a result column is
//! sent as, its byte size in a RowDescription, and the Arrow type a
//! parameter the client declared takes.

use omendb_sql::VECTOR_ITEM;
use omendb_sql::datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use pgwire::api::Type;

/// The PostgreSQL type a column of `ty` is sent as.
pub(super) fn pg_type(ty: &DataType) -> Type {
    match ty {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 => Type::INT8,
        // Catalog OIDs.
        DataType::UInt32 => Type::OID,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        DataType::FixedSizeBinary(16) => Type::UUID,
        DataType::List(item) => array_type(&pg_type(item.data_type()), item.name() == VECTOR_ITEM),
        _ => Type::TEXT,
    }
}

/// The array type of `element` (`int2vector`/`oidvector` for a catalog
/// `vector`); `text` when there is none here (the value goes as text).
fn array_type(element: &Type, vector: bool) -> Type {
    match (element.clone(), vector) {
        (Type::INT2, true) => Type::INT2_VECTOR,
        (Type::OID, true) => Type::OID_VECTOR,
        (Type::BOOL, _) => Type::BOOL_ARRAY,
        (Type::INT2, _) => Type::INT2_ARRAY,
        (Type::INT4, _) => Type::INT4_ARRAY,
        (Type::INT8, _) => Type::INT8_ARRAY,
        (Type::OID, _) => Type::OID_ARRAY,
        (Type::FLOAT4, _) => Type::FLOAT4_ARRAY,
        (Type::FLOAT8, _) => Type::FLOAT8_ARRAY,
        (Type::NUMERIC, _) => Type::NUMERIC_ARRAY,
        (Type::TEXT, _) => Type::TEXT_ARRAY,
        (Type::BYTEA, _) => Type::BYTEA_ARRAY,
        (Type::DATE, _) => Type::DATE_ARRAY,
        (Type::TIMESTAMP, _) => Type::TIMESTAMP_ARRAY,
        (Type::TIMESTAMPTZ, _) => Type::TIMESTAMPTZ_ARRAY,
        (Type::INTERVAL, _) => Type::INTERVAL_ARRAY,
        (Type::UUID, _) => Type::UUID_ARRAY,
        _ => Type::TEXT,
    }
}

/// The byte size PostgreSQL gives a type in a RowDescription (-1:
/// variable width).
pub(super) fn type_size(ty: &Type) -> i16 {
    match *ty {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::OID | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => 8,
        Type::INTERVAL | Type::UUID => 16,
        _ => -1,
    }
}

/// The Arrow type a value of the PostgreSQL type `ty` becomes; `None` for
/// a type the server does not convert (its values are taken as text).
pub(super) fn arrow_type(ty: &Type) -> Option<DataType> {
    Some(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => DataType::Decimal128(38, 10),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => DataType::Utf8,
        Type::JSON | Type::JSONB => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        Type::UUID => DataType::FixedSizeBinary(16),
        _ => return None,
    })
}

/// A type's name as PostgreSQL's messages spell it (`integer`, not `int4`).
pub(super) fn type_name(ty: &Type) -> &str {
    match *ty {
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::BOOL => "boolean",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::TIME => "time without time zone",
        _ => ty.name(),
    }
}
