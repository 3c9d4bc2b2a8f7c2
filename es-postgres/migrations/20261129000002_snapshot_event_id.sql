-- A snapshot proves which event it was taken at (issue 11, item 2): the id of the stream's event
-- at the snapshot's version, covered by the checksum and checked against the stream on every load,
-- so a snapshots table restored from another point in time than the events is never trusted.
-- Snapshots taken before this change cannot prove it (and their checksum no longer covers the new
-- field): they are dropped. A snapshot is only a cache; the next load replays the events and the
-- next command at an interval boundary writes a new one.
DELETE FROM snapshots;
ALTER TABLE snapshots ADD COLUMN event_id uuid NOT NULL;
