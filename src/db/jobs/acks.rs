//! Receipts on completed jobs: `ack` only ever rises (sent → delivered → read), each step once,
//! so each step's event fires once.

use crate::db::conn::dialect;
use crate::db::{Backend, Conn, on};

use super::{COLS, JobRow};
use crate::whatsapp::{Ack, AckSeen};

fn raise_sql(from: &str, column: &str, backend: Backend) -> String {
    let receipt = match backend {
        Backend::Postgres => "receipt::jsonb",
        Backend::Sqlite => "receipt",
    };
    let sql = format!(
        "UPDATE jobs INDEXED BY jobs_unacked SET ack = $3, {column} = $4, updated_at = $4 \
         WHERE session = $1 AND chat_id = $2 AND status = 'completed' \
         AND ack IN ('sent', 'delivered') AND {from} \
         AND finished_at >= $5 AND finished_at <= $4 \
         AND ($6 IS NULL OR {receipt}->>'bubbleId' = $6) \
         RETURNING {COLS}"
    );
    dialect(&sql, backend).into_owned()
}

/// Raises the watched jobs `seen` covers to its ack: the one message of its bubble, or every
/// message of its chat that completed since `since` (the chat's last ticks cover the earlier
/// ones). Returns each job that moved, with the steps it took (a read on a job still `sent`
/// delivers it too).
pub async fn raise_ack(
    conn: &mut Conn,
    session: &str,
    seen: &AckSeen,
    since: i64,
    now: i64,
) -> sqlx::Result<Vec<(JobRow, Ack)>> {
    let mut moved = Vec::new();
    let steps: &[Ack] = match seen.ack {
        Ack::Sent => &[],
        Ack::Delivered => &[Ack::Delivered],
        Ack::Read => &[Ack::Delivered, Ack::Read],
    };
    let backend = conn.backend();
    for &step in steps {
        // Through the partial index of the jobs not yet read, by ack: a raise walks only the
        // jobs it can move (by `finished_at`, the planner would walk every job of the watch
        // window).
        let (from, column) = match step {
            Ack::Read => ("ack IN ('sent', 'delivered')", "read_at"),
            _ => ("ack = 'sent'", "delivered_at"),
        };
        let rows: Vec<JobRow> = on!(&mut *conn, |c| sqlx::query_as(&raise_sql(
            from, column, backend
        ))
        .bind(session)
        .bind(&seen.chat_id)
        .bind(step.as_str())
        .bind(now)
        .bind(since)
        .bind(&seen.bubble_id)
        .fetch_all(&mut *c)
        .await)?;
        moved.extend(rows.into_iter().map(|r| (r, step)));
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use crate::db::on;

    #[tokio::test]
    async fn a_raise_walks_only_the_jobs_it_can_move() {
        let mut c = super::super::test_db::open().await;
        for from in ["ack = 'sent'", "ack IN ('sent', 'delivered')"] {
            let plan: Vec<(i64, i64, i64, String)> = on!(&mut c, |c| sqlx::query_as(&format!(
                "EXPLAIN QUERY PLAN {}",
                super::raise_sql(from, "delivered_at", crate::db::Backend::Sqlite)
            ))
            .bind("default")
            .bind("6281234567890@c.us")
            .bind("delivered")
            .bind(0)
            .bind(0)
            .bind(None::<String>)
            .fetch_all(c)
            .await)
            .unwrap();
            let steps: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
            // Seeks by session, chat and ack: never a walk of every receipt of the chat.
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("jobs_unacked")
                        && s.contains("session=? AND chat_id=? AND ack")),
                "{from}: {steps:?}"
            );
        }
    }
}
