-- The schema every data directory had before migrations existed (created with IF NOT EXISTS, so
-- on such a directory this migration changes nothing and is only recorded).
CREATE TABLE IF NOT EXISTS users (
    uri TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    password_hash TEXT
);
CREATE TABLE IF NOT EXISTS presence (
    uri TEXT PRIMARY KEY REFERENCES users(uri) ON DELETE CASCADE,
    manual TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS rights (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    member TEXT NOT NULL,
    level TEXT NOT NULL,
    PRIMARY KEY (owner, member)
);
CREATE TABLE IF NOT EXISTS global_rights (
    member TEXT PRIMARY KEY,
    level TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_lists (
    owner TEXT PRIMARY KEY REFERENCES users(uri) ON DELETE CASCADE,
    list TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    uri TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    large INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    bytes BLOB NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (uri, large)
);
CREATE TABLE IF NOT EXISTS subscribers (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    watcher TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, watcher)
);
