-- Rights members become two columns of the store's own (kind, value) instead of a JSON text in
-- the key; every write also appends to `changes`, read by the other processes on the same file.
CREATE TABLE rights_v2 (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    member_kind TEXT NOT NULL,
    member_value TEXT NOT NULL DEFAULT '',
    level TEXT NOT NULL,
    PRIMARY KEY (owner, member_kind, member_value)
);
INSERT OR REPLACE INTO rights_v2 (owner, member_kind, member_value, level)
    SELECT owner, json_extract(member, '$.type'), COALESCE(json_extract(member, '$.value'), ''), level FROM rights;
DROP TABLE rights;
ALTER TABLE rights_v2 RENAME TO rights;

CREATE TABLE global_rights_v2 (
    member_kind TEXT NOT NULL,
    member_value TEXT NOT NULL DEFAULT '',
    level TEXT NOT NULL,
    PRIMARY KEY (member_kind, member_value)
);
INSERT OR REPLACE INTO global_rights_v2 (member_kind, member_value, level)
    SELECT json_extract(member, '$.type'), COALESCE(json_extract(member, '$.value'), ''), level FROM global_rights;
DROP TABLE global_rights;
ALTER TABLE global_rights_v2 RENAME TO global_rights;

CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    origin TEXT NOT NULL,
    at_unix INTEGER NOT NULL DEFAULT (unixepoch())
);
