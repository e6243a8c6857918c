//! The web console in a real browser (issue 19): headless Chromium driven
//! through its WebDriver (chromedriver, installed by scripts/install-deps).
//! Sign in, see the waiting gate with its evidence, approve with a comment,
//! watch the instance move on without a reload, open a report; a user who
//! may not decide sees no form, and a forged form post is refused with
//! nothing recorded. Without a browser the same pages are read and decided
//! with plain form posts (JavaScript is never needed). The screenshots it
//! takes are docs/console/*.png (written there with UPDATE_DOCS=1).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::served::{call, json_body, raw, serve, Server};
use crate::support::{wait_until, workspace_root};

const FLOW: &str = r#"
name = "console"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
params = { output = { failed = 0, p95_ms = 42 } }
[[phases.gates]]
id = "review"
criteria = [
  { must = "tasks.compile.output.failed == 0", label = "No failing tests" },
  { should = "tasks.compile.output.p95_ms <= 40", label = "p95 within 40 ms" },
]
[phases.gates.approval]
approvers = ["role:reviewer"]
comment_required = true
[[phases]]
id = "ship"
after = ["build"]
[[phases.tasks]]
id = "deploy"
agent = "noop"
[[phases.gates]]
id = "go"
approval = { approvers = ["role:reviewer"] }
"#;

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn chromedriver() -> Driver {
    let port = free_port();
    let binary = std::env::var("PHASEGATE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} does not start ({e}): scripts/install-deps installs chromium-driver"));
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    wait_until("chromedriver to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    driver
}

/// Where screenshots go: target/console-screenshots, and docs/console with UPDATE_DOCS=1.
fn keep_screenshot(name: &str, png: &[u8]) {
    let mut places: Vec<PathBuf> = vec![workspace_root().join("target/console-screenshots")];
    if std::env::var_os("UPDATE_DOCS").is_some() {
        places.push(workspace_root().join("docs/console"));
    }
    for dir in places {
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }
}

fn decisions(server: &Server, id: &str) -> usize {
    let history = call(server, "GET", &format!("/v1/instances/{id}/history"), Some(&server.token), None, b"").1;
    history.as_array().map_or(0, |h| h.iter().filter(|r| r["event"]["type"] == "DecisionRecorded").count())
}

fn start(server: &Server, id: &str) {
    let (status, body) =
        call(server, "POST", "/v1/instances", Some(&server.token), None, &json_body(json!({"definition": FLOW, "id": id})));
    assert_eq!(status, 201, "{body}");
}

/// A form post with a session cookie; returns the status and the raw answer.
fn post_form(server: &Server, path: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body: String = form.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: {cookie}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    raw(server, &head, body.as_bytes())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A GET with a cookie; returns the whole answer (head and body) as text.
fn get_raw(server: &Server, path: &str, cookie: &str) -> String {
    let mut stream = std::net::TcpStream::connect(&server.address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n");
    std::io::Write::write_all(&mut stream, head.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    answer
}

/// The value of `name="field" value="..."` in a page.
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    page.split(&marker).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default().to_owned()
}

/// Signs in with plain form posts (no browser, no script): the session cookie.
fn sign_in(server: &Server, token: &str) -> String {
    let page = get_raw(server, "/console/login", "");
    let login =
        page.lines().find_map(|l| l.strip_prefix("set-cookie: phasegate_login=")).and_then(|v| v.split(';').next()).expect("login cookie");
    let csrf = field(&page, "csrf");
    let body = format!("token={}&csrf={}", urlencode(token), urlencode(&csrf));
    let head = format!(
        "POST /console/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: phasegate_login={login}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(&server.address).expect("connect");
    std::io::Write::write_all(&mut stream, head.as_bytes()).expect("write");
    std::io::Write::write_all(&mut stream, body.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 303"), "signed in: {answer}");
    let cookie = answer.lines().find(|l| l.starts_with("set-cookie: phasegate_session=")).expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age="), "{cookie}");
    cookie.trim_start_matches("set-cookie: ").split(';').next().unwrap_or_default().to_owned()
}

#[test]
fn the_console_works_without_javascript_and_refuses_forged_and_foreign_decisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("phasegate.toml"), "[roles]\nreviewer = [\"rita\"]\n").expect("config");
    let server = serve(dir.path());
    let (rita, mallory) = (server.user("rita", &[]), server.user("mallory", &[]));
    start(&server, "plain");
    wait_until("plain waits at its gate", || {
        call(&server, "GET", "/v1/approvals", Some(&server.token), None, b"").1.as_array().is_some_and(|a| a.len() == 1)
    });

    // Not signed in: sent to sign in; a wrong token is refused.
    assert!(get_raw(&server, "/console/", "").starts_with("HTTP/1.1 303"), "the inbox needs a session");
    let rita_session = sign_in(&server, &rita);
    let inbox = get_raw(&server, "/console/", &rita_session);
    assert!(inbox.contains("No failing tests") && inbox.contains("tasks.compile.output.p95_ms = 42"), "the evidence is shown");
    let (csrf, request_id) = (field(&inbox, "csrf"), field(&inbox, "request_id"));

    // A forged post (no anti-forgery token, or another one): 403, nothing recorded.
    let decide = |cookie: &str, csrf: &str| {
        post_form(
            &server,
            "/console/decide",
            cookie,
            &[
                ("csrf", csrf),
                ("instance", "plain"),
                ("gate", "build/review"),
                ("decision", "approve"),
                ("comment", "fine"),
                ("request_id", &request_id),
            ],
        )
    };
    assert_eq!(decide(&rita_session, "").0, 403);
    assert_eq!(decide(&rita_session, "0123").0, 403);
    // Mallory sees no form, and her own session's token does not let her decide.
    let mallory_session = sign_in(&server, &mallory);
    let theirs = get_raw(&server, "/console/", &mallory_session);
    assert!(!theirs.contains("action=\"/console/decide\"") && theirs.contains("Nothing waits for you"), "{theirs}");
    let (status, _) = decide(&mallory_session, &field(&theirs, "csrf"));
    assert_eq!(status, 403, "mallory may not decide");
    assert_eq!(decisions(&server, "plain"), 0, "refusals recorded nothing");

    // Rita's form, posted twice (a double submit), records one decision.
    assert_eq!(decide(&rita_session, &csrf).0, 303);
    assert_eq!(decide(&rita_session, &csrf).0, 303);
    assert_eq!(decisions(&server, "plain"), 1, "a double submit records once");
    let page = get_raw(&server, "/console/instances/plain", &rita_session);
    assert!(page.contains("approved by rita (token "), "the history says how rita was proven");
    let report = get_raw(&server, "/console/instances/plain/reports/gate?format=md", &rita_session);
    assert!(report.contains("attachment; filename=\"plain-gate.md\"") && report.contains("# Gate validation report"), "{report}");

    // A revoked token ends its console sessions.
    assert_eq!(call(&server, "POST", "/v1/users/mallory/revoke", Some(&server.token), None, b"").0, 200);
    assert!(get_raw(&server, "/console/", &mallory_session).starts_with("HTTP/1.1 303"), "the revoked user's session ended");
}

#[test]
fn the_console_in_a_real_browser_signs_in_approves_and_follows_the_release_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("phasegate.toml"), "[roles]\nreviewer = [\"rita\"]\n").expect("config");
    let server = serve(dir.path());
    let (rita, mallory) = (server.user("rita", &[]), server.user("mallory", &[]));
    start(&server, "rel-7");
    wait_until("rel-7 waits at its gate", || {
        call(&server, "GET", "/v1/approvals", Some(&server.token), None, b"").1.as_array().is_some_and(|a| a.len() == 1)
    });
    let driver = chromedriver();
    let profile = tempfile::tempdir().expect("profile");
    let base = format!("http://{}", server.address);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(browse(&driver, profile.path(), &base, &rita, &mallory, &server));
}

async fn browse(driver: &Driver, profile: &Path, base: &str, rita: &str, mallory: &str, server: &Server) {
    let chromium = std::env::var("PHASEGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session (chromium and chromedriver from scripts/install-deps)");
    let wait = Duration::from_secs(30);

    // Sign in as rita: the inbox shows the waiting gate and its evidence.
    client.goto(&format!("{base}/console/")).await.expect("open the console");
    client.wait().at_most(wait).for_element(Locator::Css("#token")).await.expect("sent to sign in").send_keys(rita).await.expect("type");
    client.find(Locator::Css("form.login button")).await.expect("sign-in button").click().await.expect("sign in");
    let heading = client.wait().at_most(wait).for_element(Locator::Css("section.wait h2")).await.expect("a waiting decision");
    assert!(heading.text().await.expect("text").contains("build/review"));
    let evidence = client.find(Locator::Css("table.criteria")).await.expect("the evidence").text().await.expect("text");
    assert!(evidence.contains("No failing tests") && evidence.contains("p95 within 40 ms should fail"), "{evidence}");
    keep_screenshot("inbox", &client.screenshot().await.expect("screenshot"));

    // Approve with a comment; the page says what was recorded.
    client
        .find(Locator::Css("textarea[name=comment]"))
        .await
        .expect("comment")
        .send_keys("evidence checked; p95 accepted")
        .await
        .expect("type");
    client.find(Locator::Css("button.approve")).await.expect("approve").click().await.expect("approve");
    let done = client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("p.note[role=status]"))
        .await
        .expect("the outcome")
        .text()
        .await
        .expect("text");
    assert!(done.contains("approved by rita"), "{done}");
    assert_eq!(decisions(server, "rel-7"), 1, "one decision from the page");

    // The instance page follows the release live: it waits at ship/go; an
    // approval made elsewhere (the API) completes it, and the open page
    // shows that without a reload.
    wait_until("rel-7 to wait at ship/go", || {
        call(server, "GET", "/v1/approvals", Some(&server.token), None, b"")
            .1
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["gate"] == "go"))
    });
    client.goto(&format!("{base}/console/instances/rel-7")).await.expect("instance page");
    let status =
        client.wait().at_most(wait).for_element(Locator::Css("#instance-status")).await.expect("status").text().await.expect("text");
    assert_eq!(status, "awaiting_approval");
    keep_screenshot("instance", &client.screenshot().await.expect("screenshot"));
    let go = json_body(json!({"decision": "approve", "gate": "ship/go", "comment": "ship it"}));
    let (code, body) = call(server, "POST", "/v1/instances/rel-7/decisions", Some(rita), None, &go);
    assert_eq!(code, 200, "{body}");
    let deadline = std::time::Instant::now() + wait;
    loop {
        let main = client.find(Locator::Css("main")).await.expect("main");
        let now = client.find(Locator::Css("#instance-status")).await.expect("status").text().await.expect("text");
        if now == "completed" {
            assert!(main.attr("data-updated").await.expect("attr").is_some(), "it was the live update, not a reload");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the page never showed the instance completed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(client.find(Locator::Css(".graph svg")).await.is_ok(), "the phase graph is drawn");

    // A report, as a page.
    client.find(Locator::LinkText("gate")).await.expect("the gate report link").click().await.expect("open");
    let title =
        client.wait().at_most(wait).for_element(Locator::Css("article.report h1")).await.expect("report").text().await.expect("text");
    assert_eq!(title, "Gate validation report");
    keep_screenshot("report", &client.screenshot().await.expect("screenshot"));

    // Signed in as mallory (not a reviewer): no decision form anywhere.
    start(server, "rel-8");
    client.find(Locator::Css("form.who button")).await.expect("sign out").click().await.expect("sign out");
    client.wait().at_most(wait).for_element(Locator::Css("#token")).await.expect("signed out").send_keys(mallory).await.expect("type");
    client.find(Locator::Css("form.login button")).await.expect("sign-in button").click().await.expect("sign in");
    client.wait().at_most(wait).for_element(Locator::Css("#signed-in")).await.expect("signed in");
    assert!(client.find_all(Locator::Css("form.decide")).await.expect("forms").is_empty(), "mallory is offered no decision");
    client.close().await.expect("close the browser");
}
