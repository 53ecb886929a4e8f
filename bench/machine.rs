//! What a run ran on: machine, versions and the exact command, one Markdown line each.

use std::process::Command;

fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then_some(())?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next()?.trim().to_owned())
}

fn proc_field(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// The tansu build `cluster/services.sh` caches, if there is one, and its version.
fn tansu_version() -> Option<String> {
    let root = std::env::var("MAXQ_TANSU_ROOT").ok().or_else(|| {
        let cache = std::path::Path::new(&std::env::var("HOME").ok()?).join(".cache/maxq");
        std::fs::read_dir(cache)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("tansu-"))
            })
            .map(|p| p.to_string_lossy().into_owned())
    })?;
    first_line_of(&format!("{root}/bin/tansu"), &["--version"])
}

/// The command line as typed, the binary named by its name (`maxq-bench`), not its path.
fn command() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.contains(char::is_whitespace) || a.is_empty() {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect();
    format!("{} {}", env!("CARGO_BIN_NAME"), args.join(" "))
}

/// Machine, versions and command of this run; `influxd` is the server's own version.
pub fn describe(influxd: &str, brokers: &str) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|m| m.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(
            || "?".to_owned(),
            |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
        );
    let cpu = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let revision = first_line_of(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ],
    )
    .unwrap_or_else(|| "unknown revision".to_owned());
    let build = if cfg!(debug_assertions) {
        "**debug build** (figures not comparable)"
    } else {
        "release build"
    };
    vec![
        format!("machine: {cores} cores, {cpu}, {memory} RAM, Linux {}", kernel.trim()),
        format!(
            "versions: maxq {} ({revision}, {build}); {}; librdkafka {}; InfluxDB {influxd}; broker at `{brokers}`{}",
            env!("CARGO_PKG_VERSION"),
            first_line_of("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".to_owned()),
            rdkafka::util::get_rdkafka_version().1,
            tansu_version()
                .map(|v| format!(" (tansu build found: {v})"))
                .unwrap_or_default()
        ),
        format!("command: `{}`", command()),
    ]
}
