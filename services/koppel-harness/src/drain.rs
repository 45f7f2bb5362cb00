//! Waiting until the deliverer has drained: every recipient's durable consumer has nothing
//! pending and nothing unacknowledged.

use std::time::Duration;

use anyhow::Context as _;
use koppel_nats::Topology;

use crate::polling::eventually;

/// Messages pending plus unacknowledged on `recipient`'s delivery consumer; `None` before the
/// deliverer created it.
pub async fn backlog(topology: &Topology, recipient: &str) -> anyhow::Result<Option<u64>> {
    let durable = topology.names.delivery_consumer(recipient)?;
    let stream = topology.events_stream().await?;
    let Ok(mut consumer) = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&durable)
        .await
    else {
        return Ok(None);
    };
    let info = consumer.info().await?;
    Ok(Some(
        info.num_pending + u64::try_from(info.num_ack_pending).unwrap_or(0),
    ))
}

/// Waits until every one of `recipients` has a consumer with an empty backlog, and returns how
/// long that took. A read error (NATS restarting, say) counts as "not yet" until `timeout`;
/// the timeout error names each recipient's last backlog.
pub async fn wait_until_drained(
    topology: &Topology,
    recipients: &[&str],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let drained = eventually("every recipient drained", timeout, || async {
        for recipient in recipients {
            if backlog(topology, recipient).await.ok().flatten() != Some(0) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await;
    match drained {
        Ok(took) => Ok(took),
        Err(error) => {
            let mut backlogs = Vec::new();
            for recipient in recipients {
                backlogs.push(format!(
                    "{recipient}: {:?}",
                    backlog(topology, recipient).await.ok().flatten()
                ));
            }
            Err(error)
                .with_context(|| format!("the recipients did not drain ({})", backlogs.join(", ")))
        }
    }
}
