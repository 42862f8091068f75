-- What each source (a PBX connector, a calendar sync, a headset…) last reported about a user, with
-- its expiry (Unix milliseconds; NULL = until withdrawn). The report is the JSON document the
-- JSON API accepts for it (`PUT …/sources/{source}`), a stable interface.
CREATE TABLE source_reports (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    source TEXT NOT NULL,
    report TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (owner, source)
);
CREATE INDEX source_reports_by_expiry ON source_reports (expires_at);
