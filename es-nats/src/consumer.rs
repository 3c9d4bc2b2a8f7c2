//! The consumer side: a durable JetStream consumer whose handler applies each message once, in
//! the same transaction as the inbox record of it.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use es_core::ProjectionName;
use es_core::inbox::{Delivery, Inbox, ParkedDelivery};
use es_core::outbox::Headers;
use futures_util::StreamExt;

use crate::NatsError;

/// A message handler's refusal: the message is retried (with backoff) and, after
/// [`ConsumerConfig::max_deliveries`] attempts, parked in the inbox.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl HandlerError {
    /// A refusal with a reason.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None }
    }

    /// A refusal caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { message: message.into(), source: Some(source.into()) }
    }
}

/// Applies one message inside the inbox's transaction `T` (for es-postgres, a PostgreSQL
/// transaction: write the effect through `&mut **tx`).
pub trait MessageHandler<T>: Send + 'static {
    /// Applies `message`; an error rolls the transaction back.
    fn handle(
        &mut self,
        tx: &mut T,
        message: &Delivery,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// The durable consumer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// The JetStream stream to read.
    pub stream: String,
    /// The durable consumer's name (kept by the server: a restarted service goes on where it
    /// stopped), also the name its inbox records go under.
    pub name: ProjectionName,
    /// Only messages of these subjects (all when empty).
    pub filter_subjects: Vec<String>,
    /// Deliveries of one message before it is parked (default 5).
    pub max_deliveries: u64,
    /// How long the server waits for an acknowledgement before delivering again (default 30 s).
    pub ack_wait: Duration,
    /// The delay before a failed message is delivered again: this, times the deliveries so far
    /// (default 1 s).
    pub retry_delay: Duration,
}

impl ConsumerConfig {
    /// A consumer `name` of stream `stream`, every subject.
    pub fn new(stream: impl Into<String>, name: ProjectionName) -> Self {
        Self {
            stream: stream.into(),
            name,
            filter_subjects: Vec::new(),
            max_deliveries: 5,
            ack_wait: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
        }
    }

    /// Only these subjects.
    #[must_use]
    pub fn filter_subjects<S: Into<String>>(
        mut self,
        subjects: impl IntoIterator<Item = S>,
    ) -> Self {
        self.filter_subjects = subjects.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the deliveries before parking (at least 1).
    #[must_use]
    pub fn max_deliveries(mut self, deliveries: u64) -> Self {
        self.max_deliveries = deliveries.max(1);
        self
    }

    /// Sets the acknowledgement wait.
    #[must_use]
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// Sets the retry delay.
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }
}

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The handler applied it (and the inbox recorded it), then it was acknowledged.
    Applied,
    /// It was applied before (a redelivery): acknowledged, nothing done.
    Duplicate,
    /// The handler failed: rolled back, to be delivered again.
    Retried,
    /// The handler failed for the last time: parked in the inbox, and not delivered again.
    Parked,
}

/// Reads a durable JetStream consumer and applies each message once through an [`Inbox`]:
/// record the message and apply its effect in one transaction, commit, then acknowledge. A
/// consumer killed before the acknowledgement gets the message again, finds it recorded, and
/// only acknowledges; one killed before the commit applied nothing and applies it then. A
/// handler that fails rolls back and the message comes again after a delay; after
/// `max_deliveries` it is parked in the inbox (`Inbox::parked`) and terminated on the server,
/// so it stops blocking the consumer — like the projection runner's dead letters.
pub struct InboxConsumer<I: Inbox, H> {
    inbox: I,
    handler: H,
    config: ConsumerConfig,
    consumer: jetstream::consumer::Consumer<pull::Config>,
}

impl<I: Inbox, H: MessageHandler<I::Transaction>> InboxConsumer<I, H> {
    /// Creates (or opens) the durable consumer on `client`'s JetStream.
    pub async fn new(
        client: async_nats::Client,
        config: ConsumerConfig,
        inbox: I,
        handler: H,
    ) -> Result<Self, NatsError> {
        let context = jetstream::new(client);
        let stream_error = |source: Box<dyn std::error::Error + Send + Sync>| NatsError::Stream {
            stream: config.stream.clone(),
            source,
        };
        let stream = context
            .get_stream(&config.stream)
            .await
            .map_err(|error| stream_error(Box::new(error)))?;
        let consumer = stream
            .get_or_create_consumer(
                config.name.as_str(),
                pull::Config {
                    durable_name: Some(config.name.as_str().to_owned()),
                    filter_subjects: config.filter_subjects.clone(),
                    ack_wait: config.ack_wait,
                    max_deliver: i64::try_from(config.max_deliveries)
                        .unwrap_or(i64::MAX)
                        .saturating_add(1),
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|error| stream_error(Box::new(error)))?;
        Ok(Self { inbox, handler, config, consumer })
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Applies messages until `shutdown` completes. Errors of the inbox or the server are
    /// logged and retried after a pause; the messages concerned come again.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let messages = tokio::select! {
                biased;
                () = &mut shutdown => return,
                messages = self.consumer.messages() => messages,
            };
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, consumer = %self.config.name, "es.nats: cannot read the consumer; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        if let Err(error) = self.apply(&message).await {
                            tracing::warn!(%error, consumer = %self.config.name, "es.nats: message not settled; it comes again");
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, consumer = %self.config.name, "es.nats: reading messages failed; reconnecting");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// Applies one message (see the type's documentation) and settles it on the server.
    pub async fn apply(
        &mut self,
        message: &jetstream::Message,
    ) -> Result<Applied, Box<dyn std::error::Error + Send + Sync>> {
        let delivery = delivery(message)?;
        let span = tracing::info_span!("es.nats.consume", consumer = %self.config.name, message = %delivery.message_id, deliveries = delivery.deliveries);
        let _entered = span.enter();
        let Some(mut tx) = self.inbox.begin(&self.config.name, &delivery.message_id).await? else {
            message.ack().await?;
            return Ok(Applied::Duplicate);
        };
        match self.handler.handle(&mut tx, &delivery).await {
            Ok(()) => {
                self.inbox.commit(tx).await?;
                message.ack().await?;
                Ok(Applied::Applied)
            }
            Err(error) => {
                drop(tx);
                if delivery.deliveries >= self.config.max_deliveries {
                    tracing::warn!(%error, "es.nats: message parked after its last delivery");
                    self.inbox
                        .park(ParkedDelivery {
                            consumer: self.config.name.clone(),
                            delivery,
                            error: error.to_string(),
                            parked_at: chrono::Utc::now(),
                        })
                        .await?;
                    message.ack_with(AckKind::Term).await?;
                    Ok(Applied::Parked)
                } else {
                    let factor = u32::try_from(delivery.deliveries).unwrap_or(u32::MAX);
                    let delay = self.config.retry_delay.saturating_mul(factor);
                    tracing::debug!(%error, ?delay, "es.nats: handler failed; delivered again later");
                    message.ack_with(AckKind::Nak(Some(delay))).await?;
                    Ok(Applied::Retried)
                }
            }
        }
    }
}

/// The message as the handler sees it; its id is `Nats-Msg-Id` (the publisher's event id), or
/// the stream sequence when a publisher set none.
fn delivery(
    message: &jetstream::Message,
) -> Result<Delivery, Box<dyn std::error::Error + Send + Sync>> {
    let info = message.info()?;
    let mut headers = Headers::new();
    let mut message_id = None;
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            for value in values {
                if name == "Nats-Msg-Id" {
                    message_id = Some(value.as_str().to_owned());
                }
                // A header es could not have written is kept out rather than refused.
                let _ = headers.insert(name, value.as_str());
            }
        }
    }
    Ok(Delivery {
        message_id: message_id
            .unwrap_or_else(|| format!("{}:{}", info.stream, info.stream_sequence)),
        subject: message.subject.as_str().to_owned(),
        payload: message.payload.clone(),
        headers,
        deliveries: u64::try_from(info.delivered).unwrap_or(1),
    })
}
