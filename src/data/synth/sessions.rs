//! Sessions drawn one at a time from the planted model, and their GRU4Rec TSV text, as a file or a stream.

use std::io::{self, Read};

use super::planted::Planted;
use super::{stream, SynthConfig, BASE_TIME, DAY, EVENT_GAP};
use crate::rng::Xoshiro256;

pub(super) const EVENTS_HEADER: &[u8] = b"SessionId\tItemId\tTime\n";
/// Bytes of event text generated per refill of a [`SessionStream`].
const STREAM_CHUNK: usize = 1 << 16;

/// All sessions (no split) as GRU4Rec TSV text, header first, generated as they are read: memory is the
/// item catalogue (about 4 bytes per item) and a 64 KiB buffer, however many events the config asks for.
/// The bytes equal `train.tsv` followed by `test.tsv` without its header, for the same config.
pub struct SessionStream {
    sessions: Sessions,
    items: Vec<u32>,
    buffer: Vec<u8>,
    position: usize,
}

impl SessionStream {
    /// Fails only on an invalid config (`InvalidInput`).
    pub fn new(config: &SynthConfig) -> io::Result<Self> {
        config.validate()?;
        let mut buffer = Vec::with_capacity(STREAM_CHUNK + 4096);
        buffer.extend_from_slice(EVENTS_HEADER);
        let sessions = Sessions::new(config, Planted::new(config));
        Ok(SessionStream { sessions, items: Vec::new(), buffer, position: 0 })
    }
}

impl Read for SessionStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.position == self.buffer.len() {
            self.buffer.clear();
            self.position = 0;
            while self.buffer.len() < STREAM_CHUNK {
                match self.sessions.next_session(&mut self.items) {
                    Some((session, start)) => push_session(&mut self.buffer, session, start, &self.items),
                    None => break,
                }
            }
        }
        let available = &self.buffer[self.position..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.position += n;
        Ok(n)
    }
}

/// Sessions one at a time, in start order.
pub(super) struct Sessions {
    planted: Planted,
    rng: Xoshiro256,
    next: u64,
    total: u64,
    span: u64,
    signal: f64,
    /// `ln(1 - p)` of the geometric extra length, `None` when every session has exactly two events.
    length_log: Option<f64>,
}

impl Sessions {
    pub(super) fn new(config: &SynthConfig, planted: Planted) -> Self {
        // 2 + Geometric(p) counting failures has mean 2 + (1 - p) / p; solve for p.
        let extra = config.mean_length - 2.0;
        let length_log = (extra > 0.0).then(|| (1.0 - 1.0 / (extra + 1.0)).ln());
        Sessions {
            planted,
            rng: Xoshiro256::new(config.seed, stream::SESSIONS),
            next: 0,
            total: config.sessions,
            span: config.days as u64 * DAY,
            signal: config.signal,
            length_log,
        }
    }

    /// Fills `items` with the next session's items; returns its ID and start time.
    pub(super) fn next_session(&mut self, items: &mut Vec<u32>) -> Option<(u64, u64)> {
        if self.next == self.total {
            return None;
        }
        let session = self.next;
        self.next += 1;
        let start = BASE_TIME + (session as u128 * self.span as u128 / self.total as u128) as u64;
        let length = 2 + match self.length_log {
            // `as` saturates; ln of the smallest unit_open bounds the count anyway.
            Some(log) => (self.rng.unit_open().ln() / log) as usize,
            None => 0,
        };
        let rng = &mut self.rng;
        let planted = &self.planted;
        items.clear();
        let target = rng.unit() * planted.cluster_cdf[planted.cluster_cdf.len() - 1];
        let last = planted.cluster_cdf.len() - 1;
        let mut cluster = planted.cluster_cdf.partition_point(|&c| c <= target).min(last) as u32;
        items.push(planted.draw_item(cluster, rng));
        for _ in 1..length {
            cluster = if rng.unit() < self.signal { planted.successor[cluster as usize] } else { rng.below(planted.clusters) };
            items.push(planted.draw_item(cluster, rng));
        }
        Some((session, start))
    }
}

pub(super) fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

pub(super) fn push_session(out: &mut Vec<u8>, session: u64, start: u64, items: &[u32]) {
    let mut time = start;
    for &item in items {
        push_u64(out, session);
        out.push(b'\t');
        push_u64(out, item as u64);
        out.push(b'\t');
        push_u64(out, time);
        out.push(b'\n');
        time += EVENT_GAP;
    }
}
