//! Bad configuration: every mistake gets a message that names the key (and
//! the line when the TOML parser knows it) and never echoes a secret.

use std::path::Path;
use std::process::Command;

/// Runs the `tributary` binary; returns (exit success, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running tributary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str = r#"[daemon]
data_dir = "/tmp/tributary-bad-config/data"

[sink.lake]
kind = "lake"
url = "/tmp/tributary-bad-config/lake"

[[source]]
name = "app"
kind = "postgres"
sink = "lake"
host = "127.0.0.1"
port = 1
database = "app"
user = "cdc"
slot = "tributary_app"
publication = "tributary_app"
tables = ["public.orders"]
"#;

fn run_with(dir: &Path, text: &str, env: &[(&str, &str)]) -> String {
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, stderr) = run_cli(&["run", "--config", path.to_str().unwrap()], env);
    assert!(
        !ok,
        "tributary accepted a bad config:\n{text}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stderr
}

#[test]
fn each_config_mistake_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            BASE.replace("slot = ", "slott = \"x\"\nslot = "),
            vec!["source[0]", "unknown field `slott`", "line 8"],
        ),
        (
            BASE.replace("sink = \"lake\"", "sink = \"warehouse\""),
            vec!["source[0].sink", "warehouse", "defined sinks: [lake]"],
        ),
        (
            BASE.replace("tributary_app\"\npub", "Bad-Slot\"\npub"),
            vec!["source[0].slot"],
        ),
        (
            BASE.replace(
                "tables = [\"public.orders\"]",
                "tables = [\"public.orders\"]\nschema = \"public\"",
            ),
            vec!["source[0].tables", "not both"],
        ),
        (
            BASE.replace("tables = [\"public.orders\"]", ""),
            vec!["source[0].tables"],
        ),
        (
            BASE.replace("[\"public.orders\"]", "[\"a.b.c\"]"),
            vec!["source[0].tables[0]", "schema.table"],
        ),
        (
            BASE.replace("kind = \"postgres\"", "kind = \"oracle\""),
            vec!["source[0].kind", "oracle", "postgres"],
        ),
        (
            BASE.replace(
                "url = \"/tmp/tributary-bad-config/lake\"",
                "url = \"ftp://x\"",
            ),
            vec!["sink.lake.url", "ftp://x"],
        ),
        (
            BASE.replace("port = 1", "port = \"five\""),
            vec!["source[0]", "in `port`", "line 8"],
        ),
        (
            BASE.replace("user = \"cdc\"", "user = \"cdc\"\npassword = \"hunter2\""),
            vec!["source[0].password", "${VAR}"],
        ),
        (BASE.replace("[[source]]", "[source]"), vec!["source"]),
    ];
    for (text, expected) in cases {
        let stderr = run_with(dir.path(), &text, &[]);
        for needle in &expected {
            assert!(
                stderr.contains(needle),
                "expected {needle:?} in the error for:\n{text}\n--- got:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("hunter2"),
            "a secret was echoed:\n{stderr}"
        );
    }
}

#[test]
fn missing_file_and_unset_password_variable_are_explained() {
    let (ok, _, stderr) = run_cli(&["run", "--config", "/nonexistent/tributary.toml"], &[]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot read config file /nonexistent/tributary.toml"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace(
        "user = \"cdc\"",
        "user = \"cdc\"\npassword = \"${TRIBUTARY_TEST_UNSET_PW}\"",
    );
    let path = dir.path().join("pw.toml");
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, _) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        stdout.contains("TRIBUTARY_TEST_UNSET_PW is not set"),
        "{stdout}"
    );
}
