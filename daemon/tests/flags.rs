//! The `boxd` binary's command line as a user or systemd meets it: `--help`, `--version`,
//! a bad flag (exit 2, one clear line), and `boxd shim ...` reaching the shim rather than
//! the daemon's flag parser. Nothing here starts a daemon.

use std::process::{Command, Output};

use boxd_shim::protocol::StartReport;

fn boxd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boxd"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run boxd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_print_and_exit_0() {
    let out = boxd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), boxd::config::HELP);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    let out = boxd(&["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("boxd {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_bad_flag_is_one_clear_error_and_exit_2() {
    for (args, message) in [
        (&["--bogus"][..], "boxd: invalid option '--bogus'"),
        (
            &["--root"][..],
            "boxd: missing argument for option '--root'",
        ),
        (
            &["--log-max-files", "many"][..],
            "boxd: invalid value \"many\" for --log-max-files: invalid digit found in string",
        ),
    ] {
        let out = boxd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(
            text(&out.stderr),
            format!("{message}\nTry 'boxd --help' for more information.\n"),
            "{args:?}"
        );
    }
}

#[test]
fn an_unusable_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("boxd.toml");
    std::fs::write(&file, "rooot = \"/x\"\n").unwrap();
    let out = boxd(&["--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("boxd: invalid config file {}", file.display())),
        "{stderr}"
    );
}

#[test]
fn shim_arguments_go_to_the_shim() {
    // The daemon's parser would refuse `--bogus` with exit 2; the shim reports it as a
    // failed start on stdout, as the daemon reads it, and exits 1.
    let out = boxd(&["shim", "--bogus"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: StartReport = serde_json::from_slice(&out.stdout).unwrap();
    let StartReport::Failed { stage, message } = report else {
        panic!("{report:?}")
    };
    assert_eq!(stage, "config");
    assert!(
        message.contains("unexpected argument \"--bogus\""),
        "{message}"
    );
}
