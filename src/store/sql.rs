//! The [`Store`](super::Store) operations both SQL backends share. The statements are the same
//! text for SQLite and PostgreSQL (`$n` parameters, `ON CONFLICT … DO UPDATE … excluded`), so the
//! implementation is written once and expanded for each backend's pool type. A backend brings:
//! `pool`, `faults` ([`Faults`](super::faults::Faults), checked after each statement of a write),
//! `description`, and the inherent methods `record(&mut tx, &Change)` (announce a change inside
//! the writing transaction), `begin_writing_user(uri)` (a transaction that other writers of the
//! user's rows wait for, so that what it reads stays as read until it commits) and
//! `follow_changes()`.

/// The statement of [`Store::update_presence`](super::Store::update_presence) both backends run
/// (a backend wraps it to announce the change): `$1` the user, `$2`/`$3` whether to set the manual
/// state and its column, `$4`/`$5` the same for the note, `$6` whether a part is set only where
/// it still holds the expected column (`$7` the manual state's, `$8` the note's); it returns the
/// row as it then stands.
macro_rules! upsert_presence_sql {
    () => {
        "INSERT INTO presence (uri, manual, note) VALUES ($1, $3, $5)
         ON CONFLICT (uri) DO UPDATE SET
             manual = CASE WHEN $2 AND (NOT $6 OR presence.manual IS NOT DISTINCT FROM $7)
                 THEN excluded.manual ELSE presence.manual END,
             note = CASE WHEN $4 AND (NOT $6 OR presence.note IS NOT DISTINCT FROM $8)
                 THEN excluded.note ELSE presence.note END
         RETURNING uri, manual, note"
    };
}
pub(super) use upsert_presence_sql;

/// The most URIs one `IN (…)` list binds: far below either backend's limit on parameters
/// (SQLite's 32,766, PostgreSQL's 65,535), large enough that a batch read is one statement.
pub(super) const URIS_PER_STATEMENT: usize = 1000;

macro_rules! sql_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The owner's contact list, read through `executor`: the pool, or a writing transaction
            /// that checks what it is about to replace.
            async fn contact_list_via<'c, E>(
                executor: E,
                owner: &str,
            ) -> $crate::store::StoreResult<Option<$crate::model::contacts::ContactList>>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                use sqlx::Row;
                let row = sqlx::query("SELECT list FROM contact_lists WHERE owner = $1").bind(owner).fetch_optional(executor).await?;
                row.map(|r| $crate::store::rows::contact_list_from_column(r.try_get("list")?)).transpose()
            }

            /// A user's raw categories in their order, read through `executor` (as above).
            async fn raw_categories_via<'c, E>(
                executor: E,
                uri: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::model::raw::RawCategory>>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                use sqlx::Row;
                let rows = sqlx::query("SELECT category FROM raw_categories WHERE owner = $1 ORDER BY position")
                    .bind(uri)
                    .fetch_all(executor)
                    .await?;
                rows.iter().map(|r| $crate::store::rows::raw_category_from_column(r.try_get("category")?)).collect()
            }

            /// The owner's rights entries, read through `executor` (as above).
            async fn rights_of_via<'c, E>(
                executor: E,
                owner: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::model::rights::RightsEntry>>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                let rows = sqlx::query(
                    "SELECT member_kind, member_value, level FROM rights WHERE owner = $1 ORDER BY member_kind, member_value",
                )
                .bind(owner)
                .fetch_all(executor)
                .await?;
                rows.iter().map(entry_from_row).collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn describe(&self) -> String {
                self.description.clone()
            }

            async fn upsert_user(&self, user: &$crate::store::UserRecord) -> $crate::store::StoreResult<()> {
                let profile = $crate::store::rows::profile_to_column(&user.profile)?;
                let mut tx = self.pool.begin().await?;
                // A new password ends the user's logins; the same one (a users file applied again) does not.
                sqlx::query(
                    "DELETE FROM logins WHERE uri = $1 AND CAST($2 AS TEXT) IS NOT NULL
                         AND NOT EXISTS (SELECT 1 FROM users WHERE uri = $1 AND password_hash = $2)",
                )
                .bind(&user.profile.uri)
                .bind(&user.password_hash)
                .execute(&mut *tx)
                .await?;
                self.faults.step()?;
                sqlx::query(
                    "INSERT INTO users (uri, profile, password_hash) VALUES ($1, $2, $3)
                     ON CONFLICT (uri) DO UPDATE SET profile = excluded.profile,
                         password_hash = COALESCE(excluded.password_hash, users.password_hash)",
                )
                .bind(&user.profile.uri)
                .bind(profile)
                .bind(&user.password_hash)
                .execute(&mut *tx)
                .await?;
                self.finish(tx, &$crate::store::Change::User(user.profile.uri.clone())).await?;
                Ok(())
            }

            async fn create_user(&self, user: &$crate::store::UserRecord) -> $crate::store::StoreResult<bool> {
                let profile = $crate::store::rows::profile_to_column(&user.profile)?;
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO users (uri, profile, password_hash) VALUES ($1, $2, $3) ON CONFLICT (uri) DO NOTHING",
                )
                .bind(&user.profile.uri)
                .bind(profile)
                .bind(&user.password_hash)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(false);
                }
                self.finish(tx, &$crate::store::Change::User(user.profile.uri.clone())).await?;
                Ok(true)
            }

            async fn set_password(&self, uri: &str, hash: &str) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE uri = $1")
                    .bind(uri)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                self.faults.step()?;
                // A new password ends every login of the user, with all of its ticket values.
                sqlx::query("DELETE FROM logins WHERE uri = $1").bind(uri).execute(&mut *tx).await?;
                self.finish(tx, &$crate::store::Change::User(uri.to_string())).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn remove_user(&self, uri: &str) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // Everything the user owns goes with the row (ON DELETE CASCADE), in this transaction.
                let done = sqlx::query("DELETE FROM users WHERE uri = $1").bind(uri).execute(&mut *tx).await?;
                self.finish(tx, &$crate::store::Change::User(uri.to_string())).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn users(&self) -> $crate::store::StoreResult<Vec<$crate::store::UserRecord>> {
                let rows = sqlx::query("SELECT profile, password_hash FROM users ORDER BY uri").fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        use sqlx::Row;
                        Ok($crate::store::UserRecord {
                            profile: $crate::store::rows::profile_from_column(row.try_get("profile")?)?,
                            password_hash: row.try_get("password_hash")?,
                        })
                    })
                    .collect()
            }

            async fn user(&self, uri: &str) -> $crate::store::StoreResult<Option<$crate::store::UserRecord>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT profile, password_hash FROM users WHERE uri = $1")
                    .bind(uri)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some($crate::store::UserRecord {
                    profile: $crate::store::rows::profile_from_column(row.try_get("profile")?)?,
                    password_hash: row.try_get("password_hash")?,
                }))
            }

            async fn users_among(&self, uris: &[&str]) -> $crate::store::StoreResult<Vec<String>> {
                use sqlx::Row;
                let mut found = Vec::new();
                for chunk in uris.chunks($crate::store::sql::URIS_PER_STATEMENT) {
                    let mut query = sqlx::QueryBuilder::<$db>::new("SELECT uri FROM users WHERE uri IN (");
                    let mut list = query.separated(", ");
                    for uri in chunk {
                        list.push_bind(*uri);
                    }
                    query.push(")");
                    for row in query.build().fetch_all(&self.pool).await? {
                        found.push(row.try_get("uri")?);
                    }
                }
                Ok(found)
            }

            async fn update_presence(
                &self,
                uri: &str,
                update: &$crate::store::PresenceUpdate,
            ) -> $crate::store::StoreResult<$crate::store::StoredPresence> {
                let columns = $crate::store::rows::PresenceUpdateColumns::of(update)?;
                let row = self.update_presence_row(uri, &columns).await?;
                Ok(presence_from_row(&row)?.1)
            }

            async fn presence(&self, uri: &str) -> $crate::store::StoreResult<Option<$crate::store::StoredPresence>> {
                let row = sqlx::query("SELECT uri, manual, note FROM presence WHERE uri = $1")
                    .bind(uri)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(|r| presence_from_row(r).map(|(_, p)| p)).transpose()
            }

            async fn presences(&self) -> $crate::store::StoreResult<Vec<(String, $crate::store::StoredPresence)>> {
                let rows = sqlx::query("SELECT uri, manual, note FROM presence").fetch_all(&self.pool).await?;
                rows.iter().map(presence_from_row).collect()
            }

            async fn apply_rights(
                &self,
                owner: &str,
                writes: &[$crate::store::RightsWrite],
            ) -> $crate::store::StoreResult<Vec<$crate::model::rights::RightsEntry>> {
                use $crate::store::rows::{level_column, member_columns};
                let mut tx = self.begin_writing_user(owner).await?;
                for write in writes {
                    match write {
                        $crate::store::RightsWrite::Set(entry) => {
                            let (kind, value) = member_columns(&entry.member);
                            sqlx::query(
                                "INSERT INTO rights (owner, member_kind, member_value, level) VALUES ($1, $2, $3, $4)
                                 ON CONFLICT (owner, member_kind, member_value) DO UPDATE SET level = excluded.level",
                            )
                            .bind(owner)
                            .bind(kind)
                            .bind(value)
                            .bind(level_column(entry.level))
                            .execute(&mut *tx)
                            .await?;
                        }
                        $crate::store::RightsWrite::Remove { member, level } => {
                            let (kind, value) = member_columns(member);
                            let delete = match level {
                                Some(level) => sqlx::query(
                                    "DELETE FROM rights
                                     WHERE owner = $1 AND member_kind = $2 AND member_value = $3 AND level = $4",
                                )
                                .bind(owner)
                                .bind(kind)
                                .bind(value)
                                .bind(level_column(*level)),
                                None => sqlx::query("DELETE FROM rights WHERE owner = $1 AND member_kind = $2 AND member_value = $3")
                                    .bind(owner)
                                    .bind(kind)
                                    .bind(value),
                            };
                            delete.execute(&mut *tx).await?;
                        }
                    }
                    self.faults.step()?;
                }
                let entries = Self::rights_of_via(&mut *tx, owner).await?;
                self.record(&mut tx, &$crate::store::Change::Rights(owner.to_string())).await?;
                tx.commit().await?;
                Ok(entries)
            }

            async fn rights(&self) -> $crate::store::StoreResult<Vec<(String, $crate::model::rights::RightsEntry)>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT owner, member_kind, member_value, level FROM rights ORDER BY owner, member_kind, member_value",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok((row.try_get("owner")?, entry_from_row(row)?))).collect()
            }

            async fn rights_of(&self, owner: &str) -> $crate::store::StoreResult<Vec<$crate::model::rights::RightsEntry>> {
                Self::rights_of_via(&self.pool, owner).await
            }

            async fn set_global_right(&self, entry: &$crate::model::rights::RightsEntry) -> $crate::store::StoreResult<()> {
                let (kind, value) = $crate::store::rows::member_columns(&entry.member);
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO global_rights (member_kind, member_value, level) VALUES ($1, $2, $3)
                     ON CONFLICT (member_kind, member_value) DO UPDATE SET level = excluded.level",
                )
                .bind(kind)
                .bind(value)
                .bind($crate::store::rows::level_column(entry.level))
                .execute(&mut *tx)
                .await?;
                self.finish(tx, &$crate::store::Change::GlobalRights).await?;
                Ok(())
            }

            async fn remove_global_right(&self, member: &$crate::model::rights::Member) -> $crate::store::StoreResult<bool> {
                let (kind, value) = $crate::store::rows::member_columns(member);
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM global_rights WHERE member_kind = $1 AND member_value = $2")
                    .bind(kind)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                self.finish(tx, &$crate::store::Change::GlobalRights).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn global_rights(&self) -> $crate::store::StoreResult<Vec<$crate::model::rights::RightsEntry>> {
                let rows =
                    sqlx::query("SELECT member_kind, member_value, level FROM global_rights ORDER BY member_kind, member_value")
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(entry_from_row).collect()
            }

            async fn save_contact_list(
                &self,
                owner: &str,
                expected: Option<&$crate::model::contacts::ContactList>,
                list: &$crate::model::contacts::ContactList,
                subscribes_to: &[String],
            ) -> $crate::store::StoreResult<bool> {
                let text = $crate::store::rows::contact_list_to_column(list)?;
                let mut tx = self.begin_writing_user(owner).await?;
                if let Some(expected) = expected {
                    if Self::contact_list_via(&mut *tx, owner).await?.unwrap_or_default() != *expected {
                        return Ok(false);
                    }
                }
                sqlx::query(
                    "INSERT INTO contact_lists (owner, list) VALUES ($1, $2)
                     ON CONFLICT (owner) DO UPDATE SET list = excluded.list",
                )
                .bind(owner)
                .bind(text)
                .execute(&mut *tx)
                .await?;
                self.faults.step()?;
                for contact in subscribes_to {
                    sqlx::query(
                        "INSERT INTO subscribers (owner, watcher, acknowledged)
                         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE uri = $1)
                         ON CONFLICT (owner, watcher) DO NOTHING",
                    )
                    .bind(contact)
                    .bind(owner)
                    .bind(false)
                    .execute(&mut *tx)
                    .await?;
                    self.faults.step()?;
                    self.record(&mut tx, &$crate::store::Change::Subscriber(contact.clone(), owner.to_string())).await?;
                }
                self.record(&mut tx, &$crate::store::Change::ContactList(owner.to_string())).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn contact_list(
                &self,
                owner: &str,
            ) -> $crate::store::StoreResult<Option<$crate::model::contacts::ContactList>> {
                Self::contact_list_via(&self.pool, owner).await
            }

            async fn contact_lists(&self) -> $crate::store::StoreResult<Vec<(String, $crate::model::contacts::ContactList)>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT owner, list FROM contact_lists ORDER BY owner").fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("owner")?, $crate::store::rows::contact_list_from_column(r.try_get("list")?)?)))
                    .collect()
            }

            async fn save_subscribers(&self, pairs: &[(&str, &str)], acknowledged: bool) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for (owner, watcher) in pairs {
                    sqlx::query(
                        "INSERT INTO subscribers (owner, watcher, acknowledged) VALUES ($1, $2, $3)
                         ON CONFLICT (owner, watcher) DO UPDATE
                             SET acknowledged = subscribers.acknowledged OR excluded.acknowledged",
                    )
                    .bind(owner)
                    .bind(watcher)
                    .bind(acknowledged)
                    .execute(&mut *tx)
                    .await?;
                    self.faults.step()?;
                    self.record(&mut tx, &$crate::store::Change::Subscriber(owner.to_string(), watcher.to_string())).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn subscribers(&self) -> $crate::store::StoreResult<Vec<(String, String, bool)>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT owner, watcher, acknowledged FROM subscribers ORDER BY owner, watcher")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok((r.try_get("owner")?, r.try_get("watcher")?, r.try_get("acknowledged")?))).collect()
            }

            async fn subscribers_of(&self, owner: &str) -> $crate::store::StoreResult<Vec<(String, bool)>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT watcher, acknowledged FROM subscribers WHERE owner = $1 ORDER BY watcher")
                    .bind(owner)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok((r.try_get("watcher")?, r.try_get("acknowledged")?))).collect()
            }

            async fn subscriber(&self, owner: &str, watcher: &str) -> $crate::store::StoreResult<Option<bool>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT acknowledged FROM subscribers WHERE owner = $1 AND watcher = $2")
                    .bind(owner)
                    .bind(watcher)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| r.try_get("acknowledged")).transpose().map_err(Into::into)
            }

            async fn save_image(
                &self,
                uri: &str,
                large: bool,
                image: &$crate::store::StoredImage,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO images (uri, large, content_type, bytes, hash) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (uri, large) DO UPDATE SET content_type = excluded.content_type,
                         bytes = excluded.bytes, hash = excluded.hash",
                )
                .bind(uri)
                .bind(large)
                .bind(&image.content_type)
                .bind(&image.bytes)
                .bind(&image.hash)
                .execute(&mut *tx)
                .await?;
                self.finish(tx, &$crate::store::Change::Image(uri.to_string())).await?;
                Ok(())
            }

            async fn image(&self, uri: &str, large: bool) -> $crate::store::StoreResult<Option<$crate::store::StoredImage>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT content_type, bytes, hash FROM images WHERE uri = $1 AND large = $2")
                    .bind(uri)
                    .bind(large)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok($crate::store::StoredImage {
                        content_type: r.try_get("content_type")?,
                        bytes: r.try_get("bytes")?,
                        hash: r.try_get("hash")?,
                    })
                })
                .transpose()
            }

            async fn remove_image(&self, uri: &str, large: bool) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM images WHERE uri = $1 AND large = $2")
                    .bind(uri)
                    .bind(large)
                    .execute(&mut *tx)
                    .await?;
                self.finish(tx, &$crate::store::Change::Image(uri.to_string())).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn image_hashes(&self) -> $crate::store::StoreResult<Vec<(String, String)>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT uri, hash FROM images WHERE large = $1 ORDER BY uri")
                    .bind(false)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok((r.try_get("uri")?, r.try_get("hash")?))).collect()
            }

            async fn save_raw_categories(
                &self,
                uri: &str,
                expected: &[$crate::model::raw::RawCategory],
                categories: &[$crate::model::raw::RawCategory],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin_writing_user(uri).await?;
                if Self::raw_categories_via(&mut *tx, uri).await? != expected {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM raw_categories WHERE owner = $1").bind(uri).execute(&mut *tx).await?;
                self.faults.step()?;
                for (position, category) in categories.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO raw_categories (owner, name, instance, category, position) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(uri)
                    .bind(&category.name)
                    .bind(category.instance as i32)
                    .bind($crate::store::rows::raw_category_to_column(category)?)
                    .bind(position as i32)
                    .execute(&mut *tx)
                    .await?;
                    self.faults.step()?;
                }
                self.record(&mut tx, &$crate::store::Change::RawCategories(uri.to_string())).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn raw_categories(&self) -> $crate::store::StoreResult<Vec<(String, Vec<$crate::model::raw::RawCategory>)>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT owner, category FROM raw_categories ORDER BY owner, position")
                    .fetch_all(&self.pool)
                    .await?;
                let mut out: Vec<(String, Vec<$crate::model::raw::RawCategory>)> = Vec::new();
                for row in rows {
                    let owner: String = row.try_get("owner")?;
                    let category = $crate::store::rows::raw_category_from_column(row.try_get("category")?)?;
                    match out.last_mut() {
                        Some((last, list)) if *last == owner => list.push(category),
                        _ => out.push((owner, vec![category])),
                    }
                }
                Ok(out)
            }

            async fn raw_categories_of(&self, uri: &str) -> $crate::store::StoreResult<Vec<$crate::model::raw::RawCategory>> {
                Self::raw_categories_via(&self.pool, uri).await
            }

            async fn create_login(
                &self,
                user: &str,
                first: &[u8; 32],
                now: $crate::model::sources::Timestamp,
                expires: $crate::model::sources::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                use sqlx::Row;
                use $crate::store::rows::time_column;
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query("INSERT INTO logins (uri, expires_at, rotated_at) VALUES ($1, $2, $3) RETURNING id")
                    .bind(user)
                    .bind(time_column(expires))
                    .bind(time_column(now))
                    .fetch_one(&mut *tx)
                    .await?;
                self.faults.step()?;
                let id: i64 = row.try_get("id")?;
                sqlx::query("INSERT INTO tickets (hash, login, last_used) VALUES ($1, $2, $3)")
                    .bind(&first[..])
                    .bind(id)
                    .bind(time_column(now))
                    .execute(&mut *tx)
                    .await?;
                self.faults.step()?;
                tx.commit().await?;
                u64::try_from(id).map_err(|_| $crate::store::StoreError::corrupt(format!("login id {id}")))
            }

            async fn login_ids(&self, user: &str) -> $crate::store::StoreResult<Vec<u64>> {
                use sqlx::Row;
                let rows =
                    sqlx::query("SELECT id FROM logins WHERE uri = $1 ORDER BY id").bind(user).fetch_all(&self.pool).await?;
                rows.iter().map(|row| Ok(u64::try_from(row.try_get::<i64, _>("id")?).unwrap_or_default())).collect()
            }

            async fn ticket(&self, hash: &[u8; 32]) -> $crate::store::StoreResult<Option<$crate::store::StoredTicket>> {
                use sqlx::Row;
                use $crate::store::rows::time_from_column;
                self.faults.read()?;
                let row = sqlx::query(
                    "SELECT t.login, t.last_used, l.uri, l.expires_at, l.rotated_at
                     FROM tickets t JOIN logins l ON l.id = t.login WHERE t.hash = $1",
                )
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let login: i64 = row.try_get("login")?;
                Ok(Some($crate::store::StoredTicket {
                    login: u64::try_from(login).map_err(|_| $crate::store::StoreError::corrupt(format!("login id {login}")))?,
                    user: row.try_get("uri")?,
                    expires: time_from_column(row.try_get("expires_at")?)?,
                    rotated: time_from_column(row.try_get("rotated_at")?)?,
                    last_used: time_from_column(row.try_get("last_used")?)?,
                }))
            }

            async fn rotate_login(
                &self,
                login: u64,
                rotated: $crate::model::sources::Timestamp,
                fresh: &[u8; 32],
                now: $crate::model::sources::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::rows::time_column;
                let id = i64::try_from(login).map_err(|_| $crate::store::StoreError::corrupt(format!("login id {login}")))?;
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE logins SET rotated_at = $1 WHERE id = $2 AND rotated_at = $3")
                    .bind(time_column(now))
                    .bind(id)
                    .bind(time_column(rotated))
                    .execute(&mut *tx)
                    .await?;
                self.faults.step()?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query("INSERT INTO tickets (hash, login, last_used) VALUES ($1, $2, $3)")
                    .bind(&fresh[..])
                    .bind(id)
                    .bind(time_column(now))
                    .execute(&mut *tx)
                    .await?;
                self.faults.step()?;
                tx.commit().await?;
                Ok(true)
            }

            async fn record_ticket_uses(
                &self,
                uses: &[([u8; 32], $crate::model::sources::Timestamp)],
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for (hash, at) in uses {
                    sqlx::query("UPDATE tickets SET last_used = $1 WHERE hash = $2 AND last_used < $1")
                        .bind($crate::store::rows::time_column(*at))
                        .bind(&hash[..])
                        .execute(&mut *tx)
                        .await?;
                    self.faults.step()?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn sweep_tickets(
                &self,
                now: $crate::model::sources::Timestamp,
                unused_since: $crate::model::sources::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                use $crate::store::rows::time_column;
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM logins WHERE expires_at <= $1").bind(time_column(now)).execute(&mut *tx).await?;
                self.faults.step()?;
                let idle = sqlx::query("DELETE FROM tickets WHERE last_used < $1")
                    .bind(time_column(unused_since))
                    .execute(&mut *tx)
                    .await?;
                self.faults.step()?;
                sqlx::query("DELETE FROM logins WHERE NOT EXISTS (SELECT 1 FROM tickets WHERE tickets.login = logins.id)")
                    .execute(&mut *tx)
                    .await?;
                self.faults.step()?;
                tx.commit().await?;
                Ok(idle.rows_affected())
            }

            async fn save_source_report(
                &self,
                uri: &str,
                source: &str,
                report: &$crate::model::reports::SourceReport,
            ) -> $crate::store::StoreResult<()> {
                let text = $crate::store::rows::report_to_column(&report.data)?;
                let expires = report.expires.map($crate::store::rows::time_column);
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO source_reports (owner, source, report, expires_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (owner, source) DO UPDATE SET report = excluded.report, expires_at = excluded.expires_at",
                )
                .bind(uri)
                .bind(source)
                .bind(text)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
                self.finish(tx, &$crate::store::Change::Presence(uri.to_string())).await?;
                Ok(())
            }

            async fn remove_source_report(&self, uri: &str, source: &str) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM source_reports WHERE owner = $1 AND source = $2")
                    .bind(uri)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?;
                self.finish(tx, &$crate::store::Change::Presence(uri.to_string())).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn source_reports(
                &self,
                now: $crate::model::sources::Timestamp,
            ) -> $crate::store::StoreResult<Vec<(String, String, $crate::model::reports::SourceReport)>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT owner, source, report, expires_at FROM source_reports
                     WHERE expires_at IS NULL OR expires_at > $1 ORDER BY owner, source",
                )
                .bind($crate::store::rows::time_column(now))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok((row.try_get("owner")?, row.try_get("source")?, report_from_row(row)?))).collect()
            }

            async fn source_reports_of(
                &self,
                uri: &str,
                now: $crate::model::sources::Timestamp,
            ) -> $crate::store::StoreResult<Vec<(String, $crate::model::reports::SourceReport)>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT source, report, expires_at FROM source_reports
                     WHERE owner = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY source",
                )
                .bind(uri)
                .bind($crate::store::rows::time_column(now))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok((row.try_get("source")?, report_from_row(row)?))).collect()
            }

            async fn sweep_source_reports(&self, now: $crate::model::sources::Timestamp) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM source_reports WHERE expires_at <= $1")
                    .bind($crate::store::rows::time_column(now))
                    .execute(&self.pool)
                    .await?;
                self.faults.step()?;
                Ok(done.rows_affected())
            }

            async fn changes(&self) -> $crate::store::StoreResult<$crate::store::ChangeFeed> {
                self.follow_changes().await
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }

        fn presence_from_row(
            row: &<$db as sqlx::Database>::Row,
        ) -> $crate::store::StoreResult<(String, $crate::store::StoredPresence)> {
            use sqlx::Row;
            let manual: Option<String> = row.try_get("manual")?;
            let note: Option<String> = row.try_get("note")?;
            let presence = $crate::store::StoredPresence {
                manual: manual.as_deref().map($crate::store::rows::manual_from_column).transpose()?,
                note: note.as_deref().map($crate::store::rows::note_from_column).transpose()?,
            };
            Ok((row.try_get("uri")?, presence))
        }

        fn report_from_row(row: &<$db as sqlx::Database>::Row) -> $crate::store::StoreResult<$crate::model::reports::SourceReport> {
            use sqlx::Row;
            let expires: Option<i64> = row.try_get("expires_at")?;
            Ok($crate::model::reports::SourceReport {
                data: $crate::store::rows::report_from_column(row.try_get("report")?)?,
                expires: expires.map($crate::store::rows::time_from_column).transpose()?,
            })
        }

        fn entry_from_row(row: &<$db as sqlx::Database>::Row) -> $crate::store::StoreResult<$crate::model::rights::RightsEntry> {
            use sqlx::Row;
            let kind: String = row.try_get("member_kind")?;
            let level: String = row.try_get("level")?;
            Ok($crate::model::rights::RightsEntry {
                member: $crate::store::rows::member_from_columns(&kind, row.try_get("member_value")?)?,
                level: $crate::store::rows::level_from_column(&level)?,
            })
        }
    };
}

pub(crate) use sql_store_impl;
