-- Receipts of sent messages: `ack` is sent (first tick), delivered (double tick) or read (blue),
-- set once a job completes and raised as the driver sees more; the times of the later two.
ALTER TABLE jobs ADD COLUMN ack TEXT;
ALTER TABLE jobs ADD COLUMN delivered_at INTEGER;
ALTER TABLE jobs ADD COLUMN read_at INTEGER;
-- The messages a receipt can still raise, per chat: those not yet delivered, those not yet
-- read. Each raise touches only the rows it moves.
CREATE INDEX jobs_undelivered ON jobs (session, chat_id) WHERE status = 'completed' AND ack = 'sent';
CREATE INDEX jobs_unread ON jobs (session, chat_id)
    WHERE status = 'completed' AND ack IN ('sent', 'delivered');
