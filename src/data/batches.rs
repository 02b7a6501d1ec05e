//! Session-parallel mini-batches as the official GRU4Rec builds them: each batch row follows one session.
//!
//! A batch has up to `batch_size` rows. Row `r` holds one session and a cursor into it; every step, each
//! row emits the pair (item at the cursor, the item after it) and the cursor moves on, so a row's hidden
//! state carries over from step to step exactly as long as it stays in the same session. At the start the
//! rows take the first sessions in order. When a row's session has no pair left it takes the next session
//! not started yet (finished rows are refilled in row order) and its hidden state must be zeroed before
//! the next step. Once every session has been started, finished rows are dropped instead and the batch
//! shrinks; the remaining rows keep their relative order. Sessions with fewer than two events hold no pair
//! and are passed over.
//!
//! The epoch ends when no row is left, or when fewer than `min_active` rows are left: with in-batch
//! negatives only, a lone row has nothing to score against, so GRU4Rec stops there and the last events of
//! the longest sessions are not trained on (`min_active = 2`). With `min_active = 1` every pair of every
//! session is emitted exactly once, which is what evaluation needs.
//!
//! The caller's protocol for each [`Step`], in this order:
//!
//! 1. if `kept_rows` is `Some(rows)`, gather the hidden state: new row `i` is old row `rows[i]` (every
//!    layer; `index_select` on dimension 0);
//! 2. zero the hidden-state rows listed in `reset_rows` (indices into the gathered, current layout);
//! 3. run the network on `inputs` and score against `targets`.
//!
//! At the first step of an epoch `kept_rows` is `None` and `reset_rows` lists every row: the caller starts
//! from a zero hidden state with `inputs.len()` rows (the previous epoch's state has another row count and
//! must not be carried over).

use crate::data::sessions::Sessions;

/// How many (input, target) pairs the sessions hold: an epoch's work with `min_active = 1`, and an upper
/// bound with `min_active = 2`.
pub fn total_pairs(sessions: &Sessions) -> u64 {
    sessions.offsets.windows(2).map(|w| u64::from(w[1] - w[0]).saturating_sub(1)).sum()
}

/// One step of the batch; the slices are valid until the next call to [`SessionBatches::next_step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step<'a> {
    /// The item each row reads this step.
    pub inputs: &'a [u32],
    /// The item each row must predict: the event after its input in the same session.
    pub targets: &'a [u32],
    /// Rows whose hidden state must be zeroed before this step, ascending, in this step's layout (after
    /// `kept_rows` is applied): rows that start a new session. Every row at the first step of an epoch.
    pub reset_rows: &'a [usize],
    /// `Some(rows)` when the batch shrank since the previous step: this step's row `i` continues the
    /// previous step's row `rows[i]` (ascending). `None` when the layout is unchanged, and at the first step.
    pub kept_rows: Option<&'a [usize]>,
    /// The session (index into [`Sessions`]) each row follows.
    pub session_of_row: &'a [u32],
    /// The index within its session of each row's target event (at least 1).
    pub position: &'a [u32],
}

impl Step<'_> {
    /// Rows in this step: the batch size, or less once the batch has shrunk.
    pub fn rows(&self) -> usize {
        self.inputs.len()
    }
}

/// The session-parallel batches of one pass over `sessions`; [`SessionBatches::restart`] begins another.
#[derive(Debug, Clone)]
pub struct SessionBatches<'a> {
    sessions: &'a Sessions,
    batch_size: usize,
    min_active: usize,
    // Per row: its session, the absolute index of its next input event, and the end of its session.
    session_of_row: Vec<u32>,
    cursor: Vec<u32>,
    end: Vec<u32>,
    // The step handed out last; buffers sized once to `batch_size` so steps never allocate.
    inputs: Vec<u32>,
    targets: Vec<u32>,
    position: Vec<u32>,
    reset_rows: Vec<usize>,
    kept_rows: Vec<usize>,
    next_session: usize,
    started: bool,
    finished: bool,
    steps: u64,
    emitted_pairs: u64,
}

impl<'a> SessionBatches<'a> {
    /// Batches of `batch_size` rows; the pass ends when fewer than `min_active` rows are left (1 normally, 2
    /// when the only negatives are the other rows' targets).
    ///
    /// Panics if `batch_size` is 0, or `min_active` is 0 or larger than `batch_size` (no step could ever run).
    pub fn new(sessions: &'a Sessions, batch_size: usize, min_active: usize) -> Self {
        assert!(batch_size > 0, "batch size must be at least 1");
        assert!((1..=batch_size).contains(&min_active), "min_active must be between 1 and the batch size ({batch_size}), got {min_active}");
        // No more rows than sessions are ever active: a batch size beyond the data reserves nothing more.
        let rows = batch_size.min(sessions.len());
        let buffer = || Vec::with_capacity(rows);
        SessionBatches {
            sessions,
            batch_size,
            min_active,
            session_of_row: buffer(),
            cursor: buffer(),
            end: buffer(),
            inputs: buffer(),
            targets: buffer(),
            position: buffer(),
            reset_rows: Vec::with_capacity(rows),
            kept_rows: Vec::with_capacity(rows),
            next_session: 0,
            started: false,
            finished: false,
            steps: 0,
            emitted_pairs: 0,
        }
    }

    /// Goes back to the start of the pass, keeping the buffers (one `SessionBatches` serves every epoch).
    pub fn restart(&mut self) {
        self.session_of_row.clear();
        self.cursor.clear();
        self.end.clear();
        self.inputs.clear();
        self.targets.clear();
        self.position.clear();
        self.reset_rows.clear();
        self.kept_rows.clear();
        self.next_session = 0;
        self.started = false;
        self.finished = false;
        self.steps = 0;
        self.emitted_pairs = 0;
    }

    /// The next step, or `None` when the pass is over (and on every call after that, until `restart`).
    pub fn next_step(&mut self) -> Option<Step<'_>> {
        if self.finished {
            return None;
        }
        self.reset_rows.clear();
        self.kept_rows.clear();
        let mut shrank = false;
        if !self.started {
            self.started = true;
            while self.session_of_row.len() < self.batch_size {
                let Some(session) = self.take_next_session() else { break };
                let (start, end) = self.bounds(session);
                self.session_of_row.push(session as u32);
                self.cursor.push(start);
                self.end.push(end);
            }
            self.reset_rows.extend(0..self.session_of_row.len());
        } else {
            // Rows are visited in order, so refills go to finished rows in row order, and every dropped row
            // comes after every refilled one: a refilled row keeps its index when the batch shrinks.
            let mut write = 0;
            for row in 0..self.session_of_row.len() {
                if self.cursor[row] + 1 < self.end[row] {
                    self.session_of_row[write] = self.session_of_row[row];
                    self.cursor[write] = self.cursor[row];
                    self.end[write] = self.end[row];
                } else if let Some(session) = self.take_next_session() {
                    let (start, end) = self.bounds(session);
                    self.session_of_row[write] = session as u32;
                    self.cursor[write] = start;
                    self.end[write] = end;
                    self.reset_rows.push(write);
                } else {
                    shrank = true;
                    continue;
                }
                self.kept_rows.push(row);
                write += 1;
            }
            self.session_of_row.truncate(write);
            self.cursor.truncate(write);
            self.end.truncate(write);
        }

        let rows = self.session_of_row.len();
        if rows == 0 || rows < self.min_active {
            self.finished = true;
            return None;
        }
        let events = &self.sessions.events;
        let offsets = &self.sessions.offsets;
        self.inputs.clear();
        self.targets.clear();
        self.position.clear();
        for row in 0..rows {
            let at = self.cursor[row] as usize;
            self.inputs.push(events[at].item);
            self.targets.push(events[at + 1].item);
            self.position.push(at as u32 + 1 - offsets[self.session_of_row[row] as usize]);
            self.cursor[row] += 1;
        }
        self.steps += 1;
        self.emitted_pairs += rows as u64;
        Some(Step {
            inputs: &self.inputs,
            targets: &self.targets,
            reset_rows: &self.reset_rows,
            kept_rows: if shrank { Some(&self.kept_rows) } else { None },
            session_of_row: &self.session_of_row,
            position: &self.position,
        })
    }

    /// Pairs emitted so far in this pass (the sum of the rows of every step).
    pub fn emitted_pairs(&self) -> u64 {
        self.emitted_pairs
    }

    /// Steps emitted so far in this pass.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sessions started so far in this pass (not counting those passed over for having no pair); counted on
    /// each call, so for progress reports rather than every step.
    pub fn sessions_started(&self) -> usize {
        self.sessions.offsets[..=self.next_session].windows(2).filter(|w| w[1] - w[0] >= 2).count()
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn min_active(&self) -> usize {
        self.min_active
    }

    fn take_next_session(&mut self) -> Option<usize> {
        while self.next_session < self.sessions.len() {
            let session = self.next_session;
            self.next_session += 1;
            let (start, end) = self.bounds(session);
            if end - start >= 2 {
                return Some(session);
            }
        }
        None
    }

    fn bounds(&self, session: usize) -> (u32, u32) {
        (self.sessions.offsets[session], self.sessions.offsets[session + 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions_of(items: &[&[u32]]) -> Sessions {
        Sessions::from_items(items)
    }

    /// An owned copy of a step, for comparing whole epochs.
    #[derive(Debug, Clone, PartialEq)]
    struct Recorded {
        inputs: Vec<u32>,
        targets: Vec<u32>,
        reset_rows: Vec<usize>,
        kept_rows: Option<Vec<usize>>,
        session_of_row: Vec<u32>,
        position: Vec<u32>,
    }

    fn record(step: &Step) -> Recorded {
        Recorded {
            inputs: step.inputs.to_vec(),
            targets: step.targets.to_vec(),
            reset_rows: step.reset_rows.to_vec(),
            kept_rows: step.kept_rows.map(<[usize]>::to_vec),
            session_of_row: step.session_of_row.to_vec(),
            position: step.position.to_vec(),
        }
    }

    fn epoch(sessions: &Sessions, batch_size: usize, min_active: usize) -> Vec<Recorded> {
        let mut batches = SessionBatches::new(sessions, batch_size, min_active);
        let mut steps = Vec::new();
        while let Some(step) = batches.next_step() {
            steps.push(record(&step));
        }
        assert_eq!(batches.emitted_pairs(), steps.iter().map(|s| s.inputs.len() as u64).sum::<u64>());
        assert_eq!(batches.steps(), steps.len() as u64);
        steps
    }

    fn step(pairs: &[(u32, u32)], reset_rows: &[usize], kept_rows: Option<&[usize]>, session_of_row: &[u32], position: &[u32]) -> Recorded {
        Recorded {
            inputs: pairs.iter().map(|p| p.0).collect(),
            targets: pairs.iter().map(|p| p.1).collect(),
            reset_rows: reset_rows.to_vec(),
            kept_rows: kept_rows.map(<[usize]>::to_vec),
            session_of_row: session_of_row.to_vec(),
            position: position.to_vec(),
        }
    }

    /// Items are `10 * session + position`, so every pair names where it came from.
    fn hand_case() -> Sessions {
        sessions_of(&[&[0, 1, 2], &[10, 11], &[20], &[30, 31, 32, 33], &[40, 41], &[], &[60, 61, 62]])
    }

    #[test]
    fn hand_case_emits_each_rows_pairs_in_gru4rec_order() {
        let steps = epoch(&hand_case(), 2, 1);
        let expected = vec![
            step(&[(0, 1), (10, 11)], &[0, 1], None, &[0, 1], &[1, 1]),
            // Row 1 finished session 1; session 2 has one event, so row 1 takes session 3.
            step(&[(1, 2), (30, 31)], &[1], None, &[0, 3], &[2, 1]),
            step(&[(40, 41), (31, 32)], &[0], None, &[4, 3], &[1, 2]),
            // Session 5 is empty and passed over.
            step(&[(60, 61), (32, 33)], &[0], None, &[6, 3], &[1, 3]),
            // No session left: row 1 is dropped, row 0 continues alone.
            step(&[(61, 62)], &[], Some(&[0]), &[6], &[2]),
        ];
        assert_eq!(steps, expected);
    }

    #[test]
    fn in_batch_negatives_only_stop_when_one_row_is_left() {
        let sessions = hand_case();
        let steps = epoch(&sessions, 2, 2);
        assert_eq!(steps.len(), 4, "{steps:#?}");
        assert_eq!(steps, epoch(&sessions, 2, 1)[..4]);
        let mut batches = SessionBatches::new(&sessions, 2, 2);
        while batches.next_step().is_some() {}
        assert_eq!(batches.emitted_pairs(), total_pairs(&sessions) - 1);
        // Once over, the pass stays over.
        assert!(batches.next_step().is_none());
    }

    #[test]
    fn refills_take_the_next_sessions_in_row_order() {
        let sessions = sessions_of(&[&[0, 1], &[10, 11, 12], &[20, 21], &[30, 31], &[40, 41], &[50, 51]]);
        let steps = epoch(&sessions, 3, 1);
        // Rows 0 and 2 finish together: row 0 gets session 3, row 2 gets session 4.
        assert_eq!(steps[1].session_of_row, [3, 1, 4]);
        assert_eq!(steps[1].reset_rows, [0, 2]);
        // Then all three finish: row 0 takes session 5, the last one; rows 1 and 2 are dropped.
        assert_eq!(steps[2], step(&[(50, 51)], &[0], Some(&[0]), &[5], &[1]));
        assert_eq!(steps.len(), 3);
    }

    #[test]
    fn batch_shrinks_keeping_row_order_and_reports_kept_rows() {
        let sessions = sessions_of(&[&[0, 1, 2, 3], &[10, 11], &[20, 21, 22, 23, 24], &[30, 31, 32]]);
        let steps = epoch(&sessions, 3, 1);
        let expected = vec![
            step(&[(0, 1), (10, 11), (20, 21)], &[0, 1, 2], None, &[0, 1, 2], &[1, 1, 1]),
            step(&[(1, 2), (30, 31), (21, 22)], &[1], None, &[0, 3, 2], &[2, 1, 2]),
            step(&[(2, 3), (31, 32), (22, 23)], &[], None, &[0, 3, 2], &[3, 2, 3]),
            // Rows 0 and 1 finish with no session left; row 2 becomes row 0.
            step(&[(23, 24)], &[], Some(&[2]), &[2], &[4]),
        ];
        assert_eq!(steps, expected);

        // A middle row dropped: the rows around it close up in order.
        let sessions = sessions_of(&[&[0, 1, 2, 3], &[10, 11], &[20, 21, 22]]);
        let steps = epoch(&sessions, 3, 1);
        assert_eq!(steps[1], step(&[(1, 2), (21, 22)], &[], Some(&[0, 2]), &[0, 2], &[2, 2]));
        assert_eq!(steps[2], step(&[(2, 3)], &[], Some(&[0]), &[0], &[3]));
        assert_eq!(steps.len(), 3);
    }

    #[test]
    fn epoch_goes_on_while_sessions_remain_to_be_started() {
        // Three rows finish at once and only one session is left to fill them: the batch cannot be
        // filled, yet session 4 must still be trained on, and session 0 to its end.
        let long: Vec<u32> = (0..10).collect();
        let sessions = sessions_of(&[&long, &[10, 11], &[20, 21], &[30, 31], &[40, 41, 42]]);
        let steps = epoch(&sessions, 4, 1);
        assert_eq!(steps[1], step(&[(1, 2), (40, 41)], &[1], Some(&[0, 1]), &[0, 4], &[2, 1]));
        assert_eq!(steps[2].session_of_row, [0, 4]);
        assert_eq!(steps.len(), 9);
        assert_eq!(steps.iter().map(|s| s.inputs.len() as u64).sum::<u64>(), total_pairs(&sessions));

        // With in-batch negatives only, the pass stops when session 4 ends and session 0 is left alone.
        let steps = epoch(&sessions, 4, 2);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[2], step(&[(2, 3), (41, 42)], &[], None, &[0, 4], &[3, 2]));
    }

    #[test]
    fn sessions_shorter_than_two_events_are_passed_over() {
        let sessions = sessions_of(&[&[0], &[], &[20, 21], &[30], &[40, 41, 42], &[], &[60]]);
        let steps = epoch(&sessions, 2, 1);
        assert_eq!(steps[0].session_of_row, [2, 4]);
        assert!(steps.iter().all(|s| s.session_of_row.iter().all(|&session| session == 2 || session == 4)));
        assert_eq!(total_pairs(&sessions), 3);

        let mut batches = SessionBatches::new(&sessions, 5, 1);
        while batches.next_step().is_some() {}
        assert_eq!(batches.sessions_started(), 2);
    }

    #[test]
    fn no_step_without_enough_sessions() {
        assert!(epoch(&Sessions::empty(), 3, 1).is_empty());
        assert!(epoch(&sessions_of(&[&[1], &[2]]), 3, 1).is_empty());
        // One session with pairs and in-batch negatives only: nothing to score against from the start.
        assert!(epoch(&sessions_of(&[&[1, 2, 3], &[4]]), 3, 2).is_empty());
        assert_eq!(epoch(&sessions_of(&[&[1, 2, 3], &[4]]), 3, 1).len(), 2);
    }

    /// Random sessions of lengths 0..=7 over 50 items, from a small linear congruential generator.
    fn random_sessions(count: usize, seed: u64) -> Sessions {
        let mut state = seed;
        let mut next = |bound: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % bound) as u32
        };
        let items: Vec<Vec<u32>> = (0..count).map(|_| (0..next(8)).map(|_| next(50)).collect()).collect();
        sessions_of(&items.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    #[test]
    fn every_pair_of_every_session_is_emitted_exactly_once() {
        for seed in 0..4 {
            let sessions = random_sessions(60, seed);
            let mut expected: Vec<(u32, u32, u32, u32)> = Vec::new();
            for s in 0..sessions.len() {
                for (position, pair) in sessions.session(s).windows(2).enumerate() {
                    expected.push((s as u32, position as u32 + 1, pair[0].item, pair[1].item));
                }
            }
            expected.sort_unstable();
            for batch_size in [1, 2, 3, 7, 16, 59, 60, 61, 500] {
                let mut emitted = Vec::new();
                for step in epoch(&sessions, batch_size, 1) {
                    for row in 0..step.inputs.len() {
                        emitted.push((step.session_of_row[row], step.position[row], step.inputs[row], step.targets[row]));
                    }
                }
                emitted.sort_unstable();
                assert_eq!(emitted, expected, "seed {seed}, batch size {batch_size}");
                assert_eq!(emitted.len() as u64, total_pairs(&sessions));
            }
        }
    }

    /// Follows the caller's protocol with a fake hidden state that remembers (session, last position) per
    /// row: a row that is not reset must continue exactly where it left off, and a reset row must start a
    /// session. This catches a reset list in a stale layout as well as a missing or extra reset.
    #[test]
    fn reset_rows_are_exactly_the_rows_starting_a_session_in_the_current_layout() {
        let mut total_shrinks = 0;
        for seed in 10..16 {
            let sessions = random_sessions(80, seed);
            for (batch_size, min_active) in [(1, 1), (2, 1), (2, 2), (5, 1), (5, 2), (13, 1), (13, 2), (100, 1)] {
                let mut batches = SessionBatches::new(&sessions, batch_size, min_active);
                let mut hidden: Vec<Option<(u32, u32)>> = Vec::new();
                let mut first = true;
                let mut shrinks = 0;
                while let Some(step) = batches.next_step() {
                    if first {
                        assert!(step.kept_rows.is_none());
                        assert_eq!(step.reset_rows, (0..step.rows()).collect::<Vec<_>>());
                        hidden = vec![None; step.rows()];
                        first = false;
                    }
                    if let Some(kept) = step.kept_rows {
                        assert!(kept.len() < hidden.len() && kept.windows(2).all(|w| w[0] < w[1]));
                        hidden = kept.iter().map(|&row| hidden[row]).collect();
                        shrinks += 1;
                    }
                    assert_eq!(hidden.len(), step.rows(), "seed {seed}, batch {batch_size}: apply kept_rows first");
                    for &row in step.reset_rows {
                        hidden[row] = None;
                    }
                    for (row, state) in hidden.iter_mut().enumerate() {
                        let (session, position) = (step.session_of_row[row], step.position[row]);
                        match *state {
                            None => {
                                assert_eq!(position, 1, "seed {seed}, batch {batch_size}: row {row} reset mid-session")
                            }
                            Some(previous) => assert_eq!(
                                previous,
                                (session, position - 1),
                                "seed {seed}, batch {batch_size}: row {row} carries another session's state"
                            ),
                        }
                        let events = sessions.session(session as usize);
                        assert_eq!(step.inputs[row], events[position as usize - 1].item);
                        assert_eq!(step.targets[row], events[position as usize].item);
                        *state = Some((session, position));
                    }
                }
                total_shrinks += shrinks;
            }
        }
        assert!(total_shrinks > 20, "the cases should exercise shrinking batches, got {total_shrinks} shrinks");
    }

    #[test]
    fn restart_replays_the_same_epoch() {
        let sessions = random_sessions(40, 7);
        let mut batches = SessionBatches::new(&sessions, 4, 1);
        let mut first = Vec::new();
        while let Some(step) = batches.next_step() {
            first.push(record(&step));
        }
        batches.restart();
        assert_eq!(batches.emitted_pairs(), 0);
        let mut second = Vec::new();
        while let Some(step) = batches.next_step() {
            second.push(record(&step));
        }
        assert_eq!(first, second);
        assert_eq!(batches.emitted_pairs(), total_pairs(&sessions));
    }

    #[test]
    fn steps_reuse_their_buffers() {
        let sessions = random_sessions(300, 3);
        let mut batches = SessionBatches::new(&sessions, 8, 1);
        let pointers = |b: &SessionBatches| {
            [
                b.inputs.as_ptr() as usize,
                b.targets.as_ptr() as usize,
                b.position.as_ptr() as usize,
                b.session_of_row.as_ptr() as usize,
                b.cursor.as_ptr() as usize,
                b.end.as_ptr() as usize,
                b.reset_rows.as_ptr() as usize,
                b.kept_rows.as_ptr() as usize,
            ]
        };
        let before = pointers(&batches);
        let mut steps = 0;
        while batches.next_step().is_some() {
            steps += 1;
            assert_eq!(pointers(&batches), before);
        }
        assert!(steps > 100);
    }
}
