//! Sees every publish on the event subjects through a core NATS subscription, including
//! repeats that JetStream's duplicate window drops before they reach the stream: the figure
//! "duplicates absorbed at publish" and the trigger for "kill right after it published".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::watch;

/// Counts of what the observer saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObservedPublishes {
    /// Every message, repeats included.
    pub messages: u64,
    /// Distinct `Nats-Msg-Id`s.
    pub distinct_ids: u64,
}

impl ObservedPublishes {
    /// Publishes of an id seen before: re-sent by a restarted extractor or a publish retry.
    pub fn repeats(&self) -> u64 {
        self.messages.saturating_sub(self.distinct_ids)
    }
}

/// A running observer; stops when dropped.
#[derive(Debug)]
pub struct PublishObserver {
    ids: Arc<Mutex<HashMap<String, u32>>>,
    messages: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl PublishObserver {
    /// Subscribes to `subject` (the events wildcard) on `client` and waits until the server
    /// has the subscription, so no publish after this returns is missed.
    pub async fn start(client: async_nats::Client, subject: String) -> anyhow::Result<Self> {
        let mut subscriber = client.subscribe(subject).await?;
        client.flush().await?;
        let ids: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let (sender, messages) = watch::channel(0u64);
        let seen = Arc::clone(&ids);
        let task = tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(message) = subscriber.next().await {
                let id = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get("Nats-Msg-Id"))
                    .map(|value| value.as_str().to_owned())
                    .unwrap_or_default();
                *seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(id)
                    .or_insert(0) += 1;
                count += 1;
                sender.send_replace(count);
            }
        });
        Ok(PublishObserver {
            ids,
            messages,
            task,
        })
    }

    pub fn counts(&self) -> ObservedPublishes {
        let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ObservedPublishes {
            messages: ids.values().map(|count| u64::from(*count)).sum(),
            distinct_ids: ids.len() as u64,
        }
    }

    /// Event ids published more than once.
    pub fn repeated_ids(&self) -> std::collections::BTreeSet<String> {
        let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.iter()
            .filter(|(_, count)| **count > 1)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Messages seen so far.
    pub fn messages(&self) -> u64 {
        *self.messages.borrow()
    }

    /// Waits until more than `seen` messages were observed; returns the new count. Wakes on
    /// the message itself (a watch channel), not on a polling interval, so a caller can act
    /// within a moment of a publish.
    pub async fn wait_for_more_than(&self, seen: u64, timeout: Duration) -> anyhow::Result<u64> {
        let mut receiver = self.messages.clone();
        let waited = tokio::time::timeout(timeout, receiver.wait_for(|count| *count > seen)).await;
        match waited {
            Ok(Ok(count)) => Ok(*count),
            Ok(Err(_)) => anyhow::bail!("the publish observer stopped"),
            Err(_) => anyhow::bail!(
                "no publish observed within {} s (seen {seen})",
                timeout.as_secs()
            ),
        }
    }
}

impl Drop for PublishObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
