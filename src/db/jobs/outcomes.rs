//! Recording what became of claimed jobs: completions in one statement per batch, retries and
//! failures one by one, each only under the lease that claimed the job; and for the slots that
//! finished them, the next due jobs, in the same call to SQLite on the hot path.

use sqlx::SqliteConnection;

use crate::db::{Conn, on};

use super::JobRow;
use super::lifecycle::{Finished, Lease, Outcome, claim, claim_sql};

/// Completes the jobs of a JSON array ($2) of `{seq, lease, receipt}` whose lease still holds,
/// at time $1. The unary `+` keeps SQLite from walking every active job through the status
/// index: each completion is found by its primary key (a test pins this plan).
const COMPLETE: &str = "UPDATE jobs SET status = 'completed', lease = NULL, updated_at = $1, \
     finished_at = $1, receipt = done.receipt, ack = 'sent' \
     FROM (SELECT value->>'seq' AS seq, value->>'lease' AS lease, \
                  value->>'receipt' AS receipt FROM json_each($2)) AS done \
     WHERE jobs.seq = done.seq AND +jobs.status = 'active' AND jobs.lease = done.lease \
     RETURNING jobs.seq";

/// [`COMPLETE`] in PostgreSQL's words.
const COMPLETE_PG: &str = "UPDATE jobs SET status = 'completed', lease = NULL, updated_at = $1, \
     finished_at = $1, receipt = done.receipt, ack = 'sent' \
     FROM jsonb_to_recordset($2::jsonb) AS done(seq BIGINT, lease BIGINT, receipt TEXT) \
     WHERE jobs.seq = done.seq AND jobs.status = 'active' AND jobs.lease = done.lease \
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
    conn: &mut Conn,
    batch: &[Finished],
    wants: &[Option<String>],
    lease: &Lease,
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
    let held = match (slots.pop_first(), &mut *conn) {
        (Some((session, these)), Conn::Lite(c)) if all_completed && slots.is_empty() => {
            let (held, rows) =
                complete_and_claim(c, batch, (session, these.len() as i64, lease), now).await?;
            for (slot, row) in these.into_iter().zip(rows) {
                next[slot] = Some(row);
            }
            held
        }
        (first, _) => {
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
    (session, limit, lease): (&str, i64, &Lease),
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
            .bind(lease.token)
            .bind(session)
            .bind(limit)
            .bind(&*lease.node)
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
pub async fn finish_many(conn: &mut Conn, batch: &[Finished], now: i64) -> sqlx::Result<Vec<bool>> {
    let mut completed = std::collections::HashSet::new();
    if let Some(rows) = completions(batch)? {
        // The `jobs_sent` trigger logs each completion for pacing, in this statement.
        let sql = if conn.is_pg() { COMPLETE_PG } else { COMPLETE };
        completed.extend(on!(&mut *conn, |c| sqlx::query_scalar::<_, i64>(sql)
            .bind(now)
            .bind(&rows)
            .fetch_all(c)
            .await)?);
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
    conn: &mut Conn,
    f: &Finished,
    now: i64,
    to: &'static str,
    run_at: Option<i64>,
    code: &str,
    message: &str,
) -> sqlx::Result<bool> {
    let sql = format!(
        "UPDATE jobs SET status = {to}, lease = NULL, updated_at = $3, \
         run_at = COALESCE($4, run_at), finished_at = CASE WHEN $4 IS NULL THEN $3 END, \
         error_code = $5, error_message = $6 \
         WHERE seq = $1 AND status = 'active' AND lease = $2"
    );
    let n = on!(conn, |c| sqlx::query(&sql)
        .bind(f.seq)
        .bind(f.lease)
        .bind(now)
        .bind(run_at)
        .bind(code)
        .bind(message)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::super::lifecycle::{claim, recover_active};
    use super::super::{JobState, NewJob, insert_many, test_db};
    use super::*;
    use test_db::job;

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
        let claimed = claim(&mut c, "default", 2, 2000, &test_db::lease(7))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        let (a, b) = (claimed[0].seq, claimed[1].seq);
        // The process dies; a restart recovers both, and a new claim takes them with lease 8.
        assert_eq!(recover_active(&mut c, 3000, None).await.unwrap(), (2, 0));
        assert_eq!(
            claim(&mut c, "default", 2, 4000, &test_db::lease(8))
                .await
                .unwrap()
                .len(),
            2
        );
        // The stale worker's outcomes (lease 7) change nothing; the current ones do, each by
        // its own lease, even in one batch.
        let held = finish_many(&mut c, &[completed(a, 7), completed(b, 8)], 5000)
            .await
            .unwrap();
        assert_eq!(held, vec![false, true]);
        let (ra, rb) = (
            test_db::get(&mut c, "job_1").await.unwrap().unwrap(),
            test_db::get(&mut c, "job_2").await.unwrap().unwrap(),
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
        let ra = test_db::get(&mut c, "job_1").await.unwrap().unwrap();
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
        let first = claim(&mut c, "a", 2, 2000, &test_db::lease(7))
            .await
            .unwrap();
        // The high-priority job 5 first, then the oldest.
        assert_eq!(
            first.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["job_5", "job_1"]
        );
        let (a, b) = (first[0].seq, first[1].seq);
        // The hot path: two completions (one under a stale lease), both slots asking for more.
        let wants = vec![Some("a".to_string()), Some("a".to_string())];
        let (held, next) = finish_and_claim(
            &mut c,
            &[completed(a, 7), completed(b, 6)],
            &wants,
            &test_db::lease(8),
            3000,
        )
        .await
        .unwrap();
        assert_eq!(held, vec![true, false]);
        let ids: Vec<_> = next
            .iter()
            .map(|r| r.as_ref().map(|r| r.id.as_str()))
            .collect();
        assert_eq!(ids, [Some("job_2"), Some("job_3")]);
        let r2 = test_db::get(&mut c, "job_2").await.unwrap().unwrap();
        assert_eq!(
            (r2.status, r2.attempts, r2.lease),
            (JobState::Active, 1, Some(8))
        );
        assert_eq!(
            test_db::get(&mut c, "job_5").await.unwrap().unwrap().status,
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
            &test_db::lease(9),
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
        let r2 = test_db::get(&mut c, "job_2").await.unwrap().unwrap();
        assert_eq!((r2.status, r2.run_at), (JobState::Waiting, 9000));
    }

    #[tokio::test]
    async fn completions_are_found_by_primary_key_not_by_walking_the_active_jobs() {
        let mut c = test_db::open().await;
        let sql = format!("EXPLAIN QUERY PLAN {COMPLETE}");
        let plan: Vec<(i64, i64, i64, String)> = on!(&mut c, |c| sqlx::query_as(&sql)
            .bind(0)
            .bind("[]")
            .fetch_all(c)
            .await)
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
}
