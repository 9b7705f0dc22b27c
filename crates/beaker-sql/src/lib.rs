//! SQLite, PostgreSQL and MySQL session stores and cache backends for beaker-rs, on sqlx. (work in progress)
