//! Receipts on completed jobs: `ack` only ever rises (sent → delivered → read), each step once,
//! so each step's event fires once.

use sqlx::SqliteConnection;

use super::{COLS, JobRow};
use crate::whatsapp::{Ack, AckSeen};

/// Raises the watched jobs `seen` covers to its ack: the one message of its bubble, or every
/// message of its chat that completed since `since` (the chat's last ticks cover the earlier
/// ones). Returns each job that moved, with the steps it took (a read on a job still `sent`
/// delivers it too).
pub async fn raise_ack(
    conn: &mut SqliteConnection,
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
    for &step in steps {
        let (from, column) = match step {
            Ack::Read => ("('sent', 'delivered')", "read_at"),
            _ => ("('sent')", "delivered_at"),
        };
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "UPDATE jobs SET ack = ?3, {column} = ?4, updated_at = ?4 \
             WHERE session = ?1 AND chat_id = ?2 AND status = 'completed' AND ack IN {from} \
             AND finished_at >= ?5 AND finished_at <= ?4 \
             AND (?6 IS NULL OR receipt->>'bubbleId' = ?6) \
             RETURNING {COLS}"
        ))
        .bind(session)
        .bind(&seen.chat_id)
        .bind(step.as_str())
        .bind(now)
        .bind(since)
        .bind(&seen.bubble_id)
        .fetch_all(&mut *conn)
        .await?;
        moved.extend(rows.into_iter().map(|r| (r, step)));
    }
    Ok(moved)
}
