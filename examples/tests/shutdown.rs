//! The service binary under clients that misbehave (issue 11, item 11): partial requests time out,
//! and SIGTERM or SIGINT stops the service within its deadline whatever the clients hold open.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bank on the in-memory store, on a free loopback port; returns the process and its address.
fn start_bank() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(["--store", "memory", "serve", "--listen", "127.0.0.1:0"])
        .args(["--header-timeout", "1", "--shutdown-deadline", "2"])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the bank printed its address").unwrap();
        if let Some(address) = line.strip_prefix("listening on http://") {
            break address.to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args(["-s", name, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Waits for the child to exit; panics after `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the service did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ready(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else { return false };
    let request =
        format!("GET /health/ready HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn wait_ready(address: &str) {
    for _ in 0..200 {
        if ready(address) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the service did not become ready");
}

/// A client that sends half its headers and stops is disconnected after the header timeout.
#[test]
fn partial_headers_time_out() {
    let (mut child, address) = start_bank();
    wait_ready(&address);
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    assert!(read.is_ok(), "the server closed the connection (not our read timeout): {read:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    signal(&child, "TERM");
    assert!(exit_within(&mut child, Duration::from_secs(10)).success());
}

/// SIGTERM and SIGINT both stop the service, within the deadline, even with 50 clients holding
/// partial requests and one holding a request whose body never finishes.
#[test]
fn termination_signals_stop_within_the_deadline_whatever_clients_hold() {
    for name in ["TERM", "INT"] {
        let (mut child, address) = start_bank();
        wait_ready(&address);
        let mut held = Vec::new();
        for _ in 0..50 {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.write_all(b"POST /accounts HTTP/1.1\r\nhost: x\r\n").unwrap();
            held.push(stream);
        }
        let mut body = TcpStream::connect(&address).unwrap();
        body.write_all(
            b"POST /accounts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":",
        )
        .unwrap();
        held.push(body);
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        signal(&child, name);
        let status = exit_within(&mut child, Duration::from_secs(8));
        assert!(status.success(), "SIG{name}: {status}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIG{name}: stopped after {:?} (deadline 2 s)",
            started.elapsed()
        );
        drop(held);
    }
}
