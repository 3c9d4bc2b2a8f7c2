//! Every console page and every bad input, without a browser: the status, the security headers,
//! the roles, CSRF, escaping; never a 500. Each case runs on both backends (a module each).
#![allow(clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use es_console::ConsoleStore;
use es_console::{Console, ConsoleConfig, ProjectionControl, Role};
use es_core::projection::ParkedEvent;
use es_core::{
    AppendOptions, EventData, EventType, ExpectedVersion, MultiTenantStore, Payload, Position,
    ProjectionName, StreamId, TenantId,
};
use es_memory::MemoryStore;
use http_body_util::BodyExt;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";

struct Fixture<S> {
    app: Router,
    store: S,
    rebuilds: Arc<AtomicU32>,
}

/// A fresh in-memory store's tenant.
fn memory() -> es_memory::MemoryTenantStore {
    MemoryStore::new().tenant(TenantId::new("acme").expect("tenant"))
}

/// The console over `store` (fresh), after three streams and a parked event were written.
async fn fixture<S: ConsoleStore>(store: S) -> Fixture<S> {
    for (stream, n) in [("account-1", 3), ("account-2", 1), ("order-<script>alert(1)</script>", 1)]
    {
        let events = (0..n)
            .map(|i| {
                EventData::new(
                    EventType::new("test.happened").expect("type"),
                    Payload::from_value(&serde_json::json!({ "n": i, "note": "<b>bold</b>" }))
                        .expect("payload"),
                )
            })
            .collect();
        store
            .append(
                &StreamId::new(stream).expect("stream"),
                ExpectedVersion::Any,
                events,
                AppendOptions::default(),
            )
            .await
            .expect("append");
    }
    let name = ProjectionName::new("balances").expect("name");
    store
        .park(ParkedEvent {
            projection: name.clone(),
            position: Position::new(2),
            event_type: EventType::new("test.happened").expect("type"),
            error: "overflow <i>here</i>".into(),
            attempts: 3,
            parked_at: chrono::Utc::now(),
        })
        .await
        .expect("park");
    let rebuilds = Arc::new(AtomicU32::new(0));
    let counter = rebuilds.clone();
    let config = ConsoleConfig::new()
        .token(ADMIN, Role::Admin)
        .expect("admin token")
        .token(VIEWER, Role::ReadOnly)
        .expect("viewer token")
        .insecure_cookie();
    let console = Console::new(store.clone(), config).projection(
        ProjectionControl::new(name).rebuild(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok("rebuilt".to_owned())
            }
        }),
    );
    Fixture { app: Router::new().nest("/console", console.router()), store, rebuilds }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).expect("request")
}

fn post(path: &str, token: Option<&str>, form: &str) -> Request<Body> {
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(form.to_owned())).expect("request")
}

const PAGES: [&str; 10] = [
    "/console",
    "/console/streams",
    "/console/streams?category=account&limit=1",
    "/console/streams/account-1",
    "/console/log",
    "/console/projections",
    "/console/projections/balances",
    "/console/projections/balances/parked/2",
    "/console/subjects",
    "/console/health",
];

async fn a_console_without_credentials_configured_is_off<S: ConsoleStore>(store: S) {
    let app = Router::new().nest("/console", Console::new(store, ConsoleConfig::new()).router());
    for path in PAGES.iter().chain(&["/console/login"]) {
        assert_eq!(send(&app, get(path, None)).await.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            send(&app, get(path, Some(ADMIN))).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

async fn every_page_refuses_a_caller_without_a_valid_token<S: ConsoleStore>(store: S) {
    let Fixture { app, .. } = fixture(store).await;
    for path in PAGES {
        for token in [None, Some("wrong-token-0123456789abcdefgh"), Some("")] {
            let answer = send(&app, get(path, token)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} with {token:?}");
            assert!(answer.body.contains("Sign in"), "{path}: the sign-in form");
            assert!(!answer.body.contains("account-1\""), "{path}: nothing of the store");
        }
    }
}

async fn every_page_renders_for_a_reader_with_strict_security_headers<S: ConsoleStore>(store: S) {
    let Fixture { app, .. } = fixture(store).await;
    for path in PAGES {
        let answer = send(&app, get(path, Some(VIEWER))).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        let csp = answer.headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"), "no inline script or style");
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        // Links stay under the mount point.
        assert!(answer.body.contains("href=\"/console/streams\""), "{path}: links under /console");
        assert!(!answer.body.contains("<script>alert"), "{path}: ids are escaped");
        assert!(!answer.body.contains("<b>bold"), "{path}: payloads are escaped");
        assert!(!answer.body.contains("<i>here"), "{path}: errors are escaped");
    }
}

async fn pages_show_what_the_store_holds<S: ConsoleStore>(store: S) {
    let Fixture { app, .. } = fixture(store).await;
    let streams = send(&app, get("/console/streams?category=account", Some(VIEWER))).await.body;
    assert!(streams.contains(">account-1<") && streams.contains(">account-2<"));
    assert!(!streams.contains("order-"), "a category lists only its streams");
    let stream = send(&app, get("/console/streams/account-1", Some(VIEWER))).await.body;
    assert_eq!(stream.matches("<tr id=\"v").count(), 3, "the stream's three events");
    assert!(stream.contains("test.happened") && stream.contains("&lt;b&gt;bold&lt;/b&gt;"));
    let paged =
        send(&app, get("/console/streams/account-1?from=3&dir=backward&limit=2", Some(VIEWER)))
            .await
            .body;
    assert_eq!(paged.matches("<tr id=\"v").count(), 2, "a page of two, backwards");
    assert!(paged.find("id=\"v3\"") < paged.find("id=\"v2\""), "newest first");
    let hostile =
        send(&app, get("/console/streams/order-%3Cscript%3Ealert(1)%3C%2Fscript%3E", Some(VIEWER)))
            .await;
    assert_eq!(hostile.status, StatusCode::OK, "an odd id is a stream like any other");
    assert!(hostile.body.contains("order-&lt;script&gt;"));
    let projections = send(&app, get("/console/projections/balances", Some(VIEWER))).await.body;
    assert!(projections.contains("overflow &lt;i&gt;here&lt;/i&gt;"), "the parked reason");
    assert!(!projections.contains("Rebuild…"), "no admin action for a reader");
    let log = send(&app, get("/console/log", Some(VIEWER))).await.body;
    assert_eq!(log.matches("<td class=\"num\">").count() / 2, 5, "the five events of the log");
}

async fn bad_input_is_refused_with_a_reason_never_a_server_error<S: ConsoleStore>(store: S) {
    let Fixture { app, .. } = fixture(store).await;
    let long = "a".repeat(300);
    let cases: Vec<(String, StatusCode)> = vec![
        ("/console/streams/%0A".into(), StatusCode::BAD_REQUEST),
        (format!("/console/streams/{long}"), StatusCode::BAD_REQUEST),
        ("/console/streams/no-such-stream".into(), StatusCode::NOT_FOUND),
        ("/console/streams/account-1?limit=1001".into(), StatusCode::BAD_REQUEST),
        ("/console/streams/account-1?limit=0".into(), StatusCode::BAD_REQUEST),
        (
            "/console/streams/account-1?limit=99999999999999999999999".into(),
            StatusCode::BAD_REQUEST,
        ),
        ("/console/streams/account-1?from=-1".into(), StatusCode::BAD_REQUEST),
        ("/console/streams/account-1?dir=sideways".into(), StatusCode::BAD_REQUEST),
        ("/console/streams/account-1?from=99999".into(), StatusCode::OK),
        ("/console/streams?limit=100000".into(), StatusCode::BAD_REQUEST),
        ("/console/streams?limit=abc".into(), StatusCode::BAD_REQUEST),
        ("/console/streams?prefix=a&category=b".into(), StatusCode::BAD_REQUEST),
        (format!("/console/streams?prefix={long}"), StatusCode::BAD_REQUEST),
        ("/console/streams?category=a-b".into(), StatusCode::BAD_REQUEST),
        ("/console/streams?after=%07".into(), StatusCode::BAD_REQUEST),
        ("/console/log?after=zzz".into(), StatusCode::BAD_REQUEST),
        ("/console/log?limit=5000".into(), StatusCode::BAD_REQUEST),
        ("/console/log?after=18446744073709551615".into(), StatusCode::OK),
        ("/console/log/live?after=x".into(), StatusCode::BAD_REQUEST),
        ("/console/projections/nope".into(), StatusCode::NOT_FOUND),
        ("/console/projections/balances/explode".into(), StatusCode::NOT_FOUND),
        ("/console/projections/balances/parked/77".into(), StatusCode::NOT_FOUND),
        ("/console/projections/balances/parked/x".into(), StatusCode::BAD_REQUEST),
        ("/console/subjects?subject=%00".into(), StatusCode::BAD_REQUEST),
        ("/console/subjects/forget?subject=x".into(), StatusCode::FORBIDDEN),
        ("/console/nothing/here".into(), StatusCode::NOT_FOUND),
    ];
    for (path, expected) in cases {
        let answer = send(&app, get(&path, Some(VIEWER))).await;
        assert_eq!(answer.status, expected, "{path}: {}", answer.body);
    }
}

async fn only_an_admin_acts_and_each_action_runs_once<S: ConsoleStore>(store: S) {
    let Fixture { app, rebuilds, .. } = fixture(store).await;
    let refused = send(&app, post("/console/projections/balances/rebuild", Some(VIEWER), "")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let confirm = send(&app, get("/console/projections/balances/rebuild", Some(VIEWER))).await;
    assert_eq!(confirm.status, StatusCode::FORBIDDEN, "a reader gets no confirmation page either");
    assert_eq!(rebuilds.load(Ordering::SeqCst), 0);
    let confirm = send(&app, get("/console/projections/balances/rebuild", Some(ADMIN))).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("method=\"post\""), "the confirmation is a form");
    assert_eq!(rebuilds.load(Ordering::SeqCst), 0, "confirming is not doing");
    let done = send(&app, post("/console/projections/balances/rebuild", Some(ADMIN), "")).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("rebuilt"), "the action's outcome is shown");
    assert_eq!(rebuilds.load(Ordering::SeqCst), 1);
    let absent = send(&app, post("/console/projections/balances/reset", Some(ADMIN), "")).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND, "an action the application did not offer");
}

/// The session id and CSRF token of a signed-in browser.
async fn sign_in(app: &Router, token: &str) -> (String, String) {
    let answer = send(app, post("/console/login", None, &format!("token={token}"))).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.headers[header::LOCATION], "/console");
    let cookie = answer.headers[header::SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    let session = cookie.split(';').next().expect("pair").to_owned();
    let page = send(
        app,
        // Every page's header holds the sign-out form, and with it the CSRF token.
        Request::get("/console")
            .header(header::COOKIE, &session)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let start = page.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = page.body[start..start + 64].to_owned();
    (session, csrf)
}

fn browser_post(path: &str, session: &str, form: &str, site: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, session)
        .header("sec-fetch-site", site)
        .body(Body::from(form.to_owned()))
        .expect("request")
}

async fn a_browser_session_changes_state_only_with_its_csrf_token_from_its_own_site<
    S: ConsoleStore,
>(
    store: S,
) {
    let Fixture { app, rebuilds, .. } = fixture(store).await;
    let bad = send(&app, post("/console/login", None, "token=not-the-token-0123456789")).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.headers.get(header::SET_COOKIE).is_none());
    let cross_site = Request::post("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(format!("token={ADMIN}")))
        .expect("request");
    let refused = send(&app, cross_site).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "no sign-in posted from another site");
    assert!(refused.headers.get(header::SET_COOKIE).is_none());
    let (session, csrf) = sign_in(&app, ADMIN).await;
    let path = "/console/projections/balances/rebuild";
    for (form, site) in [
        (String::new(), "same-origin"),
        ("csrf=0000".to_owned(), "same-origin"),
        (format!("csrf={csrf}"), "cross-site"),
        (format!("csrf={csrf}"), "same-site"),
    ] {
        let answer = send(&app, browser_post(path, &session, &form, site)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{form} from {site}");
    }
    // A form posted from another origin is refused, even with the token; from its own, it passes.
    let from = |origin: &str| {
        let mut request = browser_post(path, &session, &format!("csrf={csrf}"), "same-origin");
        request.headers_mut().insert(header::HOST, "console.test".parse().expect("host"));
        request.headers_mut().insert(header::ORIGIN, origin.parse().expect("origin"));
        request
    };
    assert_eq!(send(&app, from("https://evil.test")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(rebuilds.load(Ordering::SeqCst), 0, "no refused request acted");
    assert_eq!(send(&app, from("https://console.test")).await.status, StatusCode::OK);
    assert_eq!(rebuilds.load(Ordering::SeqCst), 1, "the same origin passes");
    rebuilds.store(0, Ordering::SeqCst);
    let answer =
        send(&app, browser_post(path, &session, &format!("csrf={csrf}"), "same-origin")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(rebuilds.load(Ordering::SeqCst), 1);
    // Signing out ends the session.
    let out = send(
        &app,
        browser_post("/console/logout", &session, &format!("csrf={csrf}"), "same-origin"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = send(
        &app,
        Request::get("/console")
            .header(header::COOKIE, &session)
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

async fn an_admin_forgets_a_subject_and_the_audit_trail_shows_it<S: ConsoleStore>(store: S) {
    let Fixture { app, store, .. } = fixture(store).await;
    let refused =
        send(&app, post("/console/subjects/forget", Some(VIEWER), "subject=customer-7&reason=r"))
            .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let no_reason =
        send(&app, post("/console/subjects/forget", Some(ADMIN), "subject=customer-7&reason="))
            .await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    assert!(!store.is_forgotten("customer-7").await.expect("look up"));
    let done = send(
        &app,
        post(
            "/console/subjects/forget",
            Some(ADMIN),
            "subject=customer-7&reason=erasure+request+%2342",
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("is <strong>forgotten</strong>"), "{}", done.body);
    assert!(store.is_forgotten("customer-7").await.expect("look up"));
    let trail = send(&app, get("/console/subjects", Some(VIEWER))).await.body;
    assert!(trail.contains("erasure request #42") && trail.contains("console (admin)"));
    assert!(!trail.contains("customer-7"), "the trail names a digest, not the subject");
}

async fn the_live_tail_sends_an_append_as_it_commits<S: ConsoleStore>(store: S) {
    let Fixture { app, store, .. } = fixture(store).await;
    let response =
        app.clone().oneshot(get("/console/log/live?after=5", Some(VIEWER))).await.expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body();
    let appended = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let event = EventData::new(
            EventType::new("test.live").expect("type"),
            Payload::from_value(&serde_json::json!({})).expect("payload"),
        );
        store
            .append(
                &StreamId::new("live-1").expect("id"),
                ExpectedVersion::Any,
                vec![event],
                AppendOptions::default(),
            )
            .await
            .expect("append")
    });
    let frame = tokio::time::timeout(std::time::Duration::from_secs(1), body.frame())
        .await
        .expect("the append arrives within a second")
        .expect("a frame")
        .expect("no error");
    let text = String::from_utf8_lossy(frame.data_ref().expect("data")).into_owned();
    assert!(text.contains("\"stream_id\":\"live-1\"") && text.contains("\"position\":6"), "{text}");
    appended.await.expect("appended");
}

async fn a_projection_behind_shows_its_lag_until_a_rebuild_catches_it_up<S: ConsoleStore>(
    store: S,
) {
    use std::sync::atomic::AtomicU64;
    for _ in 0..4 {
        let event = EventData::new(
            EventType::new("test.happened").expect("type"),
            Payload::from_value(&serde_json::json!({})).expect("payload"),
        );
        store
            .append(
                &StreamId::new("s-1").expect("id"),
                ExpectedVersion::Any,
                vec![event],
                AppendOptions::default(),
            )
            .await
            .expect("append");
    }
    let checkpoint = Arc::new(AtomicU64::new(1));
    let (seen, caught_up) = (checkpoint.clone(), checkpoint.clone());
    let control = ProjectionControl::new(ProjectionName::new("view").expect("name"))
        .status(move || {
            let at = seen.load(Ordering::SeqCst);
            async move { es_console::ProjectionStatus::new("running", Some(Position::new(at))) }
        })
        .rebuild(move || {
            caught_up.store(4, Ordering::SeqCst);
            async { Ok("rebuilt".to_owned()) }
        });
    let config = ConsoleConfig::new().token(ADMIN, Role::Admin).expect("token");
    let app = Console::new(store, config).projection(control).router();
    let lag = |body: &str| {
        let start = body.find("<td class=\"num lag\">").expect("a lag cell") + 20;
        body[start..].split('<').next().expect("text").to_owned()
    };
    let before = send(&app, get("/projections", Some(ADMIN))).await;
    assert_eq!(lag(&before.body), "3", "head 4, checkpoint 1");
    assert!(before.body.contains("href=\"/projections/view\""), "at the root, links start at /");
    let after = send(&app, post("/projections/view/rebuild", Some(ADMIN), "")).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(lag(&after.body), "0", "the rebuild caught up");
}

/// A page of large events stops at its byte budget and links to the rest; one large payload is
/// cut, and the page says how much is shown.
async fn large_payloads_are_cut_and_a_heavy_page_ends_early<S: ConsoleStore>(store: S) {
    let big = "x".repeat(300 * 1024);
    let stream = StreamId::new("heavy-1").expect("id");
    for _ in 0..20 {
        let event = EventData::new(
            EventType::new("test.heavy").expect("type"),
            Payload::from_value(&serde_json::json!({ "blob": big })).expect("payload"),
        );
        store
            .append(&stream, ExpectedVersion::Any, vec![event], AppendOptions::default())
            .await
            .expect("append");
    }
    let many = StreamId::new("heavy-2").expect("id");
    let medium = "y".repeat(60 * 1024);
    for _ in 0..4 {
        let events = (0..20)
            .map(|_| {
                EventData::new(
                    EventType::new("test.heavy").expect("type"),
                    Payload::from_value(&serde_json::json!({ "blob": medium })).expect("payload"),
                )
            })
            .collect();
        store
            .append(&many, ExpectedVersion::Any, events, AppendOptions::default())
            .await
            .expect("append");
    }
    let config = ConsoleConfig::new().token(VIEWER, Role::ReadOnly).expect("token");
    let app = Console::new(store, config).router();
    let cut = send(&app, get("/streams/heavy-2?limit=1000", Some(VIEWER))).await;
    assert_eq!(cut.status, StatusCode::OK);
    let shown = cut.body.matches("<tr id=\"v").count();
    assert!((60..80).contains(&shown), "80 events of 60 KiB pass the 4 MiB budget: {shown} shown");
    assert!(cut.body.contains(&format!("This page stops at {shown} events")), "the page says so");
    let next = format!(
        "href=\"/streams/heavy-2?from={}&amp;dir=forward&amp;limit=1000\" rel=\"next\"",
        shown + 1
    );
    assert!(cut.body.contains(&next), "the next page starts at the first event left out");
    let rest =
        send(&app, get(&format!("/streams/heavy-2?from={}&limit=1000", shown + 1), Some(VIEWER)))
            .await;
    assert_eq!(rest.body.matches("<tr id=\"v").count(), 80 - shown, "and holds the rest");
    let page = send(&app, get("/streams/heavy-1?limit=1000", Some(VIEWER))).await;
    assert_eq!(page.status, StatusCode::OK);
    let shown = page.body.matches("<tr id=\"v").count();
    assert_eq!(shown, 20, "64 KiB of each payload is shown: 20 fit in 4 MiB");
    assert_eq!(
        page.body.matches("… cut: 65,536 of 307,").count(),
        20,
        "each payload says it was cut"
    );
    assert!(page.body.len() < 5 * 1024 * 1024, "the page stays small: {} bytes", page.body.len());
}

/// Sessions: two sign-ins live side by side, a session ends when its time is up, and a form is
/// read up to 16 KiB.
#[tokio::test]
async fn sessions_expire_and_forms_are_bounded() {
    let config = ConsoleConfig::new()
        .token(ADMIN, Role::Admin)
        .expect("token")
        .session_ttl(std::time::Duration::from_millis(1_500));
    let app = Router::new().nest("/console", Console::new(memory(), config).router());
    let first = sign_in(&app, ADMIN).await;
    let second = sign_in(&app, ADMIN).await;
    assert_ne!(first.0, second.0, "each sign-in opens its own session");
    for (session, _) in [&first, &second] {
        let page = Request::get("/console").header(header::COOKIE, session).body(Body::empty());
        assert_eq!(send(&app, page.expect("request")).await.status, StatusCode::OK, "both live");
    }
    // A form well within the bound is read (the padding is ignored); one past it is refused.
    let (session, csrf) = &first;
    let padded = format!("csrf={csrf}&padding={}", "p".repeat(8 * 1024));
    let answer = send(
        &app,
        browser_post("/console/projections/nope/rebuild", session, &padded, "same-origin"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "read, checked, then no such projection");
    let huge = format!("csrf={csrf}&padding={}", "p".repeat(20 * 1024));
    let answer = send(
        &app,
        browser_post("/console/projections/nope/rebuild", session, &huge, "same-origin"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    let page = Request::get("/console").header(header::COOKIE, &first.0).body(Body::empty());
    assert_eq!(
        send(&app, page.expect("request")).await.status,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
}

/// A caller the application's authorizer admits (a proxy's header) gets a session, and its forms
/// need that session's CSRF token like any browser's; a request the authorizer refuses is 401.
#[tokio::test]
async fn an_authorizer_admits_by_the_applications_rule_with_csrf_on_changes() {
    let config =
        ConsoleConfig::new().authorizer(Arc::new(|headers: &axum::http::HeaderMap| match headers
            .get("x-proxy-user")
            .and_then(|v| v.to_str().ok())
        {
            Some("ops") => Some(Role::Admin),
            Some("audit") => Some(Role::ReadOnly),
            _ => None,
        }));
    let rebuilt = Arc::new(AtomicU32::new(0));
    let counter = rebuilt.clone();
    let control =
        ProjectionControl::new(ProjectionName::new("view").expect("name")).rebuild(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok("rebuilt".to_owned()) }
        });
    let app =
        Router::new().nest("/console", Console::new(memory(), config).projection(control).router());
    let with_user =
        |user: &str, request: axum::http::request::Builder| request.header("x-proxy-user", user);
    let refused = send(
        &app,
        with_user("stranger", Request::get("/console")).body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let first = send(
        &app,
        with_user("ops", Request::get("/console")).body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let cookie = first.headers[header::SET_COOKIE].to_str().expect("ascii").to_owned();
    let session = cookie.split(';').next().expect("pair").to_owned();
    let start = first.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = first.body[start..start + 64].to_owned();
    assert_eq!(csrf.len(), 64, "a real token");
    let post = |form: String| {
        with_user("ops", Request::post("/console/projections/view/rebuild"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, &session)
            .body(Body::from(form))
            .expect("request")
    };
    assert_eq!(send(&app, post(String::new())).await.status, StatusCode::FORBIDDEN, "no token");
    assert_eq!(rebuilt.load(Ordering::SeqCst), 0);
    assert_eq!(send(&app, post(format!("csrf={csrf}"))).await.status, StatusCode::OK);
    assert_eq!(rebuilt.load(Ordering::SeqCst), 1);
    // Without the session cookie the authorizer admits again, with a new session and token.
    let ambient = with_user("ops", Request::post("/console/projections/view/rebuild"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .expect("request");
    assert_eq!(send(&app, ambient).await.status, StatusCode::FORBIDDEN, "another session's token");
    let reader = send(
        &app,
        with_user("audit", Request::get("/console/projections/view/rebuild"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(reader.status, StatusCode::FORBIDDEN, "a read-only caller by the authorizer");
}

/// One test per case and backend: `memory::case` and `postgres::case`.
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
                    let fresh = es_postgres::testing::FreshSchema::new().await;
                    super::$case(fresh.default_tenant()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_console_without_credentials_configured_is_off,
    every_page_refuses_a_caller_without_a_valid_token,
    every_page_renders_for_a_reader_with_strict_security_headers,
    pages_show_what_the_store_holds,
    bad_input_is_refused_with_a_reason_never_a_server_error,
    only_an_admin_acts_and_each_action_runs_once,
    a_browser_session_changes_state_only_with_its_csrf_token_from_its_own_site,
    an_admin_forgets_a_subject_and_the_audit_trail_shows_it,
    the_live_tail_sends_an_append_as_it_commits,
    a_projection_behind_shows_its_lag_until_a_rebuild_catches_it_up,
    large_payloads_are_cut_and_a_heavy_page_ends_early,
);

/// The live tail ends when the application's shutdown signal fires (a graceful shutdown does not
/// wait for the browsers that follow the log).
#[tokio::test]
async fn the_live_tail_ends_at_the_shutdown_signal() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ConsoleConfig::new().token(VIEWER, Role::ReadOnly).expect("token");
    let app = Console::new(memory(), config)
        .live_until(async move {
            let _ = stopped.await;
        })
        .router();
    let response = app.oneshot(get("/log/live", Some(VIEWER))).await.expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let open = tokio::time::timeout(std::time::Duration::from_millis(200), body.frame()).await;
    assert!(open.is_err(), "the stream stays open while nothing happens");
    stop.send(()).expect("the console listens");
    let end = tokio::time::timeout(std::time::Duration::from_secs(2), body.frame())
        .await
        .expect("the stream ends at once");
    assert!(end.is_none(), "no frame after the signal: {end:?}");
}
