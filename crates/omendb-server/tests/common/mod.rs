//! The `omendb` binary run for a test: started on a free port in a
//! scratch directory, stopped with SIGTERM or killed when dropped.

#![allow(dead_code)] // Each test file uses its own part.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running `omendb serve` and the port it took.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    pub(crate) http_port: u16,
    /// Its standard output, kept open while it runs.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    pub(crate) fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// Starts the server with `flags` besides the port and directory.
    pub(crate) fn start_with(dir: &Path, flags: &[&str]) -> Server {
        Server::start_logging(dir, flags, Stdio::inherit())
    }

    /// Starts the server with `flags`, its log (standard error) going to
    /// `log`.
    pub(crate) fn start_logging(dir: &Path, flags: &[&str], log: Stdio) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_omendb"))
            .args(["serve", "--pg-listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(flags)
            .stderr(log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // "OmenDB <version> serving <dir> for PostgreSQL clients on 127.0.0.1:<port>"
        let port = port_after(&first, "127.0.0.1:");
        // "connect with: ...", then "HTTP API on http://127.0.0.1:<port> (...)"
        let mut lines = String::new();
        for _ in 0..2 {
            stdout.read_line(&mut lines).unwrap();
        }
        let http_port = port_after(&lines, "http://127.0.0.1:");
        Server {
            child,
            port,
            http_port,
            _stdout: stdout,
        }
    }

    /// `psql -c` for each statement, unaligned and without headers;
    /// stdout, stderr and whether psql succeeded.
    pub(crate) fn psql(&self, statements: &[&str]) -> (String, String, bool) {
        let mut command = Command::new("psql");
        command
            .args(["-h", "127.0.0.1", "-U", "omendb", "-d", "omendb"])
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "VERBOSITY=verbose",
                "-v",
                "ON_ERROR_STOP=0",
            ])
            .arg("-p")
            .arg(self.port.to_string());
        for statement in statements {
            command.arg("-c").arg(statement);
        }
        let output = command.output().unwrap();
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
            output.status.success(),
        )
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port number that follows `prefix` in `text`.
fn port_after(text: &str, prefix: &str) -> u16 {
    let (_, rest) = text
        .split_once(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omendb-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs a client program (`command`, given the server's port last) to the
/// end; a test failure unless it exits 0 having printed just `ok`.
pub(crate) fn run_client(server: &Server, mut command: Command, needs: &str) {
    let output = command
        .arg(server.port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("the client runs ({needs}): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "{stdout}\n{stderr}"
    );
}
