//! Job counts by state, kept in memory so that `status` costs nothing however large the
//! table grows. Seeded from the database at start-up and moved only after a transition has
//! committed; `retry-queue` still counts in the database, and the tests check they agree.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::db::jobs::{Counts, JobState};

#[derive(Default)]
pub struct LiveCounts {
    by_state: [AtomicI64; 4],
}

impl LiveCounts {
    pub fn new(c: Counts) -> Self {
        let live = LiveCounts::default();
        live.add(JobState::Waiting, c.waiting);
        live.add(JobState::Active, c.active);
        live.add(JobState::Completed, c.completed);
        live.add(JobState::Failed, c.failed);
        live
    }

    pub fn add(&self, state: JobState, n: i64) {
        self.by_state[state as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn shift(&self, from: JobState, to: JobState, n: i64) {
        self.add(to, n);
        self.add(from, -n);
    }

    pub fn snapshot(&self) -> Counts {
        let get = |s: JobState| self.by_state[s as usize].load(Ordering::Relaxed).max(0);
        Counts {
            waiting: get(JobState::Waiting),
            active: get(JobState::Active),
            completed: get(JobState::Completed),
            failed: get(JobState::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_counts_between_states() {
        let c = LiveCounts::new(Counts {
            waiting: 5,
            ..Default::default()
        });
        c.shift(JobState::Waiting, JobState::Active, 3);
        c.shift(JobState::Active, JobState::Completed, 2);
        c.shift(JobState::Active, JobState::Failed, 1);
        c.add(JobState::Completed, -2);
        let s = c.snapshot();
        assert_eq!((s.waiting, s.active, s.completed, s.failed), (2, 0, 0, 1));
    }
}
