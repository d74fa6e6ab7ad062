//! The HTTP API (axum). `POST /v1/sql` runs SQL in a session of its own
//! and answers the last statement's result as JSON (or, asked for with
//! `Accept: application/vnd.apache.arrow.stream`, its rows as Arrow IPC);
//! errors come back as `{"error": {"code", "message"}}` with a status that
//! fits the SQLSTATE's class. `GET /health` says the process is up,
//! `GET /ready` that the database is open and taking queries.

mod json;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::TryStreamExt;
use omendb_sql::datafusion::arrow::ipc::writer::StreamWriter;
use omendb_sql::{QueryHandler, SqlError, StatementResult};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;

use json::{column_types, params_for, rows_json};

/// The media type of Arrow's IPC stream format.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// A `POST /v1/sql` body.
#[derive(Debug, Deserialize)]
struct SqlRequest {
    sql: String,
    #[serde(default)]
    params: Vec<Json>,
}

/// Serves the HTTP API on `listener` with `engine` until `shutdown`.
pub async fn serve<H>(
    listener: TcpListener,
    engine: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    H: QueryHandler + 'static,
{
    let app = Router::new()
        .route("/v1/sql", post(run_sql::<H>))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(|| async { "ready\n" }))
        .with_state(engine);
    // Serving ends only with the shutdown or a listener failure, which
    // leaves nothing to answer.
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
}

/// An error response: the SQLSTATE and message, with a fitting status.
fn error_response(error: &SqlError) -> Response {
    let code = error.sqlstate();
    let status = match &code[..2] {
        // Bad input: syntax, names, data, unsupported features.
        "42" | "22" | "0A" | "21" | "2B" | "3F" => StatusCode::BAD_REQUEST,
        // Conflicts with other data or transactions.
        "23" | "40" | "25" | "55" => StatusCode::CONFLICT,
        "57" => StatusCode::REQUEST_TIMEOUT,
        "53" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = json!({"error": {"code": code, "message": error.message}});
    (status, axum::Json(body)).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    let error = SqlError::new(omendb_sql::ErrorClass::SyntaxError, message);
    error_response(&error)
}

async fn run_sql<H: QueryHandler + 'static>(
    State(engine): State<Arc<H>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return bad_request(format!(
                "the body is not {{\"sql\": ..., \"params\": [...]}}: {e}"
            ));
        }
    };
    let mut session = engine.new_session();
    let params = if request.params.is_empty() {
        Vec::new()
    } else {
        let description = match engine.describe(&mut session, &request.sql).await {
            Ok(description) => description,
            Err(error) => return error_response(&error),
        };
        match params_for(&request.params, &description.params) {
            Ok(params) => params,
            Err(error) => return error_response(&error),
        }
    };
    let mut results = engine.execute(&mut session, &request.sql, &params).await;
    // Each statement before the last ran to its end (or failed: then it
    // is the last).
    let Some(last) = results.pop() else {
        return axum::Json(json!({"columns": [], "rows": [], "command": ""})).into_response();
    };
    let arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    match last {
        Err(error) => error_response(&error),
        Ok(StatementResult::Command { tag }) => {
            axum::Json(json!({"columns": [], "rows": [], "command": tag})).into_response()
        }
        Ok(StatementResult::Rows {
            schema,
            stream,
            tag,
        }) => {
            let batches: Vec<_> = match stream.try_collect().await {
                Ok(batches) => batches,
                Err(error) => return error_response(&SqlError::from(error)),
            };
            if arrow {
                return arrow_response(&schema, &batches);
            }
            let rows = rows_json(&batches);
            let command = tag.unwrap_or_else(|| format!("SELECT {}", rows.len()));
            let body = json!({"columns": column_types(&schema), "rows": rows, "command": command});
            axum::Json(body).into_response()
        }
        Ok(StatementResult::CopyIn { .. } | StatementResult::CopyOut { .. }) => {
            bad_request("COPY is served over the PostgreSQL protocol, not HTTP")
        }
    }
}

/// Rows as an Arrow IPC stream.
fn arrow_response(
    schema: &omendb_sql::datafusion::arrow::datatypes::SchemaRef,
    batches: &[omendb_sql::datafusion::arrow::record_batch::RecordBatch],
) -> Response {
    let mut bytes = Vec::new();
    let written = StreamWriter::try_new(&mut bytes, schema).and_then(|mut writer| {
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()
    });
    if let Err(e) = written {
        return error_response(&SqlError::internal(format!("encoding Arrow IPC: {e}")));
    }
    ([(header::CONTENT_TYPE, ARROW_STREAM)], Body::from(bytes)).into_response()
}
