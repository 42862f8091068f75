-- Raw categories (publishRawCategories). Data directories of the last release before migrations
-- may already have the table (without a position); the order they were published in is kept.
CREATE TABLE IF NOT EXISTS raw_categories (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    name TEXT NOT NULL,
    instance INTEGER NOT NULL,
    category TEXT NOT NULL,
    PRIMARY KEY (owner, name, instance)
);
ALTER TABLE raw_categories ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
UPDATE raw_categories SET position = rowid;
