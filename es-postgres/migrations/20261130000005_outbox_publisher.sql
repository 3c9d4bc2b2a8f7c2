-- Messages a projection or process manager enqueues (`enqueue_in`) carry their publisher, and only
-- those need a unique key on the id (so handling an event again enqueues nothing twice). A
-- message an append enqueues has its event's id, unique already in `events`: it pays no index
-- entry of its own for it, one less write on every published append.
ALTER TABLE outbox DROP CONSTRAINT outbox_event_id_key;
ALTER TABLE outbox ADD COLUMN publisher text;
CREATE UNIQUE INDEX outbox_published_once ON outbox (tenant, event_id) WHERE publisher IS NOT NULL;
