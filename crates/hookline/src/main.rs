//! The `hookline` binary: parses the command line and calls into the library.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use hookline::config::{RawConfig, Settings};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc with background purging gives memory freed after a burst back to the OS within
/// seconds; glibc's arenas kept it, so RSS stayed at the peak (README, Performance).
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "hookline",
    version,
    about = "Webhook subscriptions and signed delivery, Linq-compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (partner API, operator API and delivery workers, per --role).
    Serve {
        /// Optional TOML file with the same keys as the flags (snake_case).
        #[arg(long, env = "HOOKLINE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        raw: RawConfig,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, env = "HOOKLINE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        raw: RawConfig,
    },
    #[command(flatten)]
    Client(hookline::cli::ClientCommand),
    /// Print a shell completion script (e.g. `hookline completions bash > /etc/bash_completion.d/hookline`).
    Completions { shell: clap_complete::Shell },
}

fn settings(config: Option<PathBuf>, raw: RawConfig) -> anyhow::Result<Settings> {
    let raw = match config {
        Some(path) => raw.or(RawConfig::load_file(&path)?),
        None => raw,
    };
    Settings::from_raw(raw)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}

/// A CLI whose reader goes away (`hookline events types | head -1`) ends as `cat` does, killed
/// quietly by SIGPIPE, instead of panicking in `println!` (Rust ignores SIGPIPE, so a write to a
/// closed pipe is an error, and `println!` panics on errors). Not for `serve`: a server must
/// outlive a client that hangs up.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called before any thread is started; `signal` with `SIG_DFL` only sets the
    // disposition and runs no handler code of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Any other failed write of the CLI's output (`> /dev/full`) is `println!`'s panic: said in
/// one line with the CLI's exit code for a failure it did not cause (3), not a panic report.
fn output_failure_is_an_error() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") {
            eprintln!("Error: could not write the output: {message}");
            std::process::exit(3);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let from = variable_behind(&e);
        let _ = e.print();
        if let Some(var) = from {
            eprintln!("(that value comes from {var})");
        }
        std::process::exit(e.exit_code())
    });
    let done = match cli.command {
        Command::Client(cmd) => {
            quiet_on_closed_pipe();
            output_failure_is_an_error();
            return runtime(None).block_on(hookline::cli::run(cmd));
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            // Written whole, and a reader that closes early (`| head`) is not an error:
            // `generate` panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "hookline", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            return ExitCode::SUCCESS;
        }
        // The settings come first: they size the runtime the server runs on.
        Command::Serve { config, raw } => {
            settings(config, raw).and_then(|s| runtime(s.server.worker_threads).block_on(serve(s)))
        }
        Command::Migrate { config, raw } => {
            settings(config, raw).and_then(|s| runtime(None).block_on(migrate(s)))
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

/// The `HOOKLINE_*` variable that supplied the value a command-line error is about, when no flag
/// did: clap names only the flag (`'--role <ROLE>'`), and an operator who set the variable must
/// see which one is wrong.
fn variable_behind(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let flag = format!("--{long}");
    if std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
        return None;
    }
    let cli = Cli::command();
    let var = cli
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_string_lossy()
        .into_owned();
    std::env::var_os(&var).is_some().then_some(var)
}

/// The multi-threaded runtime, with `worker_threads` workers (one per CPU unless set).
fn runtime(worker_threads: Option<usize>) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// `HOOKLINE_*` variables set in the environment that no command reads (a typo such as
/// `HOOKLINE_DATA_DIR`, or a setting from another version): each would otherwise be ignored
/// without a word while the server runs on a default.
fn unknown_variables() -> Vec<String> {
    fn names(cmd: &clap::Command, into: &mut Vec<String>) {
        into.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_env())
                .map(|v| v.to_string_lossy().into_owned()),
        );
        cmd.get_subcommands().for_each(|c| names(c, into));
    }
    // Read outside clap: the CLI's profile file, and the test suite's and scripts' own.
    const OTHERS: [&str; 1] = ["HOOKLINE_CLI_CONFIG"];
    const TOOLING: [&str; 3] = ["HOOKLINE_TEST_", "HOOKLINE_FUZZ_", "HOOKLINE_SCHEMATHESIS_"];
    let mut known: Vec<String> = OTHERS.iter().map(|s| s.to_string()).collect();
    names(&Cli::command(), &mut known);
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("HOOKLINE_") && !known.contains(k))
        .filter(|k| !TOOLING.iter().any(|p| k.starts_with(p)))
        .collect();
    unknown.sort();
    unknown
}

fn warn_unknown_variables() {
    for name in unknown_variables() {
        tracing::warn!(
            variable = %name,
            "{name} is set but is not a hookline setting; it is ignored (hookline serve --help lists them)"
        );
    }
}

async fn serve(s: Settings) -> anyhow::Result<()> {
    hookline::logging::init(&s.log);
    warn_unknown_variables();
    match hookline::app::raise_open_file_limit() {
        Ok(limit) => tracing::debug!(?limit, "open-file limit raised to its hard limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
    let listener = tokio::net::TcpListener::bind(s.server.listen)
        .await
        .with_context(|| format!("binding {}", s.server.listen))?;
    hookline::serve(listener, s, shutdown_signal()).await
}

async fn migrate(s: Settings) -> anyhow::Result<()> {
    hookline::logging::init(&s.log);
    warn_unknown_variables();
    hookline::app::migrate(&s.store).await?;
    hookline::logging::write_stderr("migrations applied\n");
    Ok(())
}
