//! The SQL text of every statement, per dialect. Nothing here touches a connection, so the
//! statements are unit-tested without a database.

use std::fmt::Write as _;

/// The three SQL dialects. Known whatever the enabled features, so that SQL generation is
/// always compiled and tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    /// The name used in logs and by `SessionStore::name`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        }
    }

    /// The `n`-th (1-based) bind parameter.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite | Dialect::Mysql => "?".to_owned(),
        }
    }

    /// `count` parameters separated by commas, numbered from `first`.
    fn params(self, first: usize, count: usize) -> String {
        (first..first + count).map(|n| self.param(n)).collect::<Vec<_>>().join(", ")
    }

    /// `rows` tuples of `width` parameters, numbered from `first`.
    fn tuples(self, first: usize, rows: usize, width: usize) -> String {
        let mut out = String::new();
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "({})", self.params(first + r * width, width));
        }
        out
    }

    /// The statement that opens a write transaction. SQLite takes its single write lock
    /// up front (waiting `busy_timeout` for it), so a transaction never fails half-way for
    /// want of it.
    pub(crate) fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres | Dialect::Mysql => "BEGIN",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BLOB",
            Dialect::Postgres => "BYTEA",
            Dialect::Mysql => "LONGBLOB",
        }
    }

    /// A binary column that is part of a primary key, limited to `max` bytes where the
    /// database limits key length (MySQL: 3072 bytes per index).
    fn binary_key(self, max: usize) -> String {
        match self {
            Dialect::Sqlite => "BLOB".to_owned(),
            Dialect::Postgres => "BYTEA".to_owned(),
            Dialect::Mysql => format!("VARBINARY({max})"),
        }
    }

    /// The column of a store key: binary in MySQL, so that comparisons are byte-exact
    /// whatever the server's default collation.
    fn store_key(self) -> &'static str {
        match self {
            Dialect::Sqlite => "TEXT",
            Dialect::Postgres => "VARCHAR(128)",
            Dialect::Mysql => "VARBINARY(128)",
        }
    }

    fn int(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INTEGER",
            Dialect::Postgres | Dialect::Mysql => "BIGINT",
        }
    }

    /// MySQL has no `CREATE INDEX IF NOT EXISTS` (only MariaDB has), so there the index is
    /// part of the table definition.
    fn inline_index(self, name: &str, column: &str) -> String {
        match self {
            Dialect::Mysql => format!(", INDEX {name} ({column})"),
            Dialect::Sqlite | Dialect::Postgres => String::new(),
        }
    }

    fn create_index(self, name: &str, table: &str, column: &str) -> Option<String> {
        match self {
            Dialect::Mysql => None,
            Dialect::Sqlite | Dialect::Postgres => {
                Some(format!("CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})"))
            }
        }
    }

    /// A column read back as text: MySQL's binary columns (byte-exact comparisons) are
    /// converted, since sqlx reads a binary column only as bytes.
    fn text_out(self, column: &str) -> String {
        match self {
            Dialect::Mysql => format!("CONVERT({column} USING utf8mb4)"),
            Dialect::Sqlite | Dialect::Postgres => column.to_owned(),
        }
    }

    /// The type a `CAST` to a 64-bit integer names.
    fn bigint_cast(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INTEGER",
            Dialect::Postgres => "BIGINT",
            Dialect::Mysql => "SIGNED",
        }
    }

    /// The principal column: binary on MySQL, so that `alice` and `Alice` are two users
    /// whatever the server's collation.
    fn principal(self) -> String {
        match self {
            Dialect::Sqlite | Dialect::Postgres => "TEXT".to_owned(),
            Dialect::Mysql => format!("VARBINARY({PRINCIPAL_MAX})"),
        }
    }

    fn device(self) -> &'static str {
        match self {
            Dialect::Sqlite | Dialect::Postgres => "TEXT",
            Dialect::Mysql => "LONGBLOB",
        }
    }

    fn handle(self) -> &'static str {
        match self {
            Dialect::Sqlite => "TEXT",
            Dialect::Postgres => "VARCHAR(32)",
            Dialect::Mysql => "VARBINARY(32)",
        }
    }

    /// The names of the columns of `table` (unqualified), one per row.
    fn columns_query(self, schema: Option<&str>, table: &str) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
            Dialect::Postgres => format!(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = {} \
                 AND table_name = lower('{table}')",
                schema.map_or_else(|| "current_schema()".to_owned(), |s| format!("lower('{s}')"))
            ),
            Dialect::Mysql => format!(
                "SELECT CONVERT(column_name USING utf8mb4) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ),
        }
    }

    fn table_suffix(self) -> &'static str {
        match self {
            Dialect::Mysql => " ENGINE=InnoDB",
            Dialect::Sqlite | Dialect::Postgres => "",
        }
    }
}

/// `schema.table` on PostgreSQL with a schema; the bare table otherwise.
fn qualify(dialect: Dialect, schema: Option<&str>, table: &str) -> String {
    match (dialect, schema) {
        (Dialect::Postgres, Some(s)) => format!("{s}.{table}"),
        _ => table.to_owned(),
    }
}

/// Longest cache namespace stored as is (longer ones are hashed, see `cache.rs`).
pub(crate) const NAMESPACE_MAX: usize = 255;
/// Longest cache key stored as is.
pub(crate) const CACHE_KEY_MAX: usize = 512;
/// Longest session entry name on MySQL (other databases have no limit).
pub(crate) const ENTRY_NAME_MAX: usize = 512;

/// Longest principal (a user id) the index keeps, in bytes: it is an indexed column.
pub(crate) const PRINCIPAL_MAX: usize = 512;

/// Rows per multi-row `INSERT`, well below every database's bind-parameter limit.
pub(crate) const ROWS_PER_INSERT: usize = 500;

/// The statements of the session store.
/// How many expired sessions one cleanup statement deletes at most: a sweep is a series of
/// short statements, none holding locks on a large part of the table.
pub(crate) const CLEANUP_BATCH: u64 = 1000;

#[derive(Debug, Clone)]
pub(crate) struct SessionSql {
    dialect: Dialect,
    sessions: String,
    entries: String,
    retired: String,
    /// `CREATE SCHEMA` (PostgreSQL with a schema), then the tables and the index.
    pub(crate) migrate: Vec<String>,
    /// id, now → created, accessed, expires, name, value, principal, device (name/value
    /// NULL without entries, principal/device NULL without an owner).
    pub(crate) load: String,
    /// id, created, accessed, expires, principal, device, handle → 1 row if inserted, 0 if the key exists.
    pub(crate) insert: String,
    /// id, now → deletes the session (and, by cascade, its entries) if expired.
    pub(crate) delete_expired: String,
    /// accessed, expires, id, now → 1 row if the session was live.
    pub(crate) touch: String,
    /// id → deletes the session and, by cascade, its entries.
    pub(crate) delete: String,
    /// id → deletes every entry.
    pub(crate) clear_entries: String,
    /// now → deletes up to [`CLEANUP_BATCH`] expired sessions.
    pub(crate) cleanup: String,
    /// id, now, id, now → the rows of `load`, or one row `(-1, -1, NULL, …)` when
    /// the key is retired (a tombstone younger than its window).
    pub(crate) lookup: String,
    /// id, until → files (or renews) the tombstone of a retired key.
    pub(crate) retire: String,
    /// now → deletes every tombstone past its window.
    pub(crate) cleanup_retired: String,
    /// to, handle of `to`, from → copies the session row of `from` (owner included) under `to` (1 row, 0 or a duplicate-key
    /// error if `to` is taken).
    pub(crate) copy_session: String,
    /// to, from → moves the entries of `from` to `to`.
    pub(crate) move_entries: String,
    /// The owner columns a table made by an older version lacks: name and the `ALTER
    /// TABLE` statements that add it (with its index on MySQL).
    pub(crate) owner_columns: Vec<(&'static str, Vec<String>)>,
    /// → the column names of the session table, one per row.
    pub(crate) columns: String,
    /// The indexes on the owner columns, created after `owner_columns` (none on MySQL,
    /// where they come with the table or the column).
    pub(crate) owner_indexes: Vec<String>,
    /// accessed, expires, principal, device, id, now → `touch` that also sets the owner.
    pub(crate) touch_owned: String,
    /// principal, now → the `Listed` rows of the principal's live sessions.
    pub(crate) sessions_of: String,
    /// after, now, limit → the `Listed` rows of up to `limit` live sessions with ids after
    /// `after`, in id order.
    pub(crate) scan: String,
    /// now → the number of live sessions.
    pub(crate) count: String,
    /// handle, now → the id of the live session with that handle.
    pub(crate) find: String,
    /// after, limit → ids of rows without a handle (written by an older version), in order.
    pub(crate) unhandled: String,
    /// handle, id → fills in the handle of a row.
    pub(crate) set_handle: String,
}

impl SessionSql {
    /// `schema` (PostgreSQL only) and `table` are validated identifiers.
    pub(crate) fn new(dialect: Dialect, schema: Option<&str>, table: &str) -> Self {
        let sessions = qualify(dialect, schema, table);
        let entries = qualify(dialect, schema, &format!("{table}_entries"));
        let p = |n| dialect.param(n);
        let (int, key, suffix) = (dialect.int(), dialect.store_key(), dialect.table_suffix());
        let mut migrate = Vec::new();
        if let (Dialect::Postgres, Some(s)) = (dialect, schema) {
            migrate.push(format!("CREATE SCHEMA IF NOT EXISTS {s}"));
        }
        migrate.push(format!(
            "CREATE TABLE IF NOT EXISTS {sessions} (id {key} NOT NULL PRIMARY KEY, created {int} NOT NULL, \
             accessed {int} NOT NULL, expires {int} NULL, principal {principal} NULL, device {device} NULL, \
             handle {handle} NULL{index}{principal_index}{handle_index}){suffix}",
            principal = dialect.principal(),
            device = dialect.device(),
            handle = dialect.handle(),
            index = dialect.inline_index(&format!("{table}_expires"), "expires"),
            principal_index = dialect.inline_index(&format!("{table}_principal"), "principal"),
            handle_index = dialect.inline_index(&format!("{table}_handle"), "handle"),
        ));
        migrate.extend(dialect.create_index(&format!("{table}_expires"), &sessions, "expires"));
        let add_column = |column: &str, ty: &str| -> Vec<String> {
            let index = match dialect {
                Dialect::Mysql if column != "device" => format!(", ADD INDEX {table}_{column} ({column})"),
                _ => String::new(),
            };
            vec![format!("ALTER TABLE {sessions} ADD COLUMN {column} {ty} NULL{index}")]
        };
        let owner_columns = vec![
            ("principal", add_column("principal", &dialect.principal())),
            ("device", add_column("device", dialect.device())),
            ("handle", add_column("handle", dialect.handle())),
        ];
        let owner_indexes: Vec<String> = [("principal", "principal"), ("handle", "handle")]
            .iter()
            .filter_map(|(name, column)| dialect.create_index(&format!("{table}_{name}"), &sessions, column))
            .collect();
        migrate.push(format!(
            "CREATE TABLE IF NOT EXISTS {entries} (id {key} NOT NULL, name {name} NOT NULL, value {value} NOT NULL, \
             PRIMARY KEY (id, name), CONSTRAINT {table}_entries_session FOREIGN KEY (id) REFERENCES {sessions} (id) \
             ON DELETE CASCADE){suffix}",
            name = dialect.binary_key(ENTRY_NAME_MAX),
            value = dialect.binary(),
        ));
        let retired = qualify(dialect, schema, &format!("{table}_retired"));
        migrate.push(format!(
            "CREATE TABLE IF NOT EXISTS {retired} (id {key} NOT NULL PRIMARY KEY, retired_until {int} NOT NULL\
             {index}){suffix}",
            index = dialect.inline_index(&format!("{table}_retired_until"), "retired_until"),
        ));
        migrate.extend(dialect.create_index(&format!("{table}_retired_until"), &retired, "retired_until"));
        let live = |n| format!("(expires IS NULL OR expires > {})", p(n));
        let load_sql = format!(
            "SELECT s.created, s.accessed, s.expires, e.name, e.value, {principal}, {device} FROM {sessions} s \
             LEFT JOIN {entries} e ON e.id = s.id WHERE s.id = {} AND (s.expires IS NULL OR s.expires > {})",
            p(1),
            p(2),
            principal = dialect.text_out("s.principal"),
            device = dialect.text_out("s.device"),
        );
        // The columns of a `Listed`, for `s` a session row: its size is summed over its
        // entries by the primary key's index.
        let listed = format!(
            "SELECT {id}, s.created, s.accessed, s.expires, {principal}, {device}, \
             (SELECT CAST(COALESCE(SUM(LENGTH(e.name) + LENGTH(e.value)), 0) AS {bigint}) FROM {entries} e \
             WHERE e.id = s.id) FROM {sessions} s",
            id = dialect.text_out("s.id"),
            principal = dialect.text_out("s.principal"),
            device = dialect.text_out("s.device"),
            bigint = dialect.bigint_cast(),
        );
        SessionSql {
            columns: dialect.columns_query(schema, table),
            owner_columns,
            owner_indexes,
            touch_owned: format!(
                "UPDATE {sessions} SET accessed = {}, expires = {}, principal = {}, device = {} WHERE id = {} AND {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                live(6)
            ),
            sessions_of: format!("{listed} WHERE s.principal = {} AND (s.expires IS NULL OR s.expires > {})", p(1), p(2)),
            scan: format!(
                "{listed} WHERE s.id > {} AND (s.expires IS NULL OR s.expires > {}) ORDER BY s.id LIMIT {}",
                p(1),
                p(2),
                p(3)
            ),
            count: format!("SELECT COUNT(*) FROM {sessions} WHERE {}", live(1)),
            find: format!(
                "SELECT {} FROM {sessions} WHERE handle = {} AND {}",
                dialect.text_out("id"),
                p(1),
                live(2)
            ),
            unhandled: format!(
                "SELECT {} FROM {sessions} WHERE handle IS NULL AND id > {} ORDER BY id LIMIT {}",
                dialect.text_out("id"),
                p(1),
                p(2)
            ),
            set_handle: format!("UPDATE {sessions} SET handle = {} WHERE id = {}", p(1), p(2)),
            lookup: format!(
                "{load_sql} UNION ALL SELECT -1, -1, NULL, NULL, NULL, NULL, NULL FROM {retired} \
                 WHERE id = {} AND retired_until > {}",
                p(3),
                p(4)
            ),
            retire: match dialect {
                Dialect::Mysql => format!(
                    "INSERT INTO {retired} (id, retired_until) VALUES ({}) \
                     ON DUPLICATE KEY UPDATE retired_until = VALUES(retired_until)",
                    dialect.params(1, 2)
                ),
                _ => format!(
                    "INSERT INTO {retired} (id, retired_until) VALUES ({}) \
                     ON CONFLICT (id) DO UPDATE SET retired_until = excluded.retired_until",
                    dialect.params(1, 2)
                ),
            },
            cleanup_retired: format!("DELETE FROM {retired} WHERE retired_until <= {}", p(1)),
            copy_session: format!(
                "INSERT INTO {sessions} (id, created, accessed, expires, principal, device, handle) \
                 SELECT {}, created, accessed, expires, principal, device, {} FROM {sessions} WHERE id = {}{}",
                p(1),
                p(2),
                p(3),
                if dialect == Dialect::Mysql { "" } else { " ON CONFLICT (id) DO NOTHING" }
            ),
            move_entries: format!("UPDATE {entries} SET id = {} WHERE id = {}", p(1), p(2)),
            dialect,
            load: load_sql,
            insert: match dialect {
                // MySQL has no ON CONFLICT; its duplicate-key error is caught instead.
                Dialect::Mysql => format!(
                    "INSERT INTO {sessions} (id, created, accessed, expires, principal, device, handle) VALUES ({})",
                    dialect.params(1, 7)
                ),
                _ => format!(
                    "INSERT INTO {sessions} (id, created, accessed, expires, principal, device, handle) VALUES ({}) \
                     ON CONFLICT (id) DO NOTHING",
                    dialect.params(1, 7)
                ),
            },
            delete_expired: format!(
                "DELETE FROM {sessions} WHERE id = {} AND expires IS NOT NULL AND expires <= {}",
                p(1),
                p(2)
            ),
            touch: format!(
                "UPDATE {sessions} SET accessed = {}, expires = {} WHERE id = {} AND {}",
                p(1),
                p(2),
                p(3),
                live(4)
            ),
            delete: format!("DELETE FROM {sessions} WHERE id = {}", p(1)),
            clear_entries: format!("DELETE FROM {entries} WHERE id = {}", p(1)),
            cleanup: match dialect {
                Dialect::Mysql => format!(
                    "DELETE FROM {sessions} WHERE expires IS NOT NULL AND expires <= {} ORDER BY expires LIMIT {CLEANUP_BATCH}",
                    p(1)
                ),
                // SKIP LOCKED: two sweeping processes take disjoint batches, and neither
                // waits for a row a request is writing.
                Dialect::Postgres => format!(
                    "DELETE FROM {sessions} WHERE id IN (SELECT id FROM {sessions} WHERE expires IS NOT NULL \
                     AND expires <= {} ORDER BY expires LIMIT {CLEANUP_BATCH} FOR UPDATE SKIP LOCKED)",
                    p(1)
                ),
                Dialect::Sqlite => format!(
                    "DELETE FROM {sessions} WHERE id IN (SELECT id FROM {sessions} WHERE expires IS NOT NULL \
                     AND expires <= {} ORDER BY expires LIMIT {CLEANUP_BATCH})",
                    p(1)
                ),
            },
            migrate,
            sessions,
            entries,
            retired,
        }
    }

    /// id, then `count` names → deletes those entries.
    pub(crate) fn remove_entries(&self, count: usize) -> String {
        format!(
            "DELETE FROM {} WHERE id = {} AND name IN ({})",
            self.entries,
            self.dialect.param(1),
            self.dialect.params(2, count)
        )
    }

    /// `rows` × (id, name, value) → inserts or replaces those entries.
    pub(crate) fn upsert_entries(&self, rows: usize) -> String {
        let values = self.dialect.tuples(1, rows, 3);
        match self.dialect {
            Dialect::Mysql => format!(
                "INSERT INTO {} (id, name, value) VALUES {values} ON DUPLICATE KEY UPDATE value = VALUES(value)",
                self.entries
            ),
            _ => format!(
                "INSERT INTO {} (id, name, value) VALUES {values} ON CONFLICT (id, name) DO UPDATE SET value = excluded.value",
                self.entries
            ),
        }
    }

    /// The session table, qualified.
    pub(crate) fn sessions_table(&self) -> &str {
        &self.sessions
    }

    /// The entries table, qualified.
    pub(crate) fn entries_table(&self) -> &str {
        &self.entries
    }

    /// The table of retired keys (tombstones), qualified.
    pub(crate) fn retired_table(&self) -> &str {
        &self.retired
    }
}

/// The statements of the cache backend.
#[derive(Debug, Clone)]
pub(crate) struct CacheSql {
    pub(crate) migrate: Vec<String>,
    /// namespace, key, now → value, stored_at, fresh_until.
    pub(crate) get: String,
    /// namespace, key, value, stored_at, fresh_until, expires → inserts or replaces.
    pub(crate) put: String,
    /// namespace, key → deletes the entry.
    pub(crate) remove: String,
    /// namespace → deletes the namespace's entries.
    pub(crate) clear: String,
    /// namespace, key, now → deletes an expired lock.
    pub(crate) unlock_expired: String,
    /// namespace, key, token, expires → 1 row if taken (0, or a duplicate-key error on
    /// MySQL, if held).
    pub(crate) lock: String,
    /// namespace, key, token → deletes the lock if the token owns it.
    pub(crate) unlock: String,
    /// now → deletes expired entries.
    pub(crate) cleanup: String,
    /// now → deletes expired locks.
    pub(crate) cleanup_locks: String,
}

impl CacheSql {
    pub(crate) fn new(dialect: Dialect, schema: Option<&str>, table: &str) -> Self {
        let cache = qualify(dialect, schema, table);
        let locks = qualify(dialect, schema, &format!("{table}_locks"));
        let p = |n| dialect.param(n);
        let (int, suffix) = (dialect.int(), dialect.table_suffix());
        let (ns, key) = (dialect.binary_key(NAMESPACE_MAX), dialect.binary_key(CACHE_KEY_MAX));
        let mut migrate = Vec::new();
        if let (Dialect::Postgres, Some(s)) = (dialect, schema) {
            migrate.push(format!("CREATE SCHEMA IF NOT EXISTS {s}"));
        }
        migrate.push(format!(
            "CREATE TABLE IF NOT EXISTS {cache} (namespace {ns} NOT NULL, cache_key {key} NOT NULL, \
             value {value} NOT NULL, stored_at {int} NOT NULL, fresh_until {int} NULL, expires {int} NULL, \
             PRIMARY KEY (namespace, cache_key){index}){suffix}",
            value = dialect.binary(),
            index = dialect.inline_index(&format!("{table}_expires"), "expires"),
        ));
        migrate.extend(dialect.create_index(&format!("{table}_expires"), &cache, "expires"));
        migrate.push(format!(
            "CREATE TABLE IF NOT EXISTS {locks} (namespace {ns} NOT NULL, cache_key {key} NOT NULL, \
             token {token} NOT NULL, expires {int} NOT NULL, PRIMARY KEY (namespace, cache_key)){suffix}",
            token = dialect.binary_key(64),
        ));
        let row = "namespace = {1} AND cache_key = {2}";
        let row = row.replace("{1}", &p(1)).replace("{2}", &p(2));
        CacheSql {
            get: format!(
                "SELECT value, stored_at, fresh_until FROM {cache} WHERE {row} AND (expires IS NULL OR expires > {})",
                p(3)
            ),
            put: match dialect {
                Dialect::Mysql => format!(
                    "INSERT INTO {cache} (namespace, cache_key, value, stored_at, fresh_until, expires) VALUES ({}) \
                     ON DUPLICATE KEY UPDATE value = VALUES(value), stored_at = VALUES(stored_at), \
                     fresh_until = VALUES(fresh_until), expires = VALUES(expires)",
                    dialect.params(1, 6)
                ),
                _ => format!(
                    "INSERT INTO {cache} (namespace, cache_key, value, stored_at, fresh_until, expires) VALUES ({}) \
                     ON CONFLICT (namespace, cache_key) DO UPDATE SET value = excluded.value, \
                     stored_at = excluded.stored_at, fresh_until = excluded.fresh_until, expires = excluded.expires",
                    dialect.params(1, 6)
                ),
            },
            remove: format!("DELETE FROM {cache} WHERE {row}"),
            clear: format!("DELETE FROM {cache} WHERE namespace = {}", p(1)),
            unlock_expired: format!("DELETE FROM {locks} WHERE {row} AND expires <= {}", p(3)),
            lock: match dialect {
                Dialect::Mysql => {
                    format!(
                        "INSERT INTO {locks} (namespace, cache_key, token, expires) VALUES ({})",
                        dialect.params(1, 4)
                    )
                }
                _ => format!(
                    "INSERT INTO {locks} (namespace, cache_key, token, expires) VALUES ({}) \
                     ON CONFLICT (namespace, cache_key) DO NOTHING",
                    dialect.params(1, 4)
                ),
            },
            unlock: format!("DELETE FROM {locks} WHERE {row} AND token = {}", p(3)),
            cleanup: format!("DELETE FROM {cache} WHERE expires IS NOT NULL AND expires <= {}", p(1)),
            cleanup_locks: format!("DELETE FROM {locks} WHERE expires <= {}", p(1)),
            migrate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_follow_the_dialect() {
        let pg = SessionSql::new(Dialect::Postgres, Some("web"), "s");
        assert_eq!(pg.migrate[0], "CREATE SCHEMA IF NOT EXISTS web");
        assert!(pg.touch.contains("$3") && pg.touch.contains("$4") && pg.touch.contains("web.s "), "{}", pg.touch);
        assert_eq!(pg.remove_entries(2), "DELETE FROM web.s_entries WHERE id = $1 AND name IN ($2, $3)");
        assert!(pg.upsert_entries(2).contains("($1, $2, $3), ($4, $5, $6) ON CONFLICT"));
        let my = SessionSql::new(Dialect::Mysql, Some("ignored"), "s");
        assert!(!my.migrate.iter().any(|m| m.contains("SCHEMA")));
        assert!(my.upsert_entries(2).contains("(?, ?, ?), (?, ?, ?) ON DUPLICATE KEY"));
        assert!(!my.touch.contains('$'));
        assert!(pg
            .lookup
            .contains("UNION ALL SELECT -1, -1, NULL, NULL, NULL, NULL, NULL FROM web.s_retired WHERE id = $3"));
        // Owner columns: binary (byte-exact) on MySQL and read back as text; the index
        // comes with the column there, in its own statement elsewhere.
        assert!(my.sessions_of.contains("CONVERT(s.principal USING utf8mb4)") && my.sessions_of.contains("AS SIGNED"));
        assert!(my.owner_columns[0].1[0]
            .ends_with("ADD COLUMN principal VARBINARY(512) NULL, ADD INDEX s_principal (principal)"));
        assert!(my.owner_indexes.is_empty());
        assert_eq!(pg.owner_indexes[0], "CREATE INDEX IF NOT EXISTS s_principal ON web.s (principal)");
        assert!(pg.scan.contains("WHERE s.id > $1") && pg.scan.ends_with("ORDER BY s.id LIMIT $3"));
        assert!(pg.touch_owned.contains("principal = $3, device = $4 WHERE id = $5"));
        assert!(pg.copy_session.ends_with("ON CONFLICT (id) DO NOTHING") && !my.copy_session.contains("CONFLICT"));
        assert!(my.retire.contains("ON DUPLICATE KEY UPDATE retired_until"));
        let lite = CacheSql::new(Dialect::Sqlite, None, "c");
        assert_eq!(lite.clear, "DELETE FROM c WHERE namespace = ?");
    }
}
