//! `pchat identity`, the binary: key files are created with mode 0600 and never overwritten,
//! stdout carries only the address (or the key), and every bad key file or key is one line on
//! stderr with a non-zero exit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn pchat(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pchat"));
    cmd.args(args).env_clear().stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    // These commands touch no network and end at once; `output` cannot hang on them.
    cmd.output().expect("pchat runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_address(s: &str) -> bool {
    s.len() == 42 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o7777
}

#[test]
fn identity_new_out_writes_a_private_file_and_prints_only_the_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("alice.key");
    let key_arg = key.to_str().expect("utf-8");
    let out = run(&mut pchat(&["identity", "new", "--out", key_arg]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let address = stdout.strip_suffix('\n').expect("one line");
    assert!(is_address(address), "{stdout:?}");
    assert_eq!(mode(&key), 0o600);
    let content = std::fs::read_to_string(&key).expect("read");
    assert_eq!(
        content.len(),
        67,
        "0x + 64 digits + newline: {}",
        content.len()
    );

    // `identity show` reads it back.
    let shown = run(&mut pchat(&["identity", "show", "--identity", key_arg]));
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert_eq!(text(&shown.stdout), format!("{address}\n"));

    // A second `new` to the same file is refused and changes nothing.
    let again = run(&mut pchat(&["identity", "new", "--out", key_arg]));
    assert!(!again.status.success());
    assert_eq!(text(&again.stdout), "");
    let err = text(&again.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).expect("read"), content);
}

#[test]
fn identity_new_without_out_prints_the_key_file_and_the_env_var_takes_it() {
    let out = run(&mut pchat(&["identity", "new"]));
    assert!(out.status.success());
    let key = text(&out.stdout);
    assert_eq!(key.lines().count(), 1);
    assert_eq!(key.len(), 67, "{key:?}");
    let address = text(&out.stderr)
        .trim()
        .strip_prefix("address: ")
        .expect("address on stderr")
        .to_owned();
    let shown = run(pchat(&["identity", "show"]).env("PCHAT_PRIVATE_KEY", key.trim()));
    assert_eq!(text(&shown.stdout).trim(), address);

    // The same text as a file gives the same address (--identity beats the variable).
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("k");
    std::fs::write(&path, format!("# bob\n{key}")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let shown = run(pchat(&[
        "identity",
        "show",
        "--identity",
        path.to_str().expect("utf-8"),
    ])
    .env("PCHAT_PRIVATE_KEY", "not a key"));
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert_eq!(text(&shown.stdout).trim(), address);
}

#[test]
fn bad_key_files_are_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318\n";
    let write = |name: &str, content: &[u8], mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    };
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (dir.path().join("missing.key"), "does not exist"),
        (write("empty.key", b"", 0o600), "it is empty"),
        (
            write("hex.key", b"0xzz83a69102937d\n", 0o600),
            "character 3 is not a hexadecimal digit",
        ),
        (
            write("short.key", b"0x4c0883a6\n", 0o600),
            "has 8 hexadecimal digits",
        ),
        (
            write("two.key", format!("{good}{good}").as_bytes(), 0o600),
            "2 key lines",
        ),
        (
            write("zero.key", "0".repeat(64).as_bytes(), 0o600),
            "not a valid secp256k1",
        ),
        (write("binary.key", &[0xff, 0xfe, 0x00], 0o600), "not text"),
        (write("open.key", good.as_bytes(), 0o644), "chmod 600"),
        (write("group.key", good.as_bytes(), 0o620), "mode 0620"),
        (write("big.key", &vec![b'#'; 10_000], 0o600), "10000 bytes"),
        (dir.path().to_owned(), "not a regular file"),
    ];
    for (path, expected) in cases {
        let out = run(&mut pchat(&[
            "identity",
            "show",
            "--identity",
            path.to_str().expect("utf-8"),
        ]));
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{}: accepted", path.display());
        assert_eq!(text(&out.stdout), "", "{}", path.display());
        assert_eq!(err.lines().count(), 1, "{}: {err}", path.display());
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(expected), "{}: {err}", path.display());
        assert!(!err.contains("4c0883a69102937d"), "the key leaked: {err}");
    }

    // No identity at all, and a bad key in the variable: one line, the key not echoed.
    let out = run(&mut pchat(&["identity", "show"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--identity FILE or set PCHAT_PRIVATE_KEY"));
    let out = run(pchat(&["identity", "show"]).env("PCHAT_PRIVATE_KEY", "0x1234abcd"));
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("PCHAT_PRIVATE_KEY") && !err.contains("1234abcd"),
        "{err}"
    );
}
