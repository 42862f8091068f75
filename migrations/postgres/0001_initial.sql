-- The whole schema of the PostgreSQL store (the same rows as the SQLite store's latest schema).
-- Changes are announced with NOTIFY inside the writing transaction, so no change table is needed.
CREATE TABLE users (
    uri TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    password_hash TEXT
);
CREATE TABLE presence (
    uri TEXT PRIMARY KEY REFERENCES users(uri) ON DELETE CASCADE,
    manual TEXT,
    note TEXT
);
CREATE TABLE rights (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    member_kind TEXT NOT NULL,
    member_value TEXT NOT NULL DEFAULT '',
    level TEXT NOT NULL,
    PRIMARY KEY (owner, member_kind, member_value)
);
CREATE TABLE global_rights (
    member_kind TEXT NOT NULL,
    member_value TEXT NOT NULL DEFAULT '',
    level TEXT NOT NULL,
    PRIMARY KEY (member_kind, member_value)
);
CREATE TABLE contact_lists (
    owner TEXT PRIMARY KEY REFERENCES users(uri) ON DELETE CASCADE,
    list TEXT NOT NULL
);
CREATE TABLE images (
    uri TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    large BOOLEAN NOT NULL,
    content_type TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (uri, large)
);
CREATE TABLE subscribers (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    watcher TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    acknowledged BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (owner, watcher)
);
