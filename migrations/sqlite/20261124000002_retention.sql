-- Retention: finished jobs are pruned by age, oldest first.
CREATE INDEX jobs_finished ON jobs(status, finished_at) WHERE finished_at IS NOT NULL;
