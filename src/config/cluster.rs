//! timely's configuration from `-w/-n/-p/-h/--peers`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use tracing::info;

use super::{invalid, ConfigError};
use crate::cli::ClusterArgs;
use crate::targets;

/// Updates of merge work an idle arrangement does per activation, so a merge in progress
/// finishes (and frees its inputs) without waiting for new data.
const IDLE_MERGE_EFFORT: isize = 100_000;

/// How often `--peers dns:…` asks again while the answer is not yet the cluster.
const DNS_RETRY: Duration = Duration::from_millis(500);

/// This process's index and every process's `host:port`, process 0 first.
#[derive(Debug, PartialEq, Eq)]
pub struct Place {
    /// This process's index.
    pub process: usize,
    /// Every process's `host:port`.
    pub addresses: Vec<String>,
}

/// Where the processes of a cluster are, as the flags say.
#[derive(Debug, PartialEq, Eq)]
pub enum Peers {
    /// Known from the flags.
    Listed(Place),
    /// `--peers dns:NAME:PORT`: found by [`discover`].
    Dns { name: String, port: u16 },
}

/// The cluster's addresses from `-n/-p/-h/--peers`, checked.
pub fn peers(c: &ClusterArgs) -> Result<Peers, ConfigError> {
    if c.processes == 0 {
        return invalid("-n must be at least 1 process");
    }
    if let Some(spec) = &c.peers {
        if let Some(rest) = spec.strip_prefix("dns:") {
            if let Some(p) = c.process {
                return invalid(format!(
                    "-p {p} with --peers {spec}: each process finds its own index there; leave -p out"
                ));
            }
            let port = rest
                .rsplit_once(':')
                .filter(|(name, _)| !name.is_empty())
                .and_then(|(name, port)| Some((name, port.parse::<u16>().ok()?)));
            let Some((name, port)) = port else {
                return invalid(format!(
                    "--peers {spec} is not dns:NAME:PORT (e.g. --peers dns:pipeline:2101)"
                ));
            };
            return Ok(Peers::Dns {
                name: name.to_owned(),
                port,
            });
        }
        if !spec.contains("{}") {
            return invalid(format!(
                "--peers {spec} is neither dns:NAME:PORT nor a HOST{{}}:PORT pattern (e.g. --peers dns:pipeline:2101 or --peers 'pipeline-{{}}.pipeline:2101')"
            ));
        }
        let mut addresses: Vec<String> = (0..c.processes)
            .map(|i| spec.replace("{}", &i.to_string()))
            .collect();
        // timely binds this process's own entry: listen on every interface, as a pod's own
        // name may not resolve before the pod is up.
        if let Some(own) = addresses.get_mut(c.process.unwrap_or(0)) {
            if let Some((_, port)) = own.rsplit_once(':') {
                *own = format!("0.0.0.0:{port}");
            }
        }
        return listed(c, addresses);
    }
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
    listed(c, addresses)
}

fn listed(c: &ClusterArgs, addresses: Vec<String>) -> Result<Peers, ConfigError> {
    let process = c.process.unwrap_or(0);
    if process >= c.processes {
        return invalid(format!(
            "-p {process} is not a process index for -n {}: use 0..{}",
            c.processes,
            c.processes - 1
        ));
    }
    Ok(Peers::Listed(Place { process, addresses }))
}

/// Resolves `name` until it answers with exactly `processes` addresses, twice in a row, and
/// one of them is this machine's: the addresses sorted, and that one's index.
pub fn discover(
    name: &str,
    port: u16,
    processes: usize,
    timeout: Duration,
) -> Result<Place, ConfigError> {
    let deadline = Instant::now() + timeout;
    let mut previous: Vec<IpAddr> = Vec::new();
    loop {
        let mut answer: Vec<IpAddr> = (name, port)
            .to_socket_addrs()
            .map(|found| found.map(|a| a.ip()).collect())
            .unwrap_or_default();
        answer.sort();
        answer.dedup();
        let own: Vec<usize> = (0..answer.len())
            .filter(|&i| UdpSocket::bind((answer[i], 0)).is_ok())
            .collect();
        if answer.len() == processes && answer == previous && own.len() == 1 {
            let addresses: Vec<String> = answer
                .iter()
                .map(|ip| SocketAddr::new(*ip, port).to_string())
                .collect();
            info!(target: targets::RUN, process = own[0], peers = %addresses.join(","), "found the cluster through --peers dns:{name}:{port}");
            return Ok(Place {
                process: own[0],
                addresses,
            });
        }
        if Instant::now() >= deadline {
            let found = answer
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let mine = if own.is_empty() {
                "none of them is this machine's"
            } else {
                "one of them is this machine's"
            };
            return invalid(format!(
                "--peers dns:{name}:{port}: {name} answered with {} address(es) [{found}] and {mine}, not the -n {processes} processes, within --connect-timeout {}: start -n replicas (e.g. docker compose up --scale pipeline={processes}) and give every one the same -n",
                answer.len(),
                humantime::format_duration(timeout)
            ));
        }
        previous = answer;
        std::thread::sleep(DNS_RETRY);
    }
}

/// timely's configuration from `-w/-n/-p/-h/--peers`, as timely's own getopts parsing would
/// build it from `-w/-n/-p/-h`; `--peers dns:…` is resolved first, waiting up to
/// `--connect-timeout` for the other processes to appear.
pub fn timely_config(c: &ClusterArgs) -> Result<timely::Config, ConfigError> {
    use timely::CommunicationConfig;
    if c.workers == 0 {
        return invalid("-w must be at least 1 worker per process");
    }
    let communication = match peers(c)? {
        _ if c.processes == 1 && c.workers > 1 => CommunicationConfig::Process(c.workers),
        _ if c.processes == 1 => CommunicationConfig::Thread,
        Peers::Dns { name, port } => cluster(
            c.workers,
            discover(&name, port, c.processes, c.connect_timeout)?,
        ),
        Peers::Listed(place) => cluster(c.workers, place),
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

fn cluster(workers: usize, place: Place) -> timely::CommunicationConfig {
    timely::CommunicationConfig::Cluster {
        threads: workers,
        process: place.process,
        addresses: place.addresses,
        report: false,
        zerocopy: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_answers_with_this_machine_alone_is_a_cluster_of_one_found_at_index_0() {
        let found = discover("127.0.0.1", 2101, 1, Duration::from_secs(5)).unwrap();
        assert_eq!(
            found,
            Place {
                process: 0,
                addresses: vec!["127.0.0.1:2101".to_owned()]
            }
        );
    }

    #[test]
    fn too_few_answers_name_what_was_found_and_the_fix() {
        let error = discover("127.0.0.1", 2101, 3, Duration::from_millis(600)).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("answered with 1 address(es) [127.0.0.1]")
                && text.contains("--scale pipeline=3"),
            "{text}"
        );
    }
}
