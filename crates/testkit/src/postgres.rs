//! A fresh PostgreSQL database per test, dropped afterwards (also when the test panics).
//!
//! The server is the one `scripts/setup` starts; `PCHAT_TEST_DATABASE_URL` (set by the env file
//! it writes) names a role that may create databases. Databases are made and dropped with
//! `psql`, so no database driver is needed here (and a test of the store does not lean on the
//! driver it tests to set itself up).
//!
//! Every test and bench that needs PostgreSQL takes its database from here, so the rules live in
//! one place: a random name with a tag saying which test made it, dropped `WITH (FORCE)` even
//! while connections are open or refused, and an error (not a silent skip) when the variable is
//! missing — the callers decide whether that fails the test.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::HarnessError;

/// A database made for one test; dropped (connections and all) when this is dropped, unless it
/// was opened with [`FreshPostgres::kept`].
pub struct FreshPostgres {
    /// Connection URL of the new database.
    pub url: String,
    /// The administrative URL it was made with.
    pub admin: String,
    /// Its name.
    pub name: String,
    keep: bool,
}

/// Runs SQL (one or more statements) on the database at `url`, through psql's standard input
/// (a statement may be longer than a command-line argument can be), stopping at the first
/// error.
pub fn psql(url: &str, sql: &str) -> Result<(), HarnessError> {
    let mut child = Command::new("psql")
        .arg(url)
        .args(["-qtA", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| HarnessError::Setup(format!("cannot run psql: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(sql.as_bytes())?;
        stdin.write_all(b";\n")?;
    }
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!("psql failed: {sql}")))
    }
}

/// `PCHAT_TEST_DATABASE_URL`, or an error saying how to get it.
pub fn admin_url() -> Result<String, HarnessError> {
    std::env::var("PCHAT_TEST_DATABASE_URL").map_err(|_| {
        HarnessError::Setup(
            "PCHAT_TEST_DATABASE_URL is not set: run scripts/setup and source its env file".into(),
        )
    })
}

impl FreshPostgres {
    /// Creates a database with a random name. `tag` (a few lower-case letters) shows which test
    /// made it.
    pub fn create(tag: &str) -> Result<FreshPostgres, HarnessError> {
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_lowercase())
            .take(8)
            .collect();
        let name = format!("pchat_{tag}_{:016x}", rand::random::<u64>());
        let db = FreshPostgres::named(admin_url()?, name, false)?;
        psql(&db.admin, &format!("CREATE DATABASE {}", db.name))?;
        Ok(db)
    }

    /// The database `name` (letters, digits and `_`), created if it does not exist yet and
    /// kept when this is dropped: for a bench that seeds once and measures many times. Also
    /// says whether it existed already.
    pub fn kept(name: &str) -> Result<(FreshPostgres, bool), HarnessError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(HarnessError::Setup(format!(
                "{name:?} is not a plain database name"
            )));
        }
        let db = FreshPostgres::named(admin_url()?, name.to_owned(), true)?;
        let out = Command::new("psql")
            .arg(&db.admin)
            .arg("-Atc")
            .arg(format!(
                "SELECT 1 FROM pg_database WHERE datname = '{name}'"
            ))
            .output()
            .map_err(|e| HarnessError::Setup(format!("cannot run psql: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::Setup(format!(
                "psql cannot list databases: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let existed = String::from_utf8_lossy(&out.stdout).trim() == "1";
        if !existed {
            psql(&db.admin, &format!("CREATE DATABASE {name}"))?;
        }
        Ok((db, existed))
    }

    fn named(admin: String, name: String, keep: bool) -> Result<FreshPostgres, HarnessError> {
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .ok_or_else(|| HarnessError::Setup("PCHAT_TEST_DATABASE_URL has no path".into()))?;
        Ok(FreshPostgres {
            url: format!("{base}/{name}"),
            admin,
            name,
            keep,
        })
    }

    /// Refuses (or allows again) new connections; the open ones stay (see
    /// [`FreshPostgres::terminate`]).
    pub fn allow_connections(&self, yes: bool) -> Result<(), HarnessError> {
        psql(
            &self.admin,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS {yes}", self.name),
        )
    }

    /// Ends every open connection to the database (from a separate administrative one).
    pub fn terminate(&self) -> Result<(), HarnessError> {
        psql(
            &self.admin,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.name
            ),
        )
    }

    /// Refuses (or allows again) connections; refusing also ends the open ones.
    pub fn reachable(&self, yes: bool) -> Result<(), HarnessError> {
        self.allow_connections(yes)?;
        if !yes {
            self.terminate()?;
        }
        Ok(())
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let _ = self.allow_connections(true);
        if !self.keep {
            let _ = psql(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            );
        }
    }
}
