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
    /// The holder whose lease this instance took after watching it expire; none when it
    /// found the lease free.
    #[serde(default)]
    after: Option<String>,
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

/// Who holds the lease, by the log. Every instance reads the same records in the same
/// order, and so agrees: a record of the holder renews its lease (or, released, frees it);
/// a claim takes the lease when it is free, or when it names the holder in `after` (its
/// writer watched that holder's lease expire). Any other record changes nothing: the claim
/// of an instance that lost the race for a free lease, or a renewal that a holder cut off
/// wrote after its lease was taken (it exits once it reads the claim).
#[derive(Default)]
struct Holder(Option<Record>);

impl Holder {
    /// Applies the next record; whether it renewed or took the lease.
    fn apply(&mut self, record: Record) -> bool {
        let current = self.0.as_ref().map(|r| r.holder.as_str());
        if current == Some(record.holder.as_str()) {
            let renewed = !record.released;
            self.0 = renewed.then_some(record);
            renewed
        } else if !record.released && (current.is_none() || record.after.as_deref() == current) {
            self.0 = Some(record);
            true
        } else {
            false
        }
    }

    fn is(&self, holder: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.holder == holder)
    }
}

/// The lease records of one key, read in order by a consumer of their own.
///
/// Not the process's consumer: a partition at its end among the workers' is fetched alone
/// whenever their queues are full, and the broker holds that fetch for `fetch.wait.max.ms`
/// (in-process, 1.5 M readings took 6.5 s with `-w 2` instead of 2.3 at 500 ms). Nor is a
/// reader kept while the lease is held: the holder knows where its own renewals landed,
/// and reads the records between two of them only when there are any.
struct Reader {
    consumer: BaseConsumer<LogContext>,
    key: String,
    /// The offset of the next record.
    next: std::cell::Cell<i64>,
}

impl Reader {
    /// A reader from offset `from`, or from the first there is.
    fn new(kafka: &KafkaConfig, from: Option<i64>) -> Result<Reader, KafkaError> {
        let (consumer, start, _) =
            open_reader(kafka, &topic(kafka), "maxq-lease-reader", "lease", from)?;
        Ok(Reader {
            consumer,
            key: key(kafka),
            next: std::cell::Cell::new(start),
        })
    }

    /// The records that arrive, in order, while `more` holds, until `deadline`.
    fn read_while(&self, more: impl Fn(i64) -> bool, deadline: Instant) -> Vec<Record> {
        let mut records = Vec::new();
        while more(self.next.get()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Errors (a partition's end, a broker that comes and goes) are librdkafka's to
            // retry; the lease only needs the records.
            let Some(Ok(message)) = self.consumer.poll(left.min(Duration::from_millis(100))) else {
                continue;
            };
            // Over tansu, the last record read can come again right after the end offset is
            // reached: a second reading of a record is not a renewal.
            if message.offset() < self.next.get() {
                continue;
            }
            self.next.set(message.offset() + 1);
            records.extend(
                message
                    .payload()
                    .filter(|_| message.key() == Some(self.key.as_bytes()))
                    .and_then(|p| serde_json::from_slice(p).ok()),
            );
        }
        records
    }

    /// The records that arrive within `wait`.
    fn poll(&self, wait: Duration) -> Vec<Record> {
        self.read_while(|_| true, Instant::now() + wait)
    }

    /// The records up to offset `last`, or as many as arrive within [`WRITE_TIMEOUT`];
    /// whether all did.
    fn read_through(&self, last: i64) -> (Vec<Record>, bool) {
        let records = self.read_while(|next| next <= last, Instant::now() + WRITE_TIMEOUT);
        (records, self.next.get() > last)
    }

    /// Every record up to the end offset the topic has now.
    fn read_to_end(&self, kafka: &KafkaConfig) -> Result<Vec<Record>, KafkaError> {
        let (_, high) = self
            .consumer
            .fetch_watermarks(&topic(kafka), 0, METADATA_TIMEOUT)
            .map_err(client_error("reading the lease"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        Ok(self.read_while(|next| next < high, deadline))
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
    /// Writes the record; the offset it landed at.
    fn write(&mut self, released: bool) -> Result<i64, String> {
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
        tracker.check()?;
        tracker
            .last_offset()
            .ok_or_else(|| "delivered without an offset".to_owned())
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
    let reader = Reader::new(kafka, None)?;
    let mut lease = Holder::default();
    for record in reader.read_to_end(kafka)? {
        lease.apply(record);
    }
    let held = |r: &Record| LeaseError::Held {
        host: r.host.clone(),
        processes: r.processes,
        group: kafka.group.clone(),
        topic: kafka.topic.clone(),
    };
    let watching = Instant::now();
    while let Some(current) = &lease.0 {
        let stale = now_ms() - current.renewed_ms > STALE.as_millis() as i64;
        if stale || watching.elapsed() >= EXPIRY {
            break;
        }
        for record in reader.poll(Duration::from_millis(250)) {
            if lease.apply(record.clone()) {
                return Err(held(&record));
            }
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
            after: lease.0.as_ref().map(|r| r.holder.clone()),
        },
    };
    let write_error = |cause| LeaseError::Write {
        topic: topic(kafka),
        cause,
    };
    let mut ours = writer.write(false).map_err(write_error)?;
    // Two instances that took the lease together: the first claim wins.
    let (records, all) = reader.read_through(ours);
    if !all {
        return Err(write_error(format!(
            "it was written but not read back within {WRITE_TIMEOUT:?}"
        )));
    }
    for record in records {
        lease.apply(record);
    }
    if let Some(other) = lease.0.as_ref().filter(|_| !lease.is(&holder)) {
        return Err(held(other));
    }
    drop(reader);
    let (stop, stopped) = mpsc::channel();
    let (tell, released) = mpsc::channel();
    let (group, topic) = (kafka.group.clone(), kafka.topic.clone());
    let kafka = kafka.clone();
    std::thread::Builder::new()
        .name("maxq:lease".into())
        .spawn(move || {
            // Kept while others write: dropped at the first renewal that follows the last.
            let mut reader = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(RENEW) {
                // A renewal that fails is retried at the next one; the lease lasts EXPIRY.
                let Ok(renewal) = writer.write(false) else {
                    continue;
                };
                if renewal == ours + 1 {
                    ours = renewal;
                    reader = None;
                    continue;
                }
                // Something was written since our last record: read it, through our own.
                if reader.is_none() {
                    reader = Reader::new(&kafka, Some(ours + 1)).ok();
                }
                let Some(between) = &reader else {
                    continue;
                };
                let (records, all) = between.read_through(renewal);
                for record in records {
                    lease.apply(record);
                }
                if let Some(other) = lease.0.as_ref().filter(|_| !lease.is(&holder)) {
                    eprintln!(
                        "maxq: error: another maxq instance (process 0 on host {}, -n {}) took the lease of --group {group} and --topic {topic} while this one could not renew it; exiting with code {} so that only one instance writes",
                        other.host, other.processes, exit::ERROR
                    );
                    std::process::exit(i32::from(exit::ERROR));
                }
                if all {
                    ours = renewal;
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
