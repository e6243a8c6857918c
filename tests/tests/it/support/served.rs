//! A `phasegate serve` child process on loopback and a minimal HTTP client
//! for it, for tests of the control API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::phasegate;

/// A running server (killed when dropped) with its address and token.
pub(crate) struct Server {
    /// The server process.
    pub(crate) child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) address: String,
    /// The admin bearer token.
    pub(crate) token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `phasegate --db db serve` in `dir` on a free loopback port (its
/// stderr in `dir/serve.log`) and waits (bounded) until it has written its
/// address.
pub(crate) fn serve(dir: &Path) -> Server {
    let mut command = phasegate(dir);
    command.args(["--db", "db"]);
    serve_with(command, &dir.join("db"), &dir.join("serve.log"))
}

/// Starts `command serve` on a free loopback port, `command` naming the data
/// directory `db` (and anything else, such as `--config`); its stderr goes
/// to `log`. Waits (bounded) until it has written its address.
pub(crate) fn serve_with(mut command: std::process::Command, db: &Path, log: &Path) -> Server {
    // A server killed earlier left its address behind: wait for the new one's.
    let _ = std::fs::remove_file(db.join("control.addr"));
    let child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
        .spawn()
        .expect("serve starts");
    let mut server = Server { child, address: String::new(), token: String::new() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(db.join("control.addr")) {
            if let Some(url) = text.lines().next() {
                server.address = url.trim_start_matches("http://").to_owned();
                server.token = std::fs::read_to_string(db.join("control.token")).expect("token").trim().to_owned();
                return server;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server never wrote its address");
}

impl Server {
    /// Issues user `name` a token through the API with the admin token
    /// (roles on top of phasegate.toml's) and returns the token.
    pub(crate) fn user(&self, name: &str, roles: &[&str]) -> String {
        let body = serde_json::to_vec(&serde_json::json!({"name": name, "roles": roles})).expect("json");
        let (status, issued) = call(self, "POST", "/v1/users", Some(&self.token), None, &body);
        assert_eq!(status, 201, "users add {name}: {issued}");
        issued["token"].as_str().expect("a token").to_owned()
    }
}

/// A JSON request body.
pub(crate) fn json_body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("json")
}

/// One HTTP request; returns the status and the body parsed as JSON (or as a string).
pub(crate) fn call(server: &Server, method: &str, path: &str, token: Option<&str>, principal: Option<&str>, body: &[u8]) -> (u16, Value) {
    call_at(&server.address, method, path, token, principal, body)
}

/// [`call`] to a server's address (`127.0.0.1:PORT`), from any thread.
pub(crate) fn call_at(address: &str, method: &str, path: &str, token: Option<&str>, principal: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(principal) = principal {
        head.push_str(&format!("X-Phasegate-Principal: {principal}\r\n"));
    }
    head.push_str("\r\n");
    raw_at(address, &head, body)
}

/// Sends `head` and `body` as they are (for malformed or unusual headers).
pub(crate) fn raw(server: &Server, head: &str, body: &[u8]) -> (u16, Value) {
    raw_at(&server.address, head, body)
}

/// [`call`] from the local address `from` (another loopback address, such
/// as 127.0.0.2, standing in for a proxy's machine), with extra headers.
pub(crate) fn call_from(
    server: &Server,
    from: std::net::IpAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let address: std::net::SocketAddr = server.address.parse().expect("a socket address");
    let connected = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime").block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(from, 0))?;
        socket.connect(address).await?.into_std()
    });
    match connected {
        Ok(stream) => {
            stream.set_nonblocking(false).expect("blocking");
            exchange(stream, &head, body)
        }
        Err(error) => (0, Value::String(format!("cannot connect to {address} from {from}: {error}"))),
    }
}

/// Status 0 means no answer: the connection was refused or closed first
/// (the body then says why), which tests of a server that is stopping accept.
fn raw_at(address: &str, head: &str, body: &[u8]) -> (u16, Value) {
    match TcpStream::connect(address) {
        Ok(stream) => exchange(stream, head, body),
        Err(error) => (0, Value::String(format!("cannot connect to {address}: {error}"))),
    }
}

fn exchange(mut stream: TcpStream, head: &str, body: &[u8]) -> (u16, Value) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // A server that is stopping may close or reset the connection at once:
    // that is no answer (status 0), not a failed test.
    if let Err(error) = stream.write_all(head.as_bytes()) {
        return (0, Value::String(format!("the server closed the connection: {error}")));
    }
    // A body the server refuses part-way may reset the connection: the status line still arrives.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    // Chunked bodies: take the JSON between the first '{' or '[' and the last '}' or ']'.
    let start = body.find(['{', '[']).unwrap_or(0);
    let end = body.rfind(['}', ']']).map_or(body.len(), |e| e + 1);
    let value = serde_json::from_str(&body[start..end.max(start)]).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, value)
}
