//! The operations console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against the bank on the in-memory store with the console at `/console`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (the README's test command installs them).
//! Without them each test fails and says how to install them; `ES_BROWSER_TESTS=off` turns them
//! off explicitly (and says so). With `ES_CONSOLE_SCREENSHOTS=DIR` the tests save a screenshot of
//! each page they visit there (the ones in docs/console were taken that way).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use es::console::{ConsoleConfig, Role};
use es::projection::{DeadLetterStore, ParkedEvent};
use es::{EventStore, MultiTenantStore, Position, ProjectionName, ReadAllOptions, TenantId};
use examples::bank::{Bank, http};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::TryStreamExt;
use serde_json::{Value, json};

const ADMIN: &str = "browser-admin-token-0123456789";
const VIEWER: &str = "browser-viewer-token-0123456789";

/// A chromedriver process and the browser session it drives; both end on drop.
struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts chromedriver and a headless Chromium session; `None` when browser tests are off.
async fn browser() -> Option<Browser> {
    if std::env::var("ES_BROWSER_TESTS").as_deref() == Ok("off") {
        eprintln!("SKIPPED: ES_BROWSER_TESTS=off turns the console's browser tests off");
        return None;
    }
    let driver_path =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&driver_path).exists() && std::path::Path::new(&chromium).exists(),
        "the console's browser tests need Chromium and ChromeDriver ({chromium}, {driver_path}): \
         `apt-get install chromium chromium-driver`, or set CHROMIUM and CHROMEDRIVER, or turn \
         them off with ES_BROWSER_TESTS=off"
    );
    let port = free_port();
    let driver = Command::new(&driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = std::env::temp_dir().join(format!("es-console-browser-{}", uuid::Uuid::new_v4()));
    let mut browser = Browser { client: None, driver, profile: profile.clone() };
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
            Ok(client) => break client,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("chromedriver on {url} gave no session: {error}"),
        }
    };
    browser.client = Some(client);
    Some(browser)
}

/// The bank on the in-memory store, its console mounted at /console.
struct Bank_ {
    base: String,
    store: es::memory::MemoryTenantStore,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn bank() -> Bank_ {
    let backend = es::memory::MemoryStore::new();
    let store = backend.tenant(TenantId::new("browser").unwrap());
    let bank = Bank::start(store.clone()).await;
    let config = ConsoleConfig::new()
        .token(ADMIN, Role::Admin)
        .unwrap()
        .token(VIEWER, Role::ReadOnly)
        .unwrap()
        .insecure_cookie();
    let app = http::router(bank.clone()).nest(
        "/console",
        examples::bank::console::router(&bank, config, backend, None, std::future::pending()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        http::serve_app(bank, app, listener, shutdown, http::ServeLimits::default()).await.unwrap();
    });
    Bank_ { base, store, http: reqwest::Client::new(), stop: Some(stop) }
}

impl Drop for Bank_ {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Bank_ {
    async fn post(&self, path: &str, body: Value) -> Value {
        let response =
            self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }
}

async fn sign_in(client: &Client, base: &str, token: &str) {
    client.goto(&format!("{base}/console")).await.unwrap();
    let page = client.source().await.unwrap();
    assert!(page.contains("Sign in"), "an unsigned visit shows the sign-in form");
    client.find(Locator::Id("token")).await.unwrap().send_keys(token).await.unwrap();
    click(client, Locator::Css("main.login button")).await;
    client.wait().for_element(Locator::Css("header .who")).await.unwrap();
}

/// Waits (up to [`PATIENCE`]) until the browser's address holds `part`: a form's submission has loaded
/// its page, so what is found next is on that page and not on the one before.
async fn arrive(client: &Client, part: &str) {
    let start = Instant::now();
    loop {
        let url = client.current_url().await.unwrap();
        if url.as_str().contains(part) {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "{part} not in the address: {url}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a step waits for the page it expects before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// Whether a WebDriver error means "not on this page (yet)": the element is not there, or it
/// was found on a page that has since been replaced (a form's submission or a link's target
/// loading). Either is worth another look until [`PATIENCE`] runs out; anything else is a failure.
///
/// Chromium does not always say "stale" for the second case: a node of the replaced document can
/// come back as an "unknown error" whose inspector message says the node "does not belong to the
/// document" (a CI run failed on exactly that), so that message counts as stale too.
fn not_yet(error: &fantoccini::error::CmdError) -> bool {
    error.is_no_such_element()
        || error.is_stale_element_reference()
        || error.to_string().contains("does not belong to the document")
}

/// The text of the first element `css` finds, looking again while the page changes under it
/// (up to [`PATIENCE`]; the page's source in the panic if it never comes).
async fn text(client: &Client, css: &str) -> String {
    let start = Instant::now();
    loop {
        let read = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await,
            Err(error) => Err(error),
        };
        match read {
            Ok(text) => return text,
            Err(error) if not_yet(&error) && start.elapsed() < PATIENCE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => {
                let page = client.source().await.unwrap_or_default();
                panic!("{css} did not appear ({error}); the page: {page}")
            }
        }
    }
}

/// Clicks the first element `locator` finds, looking again while the page changes under it
/// (up to [`PATIENCE`]). A click refused as stale never reached the page, so another is safe.
async fn click(client: &Client, locator: Locator<'_>) {
    let start = Instant::now();
    loop {
        let clicked = match client.find(locator).await {
            Ok(element) => element.click().await,
            Err(error) => Err(error),
        };
        match clicked {
            Ok(()) => return,
            Err(error) if not_yet(&error) && start.elapsed() < PATIENCE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => {
                let page = client.source().await.unwrap_or_default();
                panic!("could not click {locator:?} ({error}); the page: {page}")
            }
        }
    }
}

async fn screenshot(client: &Client, name: &str) {
    let Ok(dir) = std::env::var("ES_CONSOLE_SCREENSHOTS") else { return };
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
}

/// Waits until `check` holds on the page's source, reloading with `reload`.
async fn eventually(
    client: &Client,
    what: &str,
    reload: bool,
    check: impl Fn(&str) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let page = client.source().await.unwrap();
        if check(&page) {
            return start.elapsed();
        }
        assert!(start.elapsed() < PATIENCE, "{what}: not seen within {PATIENCE:?}");
        if reload {
            client.refresh().await.unwrap();
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_without_a_token_or_with_a_read_only_one_is_refused() {
    let Some(browser) = browser().await else { return };
    let client = browser.client.as_ref().unwrap();
    let bank = bank().await;
    client.goto(&format!("{}/console/streams", bank.base)).await.unwrap();
    let page = client.source().await.unwrap();
    assert!(page.contains("Sign in to use the console"), "no token, no page");
    screenshot(client, "sign-in").await;
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys("not-a-token-0123456789abcdef")
        .await
        .unwrap();
    click(client, Locator::Css("main.login button")).await;
    assert!(text(client, "p.error").await.contains("not valid"));

    sign_in(client, &bank.base, VIEWER).await;
    assert_eq!(text(client, "header .who").await, "read-only");
    client.goto(&format!("{}/console/projections/balances", bank.base)).await.unwrap();
    let page = client.source().await.unwrap();
    assert!(!page.contains("Rebuild…"), "a reader is offered no action");
    client.goto(&format!("{}/console/projections/balances/rebuild", bank.base)).await.unwrap();
    assert!(client.source().await.unwrap().contains("needs the admin role"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_opens_a_stream_and_sees_its_events() {
    let Some(browser) = browser().await else { return };
    let client = browser.client.as_ref().unwrap();
    let bank = bank().await;
    bank.post("/accounts", json!({ "id": "alice", "owner": "Alice Liddell" })).await;
    bank.post("/accounts/alice/deposits", json!({ "cents": 12_500 })).await;
    sign_in(client, &bank.base, VIEWER).await;
    client.goto(&format!("{}/console/streams", bank.base)).await.unwrap();
    client
        .find(Locator::Css("input[name=category]"))
        .await
        .unwrap()
        .send_keys("account")
        .await
        .unwrap();
    click(client, Locator::Css("form.search button")).await;
    // The unfiltered page already lists account-alice: a link found before the search's page
    // has loaded goes stale when it does. Wait for the search's own page first.
    arrive(client, "category=account").await;
    client.wait().for_element(Locator::LinkText("account-alice")).await.unwrap();
    screenshot(client, "streams").await;
    click(client, Locator::LinkText("account-alice")).await;
    let events = text(client, "#events").await;
    assert!(events.contains("account.opened") && events.contains("account.deposited"), "{events}");
    assert!(
        events.contains("Alice Liddell") && events.contains("12500"),
        "decoded payloads: {events}"
    );
    screenshot(client, "stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_log_shows_an_append_as_it_commits() {
    let Some(browser) = browser().await else { return };
    let client = browser.client.as_ref().unwrap();
    let bank = bank().await;
    bank.post("/accounts", json!({ "id": "bob", "owner": "Bob" })).await;
    sign_in(client, &bank.base, VIEWER).await;
    client.goto(&format!("{}/console/log", bank.base)).await.unwrap();
    eventually(client, "the live tail connects", false, |page| page.contains("● live")).await;
    let appended = Instant::now();
    bank.post("/accounts/bob/deposits", json!({ "cents": 700 })).await;
    let committed = appended.elapsed();
    let shown = eventually(client, "the deposit in the live log", false, |page| {
        page.contains("account.deposited")
    })
    .await;
    eprintln!("live tail: the append answered in {committed:?}; its row appeared {shown:?} later");
    assert_eq!(text(client, "#head").await, "2", "the head follows the live rows");
    screenshot(client, "log").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_rebuilds_a_projection_and_its_lag_falls_to_zero() {
    let Some(browser) = browser().await else { return };
    let client = browser.client.as_ref().unwrap();
    let bank = bank().await;
    for id in ["c1", "c2", "c3"] {
        bank.post("/accounts", json!({ "id": id, "owner": "Carol" })).await;
        bank.post(&format!("/accounts/{id}/deposits"), json!({ "cents": 100 })).await;
    }
    sign_in(client, &bank.base, ADMIN).await;
    client.goto(&format!("{}/console/projections", bank.base)).await.unwrap();
    client.wait().for_element(Locator::Css("tr[data-projection=balances]")).await.unwrap();
    screenshot(client, "projections").await;
    client.goto(&format!("{}/console/projections/balances", bank.base)).await.unwrap();
    click(client, Locator::LinkText("Rebuild…")).await;
    click(client, Locator::Css("form.confirm button.danger")).await;
    let outcome = text(client, "p.notice").await;
    assert!(outcome.starts_with("Rebuilt balances: 6 events handled"), "{outcome}");
    eventually(client, "the balances lag at 0", true, |page| {
        page.contains("<td class=\"num lag\">0</td>")
    })
    .await;
    screenshot(client, "projection").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_replays_a_parked_event() {
    let Some(browser) = browser().await else { return };
    let client = browser.client.as_ref().unwrap();
    let bank = bank().await;
    bank.post("/accounts", json!({ "id": "dave", "owner": "Dave" })).await;
    bank.post("/accounts/dave/close", json!({})).await;
    // The view parked the close after a failure that has since passed (a dependency that timed
    // out, say): handling it again succeeds, and closing is idempotent in the view.
    let events: Vec<_> =
        bank.store.read_all(ReadAllOptions::from_beginning()).try_collect().await.unwrap();
    let closed = events.iter().find(|event| event.event_type.as_str() == "account.closed").unwrap();
    bank.store
        .park(ParkedEvent {
            projection: ProjectionName::new("balances").unwrap(),
            position: closed.position,
            event_type: closed.event_type.clone(),
            error: "the view's dependency timed out".into(),
            attempts: 3,
            parked_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let position = closed.position.value();
    sign_in(client, &bank.base, ADMIN).await;
    client.goto(&format!("{}/console/projections/balances", bank.base)).await.unwrap();
    assert!(text(client, "#parked").await.contains("the view's dependency timed out"));
    click(client, Locator::LinkText(&position.to_string())).await;
    assert!(text(client, "dl.record").await.contains("account.closed"));
    screenshot(client, "parked").await;
    click(client, Locator::Css("form.confirm button")).await;
    assert_eq!(text(client, "p.notice").await, "Replayed 1; 0 still parked.");
    assert_eq!(text(client, "#no-parked").await, "None.");
    let left = bank.store.parked(&ProjectionName::new("balances").unwrap()).await.unwrap();
    assert!(left.is_empty(), "the store holds no parked event any more: {left:?}");
    let _ = Position::new(position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_forgets_a_subject_and_its_fields_read_as_redacted() {
    let Some(browser) = browser().await else { return };
    let client = browser.client.as_ref().unwrap();
    let bank = bank().await;
    bank.post(
        "/accounts",
        json!({ "id": "erin", "owner": "Erin Example", "email": "erin@example.org" }),
    )
    .await;
    sign_in(client, &bank.base, ADMIN).await;
    client.goto(&format!("{}/console/streams/account-erin", bank.base)).await.unwrap();
    assert!(text(client, "#events").await.contains("Erin Example"));
    client.goto(&format!("{}/console/subjects", bank.base)).await.unwrap();
    client
        .find(Locator::Css("input[name=subject]"))
        .await
        .unwrap()
        .send_keys("account-erin")
        .await
        .unwrap();
    click(client, Locator::Css("form.search button")).await;
    assert!(text(client, "#subject-state").await.contains("not forgotten"));
    click(client, Locator::LinkText("Forget…")).await;
    client
        .find(Locator::Css("input[name=reason]"))
        .await
        .unwrap()
        .send_keys("erasure request 17")
        .await
        .unwrap();
    click(client, Locator::Css("form.confirm button.danger")).await;
    assert!(text(client, "#subject-state").await.contains("is forgotten"));
    assert!(text(client, "#audit").await.contains("erasure request 17"));
    screenshot(client, "subjects").await;
    client.goto(&format!("{}/console/streams/account-erin", bank.base)).await.unwrap();
    let events = text(client, "#events").await;
    assert!(!events.contains("Erin Example") && !events.contains("erin@example.org"), "{events}");
    assert!(events.to_lowercase().contains("redacted"), "the fields read as redacted: {events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_section_renders_with_its_stylesheet_and_navigation() {
    let Some(browser) = browser().await else { return };
    let client = browser.client.as_ref().unwrap();
    let bank = bank().await;
    bank.post("/accounts", json!({ "id": "frank", "owner": "Frank" })).await;
    sign_in(client, &bank.base, VIEWER).await;
    for (path, name, title) in [
        ("", "overview", "Overview"),
        ("/health", "health", "Health"),
        ("/tenants", "tenants", "Tenants"),
        ("/subjects", "subjects-empty", "Subjects"),
    ] {
        client.goto(&format!("{}/console{path}", bank.base)).await.unwrap();
        assert_eq!(text(client, "main h1").await, title, "{path}");
        // The stylesheet applied (the header's dark background), so the CSP let it in.
        let background = client
            .find(Locator::Css("header"))
            .await
            .unwrap()
            .css_value("background-color")
            .await
            .unwrap();
        assert_eq!(background, "rgba(29, 35, 48, 1)", "{path}: the console's stylesheet");
        let active = text(client, "header nav a.active").await;
        assert_eq!(active, title, "{path}: the navigation marks its section");
        screenshot(client, name).await;
    }
    assert!(text(client, "main").await.contains("No subject has been forgotten"));
    client.goto(&format!("{}/console/health", bank.base)).await.unwrap();
    let health = text(client, "#health").await;
    assert!(health.contains("service readiness") && health.contains("outbox depth"), "{health}");
    client.goto(&format!("{}/console/tenants", bank.base)).await.unwrap();
    let tenants = text(client, "#tenants").await;
    assert!(tenants.contains("browser"), "the bank's tenant and its usage: {tenants}");
}
