//! The bank on a PostgreSQL server of the test's own, crashed and restarted while transfers run
//! (issue 11): the transfer process and the views carry on by themselves, every transfer reaches a
//! final state, the money adds up, and the service is ready again, without a restart of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use es::postgres::testing::PrivateCluster;
use es::{MultiTenantStore, TenantId};
use examples::bank::Bank;

/// Retries a bank call through an outage (every call here carries an idempotency key or is a
/// read, so a retry is safe).
async fn until_ok<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "still failing: {error:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_recovers_from_server_crashes_during_transfers() {
    const ACCOUNTS: usize = 20;
    const TRANSFERS: usize = 200;
    let cluster = Arc::new(PrivateCluster::start());
    let backend = cluster.store("bank").await;
    let bank = Bank::start(backend.tenant(TenantId::default())).await;
    for account in 0..ACCOUNTS {
        let (id, key) = (format!("acc-{account}"), format!("open-{account}"));
        until_ok(|| bank.open(&id, "Owner", None, Some(&key))).await;
        let key = format!("fund-{account}");
        until_ok(|| bank.deposit(&id, 1_000, Some(&key))).await;
    }
    let crashes = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            for _ in 0..2 {
                std::thread::sleep(Duration::from_millis(300));
                cluster.restart();
            }
            2
        })
    };
    for transfer in 0..TRANSFERS {
        let (id, from, to) = (
            format!("t-{transfer}"),
            format!("acc-{}", transfer % ACCOUNTS),
            format!("acc-{}", (transfer * 7 + 3) % ACCOUNTS),
        );
        let key = format!("transfer-{transfer}");
        until_ok(|| bank.request_transfer(&id, &from, &to, 150, Some(&key))).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let crashes = crashes.await.unwrap();
    until_ok(|| bank.settle(Duration::from_secs(5))).await;
    let mut finals = 0;
    for transfer in 0..TRANSFERS {
        let id = format!("t-{transfer}");
        let view = until_ok(|| bank.transfer(&id)).await;
        assert!(view.state.status.is_final(), "{id} is {:?}", view.state.status);
        finals += 1;
    }
    let (accounts, cents) = until_ok(|| bank.totals(None)).await;
    assert_eq!(accounts, ACCOUNTS);
    assert_eq!(cents, i128::try_from(ACCOUNTS).unwrap() * 1_000, "no money appeared or vanished");
    until_ok(|| bank.ready()).await;
    eprintln!(
        "fault: {crashes} server crashes during {TRANSFERS} transfers; {finals} final, money adds up, ready again"
    );
    bank.shutdown().await;
}

/// While the server is down, writes answer 503 with `Retry-After` (never a 500) and readiness says
/// why without internals; once it is back, the same process is ready again and no view is left
/// in the failing state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_a_503_and_the_service_recovers() {
    let cluster = PrivateCluster::start();
    let backend = cluster.store("bank").await;
    let _ = examples::bank::http::prometheus();
    let bank = Bank::start(backend.tenant(TenantId::default())).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(examples::bank::http::serve(bank.clone(), listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let ready = || async {
        let response = client.get(format!("{base}/health/ready")).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    };
    let ready_200 = || async {
        let (status, body) = ready().await;
        if status == reqwest::StatusCode::OK { Ok(()) } else { Err(body) }
    };
    until_ok(ready_200).await;
    let opened = client
        .post(format!("{base}/accounts"))
        .json(&serde_json::json!({ "id": "a", "owner": "A" }))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), reqwest::StatusCode::CREATED);

    cluster.crash();
    // The same deposit, sent during the outage and retried after it.
    let deposit = || async {
        client
            .post(format!("{base}/accounts/a/deposits"))
            .header("idempotency-key", "during-outage")
            .json(&serde_json::json!({ "cents": 5 }))
            .send()
            .await
            .unwrap()
    };
    let response = deposit().await;
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let (status, body) = ready().await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    for internal in ["SQL", "sqlx", "pool", "connection refused", "horizon_probe"] {
        assert!(!body.contains(internal), "readiness leaks internals ({internal}): {body}");
    }

    cluster.start_server();
    until_ok(ready_200).await;
    // The retried write (same key) lands once; the views leave the failing state.
    let retried = until_ok(|| async {
        let response = deposit().await;
        if response.status() == reqwest::StatusCode::OK {
            Ok(response.json::<serde_json::Value>().await.unwrap())
        } else {
            Err(response.status())
        }
    })
    .await;
    let position = retried["position"].as_u64().unwrap();
    let account: serde_json::Value = client
        .get(format!("{base}/accounts/a?after={position}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["balance"], 5, "{account}");
    let projections: serde_json::Value =
        client.get(format!("{base}/admin/projections")).send().await.unwrap().json().await.unwrap();
    for projection in projections["projections"].as_array().unwrap() {
        assert_ne!(projection["state"], "failing", "{projection}");
        assert!(projection["last_error"].is_null(), "{projection}");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
