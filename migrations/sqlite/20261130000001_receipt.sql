-- What the driver saw when a job completed (JSON): the message's id and time in WhatsApp Web,
-- how the driver knew it was this job's, and whether a retry found it already sent.
ALTER TABLE jobs ADD COLUMN receipt TEXT;
