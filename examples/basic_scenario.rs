//! The scenario every `examples/*-basic` passes, over real HTTP against its binary (shared
//! by their `tests/http.rs`; not part of what a user copies).

use std::process::{Command, Stdio};

use beaker_testkit::process::LocalServer;

pub(crate) async fn run(binary: &'static str) {
    refuses_to_start_without_a_secret(binary);
    let server = LocalServer::start(move |port| {
        Command::new(binary)
            .env("PORT", port.to_string())
            .env("BEAKER_SESSION_SECRET", "a test secret of the basic examples: 32 bytes or more")
            .env_remove("BEAKER_SESSION_URL")
            .env_remove("BEAKER_SESSION_TYPE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    })
    .await
    .unwrap_or_else(|e| panic!("{binary} did not start: {e}"));
    let base = format!("http://{}", server.addr());
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let send = |req: reqwest::RequestBuilder| async move {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let cookies: Vec<String> =
            res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        (status, res.text().await.unwrap(), cookies)
    };

    let (status, body, cookies) = send(browser.get(format!("{base}/"))).await;
    assert_eq!((status, body.as_str()), (200, "hello stranger, 0 visits\n"));
    assert!(cookies.is_empty(), "reading an empty session sets no cookie: {cookies:?}");
    for n in 1..=3 {
        let (status, body, _) = send(browser.post(format!("{base}/counter"))).await;
        assert_eq!((status, body), (200, format!("{n}\n")));
    }
    let (_, body, _) = send(browser.get(format!("{base}/"))).await;
    assert_eq!(body, "hello stranger, 3 visits\n");

    // Another client has its own session.
    let other = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let (_, body, _) = send(other.post(format!("{base}/counter"))).await;
    assert_eq!(body, "1\n");

    let (status, body, cookies) = send(browser.post(format!("{base}/login")).form(&[("name", "ada")])).await;
    assert_eq!((status, body.as_str()), (200, "logged in as ada\n"));
    assert_eq!(cookies.len(), 1, "login gives a fresh id: {cookies:?}");
    let (_, body, _) = send(browser.get(format!("{base}/"))).await;
    assert_eq!(body, "hello ada, 3 visits\n", "the login kept the counter");

    let (status, body, cookies) = send(browser.post(format!("{base}/logout"))).await;
    assert_eq!((status, body.as_str()), (200, "logged out\n"));
    assert!(cookies.iter().any(|c| c.contains("Max-Age=0") || c.contains("Expires=Thu, 01 Jan 1970")), "{cookies:?}");
    let (_, body, _) = send(browser.get(format!("{base}/"))).await;
    assert_eq!(body, "hello stranger, 0 visits\n", "logout ended the whole session");

    let (status, _, _) = send(browser.post(format!("{base}/login")).form(&[("nobody", "x")])).await;
    assert!((400..500).contains(&status), "a login without a name is refused, got {status}");
}

/// An example is what users copy: it never falls back to a public secret.
fn refuses_to_start_without_a_secret(binary: &str) {
    let mut child = Command::new(binary)
        .env("PORT", "0")
        .env_remove("BEAKER_SESSION_SECRET")
        .env_remove("BEAKER_SESSION_URL")
        .env_remove("BEAKER_SESSION_TYPE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{binary} started without BEAKER_SESSION_SECRET");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(!status.success(), "{binary} without a secret exited with {status}");
    assert!(stderr.contains("BEAKER_SESSION_SECRET"), "the error should name the variable: {stderr}");
}
