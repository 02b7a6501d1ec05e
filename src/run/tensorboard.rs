//! TensorBoard's view of a run: every `metrics.jsonl` line's scalars as events in the run folder's event file,
//! so `tensorboard --logdir runs/` shows every run and every cell of an experiment.
//!
//! The file is a TFRecord stream of `Event` protobuf messages (TensorFlow's `event.proto` and `summary.proto`,
//! the fields TensorBoard reads of scalars): a `file_version` event first, then one event per epoch whose step
//! is the epoch. It is derived from `metrics.jsonl` alone: appended to as lines are, and written again from
//! the kept lines when a resumed run drops some, so the two never disagree for long.

use std::io::Write;
use std::path::Path;

use prost::Message;

use super::{FileError, METRICS_FILE};

/// TensorBoard reads every file whose name contains `tfevents`.
pub const FILE_NAME: &str = "events.out.tfevents.prnn";
/// What the first event of a file says: TensorBoard's event format version 2.
const FILE_VERSION: &str = "brain.Event:2";

/// `tensorflow.Event`, with the fields prnn writes; `file_version` and `summary` are members of its `what`
/// oneof, and a oneof member is an ordinary field on the wire.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`: the values of one step.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` holding a scalar (`simple_value`, a member of its `value` oneof).
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// TFRecord's checksum: CRC-32C, rotated and offset so that a checksum of data holding checksums stays strong.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: the length, its checksum, the data, the data's checksum (little-endian).
fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut bytes = Vec::with_capacity(data.len() + 16);
    bytes.extend_from_slice(&length);
    bytes.extend_from_slice(&masked_crc(&length).to_le_bytes());
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(&masked_crc(data).to_le_bytes());
    bytes
}

/// The scalars TensorBoard shows of a `metrics.jsonl` line, by tag: training's loss and speed, every cutoff's
/// metrics when the epoch was evaluated, and early stopping's score.
pub fn scalars(line: &serde_json::Value) -> Vec<(String, f32)> {
    let mut scalars = Vec::new();
    for (field, tag) in [
        ("loss", "train/loss"),
        ("events_per_second", "train/events_per_second"),
        ("batches_per_second", "train/batches_per_second"),
        ("seconds", "train/seconds"),
        ("phase", "train/phase"),
    ] {
        if let Some(value) = line[field].as_f64() {
            scalars.push((tag.to_string(), value as f32));
        }
    }
    for cutoff in line["eval"].as_array().into_iter().flatten() {
        let Some(k) = cutoff["cutoff"].as_u64() else { continue };
        for metric in ["recall", "mrr", "hit_rate", "ndcg"] {
            if let Some(value) = cutoff[metric].as_f64() {
                scalars.push((format!("eval/{metric}@{k}"), value as f32));
            }
        }
    }
    if let (Some(metric), Some(score)) = (line["stopping"]["metric"].as_str(), line["stopping"]["score"].as_f64()) {
        scalars.push((format!("stopping/{metric}"), score as f32));
    }
    scalars
}

/// The event of a `metrics.jsonl` line: its scalars at step `epoch`, at the line's time (0 in lines of prnn
/// versions that did not record it).
fn epoch_event(line: &serde_json::Value) -> Event {
    let value = scalars(line).into_iter().map(|(tag, value)| SummaryValue { tag, simple_value: Some(value) }).collect();
    Event {
        wall_time: line["time"].as_f64().unwrap_or(0.0),
        step: line["epoch"].as_i64().unwrap_or(0),
        file_version: None,
        summary: Some(Summary { value }),
    }
}

/// The records that open an event file.
fn header(wall_time: f64) -> Vec<u8> {
    record(&Event { wall_time, step: 0, file_version: Some(FILE_VERSION.to_string()), summary: None }.encode_to_vec())
}

/// Appends the event of a `metrics.jsonl` line to the event file of the run folder `dir`, opening the file with
/// its version event when it is new.
pub fn append(dir: &Path, line: &serde_json::Value) -> Result<(), FileError> {
    let path = dir.join(FILE_NAME);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let mut bytes = Vec::new();
        if file.metadata()?.len() == 0 {
            bytes.extend(header(line["time"].as_f64().unwrap_or(0.0)));
        }
        bytes.extend(record(&epoch_event(line).encode_to_vec()));
        file.write_all(&bytes)
    };
    write().map_err(|source| FileError::write("the TensorBoard event file", &path, source))
}

/// Writes the event file of the run folder `dir` again from its `metrics.jsonl`; no lines, no file.
pub fn rewrite(dir: &Path) -> Result<(), FileError> {
    let path = dir.join(FILE_NAME);
    let text = std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let remove = || match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    };
    let Some(first) = lines.first() else { return remove().map_err(|source| FileError::write("the TensorBoard event file", &path, source)) };
    let mut bytes = header(first["time"].as_f64().unwrap_or(0.0));
    for line in &lines {
        bytes.extend(record(&epoch_event(line).encode_to_vec()));
    }
    std::fs::write(&path, bytes).map_err(|source| FileError::write("the TensorBoard event file", &path, source))
}

/// The events of an event file's bytes, each record's length and checksums verified; what TensorBoard reads.
pub fn read_events(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
            if rest.len() < n {
                return Err(format!("a record is cut short after {} bytes", bytes.len() - rest.len()));
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head.to_vec())
        };
        let length_bytes = take(&mut rest, 8)?;
        let length = u64::from_le_bytes(length_bytes.clone().try_into().expect("eight bytes"));
        let length_crc = u32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("four bytes"));
        if length_crc != masked_crc(&length_bytes) {
            return Err("a record's length does not match its checksum".into());
        }
        let data = take(&mut rest, usize::try_from(length).map_err(|_| "a record's length is too large".to_string())?)?;
        let data_crc = u32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("four bytes"));
        if data_crc != masked_crc(&data) {
            return Err("a record's data does not match its checksum".into());
        }
        events.push(Event::decode(data.as_slice()).map_err(|e| e.to_string())?);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_match_the_published_values() {
        // The CRC-32C check value of RFC 3720 (iSCSI).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // TFRecord's mask, worked out by hand: 0xe3069283 rotated right by 15 bits is 0x2507c60d, plus 0xa282ead8.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn the_version_event_has_the_wire_bytes_of_event_proto() {
        let data = Event { wall_time: 1.5, step: 0, file_version: Some(FILE_VERSION.into()), summary: None }.encode_to_vec();
        // Field 1 (wall_time), a 64-bit double: key 0x09, then 1.5 little-endian. Step 0 is not written.
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        // Field 3 (file_version), length-delimited: key 0x1a, length, the text.
        expected.extend_from_slice(&[0x1a, FILE_VERSION.len() as u8]);
        expected.extend_from_slice(FILE_VERSION.as_bytes());
        assert_eq!(data, expected);

        let value = Event {
            wall_time: 0.0,
            step: 3,
            file_version: None,
            summary: Some(Summary { value: vec![SummaryValue { tag: "a".into(), simple_value: Some(0.25) }] }),
        };
        // Step: key 0x10, varint 3. Summary: key 0x2a, length 10, holding a Value (key 0x0a, length 8) with its tag
        // (key 0x0a, length 1, "a") and simple_value (key 0x15, a 32-bit float).
        let mut expected = vec![0x10, 0x03, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, b'a', 0x15];
        expected.extend_from_slice(&0.25f32.to_le_bytes());
        assert_eq!(value.encode_to_vec(), expected);
    }

    #[test]
    fn a_record_is_framed_with_its_length_and_two_checksums() {
        let framed = record(b"abc");
        assert_eq!(framed.len(), 8 + 4 + 3 + 4);
        assert_eq!(&framed[..8], &3u64.to_le_bytes());
        assert_eq!(&framed[8..12], &masked_crc(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&framed[12..15], b"abc");
        assert_eq!(&framed[15..], &masked_crc(b"abc").to_le_bytes());
    }

    fn line(epoch: u64, eval: bool) -> serde_json::Value {
        let mut line = serde_json::json!({
            "epoch": epoch, "phase": 1, "trains": ["id_net"], "loss": 0.5 / epoch as f64, "batches": 10, "events": 400,
            "seconds": 2.0, "events_per_second": 200.0, "batches_per_second": 5.0, "time": 1_700_000_000.0 + epoch as f64,
        });
        if eval {
            line["eval"] = serde_json::json!([{ "cutoff": 20, "recall": 0.5, "mrr": 0.25, "hit_rate": 0.5, "ndcg": 0.3 }]);
        }
        line
    }

    #[test]
    fn appended_lines_read_back_as_events_and_a_rewrite_keeps_only_the_kept_lines() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &line(1, false)).unwrap();
        append(dir.path(), &line(2, true)).unwrap();
        let events = read_events(&std::fs::read(dir.path().join(FILE_NAME)).unwrap()).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        assert_eq!((events[2].step, events[2].wall_time), (2, 1_700_000_002.0));
        let tags: Vec<(&str, f32)> =
            events[2].summary.as_ref().unwrap().value.iter().map(|v| (v.tag.as_str(), v.simple_value.unwrap())).collect();
        assert!(tags.contains(&("train/loss", 0.25)) && tags.contains(&("eval/mrr@20", 0.25)) && tags.contains(&("eval/ndcg@20", 0.3)), "{tags:?}");
        assert!(!events[1].summary.as_ref().unwrap().value.iter().any(|v| v.tag.starts_with("eval/")));

        // A resumed run kept epoch 1 only.
        std::fs::write(dir.path().join(METRICS_FILE), format!("{}\n", line(1, false))).unwrap();
        rewrite(dir.path()).unwrap();
        let events = read_events(&std::fs::read(dir.path().join(FILE_NAME)).unwrap()).unwrap();
        assert_eq!(events.iter().map(|e| e.step).collect::<Vec<_>>(), [0, 1]);
        // A changed byte is found.
        let mut bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        assert!(read_events(&bytes).unwrap_err().contains("checksum"));
        std::fs::write(dir.path().join(METRICS_FILE), "").unwrap();
        rewrite(dir.path()).unwrap();
        assert!(!dir.path().join(FILE_NAME).exists());
    }
}
