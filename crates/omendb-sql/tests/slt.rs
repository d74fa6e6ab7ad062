//! Runs every sqllogictest file under `tests/slt/` against the SQL engine,
//! each file on a fresh database. Errors read `<SQLSTATE>: <message>`, so
//! `statement error 42P01` checks the class. Every expected result was
//! checked against PostgreSQL 15 (`tests/slt/check-with-postgres.py`).

#![allow(clippy::print_stdout)] // A test harness reports on stdout.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::TryStreamExt;
use omendb_sql::{QueryHandler, SqlEngine, SqlError, SqlSession, StatementResult, pg_text};
use omendb_storage::{Database, Options};
use sqllogictest::{DBOutput, DefaultColumnType};

struct Session {
    engine: SqlEngine,
    session: SqlSession,
}

/// An error as the `.slt` files match it.
#[derive(Debug)]
struct SltError(SqlError);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.sqlstate(), self.0.message)
    }
}

impl std::error::Error for SltError {}

#[async_trait]
impl sqllogictest::AsyncDB for Session {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let mut output = DBOutput::StatementComplete(0);
        for result in self.engine.execute(&mut self.session, sql, &[]).await {
            output = match result.map_err(SltError)? {
                StatementResult::Command { tag } => {
                    let count = tag.rsplit(' ').next().and_then(|n| n.parse().ok());
                    DBOutput::StatementComplete(count.unwrap_or(0))
                }
                StatementResult::Rows { schema, stream, .. } => {
                    let batches: Vec<_> = stream
                        .try_collect()
                        .await
                        .map_err(|e| SltError(SqlError::from(e)))?;
                    let mut rows = Vec::new();
                    for batch in &batches {
                        for row in 0..batch.num_rows() {
                            rows.push(
                                batch
                                    .columns()
                                    .iter()
                                    .map(|c| match pg_text(c.as_ref(), row) {
                                        None => "NULL".to_string(),
                                        Some(text) if text.is_empty() => "(empty)".to_string(),
                                        Some(text) => text,
                                    })
                                    .collect(),
                            );
                        }
                    }
                    let types = vec![DefaultColumnType::Any; schema.fields().len()];
                    DBOutput::Rows { types, rows }
                }
                // COPY is tested through the server, with real clients.
                StatementResult::CopyIn { .. } | StatementResult::CopyOut { .. } => {
                    return Err(SltError(SqlError::unsupported("COPY in sqllogictest")));
                }
            };
        }
        Ok(output)
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "omendb"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "slt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let files = slt_files();
    let mut failures = Vec::new();
    for file in &files {
        let dir = std::env::temp_dir().join(format!(
            "omendb-slt-{}-{}",
            std::process::id(),
            file.file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let db = match Database::open(&dir, Options::default()) {
            Ok(db) => db,
            Err(e) => {
                failures.push(format!("{}: cannot open a database: {e}", file.display()));
                continue;
            }
        };
        let engine = SqlEngine::new(db);
        let mut runner = sqllogictest::Runner::new(|| {
            let engine = engine.clone();
            async move {
                let session = engine.new_session();
                Ok::<_, SltError>(Session { engine, session })
            }
        });
        // `onlyif omendb` marks OmenDB functions PostgreSQL lacks.
        runner.add_label("omendb");
        match runner.run_file_async(file).await {
            Ok(()) => println!("ok   {}", file.display()),
            Err(e) => failures.push(format!("{}:\n{e}", file.display())),
        }
        drop(runner);
        drop(engine);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("FAILED {failure}\n");
        }
        eprintln!(
            "{} of {} sqllogictest files failed",
            failures.len(),
            files.len()
        );
        std::process::exit(1);
    }
    println!("{} sqllogictest files passed", files.len());
}
