//! A job's working life: claimed (`waiting` → `active`, with a lease), then an outcome
//! (`completed`, back to `waiting` for a retry, or `failed`), each recorded only if the lease
//! the claim handed out still holds, so a job recovered by a restart can never be overwritten by
//! a stale worker. And the recovery itself, at start-up.

use sqlx::SqliteConnection;

use super::{COLS, JobRow};

/// Moves up to ?5 due jobs of session ?4 to `active` under lease ?3 at time ?1 (high priority
/// first, then oldest), counting the attempt. Its parameters are numbered to share one list
/// with [`COMPLETE`] (?1 now, ?2 the completions), so both run as one call to SQLite.
fn claim_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE jobs SET status = 'active', attempts = attempts + 1, lease = ?3, updated_at = ?1, paced = NULL \
             WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_claim \
                           WHERE session = ?4 AND status = 'waiting' AND run_at <= ?1 \
                           ORDER BY priority, seq LIMIT ?5) \
             RETURNING {COLS}"
        )
    });
    &SQL
}

/// Atomically moves up to `limit` due jobs of one session to `active` (high priority first,
/// then oldest), counting the attempt, and returns them in claim order.
pub async fn claim(
    conn: &mut SqliteConnection,
    session: &str,
    limit: i64,
    now: i64,
    lease: i64,
) -> sqlx::Result<Vec<JobRow>> {
    let mut rows: Vec<JobRow> = sqlx::query_as(claim_sql())
        .bind(now)
        .bind(None::<String>)
        .bind(lease)
        .bind(session)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.sort_by_key(|r| (r.priority, r.seq));
    Ok(rows)
}

/// How a claimed job ended this attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Sent; the driver's receipt as JSON.
    Completed {
        receipt: Option<String>,
    },
    Retry {
        run_at: i64,
        code: String,
        message: String,
    },
    Failed {
        code: String,
        message: String,
    },
}

impl Outcome {
    /// The state the job is in once this outcome is recorded.
    pub fn state(&self) -> super::JobState {
        match self {
            Outcome::Completed { .. } => super::JobState::Completed,
            Outcome::Retry { .. } => super::JobState::Waiting,
            Outcome::Failed { .. } => super::JobState::Failed,
        }
    }
}

/// One claimed job's outcome, to record if its lease still holds.
#[derive(Debug, Clone)]
pub struct Finished {
    pub seq: i64,
    pub lease: i64,
    pub outcome: Outcome,
}

/// Completes the jobs of a JSON array (?2) of `{seq, lease, receipt}` whose lease still holds,
/// at time ?1. The unary `+` keeps SQLite from walking every active job through the status
/// index: each completion is found by its primary key (a test pins this plan).
const COMPLETE: &str = "UPDATE jobs SET status = 'completed', lease = NULL, updated_at = ?1, \
     finished_at = ?1, receipt = done.receipt, ack = 'sent' \
     FROM (SELECT value->>'seq' AS seq, value->>'lease' AS lease, \
                  value->>'receipt' AS receipt FROM json_each(?2)) AS done \
     WHERE jobs.seq = done.seq AND +jobs.status = 'active' AND jobs.lease = done.lease \
     RETURNING jobs.seq";

#[derive(serde::Serialize)]
struct Done<'a> {
    seq: i64,
    lease: i64,
    receipt: Option<&'a str>,
}

/// The completions of a batch as the JSON array [`COMPLETE`] reads: each is (seq, lease,
/// receipt), so the lease check is per row by construction, with nothing to keep in step.
fn completions(batch: &[Finished]) -> sqlx::Result<Option<String>> {
    let done: Vec<Done> = batch
        .iter()
        .filter_map(|f| match &f.outcome {
            Outcome::Completed { receipt } => Some(Done {
                seq: f.seq,
                lease: f.lease,
                receipt: receipt.as_deref(),
            }),
            _ => None,
        })
        .collect();
    if done.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&done)
        .map(Some)
        .map_err(|e| sqlx::Error::Encode(e.into()))
}

/// Records a batch of outcomes (each only if its lease still holds) and, for each `wants[i]`
/// that names a session, claims one of its due jobs under `lease` for the slot that finished
/// `batch[i]`: one claim per session. For each input, whether its lease held and the job
/// claimed for its slot. Completions with claims for one session, the hot path of a busy
/// lane, are one call to SQLite.
pub async fn finish_and_claim(
    conn: &mut SqliteConnection,
    batch: &[Finished],
    wants: &[Option<String>],
    lease: i64,
    now: i64,
) -> sqlx::Result<(Vec<bool>, Vec<Option<JobRow>>)> {
    let mut slots: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, session) in wants.iter().enumerate() {
        if let Some(s) = session {
            slots.entry(s.as_str()).or_default().push(i);
        }
    }
    let all_completed = batch
        .iter()
        .all(|f| matches!(f.outcome, Outcome::Completed { .. }));
    let mut next = vec![None; batch.len()];
    let held = match slots.pop_first() {
        Some((session, these)) if all_completed && slots.is_empty() => {
            let (held, rows) =
                complete_and_claim(conn, batch, (session, these.len() as i64, lease), now).await?;
            for (slot, row) in these.into_iter().zip(rows) {
                next[slot] = Some(row);
            }
            held
        }
        first => {
            let held = finish_many(conn, batch, now).await?;
            for (session, these) in first.into_iter().chain(slots) {
                let rows = claim(conn, session, these.len() as i64, now, lease).await?;
                for (slot, row) in these.into_iter().zip(rows) {
                    next[slot] = Some(row);
                }
            }
            held
        }
    };
    Ok((held, next))
}

/// Completes a batch of completions and claims up to `limit` due jobs of `session` for the
/// slots they freed, in one call to SQLite's thread and one commit (a savepoint, so it also
/// runs inside a group transaction): the hot path of a busy lane. For each completion, in
/// order, whether its lease still held; and the jobs claimed, in claim order.
async fn complete_and_claim(
    conn: &mut SqliteConnection,
    batch: &[Finished],
    (session, limit, lease): (&str, i64, i64),
    now: i64,
) -> sqlx::Result<(Vec<bool>, Vec<JobRow>)> {
    use futures_util::TryStreamExt;
    use sqlx::{Either, FromRow, Row};
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SAVEPOINT complete_and_claim; {COMPLETE}; {}; RELEASE complete_and_claim",
            claim_sql()
        )
    });
    debug_assert!(
        batch
            .iter()
            .all(|f| matches!(f.outcome, Outcome::Completed { .. }))
    );
    let done = completions(batch)?;
    let mut completed = std::collections::HashSet::new();
    let mut claimed = Vec::new();
    let mut statement = 0;
    let result: sqlx::Result<()> = async {
        // Several statements in one prepared query, with their results told apart: SQLite's
        // driver does it, and sqlx marks it deprecated for lack of it elsewhere (issue 3108).
        // Should a later sqlx drop it, the same two statements run one after the other.
        #[expect(deprecated)]
        let mut results = sqlx::query(&SQL)
            .bind(now)
            .bind(done.as_deref().unwrap_or("[]"))
            .bind(lease)
            .bind(session)
            .bind(limit)
            .fetch_many(&mut *conn);
        while let Some(r) = results.try_next().await? {
            // The savepoint returns nothing: rows come from the completion (1), the claim (2).
            match r {
                Either::Left(_) => statement += 1,
                Either::Right(row) if statement == 1 => {
                    completed.insert(row.try_get::<i64, _>(0)?);
                }
                Either::Right(row) => claimed.push(JobRow::from_row(&row)?),
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // Whatever ran is undone; the savepoint is gone either way.
        if statement > 0 {
            let _ = sqlx::query("ROLLBACK TO complete_and_claim; RELEASE complete_and_claim")
                .execute(&mut *conn)
                .await;
        }
        return Err(e);
    }
    claimed.sort_by_key(|r| (r.priority, r.seq));
    Ok((
        batch.iter().map(|f| completed.contains(&f.seq)).collect(),
        claimed,
    ))
}

/// Records outcomes: all completions in one statement, others one by one. For each input, in
/// order, whether its lease still held.
pub async fn finish_many(
    conn: &mut SqliteConnection,
    batch: &[Finished],
    now: i64,
) -> sqlx::Result<Vec<bool>> {
    let mut completed = std::collections::HashSet::new();
    if let Some(rows) = completions(batch)? {
        // The `jobs_sent` trigger logs each completion for pacing, in this statement.
        completed.extend(
            sqlx::query_scalar::<_, i64>(COMPLETE)
                .bind(now)
                .bind(rows)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    let mut out = Vec::with_capacity(batch.len());
    for f in batch {
        let held = match &f.outcome {
            Outcome::Completed { .. } => completed.contains(&f.seq),
            Outcome::Retry {
                run_at,
                code,
                message,
            } => leave_active(conn, f, now, "'waiting'", Some(*run_at), code, message).await?,
            Outcome::Failed { code, message } => {
                leave_active(conn, f, now, "'failed'", None, code, message).await?
            }
        };
        out.push(held);
    }
    Ok(out)
}

/// `active` → `to` with the error, if the lease still holds: back to `waiting` until `run_at`,
/// or `failed` (then finished now).
async fn leave_active(
    conn: &mut SqliteConnection,
    f: &Finished,
    now: i64,
    to: &'static str,
    run_at: Option<i64>,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query(&format!(
        "UPDATE jobs SET status = {to}, lease = NULL, updated_at = ?3, \
         run_at = COALESCE(?4, run_at), finished_at = CASE WHEN ?4 IS NULL THEN ?3 END, \
         error_code = ?5, error_message = ?6 \
         WHERE seq = ?1 AND status = 'active' AND lease = ?2"
    ))
    .bind(f.seq)
    .bind(f.lease)
    .bind(now)
    .bind(run_at)
    .bind(code)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A job that was `active` more than this many times when the process died fails as a crash loop.
pub const MAX_RESCUES: i64 = 3;

/// At start-up, every `active` job belonged to a process that died: put it back to `waiting`,
/// keeping its attempts. Returns (recovered, failed as crash loops).
pub async fn recover_active(conn: &mut SqliteConnection, now: i64) -> sqlx::Result<(u64, u64)> {
    let recovered = sqlx::query(
        "UPDATE jobs SET status = 'waiting', lease = NULL, rescues = rescues + 1, run_at = ?1, \
         updated_at = ?1 WHERE status = 'active'",
    )
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let looped = sqlx::query(
        "UPDATE jobs SET status = 'failed', finished_at = ?1, updated_at = ?1, error_code = 'crash-loop', \
         error_message = 'the gateway stopped while sending this job ' || rescues || ' times' \
         WHERE status = 'waiting' AND rescues > ?2",
    )
    .bind(now)
    .bind(MAX_RESCUES)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((recovered, looped))
}

#[cfg(test)]
mod tests {
    use super::super::{JobState, NewJob, get, insert_many, test_db};
    use super::*;

    fn job(n: u32) -> NewJob {
        NewJob {
            id: format!("job_{n}"),
            session: "default".into(),
            message_id: format!("msg_{n}"),
            number: "6281234567890".into(),
            chat_id: "6281234567890@c.us".into(),
            message: format!("text {n}"),
            template: None,
            priority: 1,
            media: None,
            ignore_opt_out: false,
            now: 1000,
        }
    }

    fn completed(seq: i64, lease: i64) -> Finished {
        Finished {
            seq,
            lease,
            outcome: Outcome::Completed {
                receipt: Some(format!("{{\"detail\":\"lease {lease}\"}}")),
            },
        }
    }

    #[tokio::test]
    async fn an_outcome_is_recorded_only_under_the_lease_that_claimed_the_job() {
        let mut c = test_db::open().await;
        insert_many(&mut c, &[job(1), job(2)]).await.unwrap();
        let claimed = claim(&mut c, "default", 2, 2000, 7).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let (a, b) = (claimed[0].seq, claimed[1].seq);
        // The process dies; a restart recovers both, and a new claim takes them with lease 8.
        assert_eq!(recover_active(&mut c, 3000).await.unwrap(), (2, 0));
        assert_eq!(claim(&mut c, "default", 2, 4000, 8).await.unwrap().len(), 2);
        // The stale worker's outcomes (lease 7) change nothing; the current ones do, each by
        // its own lease, even in one batch.
        let held = finish_many(&mut c, &[completed(a, 7), completed(b, 8)], 5000)
            .await
            .unwrap();
        assert_eq!(held, vec![false, true]);
        let (ra, rb) = (
            get(&mut c, "job_1").await.unwrap().unwrap(),
            get(&mut c, "job_2").await.unwrap().unwrap(),
        );
        assert_eq!(
            (ra.status, rb.status),
            (JobState::Active, JobState::Completed)
        );
        assert_eq!(rb.receipt.as_deref(), Some("{\"detail\":\"lease 8\"}"));
        assert_eq!(rb.finished_at, Some(5000));
        let retry = Finished {
            seq: a,
            lease: 7,
            outcome: Outcome::Retry {
                run_at: 9000,
                code: "timeout".into(),
                message: "late".into(),
            },
        };
        assert_eq!(
            finish_many(&mut c, &[retry], 6000).await.unwrap(),
            vec![false]
        );
        let failed = Finished {
            seq: a,
            lease: 8,
            outcome: Outcome::Failed {
                code: "blocked".into(),
                message: "no".into(),
            },
        };
        assert_eq!(
            finish_many(&mut c, &[failed], 6000).await.unwrap(),
            vec![true]
        );
        let ra = get(&mut c, "job_1").await.unwrap().unwrap();
        assert_eq!(ra.status, JobState::Failed);
        assert_eq!(ra.error_code.as_deref(), Some("blocked"));
        assert_eq!(ra.finished_at, Some(6000));
    }

    fn session_job(n: u32, session: &str, priority: i64) -> NewJob {
        NewJob {
            session: session.into(),
            priority,
            ..job(n)
        }
    }

    #[tokio::test]
    async fn outcomes_hand_each_freed_slot_the_next_due_job_of_its_session() {
        let mut c = test_db::open().await;
        let jobs: Vec<NewJob> = (1..=4)
            .map(|n| session_job(n, "a", 1))
            .chain([session_job(5, "a", 0), session_job(6, "b", 1)])
            .collect();
        insert_many(&mut c, &jobs).await.unwrap();
        let first = claim(&mut c, "a", 2, 2000, 7).await.unwrap();
        // The high-priority job 5 first, then the oldest.
        assert_eq!(
            first.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["job_5", "job_1"]
        );
        let (a, b) = (first[0].seq, first[1].seq);
        // The hot path: two completions (one under a stale lease), both slots asking for more.
        let wants = vec![Some("a".to_string()), Some("a".to_string())];
        let (held, next) =
            finish_and_claim(&mut c, &[completed(a, 7), completed(b, 6)], &wants, 8, 3000)
                .await
                .unwrap();
        assert_eq!(held, vec![true, false]);
        let ids: Vec<_> = next
            .iter()
            .map(|r| r.as_ref().map(|r| r.id.as_str()))
            .collect();
        assert_eq!(ids, [Some("job_2"), Some("job_3")]);
        let r2 = get(&mut c, "job_2").await.unwrap().unwrap();
        assert_eq!(
            (r2.status, r2.attempts, r2.lease),
            (JobState::Active, 1, Some(8))
        );
        assert_eq!(
            get(&mut c, "job_5").await.unwrap().unwrap().status,
            JobState::Completed
        );
        // Mixed: a retry, a slot of another session, a slot that stops, more wanted than due.
        let retry = Finished {
            seq: r2.seq,
            lease: 8,
            outcome: Outcome::Retry {
                run_at: 9000,
                code: "timeout".into(),
                message: "no tick".into(),
            },
        };
        let seq3 = next[1].as_ref().unwrap().seq;
        let wants = vec![Some("b".to_string()), None, Some("a".to_string())];
        let (held, next) = finish_and_claim(
            &mut c,
            &[retry, completed(seq3, 8), completed(b, 7)],
            &wants,
            9,
            4000,
        )
        .await
        .unwrap();
        assert_eq!(held, vec![true, true, true]);
        let ids: Vec<_> = next
            .iter()
            .map(|r| r.as_ref().map(|r| r.id.as_str()))
            .collect();
        // job_2 waits until 9000: session a has only job_4 due.
        assert_eq!(ids, [Some("job_6"), None, Some("job_4")]);
        let r2 = get(&mut c, "job_2").await.unwrap().unwrap();
        assert_eq!((r2.status, r2.run_at), (JobState::Waiting, 9000));
    }

    #[tokio::test]
    async fn completions_are_found_by_primary_key_not_by_walking_the_active_jobs() {
        let mut c = test_db::open().await;
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {COMPLETE}"))
                .bind(0)
                .bind("[]")
                .fetch_all(&mut c)
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
        assert!(
            steps.iter().any(|s| s.contains("INTEGER PRIMARY KEY")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("jobs_status")),
            "{steps:?}"
        );
    }

    #[tokio::test]
    async fn a_retry_goes_back_to_waiting_until_its_time_and_a_crash_loop_fails() {
        let mut c = test_db::open().await;
        insert_many(&mut c, &[job(1)]).await.unwrap();
        let seq = claim(&mut c, "default", 1, 2000, 1).await.unwrap()[0].seq;
        let retry = Finished {
            seq,
            lease: 1,
            outcome: Outcome::Retry {
                run_at: 9000,
                code: "timeout".into(),
                message: "no tick".into(),
            },
        };
        assert_eq!(
            finish_many(&mut c, &[retry], 3000).await.unwrap(),
            vec![true]
        );
        let r = get(&mut c, "job_1").await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.run_at, r.finished_at),
            (JobState::Waiting, 9000, None)
        );
        assert!(
            claim(&mut c, "default", 1, 8999, 2)
                .await
                .unwrap()
                .is_empty(),
            "not due yet"
        );
        for lease in 2..=5 {
            assert_eq!(
                claim(&mut c, "default", 1, 9000, lease)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            recover_active(&mut c, 9000).await.unwrap();
        }
        let r = get(&mut c, "job_1").await.unwrap().unwrap();
        assert_eq!(r.status, JobState::Failed);
        assert_eq!(r.error_code.as_deref(), Some("crash-loop"));
    }
}
