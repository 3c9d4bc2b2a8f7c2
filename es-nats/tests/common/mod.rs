//! What the NATS tests share: the shared server's address, a client that fails loudly, names
//! no other test uses.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

/// `NATS_URL`, default `nats://127.0.0.1:4222`.
pub fn url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A client of the shared server, or a loud failure: these tests never skip.
pub async fn client() -> async_nats::Client {
    async_nats::connect(url()).await.unwrap_or_else(|error| {
        panic!("NATS is not reachable at {} ({error}); scripts/test.sh starts one", url())
    })
}

/// A stream name and a subject prefix no other test uses.
pub fn unique() -> (String, String) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    (format!("ES_TEST_{}", &id[id.len() - 12..]), format!("t{}", &id[id.len() - 12..]))
}
