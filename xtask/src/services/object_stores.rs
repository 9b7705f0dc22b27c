//! Object-storage emulators for beaker-object-store: S3 (moto's server mode, from PyPI)
//! and Azure Blob (Azurite, from npm), installed once under `target/emulators/` and
//! started on free loopback ports, with the buckets the tests and the demo use.
//!
//! GCS has no emulator here: gcp-storage-emulator ignores generation preconditions and
//! answers 501 to HEAD and to XML-API listings, and the fake-gcs-server wheel refuses
//! object_store's XML-API uploads, so neither can run the suites. The GCS tests run when
//! `BEAKER_TEST_GCS_URL` names a real bucket.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Missing, Services};
use std::time::Duration;

use crate::host::{free_port, Throwaway};
use crate::Result;

/// The buckets (containers) every run creates: one for the tests, one for the demo.
const BUCKETS: [&str; 2] = ["beaker-test", "beaker-demo"];

/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn emulators_dir() -> PathBuf {
    crate::host::target_dir().join("emulators")
}

fn quiet(cmd: &mut Command) -> std::result::Result<(), String> {
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{:?} failed: {}", cmd.get_program(), err.lines().last().unwrap_or("")))
    }
}

/// The venv's python with moto and the Azure SDK (for creating containers), installed on
/// first use.
fn python(dir: &Path) -> std::result::Result<PathBuf, String> {
    let venv = dir.join("venv");
    let py = venv.join("bin").join("python");
    let ready = venv.join(".beaker-ready");
    if !ready.exists() {
        eprintln!("installing moto[server] and azure-storage-blob into {} ...", venv.display());
        quiet(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        quiet(Command::new(&py).args(["-m", "pip", "install", "-q", "moto[server]", "azure-storage-blob"]))?;
        std::fs::write(&ready, b"").map_err(|e| e.to_string())?;
    }
    Ok(py)
}

/// Azurite's blob server, installed on first use.
fn azurite(dir: &Path) -> std::result::Result<PathBuf, String> {
    let prefix = dir.join("node");
    let bin = prefix.join("node_modules").join(".bin").join("azurite-blob");
    if !bin.exists() {
        eprintln!("installing azurite into {} ...", prefix.display());
        std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
        quiet(Command::new("npm").arg("install").arg("--silent").arg("--prefix").arg(&prefix).arg("azurite"))?;
    }
    Ok(bin)
}

impl Services {
    pub(super) fn object_stores(&mut self) -> Result {
        let dir = emulators_dir();
        if !self.given("BEAKER_TEST_S3_URL") {
            if let Err(why) = self.moto(&dir) {
                self.missing.push(Missing { suite: "s3 (moto)", why });
            }
        }
        if !self.given("BEAKER_TEST_AZURE_URL") {
            if let Err(why) = self.azurite(&dir) {
                self.missing.push(Missing { suite: "azure (Azurite)", why });
            }
        }
        Ok(())
    }

    fn moto(&mut self, dir: &Path) -> std::result::Result<(), String> {
        let py = python(dir)?;
        let port = free_port()?;
        let mut cmd = Command::new(&py);
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        self.servers.push(Throwaway::start_within(cmd, port, Duration::from_secs(60))?);
        let endpoint = format!("http://127.0.0.1:{port}");
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\nfor b in {BUCKETS:?}:\n    s3.create_bucket(Bucket=b)\n"
        );
        quiet(Command::new(&py).arg("-c").arg(script))?;
        for (k, v) in [
            ("BEAKER_TEST_S3_URL", "s3://beaker-test".to_owned()),
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ] {
            self.env.push((k.into(), v));
        }
        Ok(())
    }

    fn azurite(&mut self, dir: &Path) -> std::result::Result<(), String> {
        let py = python(dir)?;
        let bin = azurite(dir)?;
        let port = free_port()?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            // Azurite writes its debug log and settings to the working directory.
            .current_dir(&self.dir);
        self.servers.push(Throwaway::start_within(cmd, port, Duration::from_secs(60))?);
        let endpoint = format!("http://127.0.0.1:{port}");
        let script = format!(
            "from azure.storage.blob import BlobServiceClient\n\
             c = BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};\
             AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};')\n\
             for b in {BUCKETS:?}:\n    c.create_container(b)\n"
        );
        quiet(Command::new(&py).arg("-c").arg(script))?;
        for (k, v) in [
            ("BEAKER_TEST_AZURE_URL", "az://beaker-test".to_owned()),
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", endpoint),
        ] {
            self.env.push((k.into(), v));
        }
        Ok(())
    }
}
