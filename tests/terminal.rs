//! What a person at a terminal sees of `maxq run --until-end`: a progress bar counting the
//! messages read out of those up to the end offsets; off a terminal, log lines only.

mod common;

use common::*;
use std::process::Command;

#[test]
fn until_end_on_a_terminal_shows_a_bar_to_the_end_offsets_and_off_one_none() {
    let topic = unique("bar");
    create_topic(&topic, 2);
    let messages = stream(43, 2, 6, 500, 250, 0);
    produce(&topic, &messages);
    let dir = tempfile::tempdir().unwrap();
    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.extend(["--until-end", "--output-dir"].map(String::from));
    args.push(dir.path().join("out").display().to_string());
    let command = std::iter::once(env!("CARGO_BIN_EXE_maxq").to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    // `script` runs the command on a pseudo-terminal and copies what it drew.
    let typescript = dir.path().join("typescript");
    let status = Command::new("script")
        .args(["-qec", &command])
        .arg(&typescript)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script(1), from util-linux");
    assert!(status.success());
    let drawn = std::fs::read_to_string(&typescript).unwrap();
    let n = group_thousands(messages.len());
    let end = format!("] {n}/{n} messages");
    assert!(
        drawn.contains("reading [") && drawn.contains(&end),
        "no bar reaching {end:?} in: {drawn}"
    );

    let mut args = run_args(&brokers(), &topic, &unique("g"));
    args.extend(["--until-end", "--output-dir"].map(String::from));
    args.push(dir.path().join("out2").display().to_string());
    let out = maxq_ok(&strs(&args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("reading ["), "{stderr}");
}

/// `n` as indicatif prints it: thousands separated by commas.
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
