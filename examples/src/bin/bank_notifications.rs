//! A downstream service of the bank: consumes its public messages from NATS JetStream (a
//! durable consumer) and records each as a notification in its own PostgreSQL schema, once.
//!
//! ```text
//! DATABASE_URL=postgres://… cargo run -p examples --bin bank-notifications
//! ```
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use clap::Parser;
use es::ProjectionName;
use es::nats::{ConsumerConfig, InboxConsumer, JetStreamSink, StreamConfig};
use es::postgres::{PgStore, PgStoreOptions};
use examples::bank::notifications::Notifications;

#[derive(Parser)]
#[command(
    name = "bank-notifications",
    version,
    about = "Consumes the bank's public messages, each once"
)]
struct Cli {
    /// The consumer's own PostgreSQL (its inbox and its notifications).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The schema of its tables.
    #[arg(long, env = "NOTIFICATIONS_SCHEMA", default_value = "bank_notifications")]
    schema: String,
    /// The NATS server.
    #[arg(long, env = "BANK_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The stream the bank publishes to.
    #[arg(long, env = "BANK_NATS_STREAM", default_value = "BANK")]
    nats_stream: String,
    /// The subjects the bank publishes (created with the stream if it does not exist yet).
    #[arg(long, env = "BANK_SUBJECT_PREFIX", default_value = "bank")]
    subject_prefix: String,
    /// The durable consumer's name (also its inbox's).
    #[arg(long, default_value = "notifications")]
    consumer: String,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bank-notifications: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let store =
        PgStore::connect_with(PgStoreOptions::new(&cli.database_url).schema(&cli.schema)?).await?;
    store.migrate().await?;
    Notifications::create_table(store.pool()).await?;
    // The stream exists once the bank ran; make sure it does (same settings) so the consumer
    // can start first.
    JetStreamSink::connect(
        &cli.nats_url,
        StreamConfig::new(&cli.nats_stream, [format!("{}.>", cli.subject_prefix)]),
    )
    .await?;
    let client = async_nats_client(&cli.nats_url).await?;
    let name = ProjectionName::new(&cli.consumer)?;
    let consumer = InboxConsumer::new(
        client,
        ConsumerConfig::new(&cli.nats_stream, name),
        store,
        Notifications,
    )
    .await?;
    println!("consuming stream {} as {}", cli.nats_stream, cli.consumer);
    consumer
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    println!("stopped");
    Ok(())
}

async fn async_nats_client(url: &str) -> Result<es::nats::async_nats::Client, Failure> {
    Ok(es::nats::async_nats::connect(url).await?)
}
