-- Which streams hold a subject's data is found when the subject is forgotten (a scan of the
-- tenant's events), not recorded on every append: forgetting is rare, appends are not.
DROP TABLE pii_streams;
