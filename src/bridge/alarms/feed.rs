//! The feed task: one StreamAlarms call kept open, its messages handed to the bridge task.

use tokio::sync::mpsc;

use crate::gateway::{AlarmFeedItem, Backoff, ClientOptions, GatewayClient, GatewayError};

/// What the feed task tells the bridge task.
pub(in crate::bridge) enum FeedMsg {
    /// The feed is (re)attached; a snapshot follows. The client serves AcknowledgeAlarm.
    Attached(GatewayClient),
    Item(AlarmFeedItem),
    /// The feed ended or could not attach; the task retries after a backoff.
    Lost(String),
}

/// Keeps a StreamAlarms call open until the receiver goes away.
pub(super) fn spawn_feed(
    opts: ClientOptions,
    prefix: String,
    mut backoff: Backoff,
    tx: mpsc::UnboundedSender<FeedMsg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let attached = async {
                let client = GatewayClient::connect(&opts).await?;
                let feed = client.stream_alarms(&prefix).await?;
                Ok::<_, GatewayError>((client, feed))
            }
            .await;
            let reason = match attached {
                Ok((client, mut feed)) => {
                    if tx.send(FeedMsg::Attached(client)).is_err() {
                        return;
                    }
                    loop {
                        match feed.next().await {
                            Some(Ok(item)) => {
                                // The backoff resets only once a whole snapshot came: a
                                // feed that attaches and then fails keeps backing off.
                                if matches!(item, AlarmFeedItem::SnapshotComplete { .. }) {
                                    backoff.reset();
                                }
                                if tx.send(FeedMsg::Item(item)).is_err() {
                                    return;
                                }
                            }
                            Some(Err(e)) => break format!("alarm feed failed: {e}"),
                            None => break "the gateway ended the alarm feed".to_string(),
                        }
                    }
                }
                Err(e) => format!("cannot attach the alarm feed: {e}"),
            };
            if tx.send(FeedMsg::Lost(reason)).is_err() {
                return;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    })
}
