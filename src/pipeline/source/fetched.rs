//! A message as librdkafka hands it over, read in place: the source reads its partitions'
//! queues in batches of librdkafka's own messages, and serves the consumer's queue through
//! rdkafka; both come to the same view.

use rdkafka::bindings as rdsys;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;

/// A message librdkafka fetched, or an error in its place (the partition's end, say).
pub struct Fetched<'a> {
    raw: &'a rdsys::rd_kafka_message_t,
}

impl<'a> Fetched<'a> {
    /// A message of librdkafka's batch consume.
    pub fn new(raw: &'a rdsys::rd_kafka_message_t) -> Fetched<'a> {
        Fetched { raw }
    }

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
