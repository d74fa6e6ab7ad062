//! `omendb serve`'s settings: flags, a TOML file (`--config`) with the same
//! settings by the same names (`data_dir`, `pg_listen`, ...), and the
//! defaults. A flag wins over the file, the file over the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How log lines are written (to standard error).
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting, each optional: as given by flags or by the file.
#[derive(clap::Args, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Directory holding the database; created if missing [default:
    /// ./omendb-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address for PostgreSQL clients (psql, drivers). Port 0 takes any
    /// free port; the address taken is printed. Loopback only: clients are
    /// trusted until authentication is configurable [default:
    /// 127.0.0.1:5433].
    #[arg(long)]
    pub pg_listen: Option<SocketAddr>,
    /// Address of the HTTP API (`POST /v1/sql`, `GET /health`, `/ready`,
    /// `/metrics`). Port 0 takes any free port. Loopback only, as for
    /// `--pg-listen` [default: 127.0.0.1:8080].
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// Most PostgreSQL connections open at once; more are refused (53300,
    /// "too many clients") [default: 100].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Log lines as text or JSON, on standard error [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Statements running at least this many milliseconds are logged as
    /// slow, with their SQL; 0 logs none [default: 1000].
    #[arg(long)]
    pub slow_query_ms: Option<u64>,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub pg_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub max_connections: usize,
    pub log_format: LogFormat,
    /// `None`: no slow-query log.
    pub slow_query: Option<Duration>,
}

impl Settings {
    /// The settings of the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// These settings, then `file`'s where these have none, then the
    /// defaults.
    pub fn resolve(self, file: Settings) -> Config {
        let slow_query_ms = self.slow_query_ms.or(file.slow_query_ms).unwrap_or(1_000);
        Config {
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./omendb-data")),
            pg_listen: self
                .pg_listen
                .or(file.pg_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5433))),
            http_listen: self
                .http_listen
                .or(file.http_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(100),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            slow_query: (slow_query_ms > 0).then(|| Duration::from_millis(slow_query_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let file: Settings = toml::from_str(
            "data_dir = \"/var/lib/omendb\"\npg_listen = \"127.0.0.1:6000\"\n\
             log_format = \"json\"\nslow_query_ms = 0\n",
        )
        .unwrap();
        let flags = Settings {
            pg_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7000))),
            ..Settings::default()
        };
        let config = flags.resolve(file);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/omendb"));
        assert_eq!(config.pg_listen.port(), 7000);
        assert_eq!(config.http_listen.port(), 8080);
        assert_eq!(config.max_connections, 100);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.slow_query, None);
        let error = toml::from_str::<Settings>("pg_port = 1").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
