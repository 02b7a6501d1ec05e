//! Time fields of session files: seconds, milliseconds, microseconds, dates and datetimes, as seconds.

use crate::config::TimeUnit;

fn unit_description(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::S => "a number of seconds",
        TimeUnit::Ms => "a number of milliseconds",
        TimeUnit::Us => "a number of microseconds",
        TimeUnit::Date => "a date (YYYY-MM-DD)",
        TimeUnit::Datetime => "a date and time (YYYY-MM-DDTHH:MM:SS, optional offset)",
    }
}

/// Parses time fields, remembering the last date or datetime: consecutive rows usually share it.
#[derive(Default)]
pub(super) struct TimeParser {
    last_text: Vec<u8>,
    last_value: f64,
}

impl TimeParser {
    pub(super) fn parse(&mut self, field: &[u8], unit: TimeUnit) -> Result<f64, UnreadableTime> {
        let unreadable = |text: &str| UnreadableTime { text: text.to_string(), unit };
        let text = std::str::from_utf8(field).map_err(|_| unreadable(&String::from_utf8_lossy(field)))?.trim();
        let number = |scale: f64| match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value / scale),
            _ => Err(unreadable(text)),
        };
        match unit {
            TimeUnit::S => number(1.0),
            TimeUnit::Ms => number(1e3),
            TimeUnit::Us => number(1e6),
            TimeUnit::Date | TimeUnit::Datetime => {
                if self.last_text == field {
                    return Ok(self.last_value);
                }
                let value = if unit == TimeUnit::Date { parse_date(text) } else { parse_datetime(text) }.ok_or_else(|| unreadable(text))?;
                self.last_text.clear();
                self.last_text.extend_from_slice(field);
                self.last_value = value;
                Ok(value)
            }
        }
    }
}

/// A time field that does not read as its column's unit: the text as written (invalid UTF-8 replaced).
#[derive(Debug, thiserror::Error)]
#[error("{}, which is not {}", shown(.text), unit_description(*.unit))]
pub(super) struct UnreadableTime {
    text: String,
    unit: TimeUnit,
}

/// A field as a message quotes it: escaped, and cut after its first 40 characters (a damaged file's field can be
/// megabytes long).
fn shown(text: &str) -> String {
    const MAX: usize = 40;
    let start: String = text.chars().take(MAX).collect();
    if start.len() == text.len() {
        format!("{text:?}")
    } else {
        format!("{start:?}… ({} more bytes)", text.len() - start.len())
    }
}

pub(super) fn parse_date(text: &str) -> Option<f64> {
    let date: jiff::civil::Date = text.parse().ok()?;
    let timestamp = jiff::tz::TimeZone::UTC.to_timestamp(date.to_datetime(jiff::civil::Time::midnight())).ok()?;
    Some(timestamp.as_second() as f64)
}

pub(super) fn parse_datetime(text: &str) -> Option<f64> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Some(timestamp.as_nanosecond() as f64 / 1e9);
    }
    let civil: jiff::civil::DateTime = text.parse().ok()?;
    let timestamp = jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()?;
    Some(timestamp.as_nanosecond() as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_datetimes_with_and_without_offsets() {
        assert_eq!(parse_datetime("1970-01-02T00:00:00Z"), Some(86_400.0));
        assert_eq!(parse_datetime("1970-01-02T01:00:00+01:00"), Some(86_400.0));
        assert_eq!(parse_datetime("1970-01-02 00:00:01.5"), Some(86_401.5));
        assert_eq!(parse_date("1970-01-03"), Some(172_800.0));
        assert_eq!(parse_date("2016-13-01"), None);
    }
}
