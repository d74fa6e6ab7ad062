//! A database in a temporary directory with one SQL session, for the
//! integration tests.

#![allow(clippy::unwrap_used, dead_code)] // Tests fail loudly; not every test uses every helper.

use datafusion::common::ScalarValue;
use futures::TryStreamExt;
use omendb_sql::{QueryHandler, SqlEngine, SqlSession, StatementResult, pg_text};
use omendb_storage::{Database, Options};

pub(crate) struct Fixture {
    pub(crate) engine: SqlEngine,
    pub(crate) session: SqlSession,
    dir: std::path::PathBuf,
}

impl Fixture {
    pub(crate) fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("omendb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = SqlEngine::new(Database::open(&dir, Options::default()).unwrap());
        let session = engine.new_session();
        Fixture {
            engine,
            session,
            dir,
        }
    }

    /// The rows of the last statement of `sql`, as text.
    pub(crate) async fn rows(&mut self, sql: &str) -> Vec<Vec<String>> {
        self.rows_with(sql, &[]).await
    }

    /// The rows of the last statement of `sql` run with `params`, as text.
    pub(crate) async fn rows_with(
        &mut self,
        sql: &str,
        params: &[ScalarValue],
    ) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for result in self.engine.execute(&mut self.session, sql, params).await {
            rows.clear();
            if let StatementResult::Rows { stream, .. } = result.unwrap() {
                let batches: Vec<_> = stream.try_collect().await.unwrap();
                for batch in batches {
                    for row in 0..batch.num_rows() {
                        rows.push(
                            batch
                                .columns()
                                .iter()
                                .map(|c| pg_text(c.as_ref(), row).unwrap_or("NULL".into()))
                                .collect(),
                        );
                    }
                }
            }
        }
        rows
    }

    /// The column names of the result of `sql`.
    pub(crate) async fn names(&mut self, sql: &str) -> Vec<String> {
        let mut results = self.engine.execute(&mut self.session, sql, &[]).await;
        match results.pop().unwrap().unwrap() {
            StatementResult::Rows { schema, .. } => {
                schema.fields().iter().map(|f| f.name().clone()).collect()
            }
            other => panic!("{sql} gave no rows: {other:?}"),
        }
    }

    /// The EXPLAIN output of `sql`, one line per plan.
    pub(crate) async fn plan(&mut self, sql: &str) -> String {
        let rows = self.rows(&format!("EXPLAIN {sql}")).await;
        rows.iter()
            .map(|r| r.join(" | "))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
