//! The migration runner, the same on every backend: read the version applied last, refuse a
//! schema newer than this build, apply each later migration with its version in one
//! transaction. A backend supplies the two SQL steps (and, on PostgreSQL, the lock around them).
//!
//! Some migrations have a data step written in Rust ([`DataStep`]), run in the same
//! transaction after their SQL: work SQL cannot do the same way on both backends, or at all.

use hookline_core::TargetUrl;
use std::collections::HashSet;
use std::future::Future;

/// A backend's SQL for the runner.
pub(crate) trait MigrationSteps {
    /// Creates the version table if needed; the version applied last (0: none).
    fn current_version(&mut self) -> impl Future<Output = anyhow::Result<i64>>;
    /// Applies `sql`, then `data`, and records `version`, atomically.
    fn apply(
        &mut self,
        version: i64,
        sql: &str,
        data: Option<DataStep>,
    ) -> impl Future<Output = anyhow::Result<()>>;
}

/// A migration's data step, run by the backend inside the migration's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataStep {
    /// 0005: `subscriptions.target_url_key` of the rows written before it existed. The key is
    /// [`TargetUrl::uniqueness_key`]: host parsing, IDN to punycode and default ports are the
    /// `url` crate's, which no SQL of either backend reproduces; computing it with the function
    /// the API uses makes an old row's key byte for byte what a new insert would store.
    TargetUrlKeys,
}

/// The data step following `version`'s SQL.
fn data_step(version: i64) -> Option<DataStep> {
    (version == 5).then_some(DataStep::TargetUrlKeys)
}

/// A stored subscription as the [`DataStep::TargetUrlKeys`] backfill reads it.
pub(crate) struct UrlRow {
    pub id: String,
    pub partner_id: String,
    pub target_url: String,
    pub live: bool,
}

/// Each row's `target_url_key`, for `rows` oldest first. Live rows of one partner that the old
/// raw-string rule let in but that share a key: the oldest keeps the key and the others get
/// none (NULL is outside the unique index), with a warning naming them. Deleting a partner's
/// subscription or refusing to start would be worse; they keep working, and a later change of
/// their `target_url` is checked like any other. A stored URL that no longer parses keys on its
/// raw text, the old rule.
pub(crate) fn target_url_keys(rows: &[UrlRow]) -> Vec<Option<String>> {
    let mut taken: HashSet<(&str, String)> = HashSet::new();
    rows.iter()
        .map(|row| {
            let key = TargetUrl::from_stored(&row.target_url)
                .map(|u| u.uniqueness_key().to_owned())
                .unwrap_or_else(|_| row.target_url.clone());
            if !row.live || taken.insert((row.partner_id.as_str(), key.clone())) {
                return Some(key);
            }
            tracing::warn!(
                subscription_id = %row.id,
                "subscription shares its target_url with an older one of its partner; it keeps working, outside the uniqueness check"
            );
            None
        })
        .collect()
}

/// Applies the `migrations` (`(version, sql)`, versions counting up from 1) not applied yet.
pub(crate) async fn run<S: MigrationSteps>(
    steps: &mut S,
    migrations: &[(i64, &str)],
    backend: &str,
) -> anyhow::Result<()> {
    let current = steps.current_version().await?;
    let known = migrations.last().map(|m| m.0).unwrap_or(0);
    anyhow::ensure!(
        current <= known,
        "the database schema is version {current}, newer than this hookline understands ({known}); upgrade hookline"
    );
    for (version, sql) in migrations.iter().filter(|m| m.0 > current) {
        steps.apply(*version, sql, data_step(*version)).await?;
        tracing::info!(version, "applied {backend} migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{target_url_keys, UrlRow};
    use std::path::Path;

    #[test]
    fn old_rows_get_the_key_a_new_insert_would_and_later_duplicates_get_none() {
        let row = |id: &str, partner: &str, url: &str, live: bool| UrlRow {
            id: id.into(),
            partner_id: partner.into(),
            target_url: url.into(),
            live,
        };
        let rows = [
            row("a", "p", "HTTPS://Example.COM:443/x", true),
            row("b", "p", "https://example.com/x", true),
            row("c", "q", "https://example.com/x", true),
            row("d", "p", "https://example.com/x", false),
            row("e", "p", "https://bücher.example/y", true),
            row("f", "p", "not a url", true),
        ];
        let key = Some("https://example.com/x".to_owned());
        assert_eq!(
            target_url_keys(&rows),
            [
                key.clone(),
                None,
                key.clone(),
                key,
                Some("https://xn--bcher-kva.example/y".into()),
                Some("not a url".into()),
            ]
        );
    }

    /// Every migration file is embedded and applied, in order, on both backends: a file added to
    /// `migrations/` but not listed would silently never run.
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (backend, listed) in [
            ("sqlite", super::super::sqlite::MIGRATIONS),
            ("postgres", super::super::postgres::MIGRATIONS),
        ] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            assert_eq!(files.len(), listed.len(), "{backend}: {files:?}");
            let mut previous = 0;
            for ((version, sql), file) in listed.iter().zip(&files) {
                // Numbers are handed out to parallel branches ahead of time, so one may land
                // before a lower one: versions only have to count up.
                assert!(*version > previous, "{backend}: versions count up");
                previous = *version;
                let name = file.file_name().unwrap().to_string_lossy();
                assert!(
                    name.starts_with(&format!("{version:04}_")),
                    "{backend}: {name}"
                );
                assert_eq!(
                    *sql,
                    std::fs::read_to_string(file).unwrap(),
                    "{backend}: {name}"
                );
            }
        }
    }
}
