-- Raw categories (publishRawCategories), in the order they were published.
CREATE TABLE raw_categories (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    name TEXT NOT NULL,
    instance INTEGER NOT NULL,
    category TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, name, instance)
);
