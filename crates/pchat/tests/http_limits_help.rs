//! `pchat gatekeeper --help` and `pchat social --help` list the HTTP server's limits with their
//! defaults.

#[test]
fn both_services_list_the_http_limits_with_their_defaults() {
    for service in ["gatekeeper", "social"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
            .args([service, "--help"])
            .env_clear()
            .output()
            .expect("pchat --help");
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for (var, default) in [
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "[default: 10]"),
            ("HTTP_IDLE_TIMEOUT_SECONDS", "[default: 5]"),
            ("HTTP_MAX_CONNECTIONS", "[default: 4096]"),
        ] {
            let line = help
                .split("\n\n")
                .find(|option| option.contains(var))
                .unwrap_or_else(|| panic!("{service} --help does not mention {var}:\n{help}"));
            assert!(line.contains(default), "{service} {var}: {line}");
        }
    }
}

#[test]
fn a_zero_limit_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
        .args(["social"])
        .env_clear()
        .env("HTTP_MAX_CONNECTIONS", "0")
        .output()
        .expect("pchat social");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max-connections"), "{err}");
}
