//! Running the Node.js interop scripts in `interop/`, which use the official npm packages
//! (`@dcl/crypto`, `decentraland-crypto-fetch`, `@livekit/rtc-node`). `scripts/setup` installs
//! them; a missing install is an error, never a skipped test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::{HarnessError, workspace_root};

/// The `interop/` folder.
pub fn interop_dir() -> PathBuf {
    workspace_root().join("interop")
}

fn check_installed() -> Result<(), HarnessError> {
    let modules = interop_dir().join("node_modules");
    if modules.is_dir() {
        Ok(())
    } else {
        Err(HarnessError::Node(format!(
            "{} is missing: run `scripts/setup` (npm ci in interop/)",
            modules.display()
        )))
    }
}

/// `GET url` through the official `@dcl/crypto` signed fetch (`interop/signed-fetch.mjs fetch`)
/// with the signed `metadata`, as the private key `key` (hex) or a fresh wallet: the driver's
/// JSON answer (`{"status": …, "body": "…", …}`), bounded by `limit`.
pub async fn signed_get(
    url: &str,
    metadata: &str,
    key: Option<&str>,
    limit: Duration,
) -> Result<serde_json::Value, HarnessError> {
    let mut args = vec!["fetch", "GET", url, metadata];
    args.extend(key);
    let out = run("signed-fetch.mjs", &args, limit).await?;
    serde_json::from_str(out.trim())
        .map_err(|e| HarnessError::Node(format!("signed-fetch.mjs answered no JSON ({e}): {out}")))
}

/// Runs `node interop/<script> <args…>` to completion (bounded by `limit`) and returns stdout.
/// A non-zero exit is an error carrying stderr.
pub async fn run(script: &str, args: &[&str], limit: Duration) -> Result<String, HarnessError> {
    check_installed()?;
    let fut = Command::new("node")
        .arg(interop_dir().join(script))
        .args(args)
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| HarnessError::Node(format!("{script} did not finish within {limit:?}")))??;
    if !out.status.success() {
        return Err(HarnessError::Node(format!(
            "{script} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A long-running script that prints one JSON object per line. Killed on drop.
pub struct NodeProcess {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub name: String,
}

impl NodeProcess {
    /// Starts `node interop/<script> <args…>`; stderr is inherited so it shows in test output.
    pub fn spawn(script: &str, args: &[&str]) -> Result<Self, HarnessError> {
        check_installed()?;
        let mut child = Command::new("node")
            .arg(interop_dir().join(script))
            .args(args)
            .current_dir(interop_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HarnessError::Node("no stdout".into()))?;
        Ok(NodeProcess {
            child,
            lines: BufReader::new(stdout).lines(),
            name: script.to_owned(),
        })
    }

    /// The next stdout line, or an error after `limit` or at end of output.
    pub async fn next_line(&mut self, limit: Duration) -> Result<String, HarnessError> {
        match tokio::time::timeout(limit, self.lines.next_line()).await {
            Err(_) => Err(HarnessError::Node(format!(
                "{}: no output within {limit:?}",
                self.name
            ))),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(None)) => Err(HarnessError::Node(format!("{}: exited", self.name))),
            Ok(Ok(Some(line))) => Ok(line),
        }
    }

    /// Reads lines until one contains `needle`, within `limit` overall. Returns that line.
    pub async fn wait_for(
        &mut self,
        needle: &str,
        limit: Duration,
    ) -> Result<String, HarnessError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self
                .next_line(left)
                .await
                .map_err(|e| HarnessError::Node(format!("waiting for {needle:?}: {e}")))?;
            if line.contains(needle) {
                return Ok(line);
            }
        }
    }

    /// Writes one line to the process's standard input.
    pub async fn send_line(&mut self, line: &str) -> Result<(), HarnessError> {
        use tokio::io::AsyncWriteExt;
        let stdin = self
            .child
            .stdin
            .as_mut()
            .ok_or_else(|| HarnessError::Node(format!("{}: stdin closed", self.name)))?;
        stdin.write_all(line.as_bytes()).await?;
        stdin.write_all(b"\n").await?;
        stdin.flush().await?;
        Ok(())
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
