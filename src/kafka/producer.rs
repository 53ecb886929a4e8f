//! The process's one producer, for every record maxq writes to Kafka of its own accord:
//! resume points, the roll-up changelog, the lease and dead letters.
//!
//! Each record carries the [`DeliveryTracker`] of whoever sent it (librdkafka's delivery
//! opaque), so a sender knows when its own records have settled and whether any failed,
//! whatever else the producer carries. No thread of its own polls it: whoever waits on a
//! delivery serves the reports, with zero-timeout polls (rdkafka's timed polls spin through
//! their last millisecond: a `ThreadedProducer` spins about 1 ms in every 100, idle or
//! not), and operators can ask to be woken when reports come ([`SharedProducer::wake_on_reports`]).
//!
//! Ordered without the idempotent producer: one request in flight per broker. A retried
//! record written twice is harmless (the newest record per key wins, a duplicate lands
//! before anything newer, a dead letter is delivered at least once). Not idempotent because
//! acquiring a producer id can stall for seconds (seen with tansu).

use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::{RDKafka, RDKafkaErrorCode};
use rdkafka::{ClientContext, Message};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use timely::scheduling::SyncActivator;

use super::{client_config, client_error, DeliveryTracker, KafkaError};
use crate::config::Connection;

/// How long librdkafka tries to deliver a record before it counts as failed.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a sender waits for all its records to settle: as long as librdkafka tries
/// them, and a little more for the reports to be served.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(MESSAGE_TIMEOUT.as_secs() + 5);

/// The longest a wait for deliveries sleeps between looks (it sleeps 1 ms, then twice as
/// long each time): a broker under load can take a second to answer.
const LOOK_AT_MOST_EVERY: Duration = Duration::from_millis(64);

/// Events served at most by one [`SharedProducer::serve`].
const EVENTS_PER_SERVE: usize = 64;

/// Records sent, each with its sender's tracker.
pub type Record<'a> = BaseRecord<'a, [u8], [u8], Arc<DeliveryTracker>>;

/// The process's producer, shared by its workers, the sinks' writer threads and the lease.
pub struct SharedProducer {
    producer: BaseProducer<Tallied>,
    /// Woken when reports come; declared after `producer` so that it outlives it, as the
    /// producer's callback points at it.
    waiting: Arc<Waiting>,
}

/// Settles each record's delivery on the tracker it was sent with.
#[derive(Default)]
struct Tallied {
    /// Delivery reports served, of every sender: whether a poll served one.
    reports: AtomicU64,
}

impl ClientContext for Tallied {}

impl ProducerContext for Tallied {
    type DeliveryOpaque = Arc<DeliveryTracker>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracker: Arc<DeliveryTracker>) {
        match result {
            Ok(message) => tracker.delivered_at(message.offset()),
            Err((e, _)) => tracker.fail(e),
        }
        tracker.settle();
        self.reports.fetch_add(1, Relaxed);
    }
}

/// The operators to wake when reports come.
#[derive(Default)]
struct Waiting(Mutex<Vec<SyncActivator>>);

/// librdkafka calls this from a thread of its own, holding the producer's main queue's
/// lock, when that queue gets an event after being empty: a delivery report has come.
unsafe extern "C" fn reports_arrived(_client: *mut RDKafka, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Waiting` of the shared producer whose client this is; it
    // outlives the client.
    let waiting = unsafe { &*opaque.cast::<Waiting>() };
    for operator in waiting
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        let _ = operator.activate();
    }
}

impl SharedProducer {
    /// Creates the process's producer.
    pub fn connect(connection: &Connection) -> Result<SharedProducer, KafkaError> {
        let timeout = MESSAGE_TIMEOUT.as_millis().to_string();
        let producer: BaseProducer<Tallied> = client_config(
            connection,
            &[
                ("enable.idempotence", "false"),
                ("max.in.flight.requests.per.connection", "1"),
                ("acks", "all"),
                ("linger.ms", "0"),
                ("message.timeout.ms", &timeout),
                // A malformed message can be as large as the broker allowed it to be.
                ("message.max.bytes", "16777216"),
            ],
        )
        .create_with_context(Tallied::default())
        .map_err(client_error("creating the producer"))?;
        let waiting = Arc::<Waiting>::default();
        // SAFETY: the client pointer is valid while `producer` lives. The queue handle only
        // holds a reference to the client's main queue, which keeps the callback after the
        // handle is destroyed. `waiting` outlives the producer: both are fields of the
        // shared producer, dropped in order.
        unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(producer.client().native_ptr());
            rdsys::rd_kafka_queue_cb_event_enable(
                queue,
                Some(reports_arrived),
                Arc::as_ptr(&waiting).cast_mut().cast(),
            );
            rdsys::rd_kafka_queue_destroy(queue);
        }
        Ok(SharedProducer { producer, waiting })
    }

    /// Activates `operator` whenever delivery reports come, so that it can wait for its
    /// records without polling.
    pub fn wake_on_reports(&self, operator: SyncActivator) {
        self.waiting
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(operator);
    }

    /// Queues `record`, waiting for queue space (serving reports meanwhile, which frees
    /// it); a record that cannot be queued at all settles as failed on its tracker.
    pub fn send(&self, mut record: Record<'_>) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    self.serve();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, r)) => {
                    r.delivery_opaque.unsent(&e);
                    return;
                }
            }
        }
    }

    /// Serves the delivery reports that have come, without waiting.
    pub fn serve(&self) {
        let reports = &self.producer.context().reports;
        // Each poll serves one event (one delivery report holds a request's records), until
        // one serves no report: the queue is then empty, in practice, and its next report
        // wakes the waiting operators again.
        for _ in 0..EVENTS_PER_SERVE {
            let before = reports.load(Relaxed);
            self.producer.poll(Duration::ZERO);
            if reports.load(Relaxed) == before {
                break;
            }
        }
    }

    /// Waits until `tracker` has settled `sent` records, at most `timeout`; whether any
    /// failed is the tracker's to tell.
    pub fn wait(
        &self,
        tracker: &DeliveryTracker,
        sent: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            self.serve();
            if tracker.settled() >= sent {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not written within {}",
                    humantime::format_duration(timeout)
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(LOOK_AT_MOST_EVERY);
        }
    }
}
