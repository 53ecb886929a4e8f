//! The README cannot drift: its test command is what `.ci/run` runs, and its configuration
//! reference is `maxq run --help`.

use std::path::Path;
use std::process::Command;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn readme_opens_with_the_two_commands_and_ci_runs_the_second() {
    let readme = read("README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(commands, vec!["cargo run --release", "cluster/test.sh"]);
    let ci = read(".ci/run");
    let ci_commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(
        ci_commands.contains(&"exec cluster/test.sh"),
        ".ci/run must run the README's test command: {ci_commands:?}"
    );
}

#[test]
fn readme_reference_is_the_run_help() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_maxq"));
    // `--help` shows the values of the MAXQ_… variables that are set.
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("MAXQ_")) {
        command.env_remove(name);
    }
    let out = command
        .args(["run", "--help"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = read("README.md");
    let section = readme
        .split("<!-- run-help:start -->\n")
        .nth(1)
        .unwrap()
        .split("<!-- run-help:end -->")
        .next()
        .unwrap();
    let expected = format!("```text\n{}```\n", help);
    assert_eq!(
        section, expected,
        "regenerate the README section from `COLUMNS=100 maxq run --help`"
    );
}

#[test]
fn readme_and_compose_name_the_same_org_and_bucket() {
    let readme = read("README.md");
    let compose = read("docker-compose.yml");
    let default = |name: &str| {
        let start = compose.find(&format!("${{{name}:-")).unwrap() + name.len() + 4;
        compose[start..].split('}').next().unwrap().to_owned()
    };
    for (flag, name) in [
        ("--influx-org", "INFLUX_ORG"),
        ("--influx-bucket", "INFLUX_BUCKET"),
    ] {
        let value = default(name);
        let named: Vec<&str> = readme
            .split(&format!("{flag} "))
            .skip(1)
            .map(|rest| rest.split_whitespace().next().unwrap())
            .filter(|v| !v.starts_with('<'))
            .collect();
        assert!(!named.is_empty(), "the README shows no {flag}");
        assert!(
            named.iter().all(|v| *v == value),
            "{flag}: {named:?} vs compose {value}"
        );
    }
}
