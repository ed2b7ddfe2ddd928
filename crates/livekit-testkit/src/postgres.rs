//! A fresh PostgreSQL database per test, dropped afterwards (also when the test panics).
//!
//! The server is the one `scripts/setup` starts; `PCHAT_TEST_DATABASE_URL` (set by the env file
//! it writes) names a role that may create databases. Databases are made and dropped with
//! `psql`, so no database driver is needed here.

use std::process::{Command, Stdio};

use crate::HarnessError;

/// A database made for one test; dropped (connections and all) when this is dropped.
pub struct FreshPostgres {
    /// Connection URL of the new database.
    pub url: String,
    /// The administrative URL it was made with.
    pub admin: String,
    /// Its name.
    pub name: String,
}

/// Runs one SQL statement as the administrative role.
pub fn psql(admin: &str, sql: &str) -> Result<(), HarnessError> {
    let status = Command::new("psql")
        .arg(admin)
        .arg("-qtAc")
        .arg(sql)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| HarnessError::Setup(format!("cannot run psql: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!("psql failed: {sql}")))
    }
}

impl FreshPostgres {
    /// Creates a database with a random name. `tag` (a few lower-case letters) shows which test
    /// made it.
    pub fn create(tag: &str) -> Result<FreshPostgres, HarnessError> {
        let admin = std::env::var("PCHAT_TEST_DATABASE_URL").map_err(|_| {
            HarnessError::Setup(
                "PCHAT_TEST_DATABASE_URL is not set: run scripts/setup and source its env file"
                    .into(),
            )
        })?;
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_lowercase())
            .take(8)
            .collect();
        let name = format!("pchat_{tag}_{:016x}", rand::random::<u64>());
        psql(&admin, &format!("CREATE DATABASE {name}"))?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .ok_or_else(|| HarnessError::Setup("PCHAT_TEST_DATABASE_URL has no path".into()))?;
        Ok(FreshPostgres {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    /// Refuses (or allows again) connections; refusing also ends the open ones.
    pub fn reachable(&self, yes: bool) -> Result<(), HarnessError> {
        psql(
            &self.admin,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS {yes}", self.name),
        )?;
        if !yes {
            psql(
                &self.admin,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    self.name
                ),
            )?;
        }
        Ok(())
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name),
        );
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
