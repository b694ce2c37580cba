-- When an item was completed.
ALTER TABLE items ADD COLUMN done_at timestamptz;
UPDATE items SET done_at = now() WHERE done;
