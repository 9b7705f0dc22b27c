//! A small HTTP/1.1 client over `std::net`, enough for the soak clients (keep-alive,
//! cookies) and for WebDriver (JSON bodies), so that xtask stays free of an async stack.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::Result;

/// One response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive connection to one server; reconnects when the server closed it.
pub(crate) struct Conn {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr, timeout: Duration) -> Conn {
        Conn { addr, timeout, stream: None }
    }

    fn connect(&mut self) -> Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.timeout)
                .map_err(|e| format!("connect to {}: {e}", self.addr))?;
            s.set_read_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
            let _ = s.set_nodelay(true);
            self.stream = Some(BufReader::new(s));
        }
        Ok(self.stream.as_mut().expect("connected above"))
    }

    /// Sends one request and reads its response. `headers` are extra `Name: value` pairs.
    pub(crate) fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
        let addr = self.addr;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let outcome = (|| {
            let stream = self.connect()?;
            let w = stream.get_mut();
            w.write_all(head.as_bytes()).and_then(|()| w.write_all(body)).map_err(|e| format!("write: {e}"))?;
            read_response(stream, method == "HEAD")
        })();
        match outcome {
            Ok((response, keep)) => {
                if !keep {
                    self.stream = None;
                }
                Ok(response)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

fn read_line(r: &mut BufReader<TcpStream>) -> Result<String> {
    let mut line = String::new();
    let n = r.read_line(&mut line).map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads a response; also says whether the connection may be reused.
fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> Result<(Response, bool)> {
    let status_line = read_line(r)?;
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default().to_owned();
    let status: u16 =
        parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut response = Response { status, headers, body: Vec::new() };
    let close = response.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) || version == "HTTP/1.0";
    if head_only || status == 204 || status == 304 {
        return Ok((response, !close));
    }
    if response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let size_line = read_line(r)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|_| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                while !read_line(r)?.is_empty() {}
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            r.read_exact(&mut response.body[start..]).map_err(|e| format!("read: {e}"))?;
            read_line(r)?;
        }
        Ok((response, !close))
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| format!("bad content-length {len:?}"))?;
        response.body.resize(len, 0);
        r.read_exact(&mut response.body).map_err(|e| format!("read: {e}"))?;
        Ok((response, !close))
    } else {
        r.read_to_end(&mut response.body).map_err(|e| format!("read: {e}"))?;
        Ok((response, false))
    }
}
