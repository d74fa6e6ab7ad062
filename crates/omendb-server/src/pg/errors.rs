//! SQL errors as PostgreSQL ErrorResponses: severity, the SQLSTATE of the
//! error's class, and its message.

use omendb_sql::SqlError;
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::response::ErrorResponse;

/// The ErrorResponse that reports `error`.
pub(super) fn error_response(error: &SqlError) -> ErrorResponse {
    ErrorInfo::new(
        "ERROR".to_owned(),
        error.sqlstate().to_owned(),
        error.message.clone(),
    )
    .into()
}

/// `error` as the error a handler returns (pgwire sends it as an
/// ErrorResponse; in the extended protocol it then skips to Sync).
pub(super) fn user_error(error: &SqlError) -> PgWireError {
    wire_error(error.sqlstate(), error.message.clone())
}

/// An error with SQLSTATE `code` and `message`.
pub(super) fn wire_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}
