//! Storing accepted jobs: a batch in one multi-row `INSERT` with bound values (the hottest
//! write of the gateway: every 202 waits for it), `ON CONFLICT` on `message_id` for
//! idempotency.

use std::collections::HashMap;

use crate::db::{Conn, on};

use super::{COLS, JobRow, JobState};

/// What the API accepted, ready to store.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub session: String,
    pub message_id: String,
    pub number: String,
    pub chat_id: String,
    pub message: String,
    pub template: Option<String>,
    pub priority: i64,
    /// A file to send (its media id, and what it goes as); `message` is then its caption.
    pub media: Option<(String, crate::domain::MediaKind)>,
    /// Send even to a number on the session's opt-out list.
    pub ignore_opt_out: bool,
    pub now: i64,
}

impl NewJob {
    /// The row as `insert_many` stored it.
    fn stored(&self, seq: i64) -> JobRow {
        JobRow {
            seq,
            id: self.id.clone(),
            session: self.session.clone(),
            message_id: self.message_id.clone(),
            number: self.number.clone(),
            chat_id: self.chat_id.clone(),
            message: self.message.clone(),
            template: self.template.clone(),
            priority: self.priority,
            status: JobState::Waiting,
            attempts: 0,
            error_code: None,
            error_message: None,
            run_at: self.now,
            lease: None,
            rescues: 0,
            created_at: self.now,
            updated_at: self.now,
            finished_at: None,
            receipt: None,
            paced: None,
            ack: None,
            delivered_at: None,
            read_at: None,
            media_id: self.media.as_ref().map(|(id, _)| id.clone()),
            media_as: self.media.as_ref().map(|(_, k)| k.as_str().to_string()),
            ignore_opt_out: self.ignore_opt_out,
            node: None,
        }
    }
}

/// Most jobs in one statement (14 values each, far below SQLite's limit of bound values).
pub const MAX_INSERT_ROWS: usize = 256;

/// Inserts many jobs in one statement. For each input, in order: the stored row and whether
/// this input created it (a `message_id` seen before, or earlier in the same batch, did not).
pub async fn insert_many(conn: &mut Conn, batch: &[NewJob]) -> sqlx::Result<Vec<(JobRow, bool)>> {
    let mut out = Vec::with_capacity(batch.len());
    for chunk in batch.chunks(MAX_INSERT_ROWS) {
        // One row of values per job, bound in the column order of the statement. (Parsing the
        // rows from one JSON array in SQLite cost 15% of the accepted sends per second.)
        let rows = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=14).map(|k| format!("${}", i * 14 + k)).collect();
                format!(
                    "({}, 'waiting', 0, {})",
                    p[..8].join(", "),
                    p[8..].join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO jobs (id, session, message_id, number, chat_id, message, template, \
             priority, status, attempts, run_at, created_at, updated_at, media_id, media_as, \
             ignore_opt_out) \
             VALUES {rows} \
             ON CONFLICT(session, message_id) DO NOTHING RETURNING seq, session, message_id"
        );
        // Only the new rows' seq comes back: the rest of each row is what was just written.
        // Keyed by (session, message_id): the idempotency key is per session.
        let new_rows = on!(&mut *conn, |c| {
            let mut q = sqlx::query_as::<_, (i64, String, String)>(&sql);
            for j in chunk {
                q = q
                    .bind(&j.id)
                    .bind(&j.session)
                    .bind(&j.message_id)
                    .bind(&j.number)
                    .bind(&j.chat_id)
                    .bind(&j.message)
                    .bind(&j.template)
                    .bind(j.priority)
                    .bind(j.now)
                    .bind(j.now)
                    .bind(j.now)
                    .bind(j.media.as_ref().map(|(id, _)| id.as_str()))
                    .bind(j.media.as_ref().map(|(_, k)| k.as_str()))
                    .bind(j.ignore_opt_out);
            }
            q.fetch_all(c).await
        })?;
        let mut created: HashMap<(String, String), i64> = new_rows
            .into_iter()
            .map(|(seq, s, m)| ((s, m), seq))
            .collect();
        let key = |j: &NewJob| (j.session.clone(), j.message_id.clone());
        let mut existing: HashMap<(String, String), JobRow> = HashMap::new();
        if created.len() < chunk.len() {
            let keys: Vec<(&str, &str)> = chunk
                .iter()
                .filter(|j| !created.contains_key(&key(j)))
                .map(|j| (j.session.as_str(), j.message_id.as_str()))
                .collect();
            let keys = serde_json::to_string(&keys).map_err(|e| sqlx::Error::Encode(e.into()))?;
            let each = if conn.is_pg() {
                "jsonb_array_elements($1::jsonb)"
            } else {
                "json_each($1)"
            };
            let sql = format!(
                "SELECT {COLS} FROM jobs WHERE (session, message_id) IN \
                 (SELECT value->>0, value->>1 FROM {each} AS value)"
            );
            let found: Vec<JobRow> = on!(&mut *conn, |c| sqlx::query_as(&sql)
                .bind(&keys)
                .fetch_all(c)
                .await)?;
            existing.extend(
                found
                    .into_iter()
                    .map(|r| ((r.session.clone(), r.message_id.clone()), r)),
            );
        }
        for j in chunk {
            if let Some(seq) = created.remove(&key(j)) {
                let row = j.stored(seq);
                existing.insert(key(j), row.clone());
                out.push((row, true));
            } else {
                let row = existing
                    .get(&key(j))
                    .cloned()
                    .ok_or(sqlx::Error::RowNotFound)?;
                out.push((row, false));
            }
        }
    }
    Ok(out)
}
