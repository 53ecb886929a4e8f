//! Every configuration error names its flag and the fix.

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn run_args(flags: &[&str]) -> RunArgs {
    let argv = ["maxq", "run"].iter().chain(flags);
    match Cli::try_parse_from(argv).expect("flags that parse").command {
        Some(Command::Run(args)) => args,
        other => panic!("not a run: {other:?}"),
    }
}

/// The message `maxq run <flags>` is refused with.
fn refused(flags: &[&str]) -> String {
    let args = run_args(flags);
    match (RunConfig::from_args(&args), timely_config(&args.cluster)) {
        (Err(e), _) | (Ok(_), Err(e)) => e.to_string(),
        (Ok(_), Ok(_)) => panic!("{flags:?} accepted"),
    }
}

#[test]
fn each_error_names_the_flag_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let one_host = dir.path().join("hosts");
    std::fs::write(&one_host, "localhost:2101\n").unwrap();
    let one_host = one_host.to_str().unwrap();
    let url = ["--influx-url", "http://localhost:8086"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--window", "0ms"], "--window and --slide must be at least 1ms (e.g. --window 1m)"),
        (vec!["--slide", "2m"], "--slide (120000ms) is longer than --window (60000ms)"),
        (vec!["--epoch", "0s"], "--epoch must be positive (e.g. --epoch 250ms)"),
        (vec!["--topic", ""], "--topic is empty: name the topic to read"),
        (vec!["--dead-letter-topic", "telemetry"], "--dead-letter-topic must differ from --topic"),
        (vec!["--resume-topic", "telemetry"], "--resume-topic must differ from --topic"),
        (vec!["--dead-letter-topic", "maxq.resume"], "--dead-letter-topic must differ from --resume-topic"),
        (vec!["--max-future", "1h"], "--max-future (1h) must be shorter than --max-state-age (1h)"),
        (vec!["--measurement", ""], "--measurement must be non-empty"),
        (vec!["--batch-size", "0"], "--batch-size must be at least 1"),
        (vec!["--sink-buffer", "0"], "--sink-buffer must be at least 1 (points)"),
        (vec!["--influx-url", "not a url"], "--influx-url \"not a url\" is not a URL"),
        (vec!["--influx-url", "localhost:8086"], "write e.g. http://localhost:8086"),
        ([&url[..], &["--influx-api", "v1"]].concat(), "--influx-api v1 needs --influx-db"),
        (url.to_vec(), "--influx-api v2 needs --influx-org"),
        ([&url[..], &["--influx-org", "o"]].concat(), "--influx-api v2 needs --influx-bucket"),
        (
            vec!["-X", "sasl.password=env:MAXQ_TEST_SURELY_UNSET"],
            "-X sasl.password=env:MAXQ_TEST_SURELY_UNSET: the environment variable MAXQ_TEST_SURELY_UNSET is not set",
        ),
        (vec!["-w", "0"], "-w must be at least 1 worker per process"),
        (vec!["-n", "2", "-p", "2"], "-p 2 is not a process index for -n 2: use 0..1"),
        (vec!["-n", "2", "-h", "/nonexistent/hosts"], "-h /nonexistent/hosts: cannot read the hostfile"),
        (vec!["-n", "2", "-h", one_host], "lists 1 hosts but -n is 2: one host:port line per process"),
        (vec!["-n", "0"], "-n must be at least 1 process"),
        (vec!["-n", "2", "--peers", "dns:pipeline"], "--peers dns:pipeline is not dns:NAME:PORT"),
        (vec!["-n", "2", "--peers", "dns::2101"], "is not dns:NAME:PORT (e.g. --peers dns:pipeline:2101)"),
        (vec!["-n", "2", "-p", "1", "--peers", "dns:pipeline:2101"], "each process finds its own index there; leave -p out"),
        (vec!["-n", "2", "--peers", "pipeline:2101"], "neither dns:NAME:PORT nor a HOST{}:PORT pattern"),
        (vec!["-n", "2", "-p", "2", "--peers", "p-{}.p:2101"], "-p 2 is not a process index for -n 2"),
    ];
    for (flags, says) in cases {
        let message = refused(&flags);
        assert!(message.contains(says), "{flags:?}: {message}");
    }
}

#[test]
fn a_peers_pattern_lists_every_index_and_this_process_listens_on_all_interfaces() {
    let args = run_args(&["-n", "3", "-p", "2", "--peers", "pipeline-{}.pipeline:2101"]);
    let place = cluster::Place {
        process: 2,
        addresses: vec![
            "pipeline-0.pipeline:2101".to_owned(),
            "pipeline-1.pipeline:2101".to_owned(),
            "0.0.0.0:2101".to_owned(),
        ],
    };
    assert_eq!(
        cluster::peers(&args.cluster).unwrap(),
        cluster::Peers::Listed(place)
    );
}

#[test]
fn the_defaults_are_a_valid_configuration() {
    let args = run_args(&[]);
    assert!(RunConfig::from_args(&args).is_ok());
    assert!(timely_config(&args.cluster).is_ok());
}
