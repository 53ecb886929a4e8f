//! One instance per group and topic. Two `maxq run` with the same `--group` and `--topic`
//! that are not one cluster would each read every partition and write every point twice,
//! silently. Process 0 of a cluster therefore holds a lease: a record keyed
//! `group/topic/lease` in a topic of maxq's own, `<--resume-topic>.lease` (apart from the
//! resume log, which every start reads whole), renewed every [`RENEW`]. A process 0 that sees
//! the lease renewed by another instance refuses to start; a holder that sees another
//! instance take the lease (after it was cut off for longer than [`EXPIRY`]) exits.
//!
//! Liveness is judged on the reader's own clock, by watching for renewals, so clocks that
//! disagree between hosts do not matter; a lease renewed long before [`STALE`] is not watched.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::info;

use crate::config::KafkaConfig;
use crate::exit;
use crate::kafka::producer::{Record as Sent, SharedProducer};
use crate::kafka::{client_error, DeliveryTracker, KafkaError, LogContext, METADATA_TIMEOUT};
use crate::pipeline::commit::resume_log::open_reader;
use crate::targets;

/// How long writing a lease record may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the holder renews its lease.
const RENEW: Duration = Duration::from_secs(2);
/// Most events the holder serves between renewals.
const ARRIVED_AT_MOST: usize = 1024;
/// A holder that renewed nothing for this long, as the reader watched, is gone.
pub const EXPIRY: Duration = Duration::from_secs(10);
/// A lease last renewed this long ago by its holder's clock is gone without watching:
/// longer than any clock difference between hosts worth allowing for.
const STALE: Duration = Duration::from_secs(120);

/// One lease record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    /// This start of this instance's process 0.
    holder: String,
    /// Its host name, for the message.
    host: String,
    /// Its `-n`.
    processes: usize,
    /// When it wrote this record, by its clock (Unix ms).
    renewed_ms: i64,
    /// Given up: the next instance need not wait.
    released: bool,
}

/// Another instance holds the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Kafka failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The lease could not be written.
    #[error("writing the lease to {topic} (named after --resume-topic): {cause}")]
    Write {
        /// The lease topic.
        topic: String,
        /// What failed.
        cause: String,
    },
    /// Another instance renewed the lease while this one watched.
    #[error("another maxq instance (process 0 on host {host}, -n {processes}) is running for --group {group} and --topic {topic}: two instances that are not one cluster would each read every partition and write every point. Stop it, start this process as part of its cluster (the same -n, with -h or --peers), or give this one its own --group")]
    Held {
        /// The holder's host.
        host: String,
        /// The holder's `-n`.
        processes: usize,
        /// `--group`.
        group: String,
        /// `--topic`.
        topic: String,
    },
}

/// The lease this process holds, renewed by a thread of its own until [`release`]d.
struct Lease {
    /// Sent (or dropped) to give the lease up.
    stop: mpsc::Sender<()>,
    /// Told once the lease is given up.
    released: mpsc::Receiver<()>,
}

/// How long a process on its way out waits to give its lease up (the restarted cluster then
/// need not wait for it to expire).
pub const LAST_WORDS: Duration = Duration::from_secs(1);

/// The lease held, where the paths that end the process can give it up.
static HELD: Mutex<Option<Lease>> = Mutex::new(None);

fn key(kafka: &KafkaConfig) -> String {
    format!("{}/{}/lease", kafka.group, kafka.topic)
}

/// The topic the leases are kept in.
fn topic(kafka: &KafkaConfig) -> String {
    format!("{}.lease", kafka.resume_topic)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // fails.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(0);
    if ok {
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        "unknown".to_owned()
    }
}

/// The lease records of one key, read as they arrive, by a consumer of their own.
///
/// Not the process's consumer: while the lease's partition is at its end, a fetch of it is
/// held by the broker for up to `fetch.wait.max.ms`, and whenever the workers' partitions
/// have their queues full it is the only one fetched, stalling them (in-process, 1.5 M
/// readings took 6.5 s with `-w 2` instead of 2.3). Nor can the holder leave it paused and
/// look at its end offset instead: over tansu those look-ups, on the process consumer,
/// timed out at every renewal, and the workers read 1.5 M readings in 159 s instead of 59,
/// or not at all.
struct Reader {
    consumer: BaseConsumer<LogContext>,
    key: String,
    /// The offset of the next record.
    next: std::cell::Cell<i64>,
}

impl Reader {
    fn new(kafka: &KafkaConfig) -> Result<Reader, KafkaError> {
        let (consumer, low, _) = open_reader(kafka, &topic(kafka), "maxq-lease-reader", "lease")?;
        Ok(Reader {
            consumer,
            key: key(kafka),
            next: std::cell::Cell::new(low),
        })
    }

    /// The lease records that arrive within `wait`, in order.
    fn poll(&self, wait: Duration) -> Vec<Record> {
        let deadline = Instant::now() + wait;
        let mut records = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return records;
            }
            // Errors (a partition's end, a broker that comes and goes) are librdkafka's to
            // retry; the lease only needs the records.
            let Some(Ok(message)) = self.consumer.poll(left.min(Duration::from_millis(100))) else {
                continue;
            };
            self.next.set(message.offset() + 1);
            records.extend(self.record(&message));
        }
    }

    /// `message` as a record of this lease's key.
    fn record(&self, message: &impl Message) -> Option<Record> {
        message
            .payload()
            .filter(|_| message.key() == Some(self.key.as_bytes()))
            .and_then(|p| serde_json::from_slice(p).ok())
    }

    /// The lease records that have arrived, without waiting (at most a renewal's worth of
    /// events, should errors keep coming).
    fn arrived(&self) -> Vec<Record> {
        let mut records = Vec::new();
        for _ in 0..ARRIVED_AT_MOST {
            let Some(result) = self.consumer.poll(Duration::ZERO) else {
                break;
            };
            if let Ok(message) = result {
                self.next.set(message.offset() + 1);
                records.extend(self.record(&message));
            }
        }
        records
    }

    /// Every record up to the end offset the topic has now.
    fn read_to_end(&self, kafka: &KafkaConfig) -> Result<Vec<Record>, KafkaError> {
        let (_, high) = self
            .consumer
            .fetch_watermarks(&topic(kafka), 0, METADATA_TIMEOUT)
            .map_err(client_error("reading the lease"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut records = Vec::new();
        while self.next.get() < high && Instant::now() < deadline {
            records.extend(self.poll(Duration::from_millis(100)));
        }
        Ok(records)
    }
}

/// Writes the lease records, with the process's producer.
struct Writer {
    producer: Arc<SharedProducer>,
    topic: String,
    key: String,
    record: Record,
}

impl Writer {
    fn write(&mut self, released: bool) -> Result<(), String> {
        self.record.renewed_ms = now_ms();
        self.record.released = released;
        let payload = serde_json::to_vec(&self.record).expect("a lease record serializes");
        let tracker = Arc::<DeliveryTracker>::default();
        self.producer.send(
            Sent::with_opaque_to(&self.topic, tracker.clone())
                .key(self.key.as_bytes())
                .payload(&payload),
        );
        self.producer.wait(&tracker, 1, WRITE_TIMEOUT)?;
        tracker.check()
    }
}

/// Takes the lease for `kafka`'s group and topic, waiting up to [`EXPIRY`] for a holder
/// that may be gone; refuses when another instance is alive. Held until [`release`], written
/// by the process's `producer`.
pub fn acquire(
    kafka: &KafkaConfig,
    processes: usize,
    producer: &Arc<SharedProducer>,
) -> Result<(), LeaseError> {
    let reader = Reader::new(kafka)?;
    let mut latest = reader.read_to_end(kafka)?.pop();
    let held = |r: &Record| LeaseError::Held {
        host: r.host.clone(),
        processes: r.processes,
        group: kafka.group.clone(),
        topic: kafka.topic.clone(),
    };
    let watching = Instant::now();
    while let Some(current) = latest.as_ref().filter(|r| !r.released) {
        let stale = now_ms() - current.renewed_ms > STALE.as_millis() as i64;
        if stale || watching.elapsed() >= EXPIRY {
            break;
        }
        if let Some(renewed) = reader.poll(Duration::from_millis(250)).pop() {
            if !renewed.released {
                return Err(held(&renewed));
            }
            latest = Some(renewed);
        }
    }
    if watching.elapsed() >= EXPIRY {
        info!(target: targets::RUN, waited = ?watching.elapsed(), "the previous instance's lease expired; taking it");
    }
    let holder = format!("{}/{}/{}", host_name(), std::process::id(), now_ms());
    let mut writer = Writer {
        producer: producer.clone(),
        topic: topic(kafka),
        key: key(kafka),
        record: Record {
            holder: holder.clone(),
            host: host_name(),
            processes,
            renewed_ms: 0,
            released: false,
        },
    };
    writer.write(false).map_err(|cause| LeaseError::Write {
        topic: topic(kafka),
        cause,
    })?;
    // Two instances that started together: the first record after the free lease wins.
    let deadline = Instant::now() + Duration::from_secs(10);
    'ours: while Instant::now() < deadline {
        for record in reader.poll(Duration::from_millis(100)) {
            if record.holder == holder {
                break 'ours;
            }
            if !record.released {
                return Err(held(&record));
            }
        }
    }
    let (stop, stopped) = mpsc::channel();
    let (tell, released) = mpsc::channel();
    let (group, topic) = (kafka.group.clone(), kafka.topic.clone());
    let kafka = kafka.clone();
    std::thread::Builder::new()
        .name("maxq:lease".into())
        .spawn(move || {
            let mut renewed = Instant::now();
            // Asleep between renewals: a lease that expires after EXPIRY does not need
            // watching more often than it is renewed.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(RENEW) {
                // Not renewed for EXPIRY (frozen, cut off): another instance may have taken
                // the lease meanwhile, and what was written since may not have arrived yet.
                // Renewing before reading it all would make that instance exit instead.
                let records = if renewed.elapsed() < EXPIRY {
                    reader.arrived()
                } else {
                    match reader.read_to_end(&kafka) {
                        Ok(records) => records,
                        Err(_) => continue,
                    }
                };
                let taken = records
                    .into_iter()
                    .find(|r| r.holder != holder && !r.released);
                if let Some(other) = taken {
                    eprintln!(
                        "maxq: error: another maxq instance (process 0 on host {}, -n {}) took the lease of --group {group} and --topic {topic} while this one could not renew it; exiting with code {} so that only one instance writes",
                        other.host, other.processes, exit::ERROR
                    );
                    std::process::exit(i32::from(exit::ERROR));
                }
                // A renewal that fails is retried at the next one; the lease lasts EXPIRY.
                if writer.write(false).is_ok() {
                    renewed = Instant::now();
                }
            }
            let _ = writer.write(true);
            let _ = tell.send(());
        })
        .expect("spawning the lease thread");
    *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some(Lease { stop, released });
    Ok(())
}

/// Gives the lease up (waiting at most `within` for the record to be written), so that the
/// next instance, or this one restarted, starts without waiting for it to expire.
pub fn release(within: Duration) {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(lease) = held {
        let _ = lease.stop.send(());
        let _ = lease.released.recv_timeout(within);
    }
}
