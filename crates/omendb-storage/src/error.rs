//! The storage engine's error type.
//!
//! Every error carries context (table, key, file, offset) and has a
//! [`ErrorKind`], the class the SQL layer turns into a SQLSTATE. This module
//! never decides SQLSTATEs itself.

use std::path::PathBuf;

/// The class of a [`StorageError`], for callers that react to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A primary key or unique constraint would be violated.
    UniqueViolation,
    /// A NOT NULL column got no value.
    NotNullViolation,
    /// A concurrent transaction committed a conflicting write first.
    SerializationFailure,
    /// Waiting for a row lock would have waited forever.
    Deadlock,
    /// No such table.
    UndefinedTable,
    /// A table of that name exists already.
    DuplicateTable,
    /// No such schema.
    UndefinedSchema,
    /// A schema of that name exists already.
    DuplicateSchema,
    /// A schema still holds tables.
    SchemaNotEmpty,
    /// No such column.
    UndefinedColumn,
    /// A column of that name exists already.
    DuplicateColumn,
    /// A value does not fit its column, or a request is malformed.
    InvalidInput,
    /// A string is longer than its column's type allows.
    StringTooLong,
    /// A feature or type combination the engine does not support.
    Unsupported,
    /// The disk is full.
    DiskFull,
    /// A memory budget was exceeded.
    OutOfMemory,
    /// Stored data failed a checksum or a structural check.
    Corruption,
    /// The operating system reported an I/O error.
    Io,
    /// The database stopped accepting writes after an unrecoverable failure.
    ReadOnly,
    /// A bug in the engine.
    Internal,
}

/// An error of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "duplicate key value violates unique constraint \"{constraint}\": {key} already exists"
    )]
    UniqueViolation { constraint: String, key: String },
    #[error("null value in column \"{column}\" of table \"{table}\" violates not-null constraint")]
    NotNullViolation { table: String, column: String },
    #[error("could not serialize access due to concurrent update of table \"{table}\"")]
    SerializationFailure { table: String },
    /// A row of `table` the statement writes is locked by a transaction in
    /// progress, or was changed by a commit the statement's snapshot did
    /// not see: see [`crate::Transaction::take_restart`].
    #[error("could not write a row of table \"{table}\" changed by a concurrent transaction")]
    RowLocked { table: String },
    #[error("deadlock detected while waiting for a row of table \"{table}\"")]
    Deadlock { table: String },
    #[error("table \"{table}\" does not exist")]
    UndefinedTable { table: String },
    #[error("table \"{table}\" already exists")]
    DuplicateTable { table: String },
    #[error("schema \"{schema}\" does not exist")]
    UndefinedSchema { schema: String },
    #[error("schema \"{schema}\" already exists")]
    DuplicateSchema { schema: String },
    #[error("cannot drop schema {schema} because tables depend on it")]
    SchemaNotEmpty { schema: String },
    #[error("column \"{column}\" of table \"{table}\" does not exist")]
    UndefinedColumn { table: String, column: String },
    #[error("column \"{column}\" of table \"{table}\" already exists")]
    DuplicateColumn { table: String, column: String },
    #[error("{message}")]
    InvalidInput { message: String },
    #[error("value too long for type {ty}")]
    StringTooLong { ty: String },
    #[error("{message}")]
    Unsupported { message: String },
    #[error("disk full while writing {path}")]
    DiskFull {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("out of memory: {message}")]
    OutOfMemory { message: String },
    #[error("corrupt {what} in {path} at offset {offset}: {detail}")]
    Corruption {
        what: &'static str,
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database is read-only after an earlier failure: {reason}")]
    ReadOnly { reason: String },
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl StorageError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::UniqueViolation { .. } => ErrorKind::UniqueViolation,
            StorageError::NotNullViolation { .. } => ErrorKind::NotNullViolation,
            StorageError::SerializationFailure { .. } => ErrorKind::SerializationFailure,
            StorageError::RowLocked { .. } => ErrorKind::SerializationFailure,
            StorageError::Deadlock { .. } => ErrorKind::Deadlock,
            StorageError::UndefinedTable { .. } => ErrorKind::UndefinedTable,
            StorageError::DuplicateTable { .. } => ErrorKind::DuplicateTable,
            StorageError::UndefinedSchema { .. } => ErrorKind::UndefinedSchema,
            StorageError::DuplicateSchema { .. } => ErrorKind::DuplicateSchema,
            StorageError::SchemaNotEmpty { .. } => ErrorKind::SchemaNotEmpty,
            StorageError::UndefinedColumn { .. } => ErrorKind::UndefinedColumn,
            StorageError::DuplicateColumn { .. } => ErrorKind::DuplicateColumn,
            StorageError::InvalidInput { .. } => ErrorKind::InvalidInput,
            StorageError::StringTooLong { .. } => ErrorKind::StringTooLong,
            StorageError::Unsupported { .. } => ErrorKind::Unsupported,
            StorageError::DiskFull { .. } => ErrorKind::DiskFull,
            StorageError::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            StorageError::Corruption { .. } => ErrorKind::Corruption,
            StorageError::Io { .. } => ErrorKind::Io,
            StorageError::ReadOnly { .. } => ErrorKind::ReadOnly,
            StorageError::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// An I/O error on `path`, classed as [`ErrorKind::DiskFull`] when the
    /// operating system says the disk is full.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StorageError {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            StorageError::DiskFull { path, source }
        } else {
            StorageError::Io { path, source }
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> StorageError {
        StorageError::InvalidInput {
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> StorageError {
        StorageError::Internal {
            message: message.into(),
        }
    }

    pub(crate) fn corruption(
        what: &'static str,
        path: impl Into<PathBuf>,
        offset: u64,
        detail: impl Into<String>,
    ) -> StorageError {
        StorageError::Corruption {
            what,
            path: path.into(),
            offset,
            detail: detail.into(),
        }
    }
}

/// Results of the storage engine.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_disk_full_and_other_io_errors_are_io() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(StorageError::io("/x", full).kind(), ErrorKind::DiskFull);
        let eio = std::io::Error::other("EIO");
        let err = StorageError::io("/data/wal", eio);
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.to_string().contains("/data/wal"), "{err}");
    }
}
