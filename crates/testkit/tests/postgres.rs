//! `FreshPostgres` against the real server (`PCHAT_TEST_DATABASE_URL`, from `scripts/setup`):
//! a fresh database exists until its guard is dropped, a kept one survives it, and the outage
//! switches refuse and allow connections.

use std::process::Command;

use testkit::FreshPostgres;
use testkit::postgres::{admin_url, psql};

/// Whether the database `name` exists, asked of the administrative connection.
fn exists(name: &str) -> bool {
    let out = Command::new("psql")
        .arg(admin_url().expect("PCHAT_TEST_DATABASE_URL"))
        .arg("-Atc")
        .arg(format!(
            "SELECT 1 FROM pg_database WHERE datname = '{name}'"
        ))
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql failed");
    String::from_utf8_lossy(&out.stdout).trim() == "1"
}

#[test]
fn a_fresh_database_lives_as_long_as_its_guard() {
    let db = FreshPostgres::create("kit").expect("fresh database");
    assert!(db.name.starts_with("pchat_kit_"), "{}", db.name);
    assert!(db.url.ends_with(&format!("/{}", db.name)), "{}", db.url);
    assert!(exists(&db.name));
    psql(&db.url, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)").expect("usable");
    let name = db.name.clone();
    drop(db);
    assert!(!exists(&name), "{name} is still there");
}

#[test]
fn an_unreachable_database_refuses_connections_until_allowed_again() {
    let db = FreshPostgres::create("kit").expect("fresh database");
    db.reachable(false).expect("refuse");
    assert!(
        psql(&db.url, "SELECT 1").is_err(),
        "connected while refused"
    );
    db.reachable(true).expect("allow");
    psql(&db.url, "SELECT 1").expect("connects again");
    db.allow_connections(false).expect("refuse");
    let name = db.name.clone();
    // Dropped while refusing connections: still removed.
    drop(db);
    assert!(!exists(&name), "{name} is still there");
}

#[test]
fn a_kept_database_survives_its_guard_and_is_found_again() {
    let name = format!("pchat_kept_{:016x}", rand::random::<u64>());
    let (db, existed) = FreshPostgres::kept(&name).expect("kept database");
    assert!(!existed);
    drop(db);
    assert!(exists(&name), "the kept database was dropped");
    let (db, existed) = FreshPostgres::kept(&name).expect("kept database");
    assert!(existed);
    psql(&db.admin, &format!("DROP DATABASE {name} WITH (FORCE)")).expect("clean up");
    assert!(
        FreshPostgres::kept("no; DROP").is_err(),
        "a name that is not plain"
    );
}
