-- 0002: indexes for the training read (all reviewed rows) and for finding a run's rows.
CREATE INDEX IF NOT EXISTS voc_classification_reviewed_idx
    ON voc_classification (voc_id) WHERE is_reviewed;
CREATE INDEX IF NOT EXISTS voc_classification_run_idx ON voc_classification (run_id);
