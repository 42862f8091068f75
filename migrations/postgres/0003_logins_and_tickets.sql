-- Logins and their ticket values (README "Tickets"). A value is kept only as the SHA-256 of the
-- ticket, never the ticket itself. Times are Unix milliseconds. A login goes with its user, and
-- its values with it; a login id is never reused.
CREATE TABLE logins (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uri TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT NOT NULL
);
CREATE INDEX logins_by_uri ON logins (uri);
CREATE INDEX logins_by_expiry ON logins (expires_at);
CREATE TABLE tickets (
    hash BYTEA PRIMARY KEY,
    login BIGINT NOT NULL REFERENCES logins(id) ON DELETE CASCADE,
    last_used BIGINT NOT NULL
);
CREATE INDEX tickets_by_login ON tickets (login);
CREATE INDEX tickets_by_last_use ON tickets (last_used);
