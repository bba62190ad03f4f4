//! The writer thread: the only writing connection, running one job at a time.
//!
//! Most jobs are a whole transaction of their own ([`Job::Alone`]). The hot ones — a publish
//! group, a batch of outcomes, a claim — are [`Job::Shared`]: the shared jobs queued when the
//! writer gets to them run in one transaction and are all answered after its one `COMMIT`.
//! Each commit with `synchronous=FULL` costs an fsync and rewrites the touched index pages into
//! the WAL; in the profiles the commit phase was a fifth to a third of the server's CPU, and the
//! fsyncs in series bounded the delivery rate. A caller is still answered only once its writes
//! are on disk. The first job runs without a savepoint (if it fails, the transaction holds
//! nothing else and is rolled back); each later one runs in a savepoint, so that its failure
//! undoes only its own writes. Savepoints are not free (SQLite copies each page a job first
//! touches into a sub-journal), which is why the first job, the largest share of a batch's
//! pages, goes without. A [`Job::Shared`] marked deferrable (outcomes, whose delay costs no one
//! latency) waits up to [`DEFER`] for a job to share its commit with.

use rusqlite::Connection;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::store::{StoreError, StoreResult};

/// Called once the transaction holding a shared job's writes has committed (or failed).
pub(super) type Reply = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// A shared job: given the connection inside a transaction and a savepoint the writer opened
/// (it must not begin or commit), or the reason it cannot run; says whether it succeeded, and
/// how to answer its caller.
pub(super) type SharedRun =
    Box<dyn FnOnce(Result<&Connection, StoreError>) -> (bool, Reply) + Send>;

pub(super) enum Job {
    /// Runs on the connection as it is, outside any transaction; opens its own if it needs one.
    Alone(Box<dyn FnOnce(&mut Connection) + Send>),
    Shared {
        run: SharedRun,
        deferrable: bool,
    },
}

/// The writer gives its page cache back after this long without a job.
const IDLE_RELEASE: Duration = Duration::from_secs(2);
/// Longest a deferrable job waits for company before it is committed alone.
const DEFER: Duration = Duration::from_millis(10);
/// Most jobs in one shared transaction (a publish group is itself up to 2,000 events).
const MAX_SHARED: usize = 16;

/// Runs each job in turn until every sender (the store) is gone, and gives the page cache back
/// once no job has written anything for [`IDLE_RELEASE`]. Jobs that change no row (the
/// dispatcher's claim poll, every second while nothing is due) don't count: they would keep the
/// cache of a burst forever.
pub(super) fn run(conn: &mut Connection, inbox: &Receiver<Job>) {
    // When the last job that changed rows ended, while the cache holds what it touched.
    let mut last_write: Option<Instant> = None;
    let mut held: Option<Job> = None;
    loop {
        let changes = conn.total_changes();
        let next = match (held.take(), last_write) {
            (Some(job), _) => Ok(job),
            (None, Some(at)) => inbox.recv_timeout(IDLE_RELEASE.saturating_sub(at.elapsed())),
            (None, None) => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(Job::Alone(job)) => guarded(|| job(conn)),
            Ok(shared) => {
                let (batch, after) = gather(shared, inbox);
                held = after;
                run_shared(conn, batch);
            }
            Err(RecvTimeoutError::Timeout) => {
                release_memory(conn);
                last_write = None;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if conn.total_changes() != changes {
            last_write = Some(Instant::now());
        }
    }
}

/// The shared jobs queued behind `first`, the eager ones first (the first job runs without a
/// savepoint, and deferrable jobs are the small ones), and the job that ended the run if it is
/// not shared. While every job gathered is deferrable, waits up to [`DEFER`] for another.
fn gather(first: Job, inbox: &Receiver<Job>) -> (Vec<SharedRun>, Option<Job>) {
    let (mut eager, mut deferred) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEFER;
    let mut next = Some(first);
    let mut held = None;
    while let Some(job) = next.take() {
        match job {
            Job::Shared {
                run,
                deferrable: false,
            } => eager.push(run),
            Job::Shared {
                run,
                deferrable: true,
            } => deferred.push(run),
            alone => {
                held = Some(alone);
                break;
            }
        }
        if eager.len() + deferred.len() >= MAX_SHARED {
            break;
        }
        next = match inbox.try_recv() {
            Ok(job) => Some(job),
            Err(mpsc::TryRecvError::Empty) if eager.is_empty() => {
                let left = deadline.saturating_duration_since(Instant::now());
                inbox.recv_timeout(left).ok()
            }
            Err(_) => None,
        };
    }
    eager.append(&mut deferred);
    (eager, held)
}

/// Runs `batch` in as few transactions as it takes (one, unless a job fails alone or SQLite
/// rolls a transaction back), answering each job after the commit that holds its writes.
fn run_shared(conn: &mut Connection, batch: Vec<SharedRun>) {
    let mut jobs = batch.into_iter();
    while jobs.len() > 0 {
        run_transaction(conn, &mut jobs);
    }
}

/// One transaction: the first job of `jobs` without a savepoint, then each next one in its own,
/// then the commit and the answers. Returns early, leaving the rest in `jobs`, when the first
/// job fails or SQLite rolls the transaction back.
fn run_transaction(conn: &mut Connection, jobs: &mut std::vec::IntoIter<SharedRun>) {
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        let e = StoreError::from(e);
        jobs.for_each(|run| answer_unrun(run, &e));
        return;
    }
    let Some(first) = jobs.next() else { return };
    let mut replies: Vec<Reply> = Vec::with_capacity(jobs.len() + 1);
    // Alone in the transaction: its failure rolls the whole of it back.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| first(Ok(conn)))) {
        Ok((true, reply)) => replies.push(reply),
        failed => {
            if !conn.is_autocommit() {
                let _ = control(conn, "ROLLBACK");
            }
            match failed {
                Ok((_, reply)) => reply(Ok(())), // its own error
                Err(_) => {
                    tracing::error!("a SQLite write job panicked; its writes were rolled back")
                }
            }
            return;
        }
    }
    for run in jobs.by_ref() {
        replies.extend(run_in_savepoint(conn, run));
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (disk full, I/O error): what the jobs so
            // far wrote is gone; they fail, and the rest start afresh.
            let lost = StoreError::Unavailable("the shared transaction was rolled back".into());
            replies
                .into_iter()
                .for_each(|reply| reply(Err(lost.share())));
            return;
        }
    }
    let committed = control(conn, "COMMIT").map_err(StoreError::from);
    if committed.is_err() && !conn.is_autocommit() {
        let _ = control(conn, "ROLLBACK");
    }
    for reply in replies {
        reply(match &committed {
            Ok(()) => Ok(()),
            Err(e) => Err(e.share()),
        });
    }
}

/// Runs one shared job in a savepoint: released if the job succeeded, rolled back if it failed
/// or panicked. `None` when it panicked (its caller sees the reply channel dropped).
fn run_in_savepoint(conn: &Connection, run: SharedRun) -> Option<Reply> {
    if let Err(e) = control(conn, "SAVEPOINT job") {
        answer_unrun(run, &StoreError::from(e));
        return None;
    }
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(Ok(conn))));
    let ok = matches!(ran, Ok((true, _)));
    if !conn.is_autocommit() {
        let undone = match ok {
            true => Ok(()),
            false => control(conn, "ROLLBACK TO job"),
        };
        if let Err(e) = undone.and_then(|()| control(conn, "RELEASE job")) {
            tracing::error!(error = %e, "ending a SQLite savepoint failed");
        }
    }
    match ran {
        Ok((_, reply)) => Some(reply),
        Err(_) => {
            tracing::error!("a SQLite write job panicked; its writes were rolled back");
            None
        }
    }
}

/// A transaction-control statement, prepared once: several run per commit, and parsing each
/// anew was about 1 % of the server's CPU at a steady 500 events/s.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// A shared job that could not start: its caller is answered with `e`.
fn answer_unrun(run: SharedRun, e: &StoreError) {
    let (_, reply) = run(Err(e.share()));
    reply(Ok(()));
}

/// A panicking job fails its own caller (its reply channel is dropped) and must not take the
/// writer down with it.
fn guarded(job: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        tracing::error!("a SQLite write job panicked; its transaction was rolled back");
    }
}

/// Drops the writer's page cache (refilled from the OS page cache on the next job). Without it
/// a burst leaves the process at its peak size for good: SQLite keeps every page it cached.
fn release_memory(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA shrink_memory") {
        tracing::debug!(error = %e, "PRAGMA shrink_memory failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A shared job inserting `value`, then failing when `fail`; its answer lands in `answers`.
    fn insert(value: i64, fail: bool, answers: &Arc<Mutex<Vec<(i64, bool)>>>) -> SharedRun {
        let answers = answers.clone();
        Box::new(move |conn| {
            let ran = conn.and_then(|c| {
                c.execute("INSERT INTO t (v) VALUES (?1)", [value])?;
                Ok(!fail)
            });
            let ok = matches!(ran, Ok(true));
            let reply: Reply = Box::new(move |committed| {
                answers
                    .lock()
                    .unwrap()
                    .push((value, ok && committed.is_ok()));
            });
            (ok, reply)
        })
    }

    fn stored(conn: &Connection) -> Vec<i64> {
        let mut q = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let rows = q.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_failing_job_undoes_only_its_own_writes() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let batch = vec![
            insert(1, false, &answers),
            insert(2, true, &answers),
            insert(3, false, &answers),
        ];
        run_shared(&mut conn, batch);
        assert_eq!(stored(&conn), [1, 3]);
        assert_eq!(*answers.lock().unwrap(), [(1, true), (2, false), (3, true)]);
        assert!(conn.is_autocommit(), "the transaction ended");
    }

    #[test]
    fn a_failing_first_job_rolls_back_alone_and_the_rest_commit() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let batch = vec![insert(1, true, &answers), insert(2, false, &answers)];
        run_shared(&mut conn, batch);
        assert_eq!(stored(&conn), [2]);
        assert_eq!(*answers.lock().unwrap(), [(1, false), (2, true)]);
    }
}
