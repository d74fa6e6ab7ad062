//! The SQL layer's error type: a message and a class, the class being what
//! the server turns into a PostgreSQL SQLSTATE. Storage and DataFusion
//! errors are classified here, once.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use omendb_storage::{ErrorKind, StorageError};

/// A storage error as DataFusion carries it, classified.
pub(crate) fn external(error: StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::from(error)))
}

/// The class of an error, one per SQLSTATE the layer reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    SyntaxError,
    UndefinedTable,
    UndefinedColumn,
    UndefinedFunction,
    UndefinedObject,
    DuplicateTable,
    DuplicateColumn,
    InvalidSchemaName,
    DuplicateSchema,
    DependentObjectsStillExist,
    DatatypeMismatch,
    InvalidTextRepresentation,
    NumericValueOutOfRange,
    DivisionByZero,
    StringDataRightTruncation,
    /// COPY data that is not in the format (22P04).
    BadCopyFormat,
    /// Bytes that are not UTF-8 (22021).
    CharacterNotInRepertoire,
    DataException,
    UniqueViolation,
    NotNullViolation,
    SerializationFailure,
    DeadlockDetected,
    InFailedTransaction,
    ActiveTransaction,
    NoActiveTransaction,
    InvalidSavepoint,
    InvalidParameterValue,
    CantChangeParameter,
    CardinalityViolation,
    InvalidColumnReference,
    InvalidTableDefinition,
    /// The client or a timeout cancelled the statement (57014).
    QueryCanceled,
    FeatureNotSupported,
    DiskFull,
    OutOfMemory,
    Io,
    ReadOnly,
    DataCorrupted,
    Internal,
}

impl ErrorClass {
    /// The PostgreSQL SQLSTATE of the class.
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorClass::SyntaxError => "42601",
            ErrorClass::UndefinedTable => "42P01",
            ErrorClass::UndefinedColumn => "42703",
            ErrorClass::UndefinedFunction => "42883",
            ErrorClass::UndefinedObject => "42704",
            ErrorClass::DuplicateTable => "42P07",
            ErrorClass::DuplicateColumn => "42701",
            ErrorClass::InvalidSchemaName => "3F000",
            ErrorClass::DuplicateSchema => "42P06",
            ErrorClass::DependentObjectsStillExist => "2BP01",
            ErrorClass::DatatypeMismatch => "42804",
            ErrorClass::InvalidTextRepresentation => "22P02",
            ErrorClass::NumericValueOutOfRange => "22003",
            ErrorClass::DivisionByZero => "22012",
            ErrorClass::StringDataRightTruncation => "22001",
            ErrorClass::BadCopyFormat => "22P04",
            ErrorClass::CharacterNotInRepertoire => "22021",
            ErrorClass::DataException => "22000",
            ErrorClass::UniqueViolation => "23505",
            ErrorClass::NotNullViolation => "23502",
            ErrorClass::SerializationFailure => "40001",
            ErrorClass::DeadlockDetected => "40P01",
            ErrorClass::InFailedTransaction => "25P02",
            ErrorClass::ActiveTransaction => "25001",
            ErrorClass::NoActiveTransaction => "25P01",
            ErrorClass::InvalidSavepoint => "3B001",
            ErrorClass::InvalidParameterValue => "22023",
            ErrorClass::CantChangeParameter => "55P02",
            ErrorClass::CardinalityViolation => "21000",
            ErrorClass::InvalidColumnReference => "42P10",
            ErrorClass::InvalidTableDefinition => "42P16",
            ErrorClass::QueryCanceled => "57014",
            ErrorClass::FeatureNotSupported => "0A000",
            ErrorClass::DiskFull => "53100",
            ErrorClass::OutOfMemory => "53200",
            ErrorClass::Io => "58030",
            ErrorClass::ReadOnly => "25006",
            ErrorClass::DataCorrupted => "XX001",
            ErrorClass::Internal => "XX000",
        }
    }
}

/// An error of the SQL layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub class: ErrorClass,
    pub message: String,
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;

impl SqlError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> SqlError {
        SqlError {
            class,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> SqlError {
        SqlError::new(ErrorClass::FeatureNotSupported, message)
    }

    pub fn internal(message: impl Into<String>) -> SqlError {
        SqlError::new(ErrorClass::Internal, message)
    }

    /// The SQLSTATE of the error's class.
    pub fn sqlstate(&self) -> &'static str {
        self.class.sqlstate()
    }
}

impl From<StorageError> for SqlError {
    fn from(error: StorageError) -> SqlError {
        let class = match error.kind() {
            ErrorKind::UniqueViolation => ErrorClass::UniqueViolation,
            ErrorKind::NotNullViolation => ErrorClass::NotNullViolation,
            ErrorKind::SerializationFailure => ErrorClass::SerializationFailure,
            ErrorKind::Deadlock => ErrorClass::DeadlockDetected,
            ErrorKind::UndefinedTable => ErrorClass::UndefinedTable,
            ErrorKind::DuplicateTable => ErrorClass::DuplicateTable,
            ErrorKind::UndefinedColumn => ErrorClass::UndefinedColumn,
            ErrorKind::DuplicateColumn => ErrorClass::DuplicateColumn,
            ErrorKind::UndefinedSchema => ErrorClass::InvalidSchemaName,
            ErrorKind::DuplicateSchema => ErrorClass::DuplicateSchema,
            ErrorKind::SchemaNotEmpty => ErrorClass::DependentObjectsStillExist,
            ErrorKind::InvalidInput => ErrorClass::DataException,
            ErrorKind::StringTooLong => ErrorClass::StringDataRightTruncation,
            ErrorKind::Unsupported => ErrorClass::FeatureNotSupported,
            ErrorKind::DiskFull => ErrorClass::DiskFull,
            ErrorKind::OutOfMemory => ErrorClass::OutOfMemory,
            ErrorKind::Corruption => ErrorClass::DataCorrupted,
            ErrorKind::Io => ErrorClass::Io,
            ErrorKind::ReadOnly => ErrorClass::ReadOnly,
            ErrorKind::Internal => ErrorClass::Internal,
        };
        SqlError::new(class, error.to_string())
    }
}

impl From<DataFusionError> for SqlError {
    fn from(error: DataFusionError) -> SqlError {
        classify(&error)
    }
}

/// Finds the class of a DataFusion error, looking through the wrappers
/// DataFusion puts around errors from storage, Arrow and its planner.
fn classify(error: &DataFusionError) -> SqlError {
    use DataFusionError as E;
    match error {
        E::Context(_, inner) | E::Diagnostic(_, inner) => classify(inner),
        E::Shared(inner) => classify(inner),
        E::Collection(errors) if !errors.is_empty() => classify(&errors[0]),
        // The table provider wraps storage errors as `SqlError`s.
        E::External(inner) => {
            if let Some(sql) = inner.downcast_ref::<SqlError>() {
                sql.clone()
            } else if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                classify(df)
            } else if let Some(arrow) = inner.downcast_ref::<ArrowError>() {
                classify_arrow(arrow)
            } else {
                SqlError::internal(inner.to_string())
            }
        }
        E::ArrowError(arrow, _) => classify_arrow(arrow),
        E::SQL(parse, _) => SqlError::new(ErrorClass::SyntaxError, parse.to_string()),
        E::NotImplemented(message) => SqlError::unsupported(message.clone()),
        E::SchemaError(schema, _) => {
            use datafusion::common::SchemaError as S;
            let class = match schema.as_ref() {
                S::FieldNotFound { .. } => ErrorClass::UndefinedColumn,
                S::AmbiguousReference { .. } => ErrorClass::UndefinedColumn,
                S::DuplicateQualifiedField { .. } | S::DuplicateUnqualifiedField { .. } => {
                    ErrorClass::DuplicateColumn
                }
            };
            SqlError::new(class, error.message().into_owned())
        }
        E::Plan(message) => match plan_class(message) {
            ErrorClass::UndefinedTable => {
                SqlError::new(ErrorClass::UndefinedTable, missing_relation(message))
            }
            class => SqlError::new(class, message.clone()),
        },
        E::ResourcesExhausted(message) => SqlError::new(ErrorClass::OutOfMemory, message.clone()),
        E::Execution(message) => SqlError::new(execution_class(message), message.clone()),
        other => SqlError::internal(other.message().into_owned()),
    }
}

/// PostgreSQL's message for DataFusion's "table 'omendb.s.t' not found":
/// the relation as written (without the catalog and internal schemas).
fn missing_relation(message: &str) -> String {
    let quoted = message
        .split_once("table '")
        .and_then(|(_, rest)| rest.split_once("' not found"))
        .map(|(name, _)| name);
    let Some(name) = quoted else {
        return message.to_string();
    };
    let name = name.strip_prefix("omendb.").unwrap_or(name);
    let name = name
        .strip_prefix(crate::schemas::SEARCH_PATH_SCHEMA)
        .and_then(|n| n.strip_prefix('.'))
        .unwrap_or(name);
    format!("relation \"{name}\" does not exist")
}

/// Planner errors carry their kind only in the text.
fn plan_class(message: &str) -> ErrorClass {
    if message.contains("table") && message.contains("not found") {
        ErrorClass::UndefinedTable
    } else if message.contains("Invalid function")
        || message.contains("No function matches")
        || message.contains("not found in registry")
    {
        ErrorClass::UndefinedFunction
    } else if message.contains("Cannot coerce") || message.contains("Cannot infer") {
        ErrorClass::DatatypeMismatch
    } else {
        ErrorClass::SyntaxError
    }
}

fn execution_class(message: &str) -> ErrorClass {
    if message.contains("Divide by zero") || message.contains("division by zero") {
        ErrorClass::DivisionByZero
    } else if message.contains("overflow") {
        ErrorClass::NumericValueOutOfRange
    } else {
        ErrorClass::DataException
    }
}

fn classify_arrow(error: &ArrowError) -> SqlError {
    let class = match error {
        ArrowError::DivideByZero => ErrorClass::DivisionByZero,
        ArrowError::ArithmeticOverflow(_) => ErrorClass::NumericValueOutOfRange,
        ArrowError::CastError(message) | ArrowError::ParseError(message)
            if message.contains("overflow")
                || message.contains("too large")
                || message.contains("Can't cast value") =>
        {
            ErrorClass::NumericValueOutOfRange
        }
        ArrowError::CastError(_) | ArrowError::ParseError(_) => {
            ErrorClass::InvalidTextRepresentation
        }
        ArrowError::ComputeError(message) if message.contains("overflow") => {
            ErrorClass::NumericValueOutOfRange
        }
        _ => ErrorClass::DataException,
    };
    SqlError::new(class, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tables_are_named_as_written() {
        let message = |m: &str| missing_relation(m);
        assert_eq!(
            message("table 'omendb._omendb_search_path.t' not found"),
            "relation \"t\" does not exist"
        );
        assert_eq!(
            message("table 'omendb.s.t' not found"),
            "relation \"s.t\" does not exist"
        );
        assert_eq!(message("something else"), "something else");
    }
}
