//! The migration runner, the same on every backend: read the version applied last, refuse a
//! schema newer than this build, apply each later migration with its version in one
//! transaction. A backend supplies the two SQL steps (and, on PostgreSQL, the lock around them).

use std::future::Future;

/// A backend's SQL for the runner.
pub(crate) trait MigrationSteps {
    /// Creates the version table if needed; the version applied last (0: none).
    fn current_version(&mut self) -> impl Future<Output = anyhow::Result<i64>>;
    /// Applies `sql` and records `version`, atomically.
    fn apply(&mut self, version: i64, sql: &str) -> impl Future<Output = anyhow::Result<()>>;
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
        steps.apply(*version, sql).await?;
        tracing::info!(version, "applied {backend} migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
            for (n, ((version, sql), file)) in listed.iter().zip(&files).enumerate() {
                assert_eq!(
                    *version,
                    n as i64 + 1,
                    "{backend}: versions count up from 1"
                );
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
