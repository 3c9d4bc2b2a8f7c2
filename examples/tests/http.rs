//! End-to-end tests of the bank service over HTTP, one body per scenario, run on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use es::{MultiTenantStore, TenantId};
use examples::bank::{Bank, BankStore, http};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running service on a loopback port.
struct Service {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Service {
    async fn start<S: BankStore>(store: S) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let _ = http::prometheus();
        let bank = Bank::start(store).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            http::serve(bank, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { base, client, stop: Some(stop), task: Some(task) }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body), None).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    async fn raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &'static str,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn open(&self, id: &str, cents: i64) -> u64 {
        let (status, opened) =
            self.post("/accounts", json!({ "id": id, "owner": format!("Owner of {id}") })).await;
        assert_eq!(status, StatusCode::CREATED, "{opened}");
        if cents == 0 {
            return opened["position"].as_u64().unwrap();
        }
        let (status, deposited) =
            self.post(&format!("/accounts/{id}/deposits"), json!({ "cents": cents })).await;
        assert_eq!(status, StatusCode::OK, "{deposited}");
        deposited["position"].as_u64().unwrap()
    }

    async fn head(&self) -> u64 {
        let (_, projections) = self.get("/admin/projections").await;
        projections["projections"][0]["head"].as_u64().unwrap()
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("not a JSON error body: {body}"))
}

// ---------------------------------------------------------------- scenarios

async fn an_account_lives_its_life<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    service.open("alice", 10_000).await;
    let (status, again) =
        service.post("/accounts", json!({ "id": "alice", "owner": "Alice" })).await;
    assert_eq!((status, code(&again)), (StatusCode::CONFLICT, "account_exists"));

    let (status, refused) =
        service.post("/accounts/alice/withdrawals", json!({ "cents": 10_001 })).await;
    assert_eq!((status, code(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds"));
    let (status, withdrawn) =
        service.post("/accounts/alice/withdrawals", json!({ "cents": 2_500 })).await;
    assert_eq!(status, StatusCode::OK, "{withdrawn}");
    assert_eq!(withdrawn["version"], 3, "the refused withdrawal appended nothing");

    let after = withdrawn["position"].as_u64().unwrap();
    let (status, account) = service.get(&format!("/accounts/alice?after={after}")).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(
        (account["balance"].as_i64(), account["status"].as_str()),
        (Some(7_500), Some("open"))
    );
    let (_, statement) = service.get(&format!("/accounts/alice/statement?after={after}")).await;
    let lines: Vec<(String, i64)> = statement["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| (line["kind"].as_str().unwrap().to_owned(), line["balance"].as_i64().unwrap()))
        .collect();
    assert_eq!(lines, [("deposit".to_owned(), 10_000), ("withdrawal".to_owned(), 7_500)]);

    let (status, not_empty) = service.post("/accounts/alice/close", json!({})).await;
    assert_eq!((status, code(&not_empty)), (StatusCode::CONFLICT, "account_not_empty"));
    service.post("/accounts/alice/withdrawals", json!({ "cents": 7_500 })).await;
    let (status, closed) = service.post("/accounts/alice/close", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let (status, refused) = service.post("/accounts/alice/deposits", json!({ "cents": 1 })).await;
    assert_eq!((status, code(&refused)), (StatusCode::CONFLICT, "account_closed"));
    let after = closed["position"].as_u64().unwrap();
    let (_, account) = service.get(&format!("/accounts/alice?after={after}")).await;
    assert_eq!(account["status"], "closed");
    let (status, missing) = service.get("/accounts/nobody").await;
    assert_eq!((status, code(&missing)), (StatusCode::NOT_FOUND, "not_found"));
    service.stop().await;
}

async fn bad_requests_get_json_errors_and_change_nothing<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    service.open("bob", 500).await;
    let head = service.head().await;
    let cases: Vec<(StatusCode, Value)> = vec![
        service.raw("/accounts/bob/deposits", Some("application/json"), "{not json").await,
        service.raw("/accounts/bob/deposits", None, r#"{"cents": 5}"#).await,
        service.post("/accounts/bob/deposits", json!({ "cents": 5, "extra": true })).await,
        service.post("/accounts/bob/deposits", json!({ "cents": "five" })).await,
        service.post("/accounts/bob/deposits", json!({ "cents": -5 })).await,
        service.post("/accounts/bob/deposits", json!({ "cents": 0 })).await,
        service.post("/accounts/bad%20id/deposits", json!({ "cents": 5 })).await,
        service.post("/accounts", json!({ "id": "x".repeat(65), "owner": "X" })).await,
        service.post("/accounts", json!({ "id": "carol", "owner": "   " })).await,
        service.post("/transfers", json!({ "from": "bob", "to": "bob", "cents": 5 })).await,
        service.post("/transfers", json!({ "from": "bob", "to": "nobody", "cents": 5 })).await,
        service.get("/accounts/bob?after=minus-one").await,
        service.get("/accounts/bob/statement?limit=0").await,
        service.get("/no/such/route").await,
    ];
    let statuses: Vec<u16> = cases.iter().map(|(status, _)| status.as_u16()).collect();
    assert_eq!(statuses, [400, 415, 422, 422, 400, 400, 400, 400, 400, 400, 404, 400, 400, 404]);
    for (_, body) in &cases {
        assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "{body}");
    }
    assert_eq!(service.head().await, head, "no bad request appended anything");
    service.stop().await;
}

async fn a_retried_request_applies_once<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    service.open("dan", 0).await;
    let deposit = || {
        service.send(
            reqwest::Method::POST,
            "/accounts/dan/deposits",
            Some(json!({ "cents": 700 })),
            Some("req-1"),
        )
    };
    let (first_status, first) = deposit().await;
    let (again_status, again) = deposit().await;
    assert_eq!((first_status, again_status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        (first["replayed"].as_bool(), again["replayed"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(first["position"], again["position"]);
    let (status, misuse) = service
        .send(
            reqwest::Method::POST,
            "/accounts/dan/withdrawals",
            Some(json!({ "cents": 1 })),
            Some("req-1"),
        )
        .await;
    assert_eq!((status, code(&misuse)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let (status, misuse) = service
        .send(
            reqwest::Method::POST,
            "/accounts/dan/deposits",
            Some(json!({ "cents": 701 })),
            Some("req-1"),
        )
        .await;
    assert_eq!((status, code(&misuse)), (StatusCode::BAD_REQUEST, "invalid_request"));
    service.open("eve", 0).await;
    let (status, misuse) = service
        .send(
            reqwest::Method::POST,
            "/accounts/eve/deposits",
            Some(json!({ "cents": 700 })),
            Some("req-1"),
        )
        .await;
    assert_eq!((status, code(&misuse)), (StatusCode::BAD_REQUEST, "invalid_request"));
    let after = first["position"].as_u64().unwrap();
    let (_, account) = service.get(&format!("/accounts/dan?after={after}")).await;
    assert_eq!(account["balance"], 700);
    service.stop().await;
}

/// Many clients transfer at once between a few accounts, with refusals and compensations:
/// every transfer ends, no balance goes negative, and the money sums to what it was.
async fn concurrent_transfers_keep_the_money<S: BankStore>(store: S) {
    const ACCOUNTS: usize = 12;
    let service = std::sync::Arc::new(Service::start(store).await);
    for index in 0..ACCOUNTS {
        service.open(&format!("a{index}"), 10_000).await;
    }
    service.open("gone", 0).await;
    service.post("/accounts/gone/close", json!({})).await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..8 {
        let service = service.clone();
        clients.spawn(async move {
            let mut ids = Vec::new();
            for n in 0..15 {
                let from = (client + n) % ACCOUNTS;
                let to = if n == 7 {
                    "gone".to_owned()
                } else {
                    format!("a{}", (from + 1 + n % 5) % ACCOUNTS)
                };
                let cents = 500 + 900 * i64::try_from(n % 4).unwrap();
                let id = format!("t{client}x{n}");
                let body =
                    json!({ "id": id, "from": format!("a{from}"), "to": to, "cents": cents });
                let (status, answer) = service.post("/transfers", body).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
                ids.push(id);
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = clients.join_next().await {
        ids.extend(done.unwrap());
    }
    let mut outcomes = BTreeMap::<String, usize>::new();
    let deadline = tokio::time::Instant::now() + Duration::from_mins(2);
    for id in &ids {
        let status = loop {
            if tokio::time::Instant::now() >= deadline {
                let (_, transfer) = service.get(&format!("/transfers/{id}")).await;
                let (_, projections) = service.get("/admin/projections").await;
                panic!("transfer {id} never ended: {transfer} {projections}");
            }
            let (_, transfer) = service.get(&format!("/transfers/{id}")).await;
            let status = transfer["status"].as_str().unwrap().to_owned();
            if ["completed", "failed", "compensated"].contains(&status.as_str()) {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        *outcomes.entry(status).or_default() += 1;
    }
    assert_eq!(outcomes.values().sum::<usize>(), 120);
    assert!(outcomes.get("compensated").copied().unwrap_or(0) >= 1, "{outcomes:?}");
    assert!(outcomes.get("completed").copied().unwrap_or(0) >= 60, "{outcomes:?}");
    let head = service.head().await;
    let (_, totals) = service.get(&format!("/totals?after={head}")).await;
    assert_eq!(totals["cents"], 10_000 * i64::try_from(ACCOUNTS).unwrap(), "{totals}");
    for index in 0..ACCOUNTS {
        let (_, account) = service.get(&format!("/accounts/a{index}?after={head}")).await;
        assert!(account["balance"].as_i64().unwrap() >= 0, "{account}");
    }
    std::sync::Arc::into_inner(service).unwrap().stop().await;
}

async fn operators_see_health_metrics_and_projections<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    let position = service.open("erin", 1_234).await;
    assert_eq!(service.get("/health/live").await.0, StatusCode::OK);
    // Ready once the views have caught up with the log (as a load balancer would poll it);
    // until then a JSON 503 that says why.
    let mut polls = 0;
    loop {
        let (status, ready) = service.get("/health/ready").await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!((status, code(&ready)), (StatusCode::SERVICE_UNAVAILABLE, "not_ready"));
        polls += 1;
        assert!(polls < 500, "not ready after 10 s: {ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, before) = service.get(&format!("/accounts/erin?after={position}")).await;

    let (status, rebuilt) = service.post("/admin/projections/balances/rebuild", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rebuilt}");
    assert_eq!(rebuilt["switched"], true);
    let (_, after) = service.get(&format!("/accounts/erin?after={position}")).await;
    assert_eq!(before, after, "the rebuilt view answers as the old one did");
    let (status, unknown) = service.post("/admin/projections/nope/rebuild", json!({})).await;
    assert_eq!((status, code(&unknown)), (StatusCode::NOT_FOUND, "not_found"));

    let (_, projections) = service.get("/admin/projections").await;
    let names: Vec<&str> = projections["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["balances", "statements", "transfer_process"]);
    let metrics = service
        .client
        .get(format!("{}/metrics", service.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "es_commands_total",
        "es_append_seconds_bucket",
        "bank_projection_lag",
        "http_requests_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    // The parked-events counters exist from the start (at 0), so an alert on their increase
    // can fire on the first parked event.
    for name in ["balances", "statements", "transfer_process"] {
        let series = format!("es_projection_parked_total{{projection=\"{name}\"}}");
        assert!(metrics.contains(&series), "{series} missing from /metrics:\n{metrics}");
    }
    service.stop().await;
}

// ---------------------------------------------------------------- hostile input (issue 11)

/// Item 7: a deposit that would overflow the balance is a 422 and appends nothing; the views keep
/// advancing, readiness stays true, and `/totals` survives balances whose sum exceeds i64.
async fn overflowing_money_is_refused_and_views_survive<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    service.open("rich", 0).await;
    service.open("richer", 0).await;
    let (status, body) =
        service.post("/accounts/rich/deposits", json!({ "cents": i64::MAX })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = service.post("/accounts/rich/deposits", json!({ "cents": 1 })).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "balance_overflow"),
        "{body}"
    );
    let (status, body) =
        service.post("/accounts/richer/deposits", json!({ "cents": i64::MAX })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = body["position"].as_u64().unwrap();
    // A later write still reaches the views: they were not poisoned.
    service.open("after", 5).await;
    let head = service.head().await;
    assert!(head > last);
    let (status, rich) = service.get(&format!("/accounts/rich?after={head}")).await;
    assert_eq!((status, rich["balance"].as_i64()), (StatusCode::OK, Some(i64::MAX)), "{rich}");
    let (status, totals) = service.get(&format!("/totals?after={head}")).await;
    assert_eq!(status, StatusCode::OK, "{totals}");
    let expected = 2 * i128::from(i64::MAX) + 5;
    assert_eq!(totals["cents"], json!(expected.to_string()), "{totals}");
    let (status, ready) = service.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    // A transfer whose credit would overflow is compensated: the money goes back.
    let (status, body) = service
        .post(
            "/transfers",
            json!({ "id": "t-overflow", "from": "after", "to": "rich", "cents": 5 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mut state = Value::Null;
    for _ in 0..300 {
        let (_, transfer) = service.get("/transfers/t-overflow").await;
        state = transfer["status"].clone();
        if state != json!("requested") && state != json!("debited") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, json!("compensated"));
    let head = service.head().await;
    let (_, after) = service.get(&format!("/accounts/after?after={head}")).await;
    assert_eq!(after["balance"], json!(5), "{after}");
    service.stop().await;
}

/// Item 8: a value the store cannot keep is a 4xx with a clear message, never a 500.
async fn unstorable_values_are_client_errors<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    for owner in ["nul \u{0}inside", "new\nline"] {
        let (status, body) = service.post("/accounts", json!({ "id": "x", "owner": owner })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("control"), "{body}");
    }
    let (status, body) = service.get("/accounts/x").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written: {body}");
    service.stop().await;
}

/// Item 9: a transfer request without an id, retried with the same Idempotency-Key, replays the
/// first answer (same transfer); the key reused for another request is refused.
async fn a_keyed_transfer_without_an_id_replays<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    service.open("a", 100).await;
    service.open("b", 0).await;
    let request = json!({ "from": "a", "to": "b", "cents": 10 });
    let post = reqwest::Method::POST;
    let (status, first) =
        service.send(post.clone(), "/transfers", Some(request.clone()), Some("pay-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, retry) =
        service.send(post.clone(), "/transfers", Some(request.clone()), Some("pay-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retry}");
    assert_eq!(retry["id"], first["id"], "the retry reaches the same transfer");
    assert_eq!(retry["written"]["replayed"], json!(true), "{retry}");
    let other = json!({ "from": "a", "to": "b", "cents": 11 });
    let (status, refused) = service.send(post, "/transfers", Some(other), Some("pay-1")).await;
    assert_eq!((status, code(&refused)), (StatusCode::BAD_REQUEST, "invalid_request"), "{refused}");
    // And a reused key on an account command with another amount: refused, not replayed.
    let deposit = reqwest::Method::POST;
    let (status, _) = service
        .send(deposit.clone(), "/accounts/b/deposits", Some(json!({ "cents": 1 })), Some("dep-1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = service
        .send(deposit, "/accounts/b/deposits", Some(json!({ "cents": 2 })), Some("dep-1"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    service.stop().await;
}

/// Item 12: every error is JSON, whatever produced it, and no internals leak.
async fn every_error_is_json<S: BankStore>(store: S) {
    let service = Service::start(store).await;
    // 405 from the router.
    let (status, body) = service.send(reqwest::Method::DELETE, "/accounts", None, None).await;
    assert_eq!((status, code(&body)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    // A path that is not UTF-8 once decoded.
    let (status, body) = service.get("/accounts/%FF%FE").await;
    assert!(status.is_client_error(), "{status}");
    code(&body);
    // A header that is not visible ASCII.
    let response = service
        .client
        .post(format!("{}/accounts/a/deposits", service.base))
        .header("idempotency-key", reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap())
        .json(&json!({ "cents": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    code(&response.json::<Value>().await.unwrap());
    // A body too large.
    let huge = format!("{{\"id\":\"a\",\"owner\":\"{}\"}}", "x".repeat(3 << 20));
    let response = service
        .client
        .post(format!("{}/accounts", service.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    code(&response.json::<Value>().await.unwrap());
    service.stop().await;
}

// ---------------------------------------------------------------- backends

fn memory() -> es::memory::MemoryTenantStore {
    es::memory::MemoryStore::new().tenant(TenantId::default())
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::memory()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fresh = es::postgres::testing::FreshSchema::with(|options| {
                        options.poll_interval(std::time::Duration::from_millis(100))
                    })
                    .await;
                    super::$case(fresh.default_tenant()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    an_account_lives_its_life,
    bad_requests_get_json_errors_and_change_nothing,
    a_retried_request_applies_once,
    concurrent_transfers_keep_the_money,
    operators_see_health_metrics_and_projections,
    overflowing_money_is_refused_and_views_survive,
    unstorable_values_are_client_errors,
    a_keyed_transfer_without_an_id_replays,
    every_error_is_json,
);

// ---------------------------------------------------------------- generated request sequences

mod generated {
    //! Random request sequences against the service on both backends: no 500 for any request a
    //! client can send, never a panic, and the money always adds up (deposits minus withdrawals
    //! accepted, whatever transfers did).
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Step {
        Open { id: usize, owner: String },
        Deposit { id: usize, cents: i64, key: Option<u8> },
        Withdraw { id: usize, cents: i64, key: Option<u8> },
        Transfer { from: usize, to: usize, cents: i64, id: Option<u8>, key: Option<u8> },
        Close { id: usize },
        Raw { path: &'static str, body: String },
        Read { id: usize },
    }

    fn cents() -> impl Strategy<Value = i64> {
        prop_oneof![
            4 => 1..2_000i64,
            1 => Just(i64::MAX),
            1 => Just(i64::MIN),
            1 => Just(0),
            1 => any::<i64>(),
        ]
    }

    fn owner() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[A-Za-z ]{1,20}",
            1 => any::<String>(),
            1 => Just("nul\u{0}".to_owned()),
            1 => Just(String::new()),
            1 => Just("x".repeat(300)),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        let id = 0..5usize;
        prop_oneof![
            1 => (id.clone(), owner()).prop_map(|(id, owner)| Step::Open { id, owner }),
            4 => (id.clone(), cents(), proptest::option::of(0..4u8))
                .prop_map(|(id, cents, key)| Step::Deposit { id, cents, key }),
            3 => (id.clone(), cents(), proptest::option::of(0..4u8))
                .prop_map(|(id, cents, key)| Step::Withdraw { id, cents, key }),
            3 => (id.clone(), id.clone(), cents(), proptest::option::of(0..3u8), proptest::option::of(0..4u8))
                .prop_map(|(from, to, cents, id, key)| Step::Transfer { from, to, cents, id, key }),
            1 => id.clone().prop_map(|id| Step::Close { id }),
            1 => (
                prop_oneof![Just("/accounts"), Just("/transfers"), Just("/accounts/a0/deposits")],
                any::<String>(),
            )
                .prop_map(|(path, body)| Step::Raw { path, body }),
            1 => id.prop_map(|id| Step::Read { id }),
        ]
    }

    /// Runs one sequence; returns the money the accepted deposits and withdrawals put in.
    async fn run(service: &Service, steps: Vec<Step>) -> i128 {
        // Five funded accounts first, so most generated requests reach the domain.
        for id in 0..5 {
            service.open(&format!("a{id}"), 10_000).await;
        }
        let mut expected: i128 = 50_000;
        // Keys are per-sequence request names: reusing one for another request is a client
        // error the service must refuse (4xx), not a 500.
        for step in steps {
            let (status, body) = match &step {
                Step::Open { id, owner } => {
                    service
                        .post("/accounts", json!({ "id": format!("a{id}"), "owner": owner }))
                        .await
                }
                Step::Deposit { id, cents, key } | Step::Withdraw { id, cents, key } => {
                    let kind = if matches!(step, Step::Deposit { .. }) {
                        "deposits"
                    } else {
                        "withdrawals"
                    };
                    let key = key.map(|key| format!("{kind}-{key}"));
                    let answer = service
                        .send(
                            reqwest::Method::POST,
                            &format!("/accounts/a{id}/{kind}"),
                            Some(json!({ "cents": cents })),
                            key.as_deref(),
                        )
                        .await;
                    if answer.0 == StatusCode::OK && answer.1["replayed"] == json!(false) {
                        let sign = if kind == "deposits" { 1 } else { -1 };
                        expected += sign * i128::from(*cents);
                    }
                    answer
                }
                Step::Transfer { from, to, cents, id, key } => {
                    let mut body = json!({ "from": format!("a{from}"), "to": format!("a{to}"), "cents": cents });
                    if let Some(id) = id {
                        body["id"] = json!(format!("t{id}"));
                    }
                    let key = key.map(|key| format!("transfer-{key}"));
                    service
                        .send(reqwest::Method::POST, "/transfers", Some(body), key.as_deref())
                        .await
                }
                Step::Close { id } => {
                    service.post(&format!("/accounts/a{id}/close"), json!({})).await
                }
                Step::Raw { path, body } => {
                    let response = service
                        .client
                        .post(format!("{}{path}", service.base))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let text = response.text().await.unwrap();
                    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
                }
                Step::Read { id } => service.get(&format!("/accounts/a{id}")).await,
            };
            assert!(!status.is_server_error(), "{step:?} answered {status}: {body}");
            if std::env::var_os("BANK_SEQUENCE_TRACE").is_some() {
                eprintln!("{status} {step:?}");
            }
            if status.is_client_error() {
                code(&body);
            }
        }
        expected
    }

    /// Waits until every transfer ended and the views caught up, then checks the money.
    async fn money_adds_up(service: &Service, expected: i128) {
        let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
        loop {
            let (_, projections) = service.get("/admin/projections").await;
            let settled = projections["projections"]
                .as_array()
                .unwrap()
                .iter()
                .all(|projection| projection["lag"] == json!(0));
            if settled {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never settled: {projections}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let head = service.head().await;
        let (status, totals) = service.get(&format!("/totals?after={head}")).await;
        assert_eq!(status, StatusCode::OK, "{totals}");
        let total = match &totals["cents"] {
            Value::Number(number) => i128::from(number.as_i64().unwrap()),
            Value::String(digits) => digits.parse().unwrap(),
            other => panic!("totals: {other}"),
        };
        assert_eq!(total, expected, "the money must add up: {totals}");
        let (status, ready) = service.get("/health/ready").await;
        assert_eq!(status, StatusCode::OK, "{ready}");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn memory_sequences_never_500_and_money_adds_up(steps in prop::collection::vec(step(), 1..40)) {
            runtime().block_on(async {
                let service = Service::start(memory()).await;
                let expected = run(&service, steps).await;
                money_adds_up(&service, expected).await;
                service.stop().await;
            });
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn postgres_sequences_never_500_and_money_adds_up(steps in prop::collection::vec(step(), 1..40)) {
            runtime().block_on(async {
                let fresh = es::postgres::testing::FreshSchema::new().await;
                let service = Service::start(fresh.tenant(TenantId::default())).await;
                let expected = run(&service, steps).await;
                money_adds_up(&service, expected).await;
                service.stop().await;
            });
        }
    }
}
