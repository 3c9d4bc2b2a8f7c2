//! How the store's pools check a connection before lending it.
//!
//! sqlx's default pings a connection when it lends it (`test_before_acquire`) as well as when it
//! is given back (which no option turns off): two round trips to the server besides each
//! statement, and a single-event append is one statement. A connection that was given back
//! moments ago has just answered that second ping; the first one is for a connection that has
//! sat in the pool, where a server restart or an idle timeout could have closed it unseen. So the
//! store's pools ping a connection when they lend it only if it has been idle for
//! [`PING_AFTER_IDLE`] or longer, and discard one whose ping fails, as sqlx's default does.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;

/// How long a connection may sit in the pool before it is pinged when taken out again.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool options that ping a connection only after [`PING_AFTER_IDLE`] in the pool.
pub(crate) fn options() -> PgPoolOptions {
    PgPoolOptions::new().test_before_acquire(false).before_acquire(|connection, meta| {
        Box::pin(async move {
            if meta.idle_for >= PING_AFTER_IDLE {
                connection.ping().await?;
            }
            Ok(true)
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sqlx::postgres::PgConnectOptions;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::watch;

    use super::*;

    /// A ping as the client sends it: a lone `Sync` message.
    const SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

    /// A TCP proxy to PostgreSQL that counts the pings clients send through it, and closes every
    /// connection when told (as a network device dropping idle connections would).
    struct Proxy {
        address: std::net::SocketAddr,
        pings: Arc<AtomicUsize>,
        close: watch::Sender<u64>,
    }

    impl Proxy {
        async fn start(upstream: String) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let pings = Arc::new(AtomicUsize::new(0));
            let (close, closed) = watch::channel(0u64);
            let counted = Arc::clone(&pings);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let counted = Arc::clone(&counted);
                    let forward = async move {
                        let mut buffer = vec![0u8; 1 << 16];
                        while let Ok(read) = client_read.read(&mut buffer).await {
                            if read == 0 {
                                break;
                            }
                            if buffer[..read] == SYNC {
                                counted.fetch_add(1, Ordering::SeqCst);
                            }
                            if server_write.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let mut closed = closed.clone();
                    closed.mark_unchanged();
                    tokio::spawn(async move {
                        let back = tokio::io::copy(&mut server_read, &mut client_write);
                        tokio::select! {
                            () = forward => {}
                            _ = back => {}
                            _ = closed.changed() => {}
                        }
                    });
                }
            });
            Self { address, pings, close }
        }
    }

    /// A connection lent again at once is not pinged (no round trip more per statement under
    /// load); one that sat in the pool for [`PING_AFTER_IDLE`] is pinged once when lent; and one
    /// closed while it sat there is replaced before the statement. (sqlx itself pings every
    /// connection given back to the pool, in a task of its own: one ping per statement that no
    /// option turns off, counted here as such.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_a_connection_idle_long_enough_is_pinged() {
        let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: the test needs PostgreSQL");
        let direct: PgConnectOptions = url.parse().unwrap();
        let proxy = Proxy::start(format!("{}:{}", direct.get_host(), direct.get_port())).await;
        let through_proxy = direct.host(&proxy.address.ip().to_string()).port(proxy.address.port());
        let pool = options().max_connections(1).connect_with(through_proxy).await.unwrap();
        let one = || sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool);
        // The pings so far, once the last connection given back has had its ping.
        let pings = || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            proxy.pings.load(Ordering::SeqCst)
        };
        let before = pings().await;
        for _ in 0..20 {
            assert_eq!(one().await.unwrap(), 1);
        }
        assert_eq!(pings().await - before, 20, "one ping per statement: sqlx's, on release");

        let before = pings().await;
        tokio::time::sleep(PING_AFTER_IDLE).await;
        assert_eq!(one().await.unwrap(), 1);
        assert_eq!(pings().await - before, 2, "an idle connection is pinged when lent");

        proxy.close.send_modify(|generation| *generation += 1);
        tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(100)).await;
        assert_eq!(one().await.expect("the closed connection is replaced before it is used"), 1);
    }
}
