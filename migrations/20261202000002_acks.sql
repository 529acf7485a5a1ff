-- Receipts of sent messages: `ack` is sent (first tick), delivered (double tick) or read (blue),
-- set once a job completes and raised as the driver sees more; the times of the later two.
ALTER TABLE jobs ADD COLUMN ack TEXT;
ALTER TABLE jobs ADD COLUMN delivered_at INTEGER;
ALTER TABLE jobs ADD COLUMN read_at INTEGER;
-- The messages whose receipts are still watched, per chat.
CREATE INDEX jobs_watch ON jobs (session, chat_id, finished_at)
    WHERE status = 'completed' AND ack IN ('sent', 'delivered');
