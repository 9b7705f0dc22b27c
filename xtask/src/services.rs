//! The services the test suites talk to: the machine's own Redis, PostgreSQL and MariaDB
//! when they answer, and throwaway `memcached`, `redis-server` and a three-node Redis
//! Cluster started here on free loopback ports (stopped when the run ends), and the
//! object-storage emulators (`object_stores.rs`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::host::{free_port, free_ports, have, reachable, Throwaway};
use crate::Result;

mod object_stores;

/// A service the run could not provide, and the suites that therefore skip.
pub(crate) struct Missing {
    pub(crate) suite: &'static str,
    pub(crate) why: String,
}

/// The services of one run; dropping it stops what it started.
pub(crate) struct Services {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) missing: Vec<Missing>,
    pub(super) servers: Vec<Throwaway>,
    dir: PathBuf,
}

impl Services {
    pub(crate) fn start() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("beaker-xtask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut s = Services { env: Vec::new(), missing: Vec::new(), servers: Vec::new(), dir };
        s.redis()?;
        s.sql("BEAKER_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test", "127.0.0.1:5432", "postgres");
        s.sql("BEAKER_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test", "127.0.0.1:3306", "mysql");
        s.memcached()?;
        s.redis_cluster()?;
        s.object_stores()?;
        Ok(s)
    }

    /// Only the object-storage emulators (the benchmark's object-store rows).
    pub(crate) fn start_object_stores() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("beaker-xtask-objects-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut s = Services { env: Vec::new(), missing: Vec::new(), servers: Vec::new(), dir };
        s.object_stores()?;
        Ok(s)
    }

    fn given(&mut self, var: &str) -> bool {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => {
                self.env.push((var.into(), v));
                true
            }
            _ => false,
        }
    }

    fn redis(&mut self) -> Result {
        const VAR: &str = "BEAKER_TEST_REDIS_URL";
        if self.given(VAR) {
            return Ok(());
        }
        if reachable("127.0.0.1:6379") {
            self.env.push((VAR.into(), "redis://127.0.0.1:6379".into()));
        } else if have("redis-server", "--version") {
            let port = free_port()?;
            self.spawn_redis(port, &[])?;
            self.env.push((VAR.into(), format!("redis://127.0.0.1:{port}")));
        } else {
            self.missing.push(Missing { suite: "redis", why: "nothing on 127.0.0.1:6379 and no redis-server".into() });
        }
        Ok(())
    }

    /// Python Beaker 1.14 for the interop tests (`crates/beaker-rs/tests/beaker_interop.rs`),
    /// in a venv made on first use (so only `test` asks for it).
    pub(crate) fn python_beaker(&mut self) {
        const VAR: &str = "BEAKER_TEST_PYTHON";
        if self.given(VAR) {
            return;
        }
        match crate::python_beaker::interpreter() {
            Ok(python) => self.env.push((VAR.into(), python.to_string_lossy().into_owned())),
            Err(why) => self.missing.push(Missing { suite: "beaker-interop", why }),
        }
    }

    fn sql(&mut self, var: &str, default: &str, addr: &str, suite: &'static str) {
        if self.given(var) {
            return;
        }
        if reachable(addr) {
            self.env.push((var.into(), default.into()));
        } else {
            self.missing.push(Missing { suite, why: format!("nothing listens on {addr}") });
        }
    }

    fn memcached(&mut self) -> Result {
        const VAR: &str = "BEAKER_TEST_MEMCACHED_URL";
        if self.given(VAR) {
            return Ok(());
        }
        if !have("memcached", "--version") {
            self.missing
                .push(Missing { suite: "memcached", why: "no memcached binary (apt-get install -y memcached)".into() });
            return Ok(());
        }
        let port = free_port()?;
        let mut cmd = Command::new("memcached");
        cmd.args(["-u", "root", "-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-I", "4m", "-m", "256"]);
        match Throwaway::start(cmd, port) {
            Ok(server) => {
                self.servers.push(server);
                self.env.push((VAR.into(), format!("memcached://127.0.0.1:{port}")));
            }
            Err(why) => self.missing.push(Missing { suite: "memcached", why }),
        }
        Ok(())
    }

    fn spawn_redis(&mut self, port: u16, extra: &[&str]) -> Result {
        self.servers.push(Throwaway::redis_on(port, &self.dir, extra)?);
        Ok(())
    }

    fn redis_cluster(&mut self) -> Result {
        const VAR: &str = "BEAKER_TEST_REDIS_CLUSTER_URL";
        if self.given(VAR) {
            return Ok(());
        }
        if !have("redis-server", "--version") || !have("redis-cli", "--version") {
            self.missing.push(Missing { suite: "redis-cluster", why: "no redis-server / redis-cli".into() });
            return Ok(());
        }
        // The bus ports chosen free too, all six ports different: the default bus port,
        // port + 10,000, does not exist for a port above 55535, and redis-server then
        // refuses to start.
        let [p0, p1, p2, b0, b1, b2] = free_ports::<6>()?;
        let ports = [p0, p1, p2];
        for (p, bus) in ports.into_iter().zip([b0, b1, b2]) {
            let conf = self.dir.join(format!("nodes-{p}.conf"));
            let conf = conf.to_string_lossy().into_owned();
            let bus = bus.to_string();
            self.spawn_redis(
                p,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-port",
                    &bus,
                ],
            )?;
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !status.success() || !self.cluster_ok(&ports) {
            self.missing.push(Missing { suite: "redis-cluster", why: "the throwaway cluster did not form".into() });
            return Ok(());
        }
        self.env.push((VAR.into(), format!("redis+cluster://{}", nodes.join(","))));
        Ok(())
    }

    fn cluster_ok(&self, ports: &[u16]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let all_ok = ports.iter().all(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            if all_ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Prints the services in use and, loudly, every suite that will skip.
    pub(crate) fn report(&self) {
        eprintln!("== services ==");
        for (k, v) in &self.env {
            eprintln!("  {k}={v}");
        }
        if !self.missing.is_empty() {
            eprintln!("!! SKIPPED SUITES (service unavailable; CI=true would fail) !!");
            for m in &self.missing {
                eprintln!("!!   {}: {}", m.suite, m.why);
            }
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cargo xtask services`: start everything, print the environment, wait for Ctrl-C.
pub(crate) fn hold() -> Result {
    let s = Services::start()?;
    s.report();
    for (k, v) in &s.env {
        println!("export {k}={v}");
    }
    eprintln!("services running; press Ctrl-C to stop them");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
