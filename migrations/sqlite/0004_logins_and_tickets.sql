-- Logins and their ticket values (README "Tickets"). A value is kept only as the SHA-256 of the
-- ticket, never the ticket itself. Times are Unix milliseconds. A login goes with its user, and
-- its values with it. AUTOINCREMENT: a login id is never reused, even after its row is swept.
CREATE TABLE logins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uri TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER NOT NULL
);
CREATE INDEX logins_by_uri ON logins (uri);
CREATE INDEX logins_by_expiry ON logins (expires_at);
CREATE TABLE tickets (
    hash BLOB PRIMARY KEY,
    login INTEGER NOT NULL REFERENCES logins(id) ON DELETE CASCADE,
    last_used INTEGER NOT NULL
);
CREATE INDEX tickets_by_login ON tickets (login);
CREATE INDEX tickets_by_last_use ON tickets (last_used);
