//! The `omendb` binary. `omendb serve` opens the database in a directory
//! and serves PostgreSQL and HTTP clients until SIGINT or SIGTERM; it logs
//! to standard error and tells the user where it listens on standard
//! output.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use clap::{Parser, Subcommand};
use omendb_server::config::{Config, LogFormat, Settings};
use omendb_server::metrics::Metrics;
use omendb_sql::SqlEngine;
use omendb_storage::{Database, Options, RecoveryProgress};
use std::time::Instant;
use tokio::net::TcpListener;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// How often a long recovery logs its progress.
const RECOVERY_REPORT: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(
    name = "omendb",
    version,
    about = "OmenDB: a PostgreSQL-compatible database for time series and AI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Opens (or creates) the database and serves clients until SIGINT or
    /// SIGTERM.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// A TOML file of the settings below, by their names with `_`
    /// (`data_dir = "..."`, `pg_listen = "127.0.0.1:5433"`); flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    let file = match &args.config {
        Some(path) => match Settings::from_file(path) {
            Ok(settings) => settings,
            Err(message) => {
                eprintln!("omendb: {message}");
                return ExitCode::FAILURE;
            }
        },
        None => Settings::default(),
    };
    let config = args.settings.resolve(file);
    start_logging(config.log_format);
    match serve(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("omendb: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to standard error, as `format` says; `RUST_LOG` filters
/// them (default: info).
fn start_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn serve(args: &Config) -> Result<(), String> {
    for address in [args.pg_listen, args.http_listen] {
        if !address.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {address}: clients are trusted without a password, so \
                 only loopback addresses are allowed"
            ));
        }
    }
    let started = Instant::now();
    info!(data_dir = %args.data_dir.display(), "opening the database (recovering from the WAL)");
    let progress = Arc::new(RecoveryProgress::default());
    let options = Options {
        recovery_progress: Some(progress.clone()),
        ..Options::default()
    };
    // A long recovery says how far it has come every few seconds, until
    // the database is open (the sender dropped).
    let (opened, open_yet) = mpsc::channel::<()>();
    let reporter = std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = open_yet.recv_timeout(RECOVERY_REPORT) {
            let (done, files, records) = progress.get();
            info!(
                wal_files_done = done,
                wal_files = files,
                records,
                "recovering"
            );
        }
    });
    let db = Database::open(&args.data_dir, options);
    drop(opened);
    let _ = reporter.join();
    let db = db.map_err(|e| format!("opening {}: {e}", args.data_dir.display()))?;
    info!(seconds = started.elapsed().as_secs_f64(), "database open");
    let engine = Arc::new(SqlEngine::new(db));
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting: {e}"))?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.pg_listen)
            .await
            .map_err(|e| format!("listening on {}: {e}", args.pg_listen))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("listening on {}: {e}", args.pg_listen))?;
        let http = TcpListener::bind(args.http_listen)
            .await
            .and_then(|l| Ok((l.local_addr()?, l)))
            .map_err(|e| format!("listening on {}: {e}", args.http_listen))?;
        let (http_address, http) = http;
        say(&format!(
            "OmenDB {} serving {} for PostgreSQL clients on {address}\n\
             connect with: psql -h {} -p {} -U omendb\n\
             HTTP API on http://{http_address} (POST /v1/sql, GET /health, /ready, /metrics)",
            env!("CARGO_PKG_VERSION"),
            args.data_dir.display(),
            address.ip(),
            address.port()
        ));
        // One signal stops both servers.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut http_stopped = stopped.clone();
        info!(pg = %address, http = %http_address, "serving");
        let metrics = Arc::new(Metrics::new(args.slow_query));
        let http_stop = async move {
            let _ = http_stopped.changed().await;
        };
        let http = tokio::spawn(omendb_server::http::serve(
            http,
            engine.clone(),
            metrics.clone(),
            http_stop,
        ));
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let mut pg_stopped = stopped;
        let pg_stop = async move {
            let _ = pg_stopped.changed().await;
        };
        omendb_server::pg::serve(
            listener,
            engine.clone(),
            args.max_connections,
            metrics,
            pg_stop,
        )
        .await;
        let _ = http.await;
        Ok::<(), String>(())
    })?;
    info!("stopping: flushing the memtable");
    // Writes that reached the WAL are durable already; flushing the memtable
    // shortens the next start's recovery.
    engine
        .database()
        .flush()
        .map_err(|e| format!("flushing at shutdown: {e}"))?;
    say("OmenDB stopped");
    Ok(())
}

/// Tells the user `text` on standard output; a closed output (its reader
/// gone) does not stop the server.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Completes at SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
