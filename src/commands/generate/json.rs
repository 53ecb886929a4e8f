//! JSON lines written by hand: the generator's hot path, byte for byte the same for a seed.

use std::io::Write as _;

use super::GeneratedReading;

/// Appends one reading as a JSON line `{"sensor":"..","ts":<int ms>,"value":<f64>,"unit":".."}\n`.
///
/// Strings are JSON-escaped. Values with at most three decimals (all generated ones) are
/// printed by a fast integer path, others in Rust's shortest round-trip form; a
/// non-finite value, which JSON cannot carry, is written as `null`.
pub fn write_json_line(out: &mut Vec<u8>, reading: &GeneratedReading<'_>) {
    out.extend_from_slice(b"{\"sensor\":\"");
    write_escaped(out, reading.sensor);
    out.extend_from_slice(b"\",\"ts\":");
    write_i64(out, reading.ts_ms);
    out.extend_from_slice(b",\"value\":");
    write_f64(out, reading.value);
    out.extend_from_slice(b",\"unit\":\"");
    write_escaped(out, reading.unit);
    out.extend_from_slice(b"\"}\n");
}

fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Fast path: plain names need no escaping at all.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1F => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xF) as usize]);
            }
            // Multi-byte UTF-8 passes through unchanged; JSON allows it raw.
            _ => out.push(b),
        }
    }
}

pub(super) fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    // Fast path for values that are exactly some integer / 1000: printing that decimal
    // parses back to the same f64, because both are the correctly rounded quotient.
    let millis = (v * 1000.0).round();
    if millis.abs() < 1e15 && millis / 1000.0 == v {
        let millis = millis as i64;
        if millis < 0 {
            out.push(b'-');
        }
        let abs = millis.unsigned_abs();
        write_u64(out, abs / 1000);
        out.push(b'.');
        let frac = abs % 1000;
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let keep = if digits[2] != b'0' {
            3
        } else if digits[1] != b'0' {
            2
        } else {
            1
        };
        out.extend_from_slice(&digits[..keep]);
        return;
    }
    // Shortest round-trip digits with an exponent (`1.5e-7`): valid JSON, and short even
    // for huge magnitudes that some parsers reject as 300-digit integers.
    write!(out, "{v:e}").expect("writing to a Vec cannot fail");
}
