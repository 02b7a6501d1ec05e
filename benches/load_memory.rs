//! Memory benchmark: peak bytes per event while reading generated sessions into the columnar store.
//!
//! Usage: `cargo bench --no-default-features --bench load_memory -- [EVENTS] [ITEMS]`
//! (default 10^7 events and 10^6 items; the target is measured at 10^8).
//! The sessions come from `prnn::data::synth::SessionStream` as GRU4Rec TSV text, parsed exactly as a file
//! would be, so the figure covers the reader's buffers, the item interner and the session store. Peak RSS
//! comes from getrusage; the baseline (binary, allocator, the generator's item tables) is measured first by
//! generating and parsing a tiny stream, and subtracted.

use std::path::Path;
use std::time::Instant;

use prnn::config::SessionFormat;
use prnn::data::intern::Interner;
use prnn::data::sessions;
use prnn::data::synth::{SessionStream, SynthConfig};

fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

fn current_rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let events: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let items: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let synth = SynthConfig { sessions: events / 5, items, clusters: 1000, dim: 8, ..SynthConfig::default() };
    let format = SessionFormat::default();
    let path = Path::new("<generated>");

    // Baseline: everything but the event data (the generator's tables, code, allocator arenas).
    let tiny = SynthConfig { sessions: 10, ..synth.clone() };
    let mut tiny_items = Interner::new();
    sessions::read(SessionStream::new(&tiny).unwrap(), path, &format, &mut tiny_items, 64).unwrap();
    let baseline = current_rss_bytes();

    let started = Instant::now();
    let rows = sessions::count_lines(SessionStream::new(&synth).unwrap()).unwrap();
    let counted = started.elapsed();
    let started = Instant::now();
    let mut item_ids = Interner::new();
    let read = sessions::read(SessionStream::new(&synth).unwrap(), path, &format, &mut item_ids, rows).unwrap();
    let elapsed = started.elapsed();
    let peak = peak_rss_bytes();

    let n = read.rows as f64;
    let store = read.sessions.heap_bytes() as f64;
    println!("events            {}", read.rows);
    println!("sessions          {}", read.sessions.len());
    println!("items             {}", item_ids.len());
    println!("count pass        {:.1} s", counted.as_secs_f64());
    println!("read + build      {:.1} s ({:.2} M events/s, generation included)", elapsed.as_secs_f64(), n / elapsed.as_secs_f64() / 1e6);
    println!("session store     {:.2} bytes/event", store / n);
    println!("item interner     {:.2} bytes/event", item_ids.heap_bytes() as f64 / n);
    println!("peak RSS          {:.2} GiB, baseline {:.1} MiB", peak as f64 / (1u64 << 30) as f64, baseline as f64 / (1u64 << 20) as f64);
    println!("peak over baseline {:.2} bytes/event", (peak.saturating_sub(baseline)) as f64 / n);
}
