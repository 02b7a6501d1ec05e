//! Session files read into a compact columnar store: 8 bytes per event plus about 20 per session.
//!
//! Rows arrive in any order that keeps a session's rows together (GRU4Rec's files, the raw competition
//! files) or interleaved (logs sorted by time). Reading keeps rows in file order and records *runs*, maximal
//! stretches of rows with the same session key; building then moves whole runs in place so that sessions
//! are contiguous and ordered by their first event's time, and sorts each session's events by time (ties
//! keep file order). Storage is allocated once at its final size from a row count taken before reading,
//! so no vector ever doubles: that keeps peak memory near the final size at 10^8 events.
//!
//! Delimited text is parsed here; Parquet files are read by [`super::parquet`]. Both hand their rows to
//! one [`SessionSink`], which applies `bad_rows` and builds the store.

use std::io::Read;
use std::path::Path;

use indexmap::IndexMap;

use super::error::{DataCode, DataError, FileRow, Place};
use super::intern::Interner;
use super::table::{self, TableFormat};
use super::time::TimeParser;
use crate::config::{BadRows, SessionFormat, TimeUnit};

/// One event: the item's dense index and its time in seconds after its session's start.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct Event {
    pub item: u32,
    pub offset: f32,
}

/// How session keys are stored: canonical integers as themselves (no map needed), anything else interned.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionKeys {
    Numeric,
    Named(Interner),
}

/// Sessions of one side (train or test), contiguous and ordered by start time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    pub events: Vec<Event>,
    /// Session `s` holds `events[offsets[s]..offsets[s + 1]]`.
    pub offsets: Vec<u32>,
    /// Each session's first event time, in seconds.
    pub start: Vec<f64>,
    /// Each session's key: the number itself, or an index into the names of `keys`.
    pub key: Vec<u64>,
    pub keys: SessionKeys,
}

impl Sessions {
    pub fn empty() -> Self {
        Sessions { events: Vec::new(), offsets: vec![0], start: Vec::new(), key: Vec::new(), keys: SessionKeys::Numeric }
    }

    pub fn len(&self) -> usize {
        self.start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }

    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    pub fn session(&self, s: usize) -> &[Event] {
        &self.events[self.offsets[s] as usize..self.offsets[s + 1] as usize]
    }

    /// The session's key as it was written in the file.
    pub fn key_text(&self, s: usize) -> String {
        match &self.keys {
            SessionKeys::Numeric => self.key[s].to_string(),
            SessionKeys::Named(names) => names.get_str(self.key[s] as u32).to_string(),
        }
    }

    /// Heap bytes held, for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        let keys = match &self.keys {
            SessionKeys::Numeric => 0,
            SessionKeys::Named(names) => names.heap_bytes(),
        };
        self.events.capacity() * 8 + self.offsets.capacity() * 4 + self.start.capacity() * 8 + self.key.capacity() * 8 + keys
    }

    /// Sessions holding exactly these items, in this order, starting one second apart (for tests).
    #[cfg(test)]
    pub fn from_items(items: &[&[u32]]) -> Sessions {
        let mut events = Vec::new();
        let mut offsets = vec![0u32];
        for session in items {
            events.extend(session.iter().map(|&item| Event { item, offset: 0.0 }));
            offsets.push(events.len() as u32);
        }
        Sessions {
            events,
            offsets,
            start: (0..items.len()).map(|s| s as f64).collect(),
            key: (0..items.len() as u64).collect(),
            keys: SessionKeys::Numeric,
        }
    }

    /// Keeps the sessions for which `keep` is true, in order, moving events down in place.
    pub fn retain_sessions(&mut self, mut keep: impl FnMut(usize, &[Event]) -> bool) {
        let mut write_event = 0usize;
        let mut write_session = 0usize;
        for s in 0..self.len() {
            let (from, to) = (self.offsets[s] as usize, self.offsets[s + 1] as usize);
            if keep(s, &self.events[from..to]) {
                self.events.copy_within(from..to, write_event);
                self.offsets[write_session] = write_event as u32;
                self.start[write_session] = self.start[s];
                self.key[write_session] = self.key[s];
                write_event += to - from;
                write_session += 1;
            }
        }
        self.events.truncate(write_event);
        self.start.truncate(write_session);
        self.key.truncate(write_session);
        self.offsets.truncate(write_session);
        self.offsets.push(write_event as u32);
    }

    /// Keeps the events for which `keep` is true, in order; sessions may become shorter or empty.
    pub fn retain_events(&mut self, mut keep: impl FnMut(usize, &[Event], usize) -> bool) {
        let mut write = 0usize;
        let mut new_offsets = Vec::with_capacity(self.offsets.len());
        new_offsets.push(0u32);
        for s in 0..self.len() {
            let (from, to) = (self.offsets[s] as usize, self.offsets[s + 1] as usize);
            for position in from..to {
                // The closure sees the session as it was, so "consecutive repeat" looks at the original order.
                if keep(s, &self.events[from..to], position - from) {
                    self.events[write] = self.events[position];
                    write += 1;
                }
            }
            new_offsets.push(write as u32);
        }
        self.events.truncate(write);
        self.offsets = new_offsets;
    }
}

/// Rows left out under `bad_rows = "skip"`, by reason, with the first line of each.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SkippedRows {
    pub reasons: IndexMap<String, SkippedReason>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SkippedReason {
    pub count: u64,
    /// The first such row's line in a text file; 0 in a Parquet file, which has `first_row` instead.
    pub first_line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_row: Option<FileRow>,
}

impl SkippedReason {
    /// Where the first such row is, as the report writes it.
    pub fn first(&self) -> Place {
        match self.first_row {
            Some(row) => Place::Row(row),
            None => Place::Line(self.first_line),
        }
    }
}

impl SkippedRows {
    pub fn total(&self) -> u64 {
        self.reasons.values().map(|r| r.count).sum()
    }

    fn add(&mut self, reason: &str, place: Place) {
        let (first_line, first_row) = match place {
            Place::Line(line) => (line, None),
            Place::Row(row) => (0, Some(row)),
        };
        self.reasons.entry(reason.to_string()).or_insert(SkippedReason { count: 0, first_line, first_row }).count += 1;
    }
}

/// What reading one file gave: its sessions and the rows it skipped.
#[derive(Debug)]
pub struct ReadSessions {
    pub sessions: Sessions,
    pub skipped: SkippedRows,
    /// Rows read as events (before any preprocessing).
    pub rows: u64,
}

/// Reads a session file: Parquet when its name ends in `.parquet`, else delimited text (gzipped when it
/// ends in `.gz`). Items are interned into `items`, shared by train and test so indices agree.
pub fn read_file(path: &Path, format: &SessionFormat, items: &mut Interner) -> Result<ReadSessions, DataError> {
    if super::parquet::is_parquet(path) {
        return super::parquet::read_sessions(path, format, items);
    }
    let expected_rows = count_lines(table::open(path, "session file")?).map_err(|error| table::read_error(path, "session file", &error))?;
    read(table::open(path, "session file")?, path, format, items, expected_rows)
}

/// Counts line breaks (plus a last line without one), an upper bound on the number of rows.
pub fn count_lines(mut source: impl Read) -> std::io::Result<usize> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut lines = 0usize;
    let mut last = b'\n';
    loop {
        let n = source.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buffer[..n]).count();
        last = buffer[n - 1];
    }
    Ok(lines + usize::from(last != b'\n'))
}

/// Where each configured column sits in a row.
struct Columns {
    session: usize,
    item: usize,
    time: Vec<(usize, TimeUnit, String)>,
    /// A row needs at least this many fields.
    needed: usize,
}

/// The separator as one byte; the config allows any one ASCII character.
pub fn separator_byte(path: &Path, separator: &str, setting: &str) -> Result<u8, DataError> {
    match separator.as_bytes() {
        [byte] if byte.is_ascii() => Ok(*byte),
        _ => Err(DataError::new(DataCode::Column, path, format!("separator {separator:?} is not one ASCII character"))
            .help(format!("set `{setting}` to one character, e.g. \"\\t\", \",\" or \";\""))),
    }
}

/// Reads session rows from `source` (`path` names it in errors). `expected_rows` sizes storage; more
/// rows than that are still read, at the cost of one reallocation.
pub fn read(
    source: impl Read,
    path: &Path,
    format: &SessionFormat,
    items: &mut Interner,
    expected_rows: usize,
) -> Result<ReadSessions, DataError> {
    let separator = separator_byte(path, &format.separator, "[data.format] separator")?;
    let table_format = TableFormat { separator, header: format.header, quoting: format.quoting.unwrap_or(separator != b'\t') };
    let mut reader = table::reader(source, &table_format);
    let mut record = csv::ByteRecord::new();

    let mut header = None;
    if format.header {
        if !reader.read_byte_record(&mut record).map_err(|e| table::csv_error(path, e))? {
            return Err(empty_file(path, "the file is empty"));
        }
        header = Some(table::header_names(&record));
    }
    let columns = {
        let header = header.as_deref();
        let session = table::find_column(path, header, &format.session, "[data.format] session")?;
        let item = table::find_column(path, header, &format.item, "[data.format] item")?;
        let mut time = Vec::new();
        for part in &format.time {
            time.push((table::find_column(path, header, part.column(), "[data.format] time")?, part.unit(), part.column().to_string()));
        }
        let needed = time.iter().map(|t| t.0).chain([session, item]).max().unwrap_or(0) + 1;
        Columns { session, item, time, needed }
    };

    let mut sink = SessionSink::new(path, format.bad_rows, expected_rows);
    let mut time_parser = TimeParser::default();
    while reader.read_byte_record(&mut record).map_err(|e| table::csv_error(path, e))? {
        let line = record.position().map_or(0, |p| p.line());
        match parse_row(&record, &columns, &mut time_parser) {
            Ok((session, item, time)) => sink.push(session, items.intern(item), time),
            Err(problem) => sink.bad_row(problem, Place::Line(line), || table::record_text(&record, separator))?,
        }
    }
    sink.finish(if format.header { "the file has a header but no data rows" } else { "the file is empty" })
}

/// Where rows go once read, whatever the file's format: events into the run builder, and unreadable rows
/// into the error or the skip counts that `[data.format] bad_rows` asks for.
pub(super) struct SessionSink<'p> {
    path: &'p Path,
    bad_rows: BadRows,
    builder: RunBuilder,
    skipped: SkippedRows,
    rows: u64,
}

impl<'p> SessionSink<'p> {
    /// `expected_rows` sizes the event storage; more rows than that still fit, at the cost of one reallocation.
    pub(super) fn new(path: &'p Path, bad_rows: BadRows, expected_rows: usize) -> Self {
        SessionSink { path, bad_rows, builder: RunBuilder::with_capacity(expected_rows), skipped: SkippedRows::default(), rows: 0 }
    }

    pub(super) fn push(&mut self, session: SessionKey<'_>, item: u32, time: f64) {
        self.builder.push(session, item, time);
        self.rows += 1;
    }

    /// A row that cannot be read: an error at `place`, or counted when bad rows are skipped. `snippet`
    /// renders the row and runs only for an error.
    pub(super) fn bad_row(&mut self, problem: RowProblem, place: Place, snippet: impl FnOnce() -> String) -> Result<(), DataError> {
        match self.bad_rows {
            BadRows::Skip => {
                self.skipped.add(problem.reason, place);
                Ok(())
            }
            BadRows::Error => Err(DataError::new(DataCode::Row, self.path, problem.message)
                .at(place)
                .snippet(snippet())
                .help(problem.help)
                .note("to skip and count such rows instead, set `[data.format] bad_rows = \"skip\"`")),
        }
    }

    /// The sessions, or E0903 (`empty` says why) when no row was read.
    pub(super) fn finish(self, empty: &str) -> Result<ReadSessions, DataError> {
        let SessionSink { path, builder, skipped, rows, .. } = self;
        if rows == 0 {
            let mut error = empty_file(path, empty);
            if skipped.total() > 0 {
                error = error.note(format!("all {} rows were skipped as unreadable", skipped.total()));
            }
            return Err(error);
        }
        let sessions = builder.build().map_err(|error| DataError::new(DataCode::Row, path, error.to_string()))?;
        Ok(ReadSessions { sessions, skipped, rows })
    }
}

/// E0903: `message` says what the file holds instead of rows.
pub(super) fn empty_file(path: &Path, message: &str) -> DataError {
    DataError::new(DataCode::Empty, path, message).help("check that this is the right file and that it was written completely")
}

/// Why a row cannot be read: `reason` counts it under `bad_rows = "skip"`, `message` and `help` make the error.
pub(super) struct RowProblem {
    pub reason: &'static str,
    pub message: String,
    pub help: String,
}

impl RowProblem {
    /// An empty (or, in Parquet, null) session or item id; `how` is "empty" or "null".
    pub(super) fn missing_id(session: bool, how: &str) -> RowProblem {
        let (noun, with_article) = if session { ("session", "a session") } else { ("item", "an item") };
        RowProblem {
            reason: if session { "empty session id" } else { "empty item id" },
            message: format!("the {noun} id is {how}"),
            help: format!("every row needs {with_article} id; remove the row or fill it in"),
        }
    }

    /// A time column whose value does not read as its unit (`what` says what it holds).
    pub(super) fn unreadable_time(name: &str, what: impl std::fmt::Display, unit: TimeUnit) -> RowProblem {
        RowProblem {
            reason: "unreadable time",
            message: format!("time column `{name}` holds {what}"),
            help: match unit {
                TimeUnit::S | TimeUnit::Ms | TimeUnit::Us => {
                    "if the column holds dates, write `time = [{ column = \"...\", unit = \"date\" }]` (or `\"datetime\"`)".into()
                }
                _ => "set the column's `unit` to match what it holds: s, ms, us, date or datetime".into(),
            },
        }
    }
}

/// Refuses a row's time (the sum of its time columns, in seconds) that is NaN or beyond [`MAX_TIME`].
pub(super) fn check_time(time: f64) -> Result<f64, RowProblem> {
    // Offsets within a session are float32 seconds: a time past this would make them infinite (as would
    // time columns that add up past f64's range), and no clock or unit mix-up of real data gets near it.
    if time.is_nan() || time.abs() > MAX_TIME {
        return Err(RowProblem {
            reason: "time out of range",
            message: format!("the time is {time:e} seconds, beyond the ±1e18 seconds prnn reads"),
            help: "check `[data.format] time`: the column and its unit (s, ms, us, date or datetime)".into(),
        });
    }
    Ok(time)
}

fn parse_row<'r>(
    record: &'r csv::ByteRecord,
    columns: &Columns,
    time_parser: &mut TimeParser,
) -> Result<(SessionKey<'r>, &'r [u8], f64), RowProblem> {
    if record.len() < columns.needed {
        return Err(RowProblem {
            reason: "too few fields",
            message: format!(
                "row has {} field{}, expected at least {}",
                record.len(),
                if record.len() == 1 { "" } else { "s" },
                columns.needed
            ),
            help: "check `[data.format] separator`: a wrong separator reads each row as a single field".into(),
        });
    }
    let session = &record[columns.session];
    let item = &record[columns.item];
    if session.is_empty() || item.is_empty() {
        return Err(RowProblem::missing_id(session.is_empty(), "empty"));
    }
    let mut time = 0.0f64;
    for (index, unit, name) in &columns.time {
        time += time_parser.parse(&record[*index], *unit).map_err(|error| RowProblem::unreadable_time(name, error, *unit))?;
    }
    Ok((SessionKey::parse(session), item, check_time(time)?))
}

/// The largest time, in seconds from any origin, a session row may have.
const MAX_TIME: f64 = 1e18;

/// A session key as read: canonical integers are kept as numbers, anything else as text.
#[derive(Debug, Clone, Copy)]
pub(super) enum SessionKey<'a> {
    Number(u64),
    Text(&'a [u8]),
}

impl<'a> SessionKey<'a> {
    pub(super) fn parse(field: &'a [u8]) -> Self {
        // Only canonical digits: "007" read as 7 would print back differently.
        let canonical =
            !field.is_empty() && field.len() <= 19 && field.iter().all(u8::is_ascii_digit) && (field[0] != b'0' || field.len() == 1);
        if canonical {
            let value = field.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
            SessionKey::Number(value)
        } else {
            SessionKey::Text(field)
        }
    }
}

/// Collects events in file order with their runs, then builds [`Sessions`].
struct RunBuilder {
    events: Vec<Event>,
    /// Per run: the session key (number, or index into `names`), the first event's time, the first event's position.
    run_key: Vec<u64>,
    run_base: Vec<f64>,
    run_start: Vec<u32>,
    /// Set once a non-numeric key appears; numeric keys seen before are moved into it as text.
    names: Option<Interner>,
}

impl RunBuilder {
    fn with_capacity(rows: usize) -> Self {
        RunBuilder { events: Vec::with_capacity(rows), run_key: Vec::new(), run_base: Vec::new(), run_start: Vec::new(), names: None }
    }

    fn push(&mut self, key: SessionKey<'_>, item: u32, time: f64) {
        let key = match (key, &mut self.names) {
            (SessionKey::Number(n), None) => n,
            (SessionKey::Number(n), Some(names)) => u64::from(names.intern(n.to_string().as_bytes())),
            (SessionKey::Text(text), names) => {
                let names = names.get_or_insert_with(|| {
                    let mut names = Interner::new();
                    for key in &mut self.run_key {
                        *key = u64::from(names.intern(key.to_string().as_bytes()));
                    }
                    names
                });
                u64::from(names.intern(text))
            }
        };
        if self.run_key.last() != Some(&key) {
            self.run_key.push(key);
            self.run_base.push(time);
            self.run_start.push(self.events.len() as u32);
        }
        let base = *self.run_base.last().expect("a run was just opened");
        self.events.push(Event { item, offset: (time - base) as f32 });
    }

    fn build(self) -> Result<Sessions, TooManyEvents> {
        let RunBuilder { mut events, mut run_key, mut run_base, run_start, names } = self;
        if events.len() >= u32::MAX as usize {
            return Err(TooManyEvents { events: events.len() });
        }
        let keys = match names {
            Some(names) => SessionKeys::Named(names),
            None => SessionKeys::Numeric,
        };
        let runs = run_key.len();
        let interleaved = {
            let mut by_key: Vec<u32> = (0..runs as u32).collect();
            by_key.sort_unstable_by_key(|&r| run_key[r as usize]);
            by_key.windows(2).any(|pair| run_key[pair[0] as usize] == run_key[pair[1] as usize])
        };
        let mut sessions = if interleaved {
            merge_runs(events, &run_key, &run_base, &run_start, keys)
        } else {
            // Every session is one run: reuse the run arrays in place, so the peak stays near the final size.
            let event_count = events.len();
            let run_end = |r: usize| if r + 1 < runs { run_start[r + 1] as usize } else { event_count };
            for r in 0..runs {
                let run = &mut events[run_start[r] as usize..run_end(r)];
                let earliest = run.iter().map(|e| e.offset).fold(f32::INFINITY, f32::min);
                if earliest != 0.0 {
                    run.iter_mut().for_each(|e| e.offset = (f64::from(e.offset) - f64::from(earliest)) as f32);
                    run_base[r] += f64::from(earliest);
                }
            }
            // By start time; ties keep file order.
            let mut order: Vec<u32> = (0..runs as u32).collect();
            order.sort_unstable_by(|&a, &b| run_base[a as usize].total_cmp(&run_base[b as usize]).then(a.cmp(&b)));
            let offsets = block_offsets(&order, |r| (run_end(r) - run_start[r] as usize) as u32);
            if order.iter().enumerate().any(|(i, &r)| i as u32 != r) {
                gather_blocks(&mut events, &run_start, &order, &offsets);
                gather_in_place(&mut run_base, &order);
                gather_in_place(&mut run_key, &order);
            }
            // Run arrays grew by doubling; the untouched half costs no memory now but would in a copy.
            run_base.shrink_to_fit();
            run_key.shrink_to_fit();
            Sessions { events, offsets, start: run_base, key: run_key, keys }
        };
        for s in 0..sessions.len() {
            let (from, to) = (sessions.offsets[s] as usize, sessions.offsets[s + 1] as usize);
            let session = &mut sessions.events[from..to];
            if !session.windows(2).all(|w| w[0].offset <= w[1].offset) {
                // Stable: events at the same time keep file order.
                session.sort_by(|a, b| a.offset.total_cmp(&b.offset));
            }
        }
        Ok(sessions)
    }
}

/// More events in one file than session offsets (`u32`) can address.
#[derive(Debug, thiserror::Error)]
#[error("{events} events in one file; prnn stores event positions in 32 bits (at most 4,294,967,294)")]
struct TooManyEvents {
    events: usize,
}

/// Sessions whose rows are spread over several runs: runs of one key are brought together (in file order)
/// and sessions ordered by their earliest event.
fn merge_runs(mut events: Vec<Event>, run_key: &[u64], run_base: &[f64], run_start: &[u32], keys: SessionKeys) -> Sessions {
    let runs = run_key.len();
    let event_count = events.len();
    let run_end = |r: usize| if r + 1 < runs { run_start[r + 1] as usize } else { event_count };
    // Sessions are numbered in file order of their first run. Sorting by (key, run) puts each key's first
    // run at the head of its group; `session_of_run` first holds that head, then, visiting runs in file
    // order (heads come first), the session number.
    let mut by_key: Vec<u32> = (0..runs as u32).collect();
    by_key.sort_unstable_by_key(|&r| (run_key[r as usize], r));
    let mut session_of_run = vec![0u32; runs];
    let mut head = 0u32;
    for (i, &r) in by_key.iter().enumerate() {
        if i == 0 || run_key[by_key[i - 1] as usize] != run_key[r as usize] {
            head = r;
        }
        session_of_run[r as usize] = head;
    }
    drop(by_key);
    let mut first_run_of_session: Vec<u32> = Vec::new();
    for r in 0..runs {
        let head = session_of_run[r] as usize;
        if head == r {
            session_of_run[r] = first_run_of_session.len() as u32;
            first_run_of_session.push(r as u32);
        } else {
            session_of_run[r] = session_of_run[head];
        }
    }
    let session_count = first_run_of_session.len();
    let mut start = vec![f64::INFINITY; session_count];
    for r in 0..runs {
        let earliest = events[run_start[r] as usize..run_end(r)].iter().map(|e| e.offset).fold(f32::INFINITY, f32::min);
        let s = session_of_run[r] as usize;
        start[s] = start[s].min(run_base[r] + f64::from(earliest));
    }
    for r in 0..runs {
        let shift = run_base[r] - start[session_of_run[r] as usize];
        for event in &mut events[run_start[r] as usize..run_end(r)] {
            event.offset = (f64::from(event.offset) + shift) as f32;
        }
    }
    let mut order: Vec<u32> = (0..session_count as u32).collect();
    order.sort_unstable_by(|&a, &b| start[a as usize].total_cmp(&start[b as usize]).then(a.cmp(&b)));
    let mut rank = vec![0u32; session_count];
    for (position, &s) in order.iter().enumerate() {
        rank[s as usize] = position as u32;
    }
    let mut run_order: Vec<u32> = (0..runs as u32).collect();
    run_order.sort_unstable_by_key(|&r| (rank[session_of_run[r as usize] as usize], r));
    let run_offsets = block_offsets(&run_order, |r| (run_end(r) - run_start[r] as usize) as u32);
    gather_blocks(&mut events, run_start, &run_order, &run_offsets);
    drop(run_order);
    let mut lengths = vec![0u32; session_count];
    for r in 0..runs {
        lengths[rank[session_of_run[r] as usize] as usize] += (run_end(r) - run_start[r] as usize) as u32;
    }
    let offsets = block_offsets(&(0..session_count as u32).collect::<Vec<_>>(), |s| lengths[s]);
    Sessions {
        events,
        offsets,
        start: order.iter().map(|&s| start[s as usize]).collect(),
        key: order.iter().map(|&s| run_key[first_run_of_session[s as usize] as usize]).collect(),
        keys,
    }
}

/// Where each block starts once blocks are laid out in `order`, plus the end: prefix sums of lengths.
fn block_offsets(order: &[u32], length: impl Fn(usize) -> u32) -> Vec<u32> {
    let mut offsets = Vec::with_capacity(order.len() + 1);
    let mut at = 0u32;
    offsets.push(0);
    for &b in order {
        at += length(b as usize);
        offsets.push(at);
    }
    offsets
}

/// `values[i] = old values[order[i]]`, in place.
fn gather_in_place<T: Copy>(values: &mut [T], order: &[u32]) {
    gather_by(values, |position| order[position] as usize);
}

/// Moves blocks of `items` in place so that they appear in `order`; block `b` starts at `starts[b]` and ends
/// where block `b + 1` starts (the last at the end); `new_starts` (from [`block_offsets`]) says where each
/// block of `order` lands.
fn gather_blocks<T: Copy>(items: &mut [T], starts: &[u32], order: &[u32], new_starts: &[u32]) {
    gather_by(items, |position| {
        let k = new_starts.partition_point(|&s| s as usize <= position) - 1;
        starts[order[k] as usize] as usize + (position - new_starts[k] as usize)
    });
}

/// `items[i] = old items[source(i)]` for a permutation `source`, in place: follows its cycles with a
/// visited bitset, one bit per item instead of a second copy.
fn gather_by<T: Copy>(items: &mut [T], source: impl Fn(usize) -> usize) {
    let mut done = vec![0u64; items.len().div_ceil(64)];
    for first in 0..items.len() {
        if done[first / 64] >> (first % 64) & 1 == 1 {
            continue;
        }
        let saved = items[first];
        let mut position = first;
        loop {
            done[position / 64] |= 1 << (position % 64);
            let from = source(position);
            if from == first {
                items[position] = saved;
                break;
            }
            items[position] = items[from];
            position = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeColumn;

    fn read_text(text: &str, format: &SessionFormat) -> Result<(ReadSessions, Interner), DataError> {
        let mut items = Interner::new();
        let read = read(text.as_bytes(), Path::new("clicks.tsv"), format, &mut items, 4)?;
        Ok((read, items))
    }

    fn item_ids(sessions: &Sessions, items: &Interner, s: usize) -> Vec<String> {
        sessions.session(s).iter().map(|e| items.get_str(e.item).to_string()).collect()
    }

    #[test]
    fn reads_gru4rec_tsv_grouped_and_ordered() {
        let text = "SessionId\tItemId\tTime\n1\ta\t10\n1\tb\t11\n2\tc\t5\n2\ta\t7\n";
        let (read, items) = read_text(text, &SessionFormat::default()).unwrap();
        let sessions = &read.sessions;
        assert_eq!(read.rows, 4);
        assert_eq!(sessions.len(), 2);
        // Session 2 starts first.
        assert_eq!(sessions.key, vec![2, 1]);
        assert_eq!(sessions.start, vec![5.0, 10.0]);
        assert_eq!(item_ids(sessions, &items, 0), ["c", "a"]);
        assert_eq!(item_ids(sessions, &items, 1), ["a", "b"]);
        assert_eq!(sessions.session(0)[1].offset, 2.0);
        // Items are numbered in order of first appearance in the file.
        assert_eq!(items.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn merges_interleaved_sessions_and_sorts_events_by_time() {
        let text = "SessionId\tItemId\tTime\nx\ta\t3\ny\tb\t1\nx\tc\t2\ny\td\t4\nx\te\t9\n";
        let (read, items) = read_text(text, &SessionFormat::default()).unwrap();
        let sessions = &read.sessions;
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.key_text(0), "y");
        assert_eq!(item_ids(sessions, &items, 0), ["b", "d"]);
        assert_eq!(sessions.key_text(1), "x");
        assert_eq!(item_ids(sessions, &items, 1), ["c", "a", "e"]);
        assert_eq!(sessions.session(1).iter().map(|e| e.offset).collect::<Vec<_>>(), [0.0, 1.0, 7.0]);
    }

    #[test]
    fn mixed_numeric_and_text_keys_keep_their_spelling() {
        let text = "SessionId\tItemId\tTime\n7\ta\t1\n007\tb\t2\n7\tc\t3\n";
        let (read, _) = read_text(text, &SessionFormat::default()).unwrap();
        let keys: Vec<_> = (0..read.sessions.len()).map(|s| read.sessions.key_text(s)).collect();
        assert_eq!(keys, ["7", "007"]);
        assert_eq!(read.sessions.session(0).len(), 2);
    }

    #[test]
    fn ties_in_time_keep_file_order() {
        let text = "SessionId\tItemId\tTime\n1\ta\t5\n1\tb\t5\n1\tc\t5\n";
        let (read, items) = read_text(text, &SessionFormat::default()).unwrap();
        assert_eq!(item_ids(&read.sessions, &items, 0), ["a", "b", "c"]);
    }

    #[test]
    fn composes_time_from_a_date_and_milliseconds() {
        let format = SessionFormat {
            separator: ";".into(),
            session: "session_id".into(),
            item: "item_id".into(),
            time: vec![
                TimeColumn::WithUnit { column: "eventdate".into(), unit: TimeUnit::Date },
                TimeColumn::WithUnit { column: "timeframe".into(), unit: TimeUnit::Ms },
            ],
            ..SessionFormat::default()
        };
        let text = "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09\n";
        let (read, _) = read_text(text, &format).unwrap();
        assert_eq!(read.sessions.start[0], 1_462_752_000.0 + 526.309);
        assert!((read.sessions.session(0)[1].offset - 504.709).abs() < 1e-3);
    }

    #[test]
    fn bad_rows_are_errors_naming_the_line() {
        let text = "SessionId\tItemId\tTime\n1\ta\t10\n1\tb\n";
        let error = read_text(text, &SessionFormat::default()).unwrap_err();
        assert_eq!(error.code, DataCode::Row);
        assert_eq!(error.line, Some(3));
        assert!(error.message.contains("expected at least 3"), "{error}");

        let text = "SessionId\tItemId\tTime\n1\ta\tyesterday\n";
        let error = read_text(text, &SessionFormat::default()).unwrap_err();
        assert_eq!(error.line, Some(2));
        assert!(error.message.contains("\"yesterday\""), "{error}");
    }

    #[test]
    fn skipped_rows_are_counted_by_reason() {
        let format = SessionFormat { bad_rows: BadRows::Skip, ..SessionFormat::default() };
        let text = "SessionId\tItemId\tTime\n1\ta\t10\n1\tb\n1\t\t3\n2\tc\tnan\n1\td\t12\n";
        let (read, _) = read_text(text, &format).unwrap();
        assert_eq!(read.rows, 2);
        assert_eq!(read.skipped.total(), 3);
        assert_eq!(read.skipped.reasons["too few fields"].first_line, 3);
        assert_eq!(read.skipped.reasons["unreadable time"].first_line, 5);
    }

    #[test]
    fn empty_files_and_missing_columns_are_errors() {
        assert_eq!(read_text("", &SessionFormat::default()).unwrap_err().code, DataCode::Empty);
        let error = read_text("SessionId\tItemId\tTime\n", &SessionFormat::default()).unwrap_err();
        assert_eq!(error.code, DataCode::Empty);
        assert!(error.message.contains("no data rows"));
        let error = read_text("SessionId\tItem\tTime\n1\ta\t1\n", &SessionFormat::default()).unwrap_err();
        assert_eq!(error.code, DataCode::Column);
        assert!(error.message.contains("`ItemId`"));
    }

    /// Sessions as `key -> items in time order`, for comparing layouts.
    fn by_key(read: &ReadSessions, items: &Interner) -> Vec<(String, Vec<String>)> {
        let sessions = &read.sessions;
        (0..sessions.len()).map(|s| (sessions.key_text(s), item_ids(sessions, items, s))).collect()
    }

    #[test]
    fn interleaved_and_grouped_files_give_the_same_sessions() {
        // A small linear congruential generator keeps the test free of dependencies and reproducible.
        let mut state = 12345u64;
        let mut next = |bound: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % bound
        };
        let mut rows = Vec::new();
        for session in 0..300u64 {
            let key = if session % 7 == 0 { format!("s{session}") } else { (session * 13 + 1).to_string() };
            let start = next(100_000) as f64;
            for event in 0..(1 + next(6)) {
                rows.push((key.clone(), format!("i{}", next(50)), start + event as f64 * 30.0));
            }
        }
        let text = |rows: &[(String, String, f64)]| {
            let mut text = String::from("SessionId\tItemId\tTime\n");
            for (key, item, time) in rows {
                text.push_str(&format!("{key}\t{item}\t{time}\n"));
            }
            text
        };
        let (grouped, grouped_items) = read_text(&text(&rows), &SessionFormat::default()).unwrap();
        // Shuffle the rows: sessions now come in many runs each.
        for i in (1..rows.len()).rev() {
            rows.swap(i, next(i as u64 + 1) as usize);
        }
        let (shuffled, shuffled_items) = read_text(&text(&rows), &SessionFormat::default()).unwrap();
        assert_eq!(by_key(&grouped, &grouped_items), by_key(&shuffled, &shuffled_items));
        assert_eq!(grouped.sessions.start, shuffled.sessions.start);
        assert!(shuffled.sessions.start.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn gather_blocks_reorders_in_place() {
        let mut items: Vec<u32> = vec![0, 1, 2, 3, 4, 5, 6];
        // Blocks [0,1] [2] [3,4,5] [6], wanted order 2, 0, 3, 1.
        let order = [2, 0, 3, 1];
        let new_starts = block_offsets(&order, |b| [2, 1, 3, 1][b]);
        gather_blocks(&mut items, &[0, 2, 3, 6], &order, &new_starts);
        assert_eq!(items, vec![3, 4, 5, 0, 1, 6, 2]);
    }

    #[test]
    fn counts_lines_with_and_without_a_final_newline() {
        assert_eq!(count_lines(&b"a\nb\n"[..]).unwrap(), 2);
        assert_eq!(count_lines(&b"a\nb"[..]).unwrap(), 2);
        assert_eq!(count_lines(&b""[..]).unwrap(), 0);
    }
}
