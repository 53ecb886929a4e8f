//! What a cluster of processes needs beside timely: a deadline for connecting, one clear
//! line when a process is lost, and an exit when this process cannot go on.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::cli::ClusterArgs;
use crate::exit;

/// Set once a worker of this process exits with an error of its own.
static EXITING_ON_FATAL: AtomicBool = AtomicBool::new(false);

/// timely cannot replace a lost process: its network threads panic ("timely communication
/// error"), and then every worker ("MergeQueue poisoned"). Exiting is right, as the cluster
/// is restarted whole and resumes from the resume log; the panics are not a message. The
/// first such panic prints one line naming the peer and exits [`exit::PEER_LOST`], unless
/// this process is already on its way out with an error of its own ([`exit_on_fatal`]): the
/// peer's loss is then a consequence, and that exit's line and code stand. Any other panic
/// is reported as usual.
pub fn exit_when_a_peer_is_lost() {
    static EXITING: Mutex<()> = Mutex::new(());
    let usual = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        let thread = std::thread::current();
        let peer = thread.name().and_then(|name| {
            name.strip_prefix("timely:recv-")
                .or_else(|| name.strip_prefix("timely:send-"))
        });
        let lost = peer.is_some()
            || message.contains("timely communication error")
            || message.contains("MergeQueue poisoned");
        if !lost {
            return usual(info);
        }
        if EXITING_ON_FATAL.load(Relaxed) {
            // The thread in exit_on_fatal exits once it has given the lease up.
            loop {
                std::thread::park();
            }
        }
        // The first thread prints and exits; the others wait for the exit.
        let _first = EXITING.lock();
        let who = peer.map_or("another process of the cluster".to_owned(), |p| {
            format!("cluster process {p}")
        });
        eprintln!(
            "maxq: error: lost the connection to {who} ({message}); exiting with code {}: restart every process of the cluster, it resumes from the resume log and writes the points a fault-free run writes",
            exit::PEER_LOST
        );
        super::lease::release(super::lease::LAST_WORDS);
        std::process::exit(exit::PEER_LOST);
    }));
}

/// timely waits for every process of the cluster without a deadline: fail clearly instead
/// when they are not all there in time.
pub fn connect_watchdog(cluster: &ClusterArgs, connected: Arc<AtomicBool>) {
    let timeout = cluster.connect_timeout;
    let processes = cluster.processes;
    let hosts = match (&cluster.peers, &cluster.hostfile) {
        (Some(peers), _) => format!("--peers {peers}"),
        (None, Some(h)) => format!("-h {}", h.display()),
        (None, None) => "localhost:2101+index".to_owned(),
    };
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        if !connected.load(Relaxed) {
            eprintln!(
                "maxq: error: the -n {processes} processes at {hosts} did not all connect within --connect-timeout {}: start every process with the same -n and -h or --peers, each with its own -p (found with --peers dns:…), and check that the addresses are reachable",
                humantime::format_duration(timeout)
            );
            std::process::exit(exit::NOT_CONNECTED);
        }
    });
}

/// A worker of a cluster hit an error that ends the run. Its process cannot wind down as a
/// single process does: timely keeps it until every process hangs up, and the others wait
/// for its progress forever. It prints the error and exits; the others then see it lost.
pub fn exit_on_fatal(fatal: &str) -> ! {
    EXITING_ON_FATAL.store(true, Relaxed);
    eprintln!("maxq: error: {fatal}");
    super::lease::release(super::lease::LAST_WORDS);
    std::process::exit(i32::from(exit::ERROR));
}
