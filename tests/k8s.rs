//! The Kubernetes manifests hold what the README promises of them (no cluster runs here):
//! a headless Service publishing not-ready addresses, a StatefulSet starting its pods in
//! parallel whose replica count is the processes' count, `-p` from the pod index, the
//! peers through the Service, and the token from the Secret the other file defines.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The value of the first `key: value` line (trimmed, unquoted) after `after`.
fn value<'a>(text: &'a str, after: &str, key: &str) -> &'a str {
    let start = text.find(after).unwrap_or_else(|| panic!("no {after}"));
    text[start..]
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} after {after}"))
        .trim()
        .trim_matches('"')
}

#[test]
fn the_statefulset_is_one_cluster_found_through_its_headless_service() {
    let manifest = read("cluster/k8s/pipeline.yaml");
    let documents: Vec<&str> = manifest.split("\n---\n").collect();
    let kind = |k: &str| {
        documents
            .iter()
            .find(|d| d.contains(&format!("kind: {k}\n")))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let service = kind("Service");
    assert_eq!(value(service, "spec:", "clusterIP"), "None");
    assert_eq!(value(service, "spec:", "publishNotReadyAddresses"), "true");
    assert_eq!(value(service, "ports:", "port"), "2101");
    let config = kind("ConfigMap");
    let set = kind("StatefulSet");
    assert_eq!(value(set, "spec:", "podManagementPolicy"), "Parallel");
    assert_eq!(value(set, "spec:", "serviceName"), "pipeline");
    assert_eq!(
        value(set, "spec:", "replicas"),
        value(config, "data:", "MAXQ_PROCESSES")
    );
    assert_eq!(
        value(config, "data:", "MAXQ_PEERS"),
        "pipeline-{}.pipeline:2101"
    );
    assert_eq!(
        value(set, "name: MAXQ_PROCESS\n", "fieldPath"),
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    let secret = read("cluster/k8s/secret.yaml");
    let token = value(set, "name: INFLUX_TOKEN\n", "secretKeyRef");
    assert_eq!(
        token,
        format!(
            "{{ name: {}, key: token }}",
            value(&secret, "metadata:", "name")
        )
    );
    assert!(!value(&secret, "stringData:", "token").is_empty());
    let metrics_port = value(config, "data:", "MAXQ_METRICS_ADDR")
        .rsplit(':')
        .next()
        .unwrap();
    assert_eq!(value(set, "name: metrics\n", "containerPort"), metrics_port);
    assert_eq!(
        value(set, "annotations:", "prometheus.io/port"),
        metrics_port
    );
    for probe in ["livenessProbe:", "readinessProbe:"] {
        assert_eq!(
            value(set, probe, "httpGet"),
            "{ path: /healthz, port: metrics }"
        );
    }
}
