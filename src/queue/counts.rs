//! Job counts by session and state, kept in memory so that `status` and the sessions list
//! cost nothing however large the table grows. Seeded from the database at start-up and moved
//! only after a transition has committed; `retry-queue` still counts in the database, and the
//! tests check they agree.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::db::jobs::{Counts, JobState};

type Cells = Arc<[AtomicI64; 4]>;

#[derive(Default)]
pub struct LiveCounts {
    by_session: RwLock<HashMap<String, Cells>>,
}

impl LiveCounts {
    pub fn new(seed: BTreeMap<String, Counts>) -> Self {
        let live = LiveCounts::default();
        for (session, c) in seed {
            for state in JobState::ALL {
                live.add(&session, state, c.get(state));
            }
        }
        live
    }

    fn cells(&self, session: &str) -> Cells {
        if let Some(c) = self.by_session.read().expect("counts lock").get(session) {
            return c.clone();
        }
        self.by_session
            .write()
            .expect("counts lock")
            .entry(session.to_string())
            .or_default()
            .clone()
    }

    pub fn add(&self, session: &str, state: JobState, n: i64) {
        if n != 0 {
            self.cells(session)[state as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn shift(&self, session: &str, from: JobState, to: JobState, n: i64) {
        self.add(session, to, n);
        self.add(session, from, -n);
    }

    fn read(cells: &[AtomicI64; 4]) -> Counts {
        let get = |s: JobState| cells[s as usize].load(Ordering::Relaxed).max(0);
        Counts {
            waiting: get(JobState::Waiting),
            active: get(JobState::Active),
            completed: get(JobState::Completed),
            failed: get(JobState::Failed),
        }
    }

    /// One session's jobs by state.
    pub fn of(&self, session: &str) -> Counts {
        self.by_session
            .read()
            .expect("counts lock")
            .get(session)
            .map(|c| Self::read(c))
            .unwrap_or_default()
    }

    /// Every session that has jobs (a deleted session's failed jobs too).
    pub fn by_session(&self) -> BTreeMap<String, Counts> {
        self.by_session
            .read()
            .expect("counts lock")
            .iter()
            .map(|(k, c)| (k.clone(), Self::read(c)))
            .filter(|(_, c)| JobState::ALL.iter().any(|s| c.get(*s) > 0))
            .collect()
    }

    /// All sessions together.
    pub fn snapshot(&self) -> Counts {
        Counts::total(self.by_session().values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_move_counts_between_states_within_a_session() {
        let c = LiveCounts::new(BTreeMap::from([(
            "a".to_string(),
            Counts {
                waiting: 5,
                ..Default::default()
            },
        )]));
        c.shift("a", JobState::Waiting, JobState::Active, 3);
        c.shift("a", JobState::Active, JobState::Completed, 2);
        c.shift("a", JobState::Active, JobState::Failed, 1);
        c.add("a", JobState::Completed, -2);
        c.add("b", JobState::Waiting, 4);
        let s = c.of("a");
        assert_eq!((s.waiting, s.active, s.completed, s.failed), (2, 0, 0, 1));
        let t = c.snapshot();
        assert_eq!((t.waiting, t.failed), (6, 1));
        assert_eq!(c.by_session().len(), 2);
    }
}
