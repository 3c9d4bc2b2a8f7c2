//! How long the console's stream page takes with 1,000 events on PostgreSQL (the target:
//! under 100 ms), beside a hand-written sqlx read of the same 1,000 rows in the same run.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p es-console --bench stream_page`
//!
//! Environment: `BENCH_ROUNDS` (default 50 requests per side, after 5 to warm up).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use es_console::{Console, ConsoleConfig, Role};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, Payload, StreamId,
};
use es_postgres::testing::FreshSchema;
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "bench-token-0123456789abcdefgh";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Rounds are few; the index is exact enough.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = percentile(&samples, 0.5);
    println!(
        "{label:<44} median {:>8.2} ms  p95 {:>8.2} ms  max {:>8.2} ms",
        median.as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3
    );
    median
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize =
        std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let fresh = FreshSchema::new().await;
    let store = fresh.default_tenant();
    let stream = StreamId::new("account-bench").unwrap();
    for chunk in 0..10 {
        let events = (0..100)
            .map(|i| {
                let n = chunk * 100 + i;
                EventData::new(
                    EventType::new("account.deposited").unwrap(),
                    Payload::from_value(&serde_json::json!({
                        "cents": n * 100, "currency": "EUR", "reference": format!("invoice-{n:06}"),
                        "note": "a deposit of a realistic size for a console page",
                    }))
                    .unwrap(),
                )
            })
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, events, AppendOptions::default())
            .await
            .unwrap();
    }
    let config = ConsoleConfig::new().token(TOKEN, Role::ReadOnly).unwrap();
    let app = Console::new(store.clone(), config).router();
    let page = || {
        Request::get("/streams/account-bench?limit=1000")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap()
    };
    let pool = fresh.store.pool().clone();
    let raw = || {
        let pool = pool.clone();
        async move {
            let rows: Vec<(i64, i64, String, String, Option<String>)> = sqlx::query_as(
                "SELECT stream_version, position, event_type, payload::text, metadata::text FROM events \
                 WHERE tenant = 'default' AND stream_id = 'account-bench' ORDER BY stream_version LIMIT 1000",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            rows.len()
        }
    };
    let mut page_bytes = 0;
    let (mut pages, mut raws) = (Vec::new(), Vec::new());
    for round in 0..rounds + 5 {
        // Alternate which side goes first, so neither always pays the other's warm-up.
        for side in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let start = Instant::now();
            if side == 0 {
                let response = app.clone().oneshot(page()).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                page_bytes = response.into_body().collect().await.unwrap().to_bytes().len();
                if round >= 5 {
                    pages.push(start.elapsed());
                }
            } else {
                assert_eq!(raw().await, 1_000);
                if round >= 5 {
                    raws.push(start.elapsed());
                }
            }
        }
    }
    println!(
        "stream page of 1,000 events on PostgreSQL, {rounds} rounds (page: {page_bytes} bytes)"
    );
    let page = report("console: GET /streams/{id}?limit=1000", pages);
    let raw = report("raw sqlx: SELECT the 1,000 rows", raws);
    println!(
        "page / raw read: {:.1}x; target: page under 100 ms ({})",
        page.as_secs_f64() / raw.as_secs_f64(),
        if page < Duration::from_millis(100) { "met" } else { "NOT met" }
    );
}
