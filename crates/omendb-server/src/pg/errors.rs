//! SQL errors as PostgreSQL ErrorResponses: severity, the SQLSTATE of the
//! error's class, and its message.

use omendb_sql::SqlError;
use pgwire::error::ErrorInfo;
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
