//! A message as librdkafka hands it over, read in place, and reading a queue in batches of
//! them: the source reads its partitions' queues so, and serves the consumer's queue
//! through rdkafka; both come to the same view. Polling message by message reads the clock
//! three times a message (librdkafka twice, rdkafka once), a batch once: over tansu the
//! clock alone was about 8 % of a backfill's CPU, and rdkafka's event handling per message
//! a few percent more.

use rdkafka::bindings as rdsys;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;

/// Reads up to `max` messages (and errors, such as a partition's end) of `queue` with
/// librdkafka's batch consume, waiting at most `timeout_ms` for the first, and hands each to
/// `each` in order, destroying it right after; how many there were. `buffer` is scratch
/// space, kept by the caller from one read to the next.
///
/// # Safety
/// `queue` is a valid librdkafka queue handle for the whole call.
pub unsafe fn read_batch(
    queue: *mut rdsys::rd_kafka_queue_t,
    timeout_ms: i32,
    max: usize,
    buffer: &mut Vec<*mut rdsys::rd_kafka_message_t>,
    mut each: impl FnMut(&Fetched<'_>),
) -> usize {
    buffer.clear();
    buffer.reserve(max);
    // SAFETY: `queue` is valid (the caller's promise); librdkafka writes at most `max`
    // message pointers into the buffer's spare capacity and returns their count.
    let count =
        unsafe { rdsys::rd_kafka_consume_batch_queue(queue, timeout_ms, buffer.as_mut_ptr(), max) };
    let Ok(count) = usize::try_from(count) else {
        return 0;
    };
    // SAFETY: the first `count` entries were written.
    unsafe { buffer.set_len(count) };
    for raw in buffer.drain(..) {
        // SAFETY: a message librdkafka returned, valid until destroyed right after.
        each(&Fetched {
            raw: unsafe { &*raw },
        });
        // SAFETY: each message of the batch is destroyed once, here.
        unsafe { rdsys::rd_kafka_message_destroy(raw) };
    }
    count
}

/// A message librdkafka fetched, or an error in its place (the partition's end, say).
pub struct Fetched<'a> {
    raw: &'a rdsys::rd_kafka_message_t,
}

impl<'a> Fetched<'a> {
    /// The message rdkafka polled off a queue.
    pub fn of(message: &'a BorrowedMessage<'_>) -> Fetched<'a> {
        // SAFETY: the message is valid while `message` is borrowed.
        Fetched {
            raw: unsafe { &*message.ptr() },
        }
    }

    /// The error in the message's place, if any.
    pub fn error(&self) -> Option<RDKafkaErrorCode> {
        (self.raw.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .then(|| self.raw.err.into())
    }

    /// Its partition.
    pub fn partition(&self) -> i32 {
        self.raw.partition
    }

    /// Its offset.
    pub fn offset(&self) -> i64 {
        self.raw.offset
    }

    /// Its payload, empty if it has none.
    pub fn payload(&self) -> &'a [u8] {
        bytes(self.raw.payload, self.raw.len).unwrap_or_default()
    }

    /// Its key.
    pub fn key(&self) -> Option<&'a [u8]> {
        bytes(self.raw.key, self.raw.key_len)
    }

    /// Its timestamp (Unix ms), if it has one: none when librdkafka gives no type or -1, as
    /// rdkafka's `Timestamp::to_millis` reads it.
    pub fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: the message is valid; the call only reads it and writes `kind`.
        let ms = unsafe { rdsys::rd_kafka_message_timestamp(self.raw, &mut kind) };
        let given = kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        (given && ms != -1).then_some(ms)
    }
}

/// The `len` bytes at `data`, which librdkafka keeps alive with the message.
fn bytes<'a>(data: *mut std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: librdkafka's message holds `len` bytes at a non-null `data`.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}
