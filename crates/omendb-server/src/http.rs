//! The HTTP API (axum). `POST /v1/sql` runs SQL in a session of its own
//! and answers the last statement's result as JSON (or, asked for with
//! `Accept: application/vnd.apache.arrow.stream`, its rows as Arrow IPC);
//! errors come back as `{"error": {"code", "message"}}` with a status that
//! fits the SQLSTATE's class. `GET /health` says the process is up,
//! `GET /ready` that the database is open and taking queries, `GET
//! /metrics` gives every metric in Prometheus's text format.

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
use std::time::Instant;
use tokio::net::TcpListener;

use crate::metrics::{Metrics, Protocol};

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

/// What the handlers share.
struct Api<H> {
    engine: Arc<H>,
    metrics: Arc<Metrics>,
}

/// Serves the HTTP API on `listener` with `engine`, counting in (and
/// exporting) `metrics`, until `shutdown`.
pub async fn serve<H>(
    listener: TcpListener,
    engine: Arc<H>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    H: QueryHandler + 'static,
{
    let app = Router::new()
        .route("/v1/sql", post(run_sql::<H>))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics_text::<H>))
        .with_state(Arc::new(Api { engine, metrics }));
    // Serving ends only with the shutdown or a listener failure, which
    // leaves nothing to answer.
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
}

/// `GET /metrics`: Prometheus's text format.
async fn metrics_text<H: QueryHandler + 'static>(State(api): State<Arc<Api<H>>>) -> Response {
    let text = api.metrics.render(&api.engine.storage_stats());
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
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

fn bad_request(message: impl Into<String>) -> SqlError {
    SqlError::new(omendb_sql::ErrorClass::SyntaxError, message)
}

async fn run_sql<H: QueryHandler + 'static>(
    State(api): State<Arc<Api<H>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let started = Instant::now();
    match sql_response(api.engine.as_ref(), &headers, &body).await {
        Ok((response, tag, sql)) => {
            api.metrics
                .statement(Protocol::Http, &sql, &tag, started.elapsed());
            response
        }
        Err(error) => {
            api.metrics.error(error.sqlstate());
            error_response(&error)
        }
    }
}

/// The answer to a `POST /v1/sql`, the command tag of what ran, and its
/// SQL.
async fn sql_response<H: QueryHandler>(
    engine: &H,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Response, String, String), SqlError> {
    let request: SqlRequest = serde_json::from_slice(body).map_err(|e| {
        bad_request(format!(
            "the body is not {{\"sql\": ..., \"params\": [...]}}: {e}"
        ))
    })?;
    let mut session = engine.new_session();
    let params = if request.params.is_empty() {
        Vec::new()
    } else {
        let description = engine.describe(&mut session, &request.sql).await?;
        params_for(&request.params, &description.params)?
    };
    let mut results = engine.execute(&mut session, &request.sql, &params).await;
    // Each statement before the last ran to its end (or failed: then it
    // is the last).
    let Some(last) = results.pop() else {
        let body = json!({"columns": [], "rows": [], "command": ""});
        return Ok((axum::Json(body).into_response(), String::new(), request.sql));
    };
    let arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    match last? {
        StatementResult::Command { tag } => {
            let body = json!({"columns": [], "rows": [], "command": tag});
            Ok((axum::Json(body).into_response(), tag, request.sql))
        }
        StatementResult::Rows {
            schema,
            stream,
            tag,
        } => {
            let batches: Vec<_> = stream.try_collect().await.map_err(SqlError::from)?;
            let rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
            let tag = tag.unwrap_or_else(|| format!("SELECT {rows}"));
            if arrow {
                return Ok((arrow_response(&schema, &batches)?, tag, request.sql));
            }
            let body = json!({
                "columns": column_types(&schema),
                "rows": rows_json(&batches),
                "command": tag,
            });
            Ok((axum::Json(body).into_response(), tag, request.sql))
        }
        StatementResult::CopyIn { .. } | StatementResult::CopyOut { .. } => Err(bad_request(
            "COPY is served over the PostgreSQL protocol, not HTTP",
        )),
    }
}

/// Rows as an Arrow IPC stream.
fn arrow_response(
    schema: &omendb_sql::datafusion::arrow::datatypes::SchemaRef,
    batches: &[omendb_sql::datafusion::arrow::record_batch::RecordBatch],
) -> Result<Response, SqlError> {
    let mut bytes = Vec::new();
    StreamWriter::try_new(&mut bytes, schema)
        .and_then(|mut writer| {
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()
        })
        .map_err(|e| SqlError::internal(format!("encoding Arrow IPC: {e}")))?;
    Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], Body::from(bytes)).into_response())
}
