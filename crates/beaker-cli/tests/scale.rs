//! 100 000 sessions in a SQLite store: the tool counts and lists them page by page, and no
//! page is larger than the page size asked for, so its memory is bounded by the page size
//! and not by the store.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_cli::Scan;
use beaker_rs::store::{Owner, Record, SessionStore, StoreKey};
use beaker_rs::{DataSerializer, SessionConfig, SessionId};
use common::beaker;

const SESSIONS: u64 = 100_000;
const PAGE: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_sessions_are_scanned_in_bounded_pages() {
    // In memory where the machine has a tmpfs: filing 100k sessions one commit at a time
    // is bound by fsync on a disk, and the test is about the scan.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("big.sqlite3").display());
    let config = SessionConfig::new().with_url(url.clone());
    let store: Arc<dyn SessionStore> = beaker_rs::session_store(&config).await.unwrap();
    let started = std::time::Instant::now();
    let now = SystemTime::now();
    let value = DataSerializer::Json.encode("x").unwrap();
    // Filed by a few writers at once; SQLite serialises them.
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (store, value) = (Arc::clone(&store), value.clone());
        writers.push(tokio::spawn(async move {
            for i in (w..SESSIONS).step_by(8) {
                let record = Record {
                    entries: [("v".to_owned(), value.clone())].into_iter().collect(),
                    created: now,
                    accessed: now,
                    expires: Some(now + Duration::from_secs(3600)),
                    owner: (i % 1000 == 0).then(|| Owner { principal: "big".into(), device: None }),
                };
                let key = StoreKey::for_id(&SessionId::generate(), true);
                assert!(store.create(&key, &record).await.unwrap());
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    eprintln!("filed {SESSIONS} sessions in {:?}", started.elapsed());

    let mut scan = Scan::new(Arc::clone(&store), PAGE);
    let (mut seen, mut pages, mut largest) = (0u64, 0u64, 0usize);
    while let Some(page) = scan.next_page().await.unwrap() {
        largest = largest.max(page.items.len());
        seen += page.items.len() as u64;
        pages += 1;
    }
    assert_eq!(seen, SESSIONS, "every session is scanned once");
    assert!(largest <= PAGE, "a page held {largest} sessions, more than the {PAGE} asked for");
    assert!(pages >= SESSIONS / PAGE as u64, "{pages} pages");
    eprintln!("scanned them in {pages} pages, {:?} in all", started.elapsed());

    let env = [("BEAKER_SESSION_URL".to_owned(), url.clone())];
    let counted = beaker(&env, &["sessions", "count", "--scan", "--page-size", "1000"]);
    assert!(counted.stderr.is_empty(), "no progress bar off a terminal: {:?}", counted.stderr);
    assert_eq!(counted.ok().trim(), SESSIONS.to_string());
    progress_on_a_terminal(&url);
    let listed = beaker(&env, &["sessions", "list", "--page-size", "1000"]).ok();
    assert_eq!(listed.lines().count() as u64, SESSIONS + 1, "a header and one line per session");
    closing_the_output_ends_quietly(&url);
    let mine = beaker(&env, &["--json", "sessions", "list", "--principal", "big"]).json();
    assert_eq!(mine.as_array().unwrap().len() as u64, SESSIONS / 1000);
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), a scan draws its
/// progress on stderr.
fn progress_on_a_terminal(url: &str) {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        beaker_testkit::skip_or_fail("progress on a terminal", "no `script` (util-linux) to provide a terminal");
        return;
    }
    let command = format!("{} sessions count --scan --page-size 100", env!("CARGO_BIN_EXE_beaker"));
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("BEAKER_SESSION_URL", url)
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("counting sessions"), "no progress drawn on a terminal: {screen:?}");
    assert!(screen.contains(&SESSIONS.to_string()), "{screen:?}");
}

/// `beaker sessions list | head -1`: once the reader has gone, the listing stops with
/// status 0 and nothing on stderr.
fn closing_the_output_ends_quietly(url: &str) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_beaker"))
        .args(["sessions", "list"])
        .env_clear()
        .env("BEAKER_SESSION_URL", url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("HANDLE"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
