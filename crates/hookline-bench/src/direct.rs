//! The direct-post ceiling (`--baseline`): the benchmark's own publisher posting the same events
//! straight to its own receiver, in the same run. Machines of one kind differ by 3× from one
//! session to the next; hookline's rate as a ratio of this ceiling does not.

use crate::args::Args;
use crate::{log, per_second, publisher};
use anyhow::bail;
use std::net::SocketAddr;

/// Posts `--events` events, unpaced and one per request, with `--concurrency` workers, to the
/// receiver (which answers once it has recorded each one); hookline is stopped by then.
pub async fn ceiling(
    args: &Args,
    run_id: &str,
    receiver: SocketAddr,
    quiet: bool,
) -> anyhow::Result<f64> {
    log(quiet, "direct-post baseline: publisher → receiver");
    let outcome = publisher::run(publisher::Plan {
        base_url: format!("http://{receiver}"),
        admin_token: String::new(),
        partner_id: String::new(),
        run_id: format!("{run_id}-direct"),
        events: args.events,
        concurrency: args.concurrency,
        payload_bytes: args.payload_bytes,
        batch: 0,
        rate: 0.0,
        direct: true,
    })
    .await?;
    if outcome.failed > 0 {
        bail!("direct-post baseline: {} posts failed", outcome.failed);
    }
    let secs = (outcome.finished_us - outcome.started_us) as f64 / 1e6;
    Ok(per_second(outcome.accepted, secs))
}
