//! timely's configuration from `-w/-n/-p/-h`.

use super::{invalid, ConfigError};
use crate::cli::ClusterArgs;

/// Updates of merge work an idle arrangement does per activation, so a merge in progress
/// finishes (and frees its inputs) without waiting for new data.
const IDLE_MERGE_EFFORT: isize = 100_000;

/// timely's configuration from `-w/-n/-p/-h`, as timely's own getopts parsing would build it.
pub fn timely_config(c: &ClusterArgs) -> Result<timely::Config, ConfigError> {
    use timely::CommunicationConfig;
    if c.workers == 0 {
        return invalid("-w must be at least 1 worker per process");
    }
    if c.processes == 0 || c.process >= c.processes {
        return invalid(format!(
            "-p {} is not a process index for -n {}: use 0..{}",
            c.process,
            c.processes,
            c.processes.max(1) - 1
        ));
    }
    let communication = if c.processes > 1 {
        let addresses = match &c.hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!(
                        "-h {}: cannot read the hostfile: {e}",
                        path.display()
                    ))
                })?;
                let hosts: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .take(c.processes)
                    .map(str::to_owned)
                    .collect();
                if hosts.len() < c.processes {
                    return invalid(format!(
                        "-h {} lists {} hosts but -n is {}: one host:port line per process",
                        path.display(),
                        hosts.len(),
                        c.processes
                    ));
                }
                hosts
            }
            None => (0..c.processes)
                .map(|i| format!("localhost:{}", 2101 + i))
                .collect(),
        };
        CommunicationConfig::Cluster {
            threads: c.workers,
            process: c.process,
            addresses,
            report: false,
            zerocopy: false,
        }
    } else if c.workers > 1 {
        CommunicationConfig::Process(c.workers)
    } else {
        CommunicationConfig::Thread
    };
    let mut worker = timely::WorkerConfig::default();
    differential_dataflow::configure(
        &mut worker,
        &differential_dataflow::Config::default().idle_merge_effort(Some(IDLE_MERGE_EFFORT)),
    );
    Ok(timely::Config {
        communication,
        worker,
    })
}
