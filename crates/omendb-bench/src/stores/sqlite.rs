//! SQLite through `rusqlite` (bundled SQLite), with the same durability
//! as OmenDB: `journal_mode = WAL`, `synchronous = FULL`. The table is
//! `WITHOUT ROWID`, so, like OmenDB's, it is stored in primary-key order
//! and a lookup by key is one B-tree descent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{BenchResult, Reading, Session, Store, TABLE};

#[derive(Debug)]
pub struct Sqlite {
    /// Page cache of each connection.
    cache_bytes: usize,
    path: PathBuf,
}

const INSERT: &str = "INSERT INTO readings (device_id, ts, cpu, mem) VALUES (?1, ?2, ?3, ?4)";
const UPSERT: &str = "INSERT INTO readings (device_id, ts, cpu, mem) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (device_id, ts) DO UPDATE SET cpu = excluded.cpu, mem = excluded.mem";
const GET: &str = "SELECT cpu FROM readings WHERE device_id = ?1 AND ts = ?2";
const SCAN: &str =
    "SELECT ts, cpu, mem FROM readings WHERE device_id = ?1 AND ts >= ?2 AND ts < ?3";

impl Sqlite {
    /// Creates the database file and its table in `dir`.
    pub fn create(dir: &Path, cache_bytes: usize) -> BenchResult<Sqlite> {
        let sqlite = Sqlite {
            path: dir.join("bench.sqlite"),
            cache_bytes,
        };
        sqlite.connect()?.execute_batch(&format!(
            "CREATE TABLE {TABLE} (device_id INTEGER NOT NULL, ts INTEGER NOT NULL, \
             cpu REAL, mem REAL, PRIMARY KEY (device_id, ts)) WITHOUT ROWID"
        ))?;
        Ok(sqlite)
    }

    /// A new connection with the benchmark's settings.
    pub fn connect(&self) -> BenchResult<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -{};",
            self.cache_bytes / 1024
        ))?;
        Ok(conn)
    }
}

impl Store for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn session(&self) -> BenchResult<Box<dyn Session>> {
        Ok(Box::new(SqliteSession {
            conn: self.connect()?,
        }))
    }

    fn settle(&self) -> BenchResult<()> {
        self.connect()?
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(())
    }

    fn describe(&self) -> String {
        let bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        format!("{} MiB file", bytes >> 20)
    }
}

struct SqliteSession {
    conn: Connection,
}

impl SqliteSession {
    /// Runs one autocommit statement, again if SQLite reports the database
    /// busy after its busy timeout.
    fn execute(&self, sql: &str, r: &Reading) -> BenchResult<()> {
        let mut statement = self.conn.prepare_cached(sql)?;
        loop {
            match statement.execute(params![r.device, r.ts, r.cpu, r.mem]) {
                Ok(_) => return Ok(()),
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Session for SqliteSession {
    fn insert_batch(&mut self, rows: &[Reading]) -> BenchResult<()> {
        let txn = self.conn.transaction()?;
        {
            let mut statement = txn.prepare_cached(INSERT)?;
            for r in rows {
                statement.execute(params![r.device, r.ts, r.cpu, r.mem])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn insert(&mut self, r: &Reading) -> BenchResult<()> {
        self.execute(INSERT, r)
    }

    fn upsert(&mut self, r: &Reading) -> BenchResult<()> {
        self.execute(UPSERT, r)
    }

    fn get(&mut self, device: i32, ts: i64) -> BenchResult<Option<f64>> {
        let mut statement = self.conn.prepare_cached(GET)?;
        Ok(statement
            .query_row(params![device, ts], |row| row.get::<_, Option<f64>>(0))
            .optional()?
            .map(|cpu| cpu.unwrap_or(0.0)))
    }

    fn scan(&mut self, device: i32, from: i64, to: i64) -> BenchResult<(u64, f64)> {
        let mut statement = self.conn.prepare_cached(SCAN)?;
        let mut rows = statement.query(params![device, from, to])?;
        let (mut count, mut sum) = (0, 0.0);
        while let Some(row) = rows.next()? {
            let _ts: i64 = row.get(0)?;
            let cpu: Option<f64> = row.get(1)?;
            let mem: Option<f64> = row.get(2)?;
            if let (Some(cpu), Some(mem)) = (cpu, mem) {
                sum += cpu + mem;
            }
            count += 1;
        }
        Ok((count, sum))
    }
}
