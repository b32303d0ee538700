-- 0003: human review per dimension. subject_reviewed / work_reviewed say that the dimension's
-- values are a human label (a reviewer entered a valid value, or confirmed a trained model's
-- tag); a machine write never overwrites such a dimension and neither flag ever goes back to
-- false (flows.db.PostgresSource.write_tags). is_reviewed now means both dimensions are.
-- Rows reviewed before this migration count as reviewed in both dimensions (what is_reviewed
-- said about them). Idempotent: IF NOT EXISTS, and the UPDATE touches only rows it has not
-- filled yet.
ALTER TABLE voc_classification ADD COLUMN IF NOT EXISTS subject_reviewed boolean NOT NULL DEFAULT false;
ALTER TABLE voc_classification ADD COLUMN IF NOT EXISTS work_reviewed boolean NOT NULL DEFAULT false;

UPDATE voc_classification
   SET subject_reviewed = true, work_reviewed = true
 WHERE is_reviewed AND NOT (subject_reviewed AND work_reviewed);

-- the training read: every row with a human label in at least one dimension
CREATE INDEX IF NOT EXISTS voc_classification_any_reviewed_idx
    ON voc_classification (voc_id) WHERE subject_reviewed OR work_reviewed;
