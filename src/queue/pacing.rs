//! Pacing in the queue: before a paced session's next job is claimed, the pace hook (the
//! built-in rules, or a plugin) says whether it may go now. A rule that holds back the whole
//! session (the gap, a cap, quiet hours, the warm-up) keeps the lane waiting until then, with no
//! write; one that holds back only this message (its recipient's cap, first contacts) moves that
//! job's `run_at` and names the rule on it, and the next job is asked. No attempt is spent.
//!
//! What the session sent lately is kept in memory while it is paced (loaded from `sent_log`, so
//! a restart keeps the windows) and grows as sends complete. A sign of trouble (`rate-limited`)
//! rests the session for `cooldown`, stored so that it outlasts a restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

use rand::Rng;
use serde::Serialize;

use super::{JobRow, JobState, Lane, Queue};
use crate::config::Pacing;
use crate::db::{DbError, Durability, pacing as rows};
use crate::events::Event;
use crate::hooks::{PaceRequest, Paced};
use wa_pacing::{DAY, HOUR};

/// Failure codes that rest a paced session for its `cooldown`.
pub const TROUBLE_CODES: &[&str] = &["rate-limited"];

/// Most sends of a session's history kept in memory.
const MAX_HISTORY: i64 = 20_000;

/// One send of a session's history.
#[derive(Debug, Clone)]
struct Recent {
    at: i64,
    chat_id: String,
    first_contact: bool,
}

#[derive(Default)]
struct State {
    /// The last day's sends, oldest first; loaded on first use while paced.
    history: Option<VecDeque<Recent>>,
    /// Where in the gap's range the next gap falls; drawn after each send.
    gap_draw: u32,
    /// The session is held back until then, by that rule.
    held: Option<(i64, String)>,
    /// The job claimed last: whether it goes to a first contact.
    claimed: Option<(i64, bool)>,
    linked_at: Option<i64>,
    cooldown: Option<(i64, String)>,
}

/// A lane's pacing: its rules (none: not paced) and what it sent lately.
#[derive(Default)]
pub(super) struct Pacer {
    pacing: RwLock<Option<Arc<Pacing>>>,
    state: Mutex<State>,
}

impl Pacer {
    pub(super) fn pacing(&self) -> Option<Arc<Pacing>> {
        self.pacing.read().expect("pacer lock").clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("pacer lock")
    }
}

/// How a paced session stands, as `GET /api/sessions/{name}` shows it.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PacingView {
    /// `off` (not paced), `ready`, `held` (a rule holds the next send back) or `cooldown`.
    pub state: &'static str,
    /// RFC 3339: when the rules next allow a send, while held or cooling down.
    pub next_send_at: Option<String>,
    pub sent_last_hour: u32,
    /// Sent in the last 24 hours.
    pub sent_today: u32,
    /// The daily cap in force (the warm-up's on a new number); null: none.
    pub cap_today: Option<u32>,
    /// The rule that holds the session back, or why it cools down.
    pub reason: Option<String>,
    /// RFC 3339: when a phone linked the session's number (the warm-up counts days from it);
    /// null for the sandbox, and for numbers linked before the gateway kept it.
    pub linked_at: Option<String>,
}

/// What a paced lane's step found.
pub(super) enum PaceStep {
    /// This job may go, and is claimed.
    Claimed(Box<JobRow>),
    /// Nothing may go before `until`.
    Held { until: i64, reason: String },
    /// No job is due.
    Idle,
}

impl Lane {
    /// Paces this lane by `pacing`, or not at all (`None`); its history is dropped when off.
    pub fn set_pacing(&self, pacing: Option<Pacing>) {
        let off = pacing.is_none();
        *self.pacer.pacing.write().expect("pacer lock") = pacing.map(Arc::new);
        let mut st = self.pacer.state();
        st.held = None;
        if off {
            st.history = None;
        }
        drop(st);
        self.wake.notify_one();
    }

    /// When the session's number was linked (the warm-up counts days from it).
    pub fn set_linked(&self, at: Option<i64>) {
        self.pacer.state().linked_at = at;
    }

    /// A cooldown read back from the database.
    pub fn set_cooldown(&self, cooldown: Option<(i64, String)>) {
        self.pacer.state().cooldown = cooldown;
        self.wake.notify_one();
    }

    pub fn is_paced(&self) -> bool {
        self.pacer.pacing().is_some_and(|p| p.enabled)
    }

    /// How long "typing…" shows before this text goes (zero when not paced).
    pub fn typing_for(&self, text: &str) -> std::time::Duration {
        match self.pacer.pacing() {
            Some(p) if p.enabled => p.typing_for(text.chars().count()),
            _ => std::time::Duration::ZERO,
        }
    }
}

impl Queue {
    /// Loads a paced lane's history when it has none yet.
    async fn history_loaded(&self, lane: &Lane) -> Result<(), DbError> {
        if lane.pacer.state().history.is_some() {
            return Ok(());
        }
        let since = self.clock.now_ms() - DAY;
        let rows = rows::history(&self.db.read, lane.name(), since, MAX_HISTORY).await?;
        let mut st = lane.pacer.state();
        if st.history.is_none() {
            st.history = Some(
                rows.into_iter()
                    .map(|r| Recent {
                        at: r.at,
                        chat_id: r.chat_id,
                        first_contact: r.first_contact,
                    })
                    .collect(),
            );
            st.gap_draw = rand::thread_rng().r#gen();
        }
        Ok(())
    }

    /// One step of a paced lane: the next due job, claimed if the rules let it go now.
    pub(super) async fn pace_step(&self, lane: &Lane) -> Result<PaceStep, DbError> {
        let Some(pacing) = lane.pacer.pacing().filter(|p| p.enabled) else {
            return Ok(PaceStep::Idle);
        };
        self.history_loaded(lane).await?;
        loop {
            let now = self.clock.now_ms();
            if let Some((until, reason)) = self.cooling(lane, now).await? {
                return Ok(PaceStep::Held { until, reason });
            }
            let Some(job) = rows::next_due(&self.db.read, lane.name(), now).await? else {
                lane.pacer.state().held = None;
                return Ok(PaceStep::Idle);
            };
            let first_contact = !rows::is_contact(&self.db.read, lane.name(), &job.chat_id).await?;
            let request = self.pace_request(lane, &pacing, &job, now, first_contact);
            match self.hooks.pace(&request) {
                Paced::Now => {
                    lane.pacer.state().held = None;
                    let lease = self.lease();
                    let seq = job.seq;
                    let claimed = self
                        .claim_with(lane, move |c, now| {
                            Box::pin(async move {
                                Ok(rows::claim_one(c, seq, now, &lease)
                                    .await?
                                    .into_iter()
                                    .collect())
                            })
                        })
                        .await?;
                    if let Some(row) = claimed.into_iter().next() {
                        lane.pacer.state().claimed = Some((row.seq, first_contact));
                        return Ok(PaceStep::Claimed(Box::new(row)));
                    }
                }
                Paced::Defer {
                    until,
                    reason,
                    this_message_only: true,
                } => {
                    let (seq, rule) = (job.seq, reason.clone());
                    self.db
                        .writer
                        .exec(Durability::Relaxed, move |c| {
                            Box::pin(async move { rows::defer(c, seq, until, &rule).await })
                        })
                        .await?;
                    self.metrics.paced(lane.name(), &reason);
                    tracing::info!(job.id = %job.id, session = lane.name(), rule = %reason, "⏳ Job {} held back by {reason} until {}", job.id, crate::time::rfc3339(until));
                }
                Paced::Defer { until, reason, .. } => {
                    let mut st = lane.pacer.state();
                    if st.held.as_ref() != Some(&(until, reason.clone())) {
                        self.metrics.paced(lane.name(), &reason);
                        tracing::info!(session = lane.name(), rule = %reason, "⏳ Session {} held back by {reason} until {}", lane.name(), crate::time::rfc3339(until));
                        st.held = Some((until, reason.clone()));
                    }
                    return Ok(PaceStep::Held { until, reason });
                }
            }
        }
    }

    /// The cooldown in force, if any; one that ended is cleared (and the database told).
    async fn cooling(&self, lane: &Lane, now: i64) -> Result<Option<(i64, String)>, DbError> {
        let cooldown = lane.pacer.state().cooldown.clone();
        match cooldown {
            Some((until, reason)) if until > now => Ok(Some((until, reason))),
            Some(_) => {
                lane.pacer.state().cooldown = None;
                let session = lane.name().to_string();
                self.db
                    .writer
                    .exec(Durability::Relaxed, move |c| {
                        Box::pin(async move { rows::set_cooldown(c, &session, None).await })
                    })
                    .await?;
                tracing::info!(
                    session = lane.name(),
                    "▶️ Session {} cooled down; sending again",
                    lane.name()
                );
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn pace_request(
        &self,
        lane: &Lane,
        pacing: &Pacing,
        job: &JobRow,
        now: i64,
        first_contact: bool,
    ) -> PaceRequest {
        let st = lane.pacer.state();
        let history = st.history.as_ref();
        let recent = history
            .into_iter()
            .flatten()
            .filter(|r| r.at > now - DAY)
            .map(|r| wa_pacing::Sent {
                at: r.at,
                first_contact: r.first_contact,
            })
            .collect();
        let to_recipient = history
            .into_iter()
            .flatten()
            .filter(|r| r.at > now - HOUR && r.chat_id == job.chat_id)
            .map(|r| r.at)
            .collect();
        let local = jiff::Timestamp::from_millisecond(now)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(pacing.timezone.clone());
        let local_ms =
            (local.hour() as u32 * 3600 + local.minute() as u32 * 60 + local.second() as u32)
                * 1000
                + local.millisecond() as u32;
        PaceRequest {
            session: lane.name().to_string(),
            chat_id: job.chat_id.clone(),
            number: job.number.clone(),
            text: job.message.clone(),
            priority: crate::domain::Priority::from_rank(job.priority),
            rules: pacing.rules.clone(),
            overrides: pacing.overrides.clone(),
            now,
            local_ms,
            recent,
            to_recipient,
            first_contact,
            day: st.linked_at.map(|at| ((now - at).max(0) / DAY) as u32),
            gap_draw: st.gap_draw,
        }
    }

    /// After a paced lane's send completed: it joins the history, and a new gap is drawn.
    pub(super) fn paced_sent(&self, lane: &Lane, job: &JobRow) {
        let now = self.clock.now_ms();
        let mut st = lane.pacer.state();
        let first_contact = matches!(st.claimed, Some((seq, true)) if seq == job.seq);
        st.claimed = None;
        st.gap_draw = rand::thread_rng().r#gen();
        if let Some(h) = st.history.as_mut() {
            h.push_back(Recent {
                at: now,
                chat_id: job.chat_id.clone(),
                first_contact,
            });
            while h.front().is_some_and(|r| r.at <= now - DAY) || h.len() > MAX_HISTORY as usize {
                h.pop_front();
            }
        }
    }

    /// A sign of trouble: the session rests for its `cooldown`, says why, and tells listeners.
    pub(super) async fn cool_down(&self, lane: &Lane, code: &str, message: &str) {
        let Some(pacing) = lane.pacer.pacing().filter(|p| p.enabled) else {
            return;
        };
        let until = self.clock.now_ms() + pacing.cooldown.as_millis() as i64;
        let reason = format!("{code}: {message}");
        lane.set_cooldown(Some((until, reason.clone())));
        let (session, stored) = (lane.name().to_string(), reason.clone());
        let r = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(
                    async move { rows::set_cooldown(c, &session, Some((until, &stored))).await },
                )
            })
            .await;
        if let Err(e) = r {
            tracing::error!(session = lane.name(), error = %e, "cannot store the cooldown of session {}", lane.name());
        }
        self.metrics.paced(lane.name(), "cooldown");
        tracing::warn!(
            session = lane.name(),
            code,
            "🧊 Session {} rests until {} after a sign of trouble ({code})",
            lane.name(),
            crate::time::rfc3339(until)
        );
        self.events
            .publish(Event::cooldown(lane.name(), until, &reason));
    }

    /// How a session stands with its pacing (loading its history if needed).
    pub async fn pacing_view(&self, session: &str) -> PacingView {
        let Some(lane) = self.lane(session) else {
            return PacingView {
                state: "off",
                ..Default::default()
            };
        };
        let linked_at = lane.pacer.state().linked_at.map(crate::time::rfc3339);
        let Some(pacing) = lane.pacer.pacing().filter(|p| p.enabled) else {
            return PacingView {
                state: "off",
                linked_at,
                ..Default::default()
            };
        };
        if let Err(e) = self.history_loaded(&lane).await {
            tracing::warn!(session, error = %e, "cannot read the send history of session {session}");
        }
        let now = self.clock.now_ms();
        let st = lane.pacer.state();
        let count = |window: i64| {
            st.history
                .iter()
                .flatten()
                .filter(|r| r.at > now - window)
                .count() as u32
        };
        let day = st.linked_at.map(|at| ((now - at).max(0) / DAY) as u32);
        let (state, hold) = match (&st.cooldown, &st.held) {
            (Some((until, why)), _) if *until > now => ("cooldown", Some((*until, why.clone()))),
            (_, Some((until, rule))) if *until > now => ("held", Some((*until, rule.clone()))),
            _ => ("ready", None),
        };
        PacingView {
            state,
            next_send_at: hold.as_ref().map(|(u, _)| crate::time::rfc3339(*u)),
            sent_last_hour: count(HOUR),
            sent_today: count(DAY),
            cap_today: pacing.rules.daily_cap(day).map(|(n, _)| n),
            reason: hold.map(|(_, r)| r),
            linked_at,
        }
    }

    /// When a waiting job will next be tried, and which pacing rule holds it back if one
    /// does: its `run_at` (moved by a rule of its own, named on it), or later while its session
    /// is held back or cooling down.
    pub fn next_attempt(&self, job: &JobRow) -> (i64, Option<String>) {
        let now = self.clock.now_ms();
        let own = job.paced.clone().filter(|_| job.run_at > now);
        let Some(lane) = self
            .lane(&job.session)
            .filter(|l| job.status == JobState::Waiting && l.is_paced())
        else {
            return (job.run_at, own);
        };
        let st = lane.pacer.state();
        let session = [st.cooldown.clone(), st.held.clone()]
            .into_iter()
            .flatten()
            .filter(|(until, _)| *until > job.run_at && *until > now)
            .max_by_key(|(until, _)| *until);
        match session {
            Some((until, why)) => (until, Some(why)),
            None => (job.run_at, own),
        }
    }
}
