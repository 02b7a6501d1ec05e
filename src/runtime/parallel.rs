//! Parallel loops of the fused step on libtorch's own OpenMP threads.
//!
//! libtorch's matrix products run on an OpenMP team whose workers spin for a while after each product.
//! Threads of our own would compete with those spinning workers for the same cores; handing our loops to
//! the same team (through libgomp's `GOMP_parallel`, looked up at run time) reuses the workers that are
//! already awake. Without libgomp in the process the loops run on the calling thread.

use std::ffi::{c_int, c_uint, c_void};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

type GompParallel = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
type ThreadNumber = unsafe extern "C" fn() -> c_int;

struct OpenMp {
    parallel: GompParallel,
    thread_number: ThreadNumber,
    thread_count: ThreadNumber,
}

fn openmp() -> Option<&'static OpenMp> {
    static OPENMP: OnceLock<Option<OpenMp>> = OnceLock::new();
    OPENMP
        .get_or_init(|| {
            // Safety: dlsym with a NUL-terminated name; the symbols have the C signatures of libgomp's ABI.
            unsafe {
                let parallel = libc::dlsym(libc::RTLD_DEFAULT, c"GOMP_parallel".as_ptr());
                let thread_number = libc::dlsym(libc::RTLD_DEFAULT, c"omp_get_thread_num".as_ptr());
                let thread_count = libc::dlsym(libc::RTLD_DEFAULT, c"omp_get_num_threads".as_ptr());
                (!parallel.is_null() && !thread_number.is_null() && !thread_count.is_null()).then(|| OpenMp {
                    parallel: std::mem::transmute::<*mut c_void, GompParallel>(parallel),
                    thread_number: std::mem::transmute::<*mut c_void, ThreadNumber>(thread_number),
                    thread_count: std::mem::transmute::<*mut c_void, ThreadNumber>(thread_count),
                })
            }
        })
        .as_ref()
}

struct Job<'a> {
    work: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    openmp: &'a OpenMp,
    panicked: AtomicBool,
}

extern "C" fn run_part(data: *mut c_void) {
    // Safety: `data` is the `Job` that `for_each_part` keeps alive until GOMP_parallel returns.
    let job = unsafe { &*(data as *const Job<'_>) };
    // Safety: called on a thread of the team that GOMP_parallel started.
    let (thread, threads) = unsafe { ((job.openmp.thread_number)() as usize, ((job.openmp.thread_count)() as usize).max(1)) };
    // The team may be smaller than asked for: each thread then takes every `threads`-th part.
    for part in (thread..job.parts).step_by(threads) {
        if catch_unwind(AssertUnwindSafe(|| (job.work)(part))).is_err() {
            job.panicked.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs `work(0)`, ..., `work(parts - 1)` at once, one per thread of libtorch's team (`parts` at most
/// its thread count), or one after another when there is no team.
pub fn for_each_part(parts: usize, work: &(dyn Fn(usize) + Sync)) {
    match openmp() {
        Some(openmp) if parts > 1 => {
            let job = Job { work, parts, openmp, panicked: AtomicBool::new(false) };
            // Safety: `run_part` reads `job` only while GOMP_parallel runs; it returns after every part.
            unsafe { (openmp.parallel)(run_part, &job as *const Job<'_> as *mut c_void, parts as c_uint, 0) };
            assert!(!job.panicked.load(Ordering::Relaxed), "a parallel part of the fused step panicked");
        }
        _ => (0..parts).for_each(work),
    }
}

/// How many parts to split `elements` of work into: one per libtorch thread, but only for loops large
/// enough that waking a thread pays.
pub fn parts_for(elements: usize) -> usize {
    const MINIMUM_PER_PART: usize = 1 << 16;
    let threads = tch::get_num_threads().max(1) as usize;
    (elements / MINIMUM_PER_PART).clamp(1, threads)
}

/// What a part of [`for_each_row_block`] does with its block: `(part, its rows, their values)`.
pub type RowWork<'a, T> = dyn Fn(usize, Range<usize>, &mut [T]) + Sync + 'a;

/// Runs `work(part, rows, block)` for `parts` consecutive blocks of whole rows of `data` (`row_width` values a
/// row), at once on libtorch's threads: part `p` gets rows `n·p/parts .. n·(p+1)/parts` of the `n` rows,
/// `rows` is that range and `block` its values. The blocks come from `split_at_mut`, so a part can reach
/// its own rows only.
pub fn for_each_row_block<T: Send>(data: &mut [T], row_width: usize, parts: usize, work: &RowWork<'_, T>) {
    let width = row_width.max(1);
    let rows = data.len() / width;
    let mut blocks = Vec::with_capacity(parts);
    let mut rest = data;
    for part in 0..parts {
        let range = rows * part / parts..rows * (part + 1) / parts;
        let (block, tail) = std::mem::take(&mut rest).split_at_mut(range.len() * width);
        blocks.push(Mutex::new((range, block)));
        rest = tail;
    }
    for_each_part(parts, &|part| {
        // Each part locks its own block, once: the lock only carries the `&mut` across threads.
        let mut guard = blocks[part].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (range, block) = &mut *guard;
        work(part, range.clone(), block);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn row_blocks_cover_every_row_once_in_order() {
        let mut data: Vec<u32> = vec![0; 7 * 3];
        for_each_row_block(&mut data, 3, 3, &|part, rows, block| {
            assert_eq!(block.len(), rows.len() * 3);
            for (offset, row) in block.chunks_exact_mut(3).enumerate() {
                row.fill((rows.start + offset) as u32 * 10 + part as u32);
            }
        });
        let firsts: Vec<u32> = data.chunks_exact(3).map(|row| row[0]).collect();
        // 7 rows in 3 parts: 0..2, 2..4, 4..7.
        assert_eq!(firsts, [0, 10, 21, 31, 42, 52, 62]);
    }

    #[test]
    fn every_part_runs_once() {
        let runs: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
        for_each_part(2, &|part| {
            runs[part].fetch_add(1, Ordering::Relaxed);
        });
        assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
    }
}
