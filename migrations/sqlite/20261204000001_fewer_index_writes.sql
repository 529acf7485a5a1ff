-- Fewer index writes per sent job: a completion wrote five index entries besides its row.
-- The two receipt indexes become one keyed by the ack itself (a raise to delivered moves an
-- entry within it), and completed jobs, most of the table, leave the state index: nothing
-- looks them up by state through it (listings walk by seq, pruning goes by jobs_finished).
DROP INDEX jobs_undelivered;
DROP INDEX jobs_unread;
CREATE INDEX jobs_unacked ON jobs (session, chat_id, ack)
    WHERE status = 'completed' AND ack IN ('sent', 'delivered');
DROP INDEX jobs_status;
CREATE INDEX jobs_status ON jobs (status, seq) WHERE status != 'completed';
