//! `beaker config check`, configuration files, `--help` and exit statuses.

mod common;

use common::beaker;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const SECRET: &str = "a long secret nobody may see";

#[test]
fn check_prints_a_good_ini_file_resolved_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(
        &dir,
        "production.ini",
        &format!(
            "[server:main]\nport = 8080\n\n[app:main]\nuse = egg:shop\n\
             beaker.session.type = file\nbeaker.session.data_dir = %(here)s/sessions\n\
             beaker.session.secret = {SECRET}\nbeaker.session.timeout = 600\n\
             beaker.cache.regions = short, long\nbeaker.cache.short.expire = 60\n\
             beaker.cache.long.url = postgres://shop:hunter2@db.invalid/shop\n"
        ),
    );
    let out = beaker(&[], &["--config", &ini, "config", "check", "--offline"]).ok();
    assert!(!out.contains(SECRET) && !out.contains("hunter2"), "a secret was printed:\n{out}");
    assert!(out.contains("secret = [\"********\"]"), "{out}");
    assert!(out.contains("postgres://shop:********@db.invalid/shop"), "{out}");
    assert!(out.contains("timeout = 600"), "{out}");
    assert!(out.contains(&format!("{}/sessions", dir.path().canonicalize().unwrap().display())), "{out}");
    assert!(out.contains("[cache.short]") && out.contains("expire = 60"), "{out}");
    // Opening the stores: the file store opens, the unreachable PostgreSQL host fails,
    // named by its option.
    let opened = beaker(&[], &["--config", &ini, "config", "check"]);
    assert_eq!(opened.code, 1, "{}", opened.stdout);
    assert!(opened.stderr.contains("cache.long.url"), "{}", opened.stderr);
}

#[test]
fn check_rejects_bad_files_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!("[app:main]\nsession.type = file\nsession.secret = {SECRET}\n");
    for (text, option) in [
        ("session.timeout = soon\n", "session.timeout"),
        ("beaker.session.colour = blue\n", "beaker.session.colour"),
        ("session.samesite = sometimes\n", "session.samesite"),
        ("beaker.cache.regions = short\nbeaker.cache.short.expire = later\n", "beaker.cache.short.expire"),
        ("session.lock_dir = /tmp\n", "session.lock_dir"),
    ] {
        let path = write(&dir, "bad.ini", &format!("{base}{text}"));
        let run = beaker(&[], &["--config", &path, "config", "check", "--offline"]);
        assert_eq!(run.code, 1, "{text}: {}", run.stdout);
        assert!(run.stderr.contains(option), "{text}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(run.stderr.starts_with("beaker: error:"), "{}", run.stderr);
    }
    let no_secret = write(&dir, "nosecret.ini", "[app:main]\nsession.type = file\n");
    let run = beaker(&[], &["--config", &no_secret, "config", "check", "--offline"]);
    assert!(run.code == 1 && run.stderr.contains("session.secret"), "{}", run.stderr);
    let toml = write(&dir, "bad.toml", &format!("[session]\nsecret = \"{SECRET}\"\ntimeout = \"soon\"\n"));
    let run = beaker(&[], &["--config", &toml, "config", "check", "--offline"]);
    assert!(run.code == 1 && run.stderr.contains("session.timeout"), "{}", run.stderr);
    let stray = write(&dir, "stray.toml", "[sessions]\ntimeout = 5\n");
    let run = beaker(&[], &["--config", &stray, "config", "check", "--offline"]);
    assert!(run.code == 1 && run.stderr.contains("sessions"), "{}", run.stderr);
    let garbled = write(&dir, "garbled.ini", "[app:main\nsession.type = file\n");
    let run = beaker(&[], &["--config", &garbled, "config", "check"]);
    assert!(run.code == 1 && run.stderr.contains("line 1"), "{}", run.stderr);
    let run = beaker(&[], &["--config", "/nonexistent/beaker.ini", "config", "check"]);
    assert!(run.code == 1 && run.stderr.contains("/nonexistent/beaker.ini"), "{}", run.stderr);
}

#[test]
fn check_reads_toml_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let toml = write(
        &dir,
        "beaker.toml",
        &format!(
            "[session]\nurl = \"file://{}\"\nsecret = \"{SECRET}\"\n\n[cache]\nregions = [\"short\"]\n\n\
             [cache.short]\nexpire = 30\n",
            dir.path().display()
        ),
    );
    let doc = beaker(&[], &["--json", "--config", &toml, "config", "check"]).json();
    assert_eq!(doc["session"]["type"], "file");
    assert_eq!(doc["cache"]["regions"]["short"]["expire"], 30);
    assert!(!doc.to_string().contains(SECRET));

    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let url = format!("file://{}", dir.path().display());
    let good = env(&[("BEAKER_SESSION_URL", &url), ("BEAKER_SESSION_SECRET", SECRET)]);
    let out = beaker(&good, &["config", "check"]).ok();
    assert!(out.contains("from the environment") && out.contains("type = \"file\""), "{out}");
    let bad = env(&[("BEAKER_SESSION_URL", &url), ("BEAKER_SESSION_SECRET", SECRET), ("BEAKER_SESSION_TIMEOUT", "x")]);
    let run = beaker(&bad, &["config", "check"]);
    assert!(run.code == 1 && run.stderr.contains("BEAKER_SESSION_TIMEOUT"), "{}", run.stderr);
    let run = beaker(&env(&[("BEAKER_SESSION_URL", &url)]), &["config", "check"]);
    assert!(run.code == 1 && run.stderr.contains("BEAKER_SESSION_SECRET"), "{}", run.stderr);
}

#[test]
fn sessions_need_a_server_store_named_by_its_option() {
    let run = beaker(&[], &["sessions", "count"]);
    assert!(run.code == 1 && run.stderr.contains("BEAKER_SESSION_URL"), "{}", run.stderr);
    let memory = [("BEAKER_SESSION_URL".to_owned(), "memory:".to_owned())];
    let run = beaker(&memory, &["sessions", "list"]);
    assert!(run.code == 1 && run.stderr.contains("BEAKER_SESSION_URL"), "{}", run.stderr);
    assert!(run.stderr.contains("server store"), "{}", run.stderr);
}

#[test]
fn help_is_a_manual_and_usage_errors_exit_with_2() {
    let help = beaker(&[], &["--help"]).ok();
    for section in ["CONFIGURATION", "SESSION HANDLES", "EXIT STATUS", "sessions", "cache", "config"] {
        assert!(help.contains(section), "--help lacks {section}:\n{help}");
    }
    let sub = beaker(&[], &["sessions", "end", "--help"]).ok();
    assert!(sub.contains("retired_window"), "{sub}");
    assert_eq!(beaker(&[], &["sessions", "frobnicate"]).code, 2);
    assert_eq!(beaker(&[], &["sessions", "list", "--page-size", "0"]).code, 2);
    // A handle of the wrong shape is refused before any store is opened.
    let run = beaker(&[], &["sessions", "show", "not-a-handle"]);
    assert!(run.code == 2 && run.stderr.contains("not a session handle"), "{}", run.stderr);
    // A session id is not a handle either.
    let id = beaker_rs::SessionId::generate();
    let run = beaker(&[], &["sessions", "end", id.expose()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}
