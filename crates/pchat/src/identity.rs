//! Player identities: the key file, `PCHAT_PRIVATE_KEY`, and `pchat identity new|show`.
//!
//! **Key file format**: one line, the secp256k1 private key as `0x` followed by 64 hexadecimal
//! digits (the `0x` is optional when reading, upper- or lower-case digits). Blank lines and lines
//! starting with `#` are ignored, so a file may carry a comment. `pchat identity new --out FILE`
//! writes exactly `0x<64 digits>\n` to a new file of mode 0600.
//!
//! **Permissions**: on Unix a key file that other users may read or change (any of the group or
//! other permission bits, `mode & 0o077`) is refused, as OpenSSH refuses such private keys: the
//! key is the wallet, and a wallet that others can read is no longer yours. The error names the
//! `chmod 600` that fixes it.
//!
//! Reading is bounded: a key file larger than [`MAX_KEY_FILE_BYTES`] or that is not a regular
//! file (a directory, a device, a pipe) is refused before it is read. Errors never contain the
//! key, nor any part of the file's content.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use authchain::Wallet;

/// The largest key file read (a key line is 67 bytes; the rest allows comments).
pub const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Where a key came from, for error messages.
#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    Env,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "identity file {}", p.display()),
            KeySource::Env => f.write_str("PCHAT_PRIVATE_KEY (or --private-key)"),
        }
    }
}

/// Why a key could not be read or written. Each message is one line and never holds the key.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "no identity given: use --identity FILE or set PCHAT_PRIVATE_KEY (create a key file with `pchat identity new --out FILE`)"
    )]
    Missing,
    #[error("identity file {0} does not exist (create one with `pchat identity new --out FILE`)")]
    NotFound(PathBuf),
    #[error("cannot read identity file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("identity file {0} is not a regular file")]
    NotAFile(PathBuf),
    #[error(
        "identity file {path} can be read or changed by other users (mode {mode:04o}); restrict it with `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "identity file {path} is not a key file ({size} bytes; a key file is one line of 66 characters)"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{0} is not a key: {1}")]
    BadKey(KeySource, KeyProblem),
    #[error("{0} already exists; not overwriting it (choose another --out or remove the file)")]
    Exists(PathBuf),
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong with a key's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is not text (UTF-8)")]
    NotText,
    #[error("it has {0} key lines, one is expected")]
    SeveralLines(usize),
    #[error("character {position} is not a hexadecimal digit")]
    NotHex { position: usize },
    #[error("it has {0} hexadecimal digits, a private key has 64")]
    WrongLength(usize),
    #[error("the number is not a valid secp256k1 private key (zero, or not below the curve order)")]
    OutOfRange,
}

/// Parses a private key given as text: `0x` (optional) and 64 hex digits, surrounding
/// whitespace ignored.
pub fn parse_key(text: &str) -> Result<Wallet, KeyProblem> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() {
        return Err(KeyProblem::Empty);
    }
    if let Some((i, _)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        // 1-based, counted in the text after trimming (the `0x` included).
        let offset = t.len() - digits.len();
        let position = t[..offset + i].chars().count() + 1;
        return Err(KeyProblem::NotHex { position });
    }
    if digits.len() != 64 {
        return Err(KeyProblem::WrongLength(digits.len()));
    }
    Wallet::from_hex(digits).map_err(|_| KeyProblem::OutOfRange)
}

/// Parses the content of a key file: one key line, blank and `#` lines ignored.
pub fn parse_key_file(content: &str) -> Result<Wallet, KeyProblem> {
    let lines: Vec<&str> = content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    match lines.as_slice() {
        [] => Err(KeyProblem::Empty),
        [line] => parse_key(line),
        more => Err(KeyProblem::SeveralLines(more.len())),
    }
}

/// Reads a key file (see the module docs for the format and the checks).
pub fn load_key_file(path: &Path) -> Result<Wallet, IdentityError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => IdentityError::NotFound(path.to_owned()),
        _ => IdentityError::Unreadable {
            path: path.to_owned(),
            source: e,
        },
    })?;
    if !meta.is_file() {
        return Err(IdentityError::NotAFile(path.to_owned()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(IdentityError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
        });
    }
    let unreadable = |e| IdentityError::Unreadable {
        path: path.to_owned(),
        source: e,
    };
    // Read at most one byte past the bound, in case the file grew since `metadata`.
    let mut bytes = Vec::new();
    {
        use std::io::Read;
        std::fs::File::open(path)
            .map_err(unreadable)?
            .take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
    }
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(IdentityError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
        });
    }
    let source = KeySource::File(path.to_owned());
    let text = String::from_utf8(bytes)
        .map_err(|_| IdentityError::BadKey(source.clone(), KeyProblem::NotText))?;
    parse_key_file(&text).map_err(|p| IdentityError::BadKey(source, p))
}

/// The key file's content for `wallet`.
pub fn key_file_content(wallet: &Wallet) -> String {
    format!("{}\n", wallet.secret_hex())
}

/// Writes `wallet` to a new file at `path`, mode 0600; never replaces an existing file.
pub fn write_key_file(path: &Path, wallet: &Wallet) -> Result<(), IdentityError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let create = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AlreadyExists => IdentityError::Exists(path.to_owned()),
        _ => IdentityError::Create {
            path: path.to_owned(),
            source: e,
        },
    };
    let mut file = options.open(path).map_err(create)?;
    #[cfg(unix)]
    {
        // The umask can only remove bits from 0600, but be explicit about the result.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(create)?;
    }
    file.write_all(key_file_content(wallet).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(create)
}

/// The identity of a player command: `--identity FILE`, or the key itself in
/// `PCHAT_PRIVATE_KEY` (or `--private-key`). When both are given the file is used.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IdentityArgs {
    /// Key file: one line, the private key as 0x + 64 hex digits, mode 0600 (a file other users
    /// can read is refused). Create one with `pchat identity new --out FILE`.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The private key as hex, when no --identity is given. Prefer the variable to the flag:
    /// other local users can see a command line.
    #[arg(
        long = "private-key",
        env = "PCHAT_PRIVATE_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    pub private_key: Option<String>,
}

impl IdentityArgs {
    /// The wallet, or why there is none (no network involved).
    pub fn load(&self) -> Result<Wallet, IdentityError> {
        self.load_optional()?.ok_or(IdentityError::Missing)
    }

    /// The wallet if one was given.
    pub fn load_optional(&self) -> Result<Option<Wallet>, IdentityError> {
        if let Some(path) = &self.identity {
            return load_key_file(path).map(Some);
        }
        match &self.private_key {
            Some(hex) => parse_key(hex)
                .map(Some)
                .map_err(|p| IdentityError::BadKey(KeySource::Env, p)),
            None => Ok(None),
        }
    }
}

/// `pchat identity …`
#[derive(Debug, clap::Subcommand)]
pub enum IdentityCommand {
    /// Make a fresh private key. With --out: write it to a new file (mode 0600, an existing file
    /// is never replaced) and print the address; without: print the key (the key file's
    /// content) on stdout and the address on stderr.
    New {
        /// The key file to create.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the address of --identity FILE (or PCHAT_PRIVATE_KEY).
    Show {
        #[command(flatten)]
        identity: IdentityArgs,
    },
}

/// Runs `pchat identity …`.
pub fn run(command: IdentityCommand) -> Result<(), IdentityError> {
    match command {
        IdentityCommand::New { out: Some(path) } => {
            let wallet = Wallet::random();
            write_key_file(&path, &wallet)?;
            println!("{}", wallet.address().to_lower_hex());
        }
        IdentityCommand::New { out: None } => {
            let wallet = Wallet::random();
            print!("{}", key_file_content(&wallet));
            eprintln!("address: {}", wallet.address().to_lower_hex());
        }
        IdentityCommand::Show { identity } => {
            println!("{}", identity.load()?.address().to_lower_hex());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

    #[test]
    fn keys_parse_with_or_without_prefix_and_whitespace() {
        let a = parse_key(KEY).expect("key");
        let b = parse_key(&format!("  {}\n", &KEY[2..].to_uppercase())).expect("key");
        assert_eq!(a.address(), b.address());
        assert_eq!(
            a.address().to_lower_hex(),
            "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"
        );
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        assert_eq!(parse_key("").err(), Some(KeyProblem::Empty));
        assert_eq!(parse_key("0x").err(), Some(KeyProblem::Empty));
        assert_eq!(parse_key("0x12").err(), Some(KeyProblem::WrongLength(2)));
        assert_eq!(
            parse_key(&format!("{KEY}00")).err(),
            Some(KeyProblem::WrongLength(66))
        );
        assert_eq!(
            parse_key("0x4g").err(),
            Some(KeyProblem::NotHex { position: 4 })
        );
        assert_eq!(
            parse_key(&"0".repeat(64)).err(),
            Some(KeyProblem::OutOfRange)
        );
        assert_eq!(
            parse_key(&"f".repeat(64)).err(),
            Some(KeyProblem::OutOfRange)
        );
    }

    #[test]
    fn key_files_allow_comments_but_one_key() {
        let one = format!("# alice\n\n{KEY}\n");
        assert!(parse_key_file(&one).is_ok());
        assert_eq!(
            parse_key_file(&format!("{KEY}\n{KEY}\n")).err(),
            Some(KeyProblem::SeveralLines(2))
        );
        assert_eq!(parse_key_file("# nothing\n").err(), Some(KeyProblem::Empty));
    }

    #[test]
    fn errors_never_show_the_key() {
        let e = IdentityError::BadKey(KeySource::Env, parse_key(&KEY[..40]).expect_err("bad"));
        assert!(!e.to_string().contains(&KEY[2..12]), "{e}");
    }

    #[test]
    fn written_files_load_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("k");
        let w = Wallet::random();
        write_key_file(&path, &w).expect("write");
        assert_eq!(load_key_file(&path).expect("load").address(), w.address());
        assert!(matches!(
            write_key_file(&path, &w),
            Err(IdentityError::Exists(_))
        ));
    }
}
