//! The shipped release lifecycle end to end, as a user runs it: the real
//! `phasegate` binary, the demo target, the shipped scripts and team
//! records, scripted approvals by the people the shipped roles name.
//! Durations are shortened with `--var` (the definition makes them
//! variables for exactly this), never by editing the workflow.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{phasegate, stderr, stdout, workspace_root};

/// The demo target (`phasegate-demo-target`) on a free loopback port, stopped when dropped.
struct Target {
    child: Child,
    url: String,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_target(dir: &Path) -> Target {
    let url_file = dir.join("target.url");
    let child = Command::new(env!("CARGO_BIN_EXE_phasegate-demo-target-under-test"))
        .args(["--listen", "127.0.0.1:0", "--url-file"])
        .arg(&url_file)
        .arg("--inbox")
        .arg(dir.join("inbox.jsonl"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo target starts");
    // Owned by the guard at once, so a panic below still stops it.
    let mut target = Target { child, url: String::new() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            if !url.trim().is_empty() {
                target.url = url.trim().to_owned();
                return target;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the demo target never wrote its URL");
}

/// A scratch directory with the shipped roles, and `phasegate` commands run
/// from the repository root (the scripts' paths are relative to it).
struct Lab {
    dir: tempfile::TempDir,
    target: Target,
    /// Each person's API token, issued the first time they act.
    tokens: std::cell::RefCell<std::collections::HashMap<String, String>>,
}

impl Lab {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(workspace_root().join("workflows/release-lifecycle/phasegate.toml"), dir.path().join("phasegate.toml"))
            .expect("copy the roles");
        let target = start_target(dir.path());
        let lab = Self { dir, target, tokens: Default::default() };
        // Availability is measured over a window (shortened to 1 s here):
        // wait until the target has that much history, so the checks have evidence.
        crate::support::wait_until("the demo target to have a second of availability history", || {
            lab.get_json("/sli?window_seconds=1")["observed_seconds"].as_f64().is_some_and(|s| s >= 1.0)
        });
        lab
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn command(&self) -> Command {
        let mut command = phasegate(&workspace_root());
        command.arg("--db").arg(self.db()).arg("--config").arg(self.dir.path().join("phasegate.toml"));
        // The shipped lifecycle's notifications go to the demo target's inbox, as in the demo.
        command.env("PHASEGATE_NOTIFY_URL", format!("{}/notify", self.target.url));
        command
    }

    /// The notifications the demo target received, oldest first (each once).
    fn inbox(&self) -> Vec<serde_json::Value> {
        let received = self.get_json("/admin/notifications");
        received["notifications"].as_array().map(|n| n.iter().map(|n| n["notification"].clone()).collect()).unwrap_or_default()
    }

    /// The first notification of `instance` about `about` (a gate or trigger id) that says `what`.
    fn told(&self, instance: &str, about: &str, what: &str) -> Option<serde_json::Value> {
        self.inbox().into_iter().find(|n| {
            n["instance"] == instance
                && (n["gate"] == about || n["trigger"] == about)
                && n["what"].as_str().is_some_and(|w| w.starts_with(what))
        })
    }

    /// Runs `phasegate ARGS`; a command `--as WHO` carries WHO's own token,
    /// so through a server it acts as WHO, proven (and with no server, WHO
    /// is asserted, as the CLI records it).
    fn pg(&self, args: &[&str]) -> Output {
        let mut command = self.command();
        if let Some(who) = args.iter().position(|a| *a == "--as").and_then(|i| args.get(i + 1)) {
            command.env("PHASEGATE_TOKEN", self.token(who));
        }
        command.args(args).output().expect("phasegate runs")
    }

    /// WHO's API token, issued (with the admin credential, through the
    /// server when one runs) the first time they act.
    fn token(&self, who: &str) -> String {
        if let Some(token) = self.tokens.borrow().get(who) {
            return token.clone();
        }
        let issued = self.command().args(["users", "add", who]).output().expect("users add runs");
        assert!(issued.status.success(), "users add {who}: {}", stderr(&issued));
        let token = stdout(&issued).trim().to_owned();
        self.tokens.borrow_mut().insert(who.to_owned(), token.clone());
        token
    }

    /// Runs `args`, which must exit with `code` (1: a release ended failed
    /// or rolled back); returns stdout.
    fn exits(&self, code: i32, args: &[&str]) -> String {
        let output = self.pg(args);
        assert_eq!(output.status.code(), Some(code), "phasegate {args:?}:\n{}{}", stdout(&output), stderr(&output));
        stdout(&output)
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.pg(args);
        assert!(output.status.success(), "phasegate {args:?} failed:\n{}{}", stdout(&output), stderr(&output));
        stdout(&output)
    }

    fn start(&self, id: &str, extra: &[&str]) {
        let target = format!("target_url={}", self.target.url);
        let reports = format!("reports_dir={}", self.dir.path().join("reports").display());
        let mut args = vec!["start", "workflows/release-lifecycle.toml", "--id", id, "--var", &target, "--var", &reports];
        for pair in [
            "launch_soak=2s",
            "watch_interval=250ms",
            "error_rate_window=1500ms",
            "uptime_window=1500ms",
            "perf_requests=40",
            "revalidate_quarterly=false",
            "monthly_ops_report=false",
            // The windows availability is measured over, shortened like the rest.
            "staging_uptime_window=1s",
            "uptime_slo_window=1s",
        ] {
            args.extend(["--var", pair]);
        }
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    fn status(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["--output", "json", "status", id])).expect("status JSON")
    }

    fn approve(&self, id: &str, who: &str, gate: &str) {
        self.ok(&["--as", who, "approve", id, gate, "--comment", &format!("{who} checked the evidence")]);
    }

    fn inject(&self, share: f64) {
        self.inject_fault(&format!("error_rate={share}"));
    }

    /// `POST /admin/inject?QUERY` on the demo target (a fault to inject).
    fn inject_fault(&self, query: &str) {
        let url = format!("{}/admin/inject?{query}", self.target.url);
        let status = Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='POST'), timeout=5)",
                &url,
            ])
            .status()
            .expect("python3 runs");
        assert!(status.success(), "injecting errors failed");
    }

    fn target_state(&self) -> serde_json::Value {
        self.get_json("/admin/state")
    }

    /// `GET path` on the demo target, as JSON.
    fn get_json(&self, path: &str) -> serde_json::Value {
        let output = Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
                &format!("{}{path}", self.target.url),
            ])
            .output()
            .expect("python3 runs");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("GET {path}: {}", stderr(&output)))
    }

    fn report(&self, id: &str, kind: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["report", id, "--kind", kind, "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args)).expect("report JSON")
    }
}

/// Drives the instance through the hardening sign-off and the go/no-go.
fn through_go_no_go(lab: &Lab, id: &str) {
    let ran = lab.ok(&["run", "--until-idle"]);
    assert!(ran.contains("--as quinn approve") && ran.contains("hardening/qa-sign-off"), "run prints the approve command:\n{ran}");
    lab.approve(id, "quinn", "hardening/qa-sign-off");
    lab.ok(&["run", "--until-idle"]);
    lab.approve(id, "uma", "go-no-go/user-go-no-go");
}

#[test]
fn a_full_run_with_scripted_approvals_completes_and_its_reports_hold_the_real_values() {
    let lab = Lab::new();
    lab.start("full", &[]);
    through_go_no_go(&lab, "full");
    lab.ok(&["run", "--until-idle"]);
    assert_eq!(lab.status("full")["effective_status"], "awaiting_approval", "QG-PHASE8 waits for two groups");
    // QG-PHASE8 needs both the Human Command Group and the business stakeholders.
    lab.approve("full", "hana", "post-launch/qg-phase8");
    assert_eq!(lab.status("full")["effective_status"], "awaiting_approval");
    lab.approve("full", "bea", "post-launch/qg-phase8");
    for (who, gate) in [
        ("riley", "patch-cadence/maintenance-schedule-approved"),
        ("riley", "slo-monitoring/monitoring-setup-approved"),
        ("riley", "cost-performance/optimization-strategy-approved"),
        ("bea", "roadmap/roadmap-approved"),
        ("hana", "ops-review/ongoing"),
    ] {
        lab.ok(&["run", "--until-idle"]);
        lab.approve("full", who, gate);
    }
    lab.ok(&["run", "--until-idle"]);
    let status = lab.status("full");
    assert_eq!(status["effective_status"], "completed", "{status:#}");
    // The demo target really was deployed to.
    assert_eq!(lab.target_state()["version"], "1.1.0");

    // Reports carry the values the run measured.
    let e2e = &status["phases"][1]["tasks"][0]["status"]["output"];
    let readiness = lab.report("full", "readiness", &["--phase", "hardening"]);
    assert_eq!(readiness["ready"], true, "{readiness:#}");
    assert_eq!(readiness["release"], "1.1.0");
    let hardening = readiness["phases"].as_array().and_then(|p| p.iter().find(|p| p["id"] == "hardening")).expect("hardening");
    assert_eq!(hardening["tasks"][0]["output"], *e2e, "the report shows the E2E output the task produced");
    assert_eq!(readiness["sign_offs"][0]["by"][0], "quinn");

    let gates = lab.report("full", "gate", &[]);
    let qa = gates["evaluations"].as_array().and_then(|e| e.iter().find(|e| e["gate"] == "qa-sign-off")).expect("qa-sign-off");
    let p95 = &qa["criteria"].as_array().and_then(|c| c.iter().find(|c| c["id"] == "perf-latency")).expect("perf-latency")["values"];
    assert_eq!(p95["tasks.performance.output.p95_ms"], status["phases"][1]["tasks"][1]["status"]["output"]["p95_ms"]);
    assert_eq!(p95["vars.perf_p95_ms_max"], 500.0);
    assert_eq!(qa["decisions"][0]["by"], "quinn");

    let checklist = lab.report("full", "checklist", &[]);
    let qg = checklist["gates"].as_array().and_then(|g| g.iter().find(|g| g["gate"] == "qg-phase8")).expect("QG-PHASE8");
    let items = qg["items"].as_array().expect("items");
    assert_eq!(items.iter().filter(|i| i["level"] == "must").count(), 20, "16 Must Pass lines and 4 success metrics");
    assert_eq!(items.iter().filter(|i| i["level"] == "should").count(), 4, "the 4 Should Pass lines");
    assert_eq!(qg["must_open"], 0);
    let journeys = items.iter().find(|i| i["id"] == "biz-journeys").expect("journeys");
    assert_eq!(journeys["checked"], false, "the demo has no journey analytics: a should warning, with evidence");

    let certificate = lab.report("full", "certificate", &["--phase", "post-launch"]);
    let approvers: Vec<&str> = certificate["approvals"].as_array().expect("approvals").iter().filter_map(|a| a["by"].as_str()).collect();
    assert_eq!(approvers, ["hana", "bea"]);
    assert_eq!(certificate["authorizes"][0], "patch-cadence");
    // The certificate carries the audit chain's head: the store still holds
    // the log it was made from (issue 18 item 4).
    let head = certificate["report"]["chain_head"].as_str().expect("the certificate carries the chain head").to_owned();
    let verified = lab.ok(&["audit", "verify", "full", "--head", &head]);
    assert!(verified.starts_with("ok      full: "), "{verified}");

    let ops = lab.report("full", "ops", &[]);
    let error_rate = ops["slis"].as_array().and_then(|s| s.iter().find(|s| s["watch"] == "error-rate")).expect("error-rate SLI");
    assert!(error_rate["samples"].as_u64().is_some_and(|n| n >= 2), "{error_rate}");
    assert_eq!(ops["budgets"]["SLO_BUDGETS"]["availability"], 0.999);
    let markdown = lab.ok(&["report", "full", "--kind", "ops"]);
    assert!(markdown.starts_with("# Ops report") && markdown.contains("SLO_BUDGETS"), "{markdown}");
    // Each budget and target against what measured it: availability by the
    // ongoing gate, the monthly cost by the cost review; never a bare pass.
    let objective = |name: &str| ops["objectives"].as_array().and_then(|o| o.iter().find(|o| o["objective"] == name)).cloned();
    let availability = objective("SLO_BUDGETS.availability").expect("availability");
    assert_eq!(availability["verdict"], "pass", "{availability:#}");
    assert!(availability["measured"].as_object().is_some_and(|m| !m.is_empty()), "{availability:#}");
    let cost = objective("COST_TARGETS.monthly_usd_max").expect("cost");
    assert_ne!(cost["verdict"], "not measured", "the cost review reads the target: {cost:#}");
    // The team's incident records, with their postmortems.
    assert!(!ops["recorded_incidents"].as_array().expect("recorded incidents").is_empty(), "{ops:#}");
    // The scheduled phase rendered the same report to a file.
    let monthly = std::fs::read_to_string(lab.dir.path().join("reports/ops/MONTHLY_OPS_REPORT.md")).expect("the monthly ops report");
    assert!(monthly.starts_with("# Ops report") && monthly.contains("Budgets and targets against what was measured"), "{monthly}");
    // The launch's deployment confirmation, and a certificate per phase.
    let deployment = lab.report("full", "deployment", &[]);
    assert_eq!((deployment["phase"].as_str(), deployment["confirmed"].as_bool()), (Some("launch"), Some(true)), "{deployment:#}");
    let all = lab.report("full", "certificate", &["--phase", "all"]);
    assert_eq!(all["certificates"].as_array().map(Vec::len), Some(status["phases"].as_array().map_or(0, Vec::len)), "every phase passed");

    // The readiness score passed on its own (every factor met), and the
    // readiness report shows that weighted score, not a share under its name.
    let go = status["phases"][2]["gates"][0]["evaluation"]["score"].clone();
    assert_eq!((go["percent"].as_f64(), go["band"].as_str()), (Some(100.0), Some("pass")), "{go}");
    let whole = lab.report("full", "readiness", &[]);
    assert_eq!(whole["readiness_score"]["gate"], "go-no-go/readiness-score", "{whole:#}");
    assert_eq!((whole["readiness_score"]["percent"].as_f64(), whole["readiness_score"]["band"].as_str()), (Some(100.0), Some("pass")));

    // A second release compares its load test with the first one's, through
    // the baseline index (no history scan), and shows the delta.
    lab.start("full-2", &[]);
    lab.ok(&["run", "--until-idle"]);
    let second = lab.status("full-2");
    let criteria = second["phases"][1]["gates"][0]["evaluation"]["criteria"].as_array().expect("criteria").clone();
    let regression = criteria.iter().find(|c| c["id"] == "perf-no-regression").expect("criterion");
    assert_eq!(regression["values"]["baseline.tasks.performance.output.p95_ms"], p95["tasks.performance.output.p95_ms"], "{regression:#}");
    assert!(regression["deltas"]["tasks.performance.output.p95_ms"].is_number(), "{regression:#}");
    assert_ne!(regression["verdict"], "inconclusive");
    let history = lab.ok(&["history", "full-2"]);
    assert!(history.contains("baselines loaded: ") && history.contains("hardening/qa-sign-off from full ("), "{history}");
    let gate_report = lab.ok(&["report", "full-2", "--kind", "gate"]);
    assert!(gate_report.contains("Δ vs baseline") && gate_report.contains("`tasks.performance.output.p95_ms`"), "{gate_report}");

    // Naming the baseline: it must exist and run the same workflow; nothing is written otherwise.
    let before = lab.ok(&["list"]);
    let target = format!("target_url={}", lab.target.url);
    let missing = lab.pg(&["start", "workflows/release-lifecycle.toml", "--var", &target, "--baseline", "nobody"]);
    assert!(
        !missing.status.success() && stderr(&missing).contains("--baseline nobody: there is no instance `nobody`"),
        "{}",
        stderr(&missing)
    );
    lab.ok(&["start", "workflows/hello.toml", "--id", "other"]);
    let other = lab.pg(&["start", "workflows/release-lifecycle.toml", "--var", &target, "--baseline", "other"]);
    assert!(!other.status.success() && stderr(&other).contains("it runs workflow `hello`, not `release-lifecycle`"), "{}", stderr(&other));
    let after = lab.ok(&["list"]);
    assert_eq!(after.lines().count(), before.lines().count() + 1, "only `other` was added:\n{after}");
    lab.ok(&["start", "workflows/release-lifecycle.toml", "--id", "vs-first", "--var", &target, "--baseline", "full"]);
}

#[test]
fn a_readiness_score_under_70_percent_halts_for_management_with_the_breakdown() {
    let lab = Lab::new();
    // Two factors earn nothing: staging uptime has no evidence (30 days asked of a target with
    // seconds of history: 3 of 14 points) and support readiness misses (2 of 14): 9 / 14 = 64.3 %.
    lab.start("low", &["--var", "staging_uptime_window=30d", "--var", "readiness_min_playbooks=10"]);
    lab.ok(&["run", "--until-idle"]);
    lab.approve("low", "quinn", "hardening/qa-sign-off");
    let ran = lab.ok(&["run", "--until-idle"]);
    assert!(ran.contains("go-no-go/readiness-score waits for approvals: role:management 0 of 1"), "{ran}");
    let approvals = lab.ok(&["approvals"]);
    assert!(approvals.contains("score 64.3% (warning band: pass ≥ 70%, warning ≥ 0%)"), "{approvals}");
    assert!(approvals.contains("Staging uptime 0/3") && approvals.contains("Test results 3/3"), "the factor breakdown: {approvals}");
    let shown = lab.ok(&["status", "low"]);
    assert!(shown.contains("score 64.3% (9 of 14 points): warning band"), "{shown}");
    let gates = lab.report("low", "gate", &[]);
    let readiness = gates["evaluations"].as_array().and_then(|e| e.iter().find(|e| e["gate"] == "readiness-score")).expect("evaluated");
    assert_eq!(readiness["score"]["percent"], 64.3);
    let report = lab.report("low", "readiness", &[]);
    assert_eq!((report["readiness_score"]["percent"].as_f64(), report["readiness_score"]["band"].as_str()), (Some(64.3), Some("warning")));
    assert_eq!(report["ready"], false, "management has not decided: {report:#}");
    // Management accepts the risk; the user's go/no-go comes next.
    lab.approve("low", "morgan", "go-no-go/readiness-score");
    let ran = lab.ok(&["run", "--until-idle"]);
    assert!(ran.contains("go-no-go/user-go-no-go waits"), "{ran}");
}

#[test]
fn an_injected_error_rate_breach_halts_for_approval_and_the_rollback_restores_the_target() {
    let lab = Lab::new();
    lab.start("breach", &["--var", "launch_soak=5m"]);
    through_go_no_go(&lab, "breach");
    let mut driver = lab.command().args(["run"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("run");
    let lines = BufReader::new(driver.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("run never printed {needle:?}:\n{}", seen.join("\n"));
    };
    wait_for("phase launch started");
    std::thread::sleep(Duration::from_secs(1));
    lab.inject(0.4);
    wait_for("trigger launch/error-rate-rollback fired");
    let _ = Command::new("kill").args(["-INT", &driver.id().to_string()]).status();
    let _ = driver.wait();
    assert_eq!(lab.status("breach")["effective_status"], "awaiting_approval");
    assert_eq!(lab.target_state()["version"], "1.1.0", "nothing rolls back without a person");

    // The developer on call is not on the rollback approvers list.
    let refused = lab.pg(&["--as", "quinn", "approve", "breach", "launch/error-rate-rollback", "--comment", "no"]);
    assert!(!refused.status.success() && stderr(&refused).contains("may not decide"), "{}", stderr(&refused));
    lab.approve("breach", "oscar", "launch/error-rate-rollback");
    // A release that rolled back is not a success: run says so in its exit status.
    lab.exits(1, &["run", "--until-idle"]);
    assert_eq!(lab.status("breach")["effective_status"], "rolled_back");

    // DNS revert → migration rollback → cache purge → monitoring validation, against the real target.
    let state = lab.target_state();
    assert_eq!(state["version"], "1.0.0", "{state:#}");
    assert_eq!(state["migrations"], serde_json::json!(["0001_initial"]));
    assert_eq!(state["cache_entries"], 0);
    let ops = lab.report("breach", "ops", &[]);
    let rollback = &ops["rollbacks"][0];
    assert_eq!(rollback["outcome"], "completed", "{ops:#}");
    let succeeded: Vec<&str> = rollback["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["result"] == "succeeded")
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(succeeded, ["dns-revert", "db-migration-rollback", "cache-purge", "monitoring-validation"]);
    let sli = ops["slis"].as_array().and_then(|s| s.iter().find(|s| s["watch"] == "error-rate")).expect("SLI");
    assert!(sli["max"].as_f64().is_some_and(|m| m > 0.1), "the breach is in the report: {sli}");
    assert!(sli["firings"].as_u64().is_some_and(|f| f >= 1), "{sli}");
    let decisions = ops["decisions"].as_array().expect("decisions");
    assert!(decisions.iter().any(|d| d["what"] == "trigger launch/error-rate-rollback" && d["by"] == "oscar"), "{decisions:?}");
}

#[test]
fn a_failed_must_criterion_cannot_be_advanced_and_bad_input_is_refused() {
    let lab = Lab::new();
    // An NFR the target cannot meet: p95 under a microsecond.
    lab.start("strict", &["--var", "perf_p95_ms_max=0.001"]);
    lab.exits(1, &["run", "--until-idle"]);
    let status = lab.status("strict");
    assert_eq!(status["effective_status"], "failed", "{status:#}");
    let before = lab.ok(&["--output", "json", "history", "strict"]);
    let advance = lab.pg(&["advance", "strict"]);
    assert!(!advance.status.success(), "advance refuses: {}", stdout(&advance));
    assert!(stdout(&advance).contains("must criterion perf-latency"), "{}", stdout(&advance));
    let approve = lab.pg(&["--as", "quinn", "approve", "strict", "hardening/qa-sign-off", "--comment", "ship it anyway"]);
    assert!(!approve.status.success(), "a failed gate takes no approval: {}", stdout(&approve));
    assert_eq!(lab.ok(&["--output", "json", "history", "strict"]), before, "refusals append nothing");
    let readiness = lab.report("strict", "readiness", &["--phase", "hardening"]);
    assert_eq!(readiness["ready"], false);
    assert!(readiness["must_failed"][0].as_str().is_some_and(|m| m.contains("p95 latency")), "{readiness:#}");

    // Bad input: clear errors naming what is wrong.
    let target = format!("target_url={}", lab.target.url);
    let wrong = lab.pg(&["start", "workflows/release-lifecycle.toml", "--var", &target, "--var", "perf_requests=lots"]);
    assert!(!wrong.status.success() && stderr(&wrong).contains("--var perf_requests=lots: expected an integer"), "{}", stderr(&wrong));
    // A share typed as a percentage would never breach: refused, as is an empty target.
    let percent = lab.pg(&["start", "workflows/release-lifecycle.toml", "--var", &target, "--var", "error_rate_max=10"]);
    assert!(
        !percent.status.success() && stderr(&percent).contains("--var error_rate_max=10: 10 is above the variable's max 1"),
        "{}",
        stderr(&percent)
    );
    let empty = lab.pg(&["start", "workflows/release-lifecycle.toml", "--var", "target_url="]);
    assert!(!empty.status.success() && stderr(&empty).contains("--var target_url=: it is empty"), "{}", stderr(&empty));
    let unknown = lab.pg(&["report", "nobody", "--kind", "readiness"]);
    assert!(!unknown.status.success() && stderr(&unknown).contains("no instance `nobody`"), "{}", stderr(&unknown));
    let kind = lab.pg(&["report", "strict", "--kind", "summary"]);
    assert!(
        !kind.status.success() && stderr(&kind).contains("unknown report kind `summary`; choose one of readiness, gate"),
        "{}",
        stderr(&kind)
    );
    let certificate = lab.pg(&["report", "strict", "--kind", "certificate", "--phase", "hardening"]);
    assert!(
        !certificate.status.success() && stderr(&certificate).contains("phase hardening is failed, not passed"),
        "{}",
        stderr(&certificate)
    );
}

#[test]
fn reports_never_show_secrets() {
    let lab = Lab::new();
    let target = format!("{}/?token=abc", lab.target.url.replace("http://", "http://deploy:hunter2@"));
    lab.ok(&[
        "start",
        "workflows/release-lifecycle.toml",
        "--id",
        "s",
        "--var",
        &format!("target_url={target}"),
        "--var",
        "perf_requests=10",
    ]);
    for kind in ["readiness", "gate", "checklist", "ops"] {
        let json = lab.ok(&["report", "s", "--kind", kind, "--format", "json"]);
        let md = lab.ok(&["report", "s", "--kind", kind]);
        assert!(!json.contains("hunter2") && !md.contains("hunter2"), "{kind} leaks the URL password");
    }
}

/// A target that answers, but measures almost nothing: `/metrics` without
/// cost, latency or availability history, and no staging, rollout or SLI
/// API (what a service without the demo's instrumentation looks like).
const BARE_TARGET: &str = r#"
import http.server, sys
class Bare(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body):
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        pages = {"/metrics": b"demo_http_requests_total 5\n", "/healthz": b"{}", "/version": b'{"version": "1.1.0"}'}
        self.answer(200 if self.path in pages else 404, pages.get(self.path, b"{}"))
    def do_POST(self):
        self.answer(404, b"{}")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Bare)
open(sys.argv[1], "w").write(str(server.server_port))
server.serve_forever()
"#;

/// Runs a shipped check script as the workflow does; (exit code, output JSON or null, stderr).
fn check(script: &str, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let output = Command::new("python3")
        .arg(workspace_root().join("workflows/release-lifecycle").join(script))
        .args(args)
        .env_remove("PROMETHEUS_URL")
        .output()
        .expect("python3 runs");
    (output.status.code(), serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null), stderr(&output))
}

/// Issue 17 (no evidence, no pass): each shipped check, run as the workflow
/// runs it, against empty team records, a target that measures nothing, a
/// window longer than the history, a wrong version, a failing target and
/// an injected vulnerability. What it cannot measure is null with the
/// reason in `sources` (the criterion is then inconclusive: a person
/// decides), or the task fails; never a pass. The shipped records still
/// measure, and say where each value came from.
#[test]
fn the_shipped_checks_report_no_evidence_instead_of_passing() {
    let lab = Lab::new();
    let target = lab.target.url.clone();
    let scripts = workspace_root().join("workflows/release-lifecycle");
    let shipped = scripts.to_string_lossy().into_owned();
    let empty = lab.dir.path().join("empty");
    std::fs::create_dir_all(empty.join("data")).expect("mkdir");
    for file in ["incidents.json", "alerts.json", "feedback.json", "optimization-backlog.json"] {
        std::fs::write(empty.join("data").join(file), "[]").expect("write");
    }
    let empty = empty.to_string_lossy().into_owned();
    let null = |output: &serde_json::Value, field: &str, why: &str| {
        assert!(output[field].is_null(), "{field} must be null: {output:#}");
        let source = output["sources"][field].as_str().unwrap_or_default();
        assert!(source.starts_with("no evidence: ") && source.contains(why), "{field}: {source:?} should say {why:?}");
    };

    // Success metrics: no incidents or alerts in the records is no evidence, not 0.0.
    let (code, out, err) = check("success_metrics.py", &[&target, &empty, "1s"]);
    assert_eq!(code, Some(0), "{err}");
    null(&out, "p1_response_minutes", "no P0/P1 incident with a response time in data/incidents.json (0 incident(s))");
    null(&out, "mttr_hours", "no resolved P0/P1 incident");
    null(&out, "alert_false_positive_rate", "no alert fired in data/alerts.json");
    null(&out, "postmortems_done", "no resolved incident");
    null(&out, "all_resolved", "holds no incident");
    assert!(out["uptime"].as_f64().is_some_and(|u| u > 0.99), "the target was up for the last second: {out:#}");
    // A record that does not say is not a zero: the check stops and names the field.
    let malformed = lab.dir.path().join("malformed");
    std::fs::create_dir_all(malformed.join("data")).expect("mkdir");
    std::fs::write(malformed.join("data/incidents.json"), "[]").expect("write");
    std::fs::write(malformed.join("data/alerts.json"), r#"[{"rule": "error-rate"}]"#).expect("write");
    let (code, _, err) = check("success_metrics.py", &[&target, &malformed.to_string_lossy(), "1s"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("data/alerts.json rule error-rate: `fired` is None"), "{err}");
    // A window longer than the target's history is no evidence either.
    let (_, out, _) = check("success_metrics.py", &[&target, &shipped, "30d"]);
    null(&out, "uptime", "the criterion asks for 30d");
    // The shipped records measure, and say where from.
    assert_eq!(out["p1_response_minutes"], 8.0, "{out:#}");
    assert!(
        out["sources"]["mttr_hours"].as_str().is_some_and(|s| s.contains("data/incidents.json (2 incident(s) from 2026-11-02")),
        "{out:#}"
    );
    let (_, out, _) = check("uptime.py", &[&target, "7d"]);
    null(&out, "value", "the criterion asks for 7d");
    let (_, out, _) = check("slo_policy.py", &[&target, &empty, r#"{"availability": 0.999, "error_rate": 0.01, "p95_ms": 300.0}"#, "30d"]);
    null(&out, "error_budget_remaining", "the criterion asks for 30d");
    null(&out, "error_rate_within_budget", "the criterion asks for 30d");
    null(&out, "postmortems_done", "no resolved incident");

    // Optimization readiness: missing records are no evidence.
    let (code, out, err) = check("optimization_readiness.py", &[&target, &empty, "1.1.0"]);
    assert_eq!(code, Some(0), "{err}");
    null(&out, "target_improvement", "documents no improvement target for p95_ms");
    null(&out, "experimentation_ready", "data/experiments.json does not exist");
    null(&out, "backlog_prioritized", "holds no backlog item");
    assert_eq!(out["actionable_feedback"], 0, "an empty feedback export is a measurement: {out:#}");
    assert_eq!(out["gradual_rollouts"], true, "the demo target performed a 10 % rollout: {out:#}");
    assert!(lab.get_json("/version")["canary"].is_null(), "and ended it");
    let (_, out, _) = check("business_tracking.py", &[&target, &shipped]);
    null(&out, "kpis_correlated", "set PROMETHEUS_URL");

    // A target that measures nothing: no cost is not $0, no rollout API is not gradual rollouts.
    let port_file = lab.dir.path().join("bare.port");
    let bare = Command::new("python3").args(["-c", BARE_TARGET]).arg(&port_file).stdin(Stdio::null()).spawn().expect("bare target");
    let mut bare = Target { child: bare, url: String::new() };
    crate::support::wait_until("the bare target to listen", || std::fs::read_to_string(&port_file).is_ok_and(|p| !p.is_empty()));
    bare.url = format!("http://127.0.0.1:{}", std::fs::read_to_string(&port_file).expect("port"));
    let budgets = r#"{"availability": 0.999, "error_rate": 0.01, "p95_ms": 300.0}"#;
    let (code, out, err) = check("cost_perf.py", &[&bare.url, r#"{"monthly_usd_max": 5000.0, "reduction_per_cycle": 0.05}"#, budgets]);
    assert_eq!(code, Some(0), "{err}");
    null(&out, "monthly_cost_usd", "has no demo_infra_cost_per_hour");
    null(&out, "within_cost_target", "no cost measured");
    null(&out, "hotspots", "no latency measured");
    let (_, out, _) = check("uptime.py", &[&bare.url, "1s"]);
    null(&out, "value", "has no /sli");
    let (_, out, _) = check("optimization_readiness.py", &[&bare.url, &shipped, "1.1.0"]);
    assert_eq!(out["gradual_rollouts"], false, "{out:#}");
    null(&out, "baseline_p95_ms", "has no demo_latency_p95_seconds");
    let (_, out, _) = check("staging.py", &[&bare.url, "1.1.0"]);
    assert_eq!(out["version_served"], false, "no staging version is not the release candidate: {out:#}");
    drop(bare);

    // A wrong version: staging has not been given the candidate, production serves another.
    let (_, out, _) = check("staging.py", &[&target, "1.1.0"]);
    assert_eq!((out["healthy"].as_bool(), out["version_served"].as_bool()), (Some(true), Some(false)), "{out:#}");
    assert!(check("staging_deploy.py", &[&target, "1.1.0"]).0 == Some(0));
    assert_eq!(check("staging.py", &[&target, "1.1.0"]).1["version_served"], true);
    let (code, _, err) = check("verify.py", &[&target, "9.9.9", "5"]);
    assert_eq!(code, Some(3), "a wrong version is a verdict: the task fails for good (LAUNCH-003)");
    assert!(err.contains("serves version '1.0.0'") && err.contains("not the released '9.9.9'"), "{err}");

    // A failing target fails the smoke tests (LAUNCH-002), and a dead one every check.
    let inject = |query: &str| {
        let url = format!("{}/admin/inject?{query}", lab.target.url);
        let script = "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='POST'), timeout=5)";
        assert!(Command::new("python3").args(["-c", script, &url]).status().expect("python3").success());
    };
    inject("down_seconds=60");
    let (code, _, err) = check("smoke.py", &[&target]);
    assert_eq!(code, Some(3), "smoke tests against a down target are a failing verdict");
    assert!(err.contains("smoke tests failed") && err.contains("health"), "{err}");
    inject("down_seconds=0");
    assert_eq!(check("smoke.py", &[&target]).1["failed"], 0);
    let dead = "http://127.0.0.1:9";
    for (script, args) in [
        ("staging.py", vec![dead, "1.1.0"]),
        ("security.py", vec![dead]),
        ("cost_perf.py", vec![dead, "{}", "{}"]),
        ("success_metrics.py", vec![dead, shipped.as_str(), "1s"]),
        ("optimization_readiness.py", vec![dead, shipped.as_str(), "1.1.0"]),
        ("verify.py", vec![dead, "1.1.0"]),
    ] {
        let (code, out, err) = check(script, &args);
        assert_ne!(code, Some(0), "{script} against a dead target must fail, not report: {out}");
        assert!(!err.is_empty(), "{script} says why");
    }

    // Security: the high-severity probes run on loopback too, and find an injected flaw.
    let (_, clean, _) = check("security.py", &[&target]);
    assert_eq!(clean["high"], 0, "{clean:#}");
    inject("reflect=true");
    let (_, flawed, _) = check("security.py", &[&target]);
    inject("reflect=false");
    assert_eq!(flawed["high"], 1, "{flawed:#}");
    assert!(flawed["findings"].to_string().contains("reflected XSS"), "{flawed:#}");
}

/// Issue 17 (remediation as the seeds describe it, on the shipped
/// definition): "fix critical defects, redeploy to staging, re-test". A
/// faulty build fails the hardening gate's must criteria; the QA director
/// holds the failed gate for remediation, the fault is fixed, `retry
/// --phase hardening` re-tests, and the release goes on to the go/no-go.
#[test]
fn a_failed_hardening_gate_is_held_fixed_and_retested_on_the_shipped_definition() {
    let lab = Lab::new();
    lab.inject(0.3);
    lab.start("fix", &[]);
    lab.exits(1, &["run", "--until-idle"]);
    let status = lab.status("fix");
    assert_eq!(status["effective_status"], "failed", "{status:#}");
    let readiness = lab.report("fix", "readiness", &["--phase", "hardening"]);
    assert_eq!(readiness["ready"], false);
    assert!(readiness["must_failed"].to_string().contains("error rate under load"), "{readiness:#}");
    // Someone who does not own the gate cannot hold it.
    let refused = lab.pg(&["--as", "uma", "hold", "fix", "hardening/qa-sign-off", "--comment", "not mine"]);
    assert!(!refused.status.success() && stderr(&refused).contains("may not decide"), "{}", stderr(&refused));
    lab.ok(&["--as", "quinn", "hold", "fix", "hardening/qa-sign-off", "--comment", "error rate under load: fixing the handler"]);
    assert_eq!(lab.status("fix")["effective_status"], "on_hold");
    // The fix is deployed to staging; the whole phase is tested again.
    lab.inject(0.0);
    lab.ok(&["retry", "fix", "--phase", "hardening"]);
    let ran = lab.ok(&["run", "--until-idle"]);
    assert!(ran.contains("hardening/qa-sign-off waits for approvals"), "{ran}");
    let status = lab.status("fix");
    let gate = &status["phases"][1]["gates"][0];
    let failed: Vec<&serde_json::Value> = gate["evaluation"]["criteria"]
        .as_array()
        .expect("criteria")
        .iter()
        .filter(|c| c["level"] == "must" && c["verdict"] != "pass")
        .collect();
    assert!(failed.is_empty(), "every must criterion passes after the fix: {failed:?}");
    // What the approver reads before deciding: not ready until signed off.
    let readiness = lab.report("fix", "readiness", &["--phase", "hardening"]);
    assert_eq!(readiness["ready"], false, "{readiness:#}");
    let assessment = readiness["assessment"].as_str().unwrap_or_default();
    assert!(
        assessment.starts_with("not ready until signed off: every must criterion evaluated so far passed; sign-off missing: hardening/qa-sign-off awaits a decision"),
        "{assessment}"
    );
    lab.approve("fix", "quinn", "hardening/qa-sign-off");
    assert_eq!(lab.report("fix", "readiness", &["--phase", "hardening"])["ready"], true, "signed off");
    let ran = lab.ok(&["run", "--until-idle"]);
    assert!(ran.contains("go-no-go/user-go-no-go waits"), "{ran}");
    let history = lab.ok(&["history", "fix"]);
    assert!(history.contains("gate hardening/qa-sign-off held by quinn") && history.contains("phase hardening runs again"), "{history}");
}

/// Issue 17 (the authority the seeds name, and QG-PHASE8's "hold for
/// remediation" and "escalate for review"): one approval from each of the
/// Human Command Group and the Business Stakeholders, so two of the command
/// group do not pass it; a hold re-runs the phase; escalating for review
/// adds the review board to who must approve instead of replacing anyone.
#[test]
fn qg_phase8_needs_each_group_holds_for_remediation_and_escalation_adds_the_board() {
    let lab = Lab::new();
    lab.start("qg", &[]);
    through_go_no_go(&lab, "qg");
    lab.ok(&["run", "--until-idle"]);
    let gate = "post-launch/qg-phase8";
    lab.approve("qg", "hana", gate);
    lab.approve("qg", "hugo", gate);
    let approvals = lab.ok(&["approvals"]);
    assert!(
        approvals.contains("role:business-stakeholder 0 of 1") && approvals.contains("role:human-command-group 1 of 1 (hana, hugo)"),
        "two of one group count once for it: {approvals}"
    );
    assert_eq!(lab.status("qg")["effective_status"], "awaiting_approval");

    // Hold for remediation: the phase's checks run again, then the gate decides afresh.
    lab.ok(&["--as", "bea", "hold", "qg", gate, "--comment", "incident playbooks incomplete"]);
    assert_eq!(lab.status("qg")["effective_status"], "on_hold");
    lab.ok(&["retry", "qg", "--phase", "post-launch"]);
    lab.ok(&["run", "--until-idle"]);
    assert_eq!(lab.status("qg")["effective_status"], "awaiting_approval");

    // Escalate for review: the board must approve as well.
    lab.ok(&["--as", "hana", "escalate", "qg", gate, "--comment", "architecture review of the new cache"]);
    lab.approve("qg", "hana", gate);
    lab.approve("qg", "bea", gate);
    let approvals = lab.ok(&["approvals"]);
    assert!(approvals.contains("role:review-board 0 of 1"), "{approvals}");
    assert_eq!(lab.status("qg")["effective_status"], "awaiting_approval", "the board has not approved");
    lab.approve("qg", "rhea", gate);
    let ran = lab.ok(&["run", "--until-idle"]);
    assert!(ran.contains("patch-cadence/maintenance-schedule-approved waits"), "QG-PHASE8 passed: {ran}");
    let gates = lab.report("qg", "gate", &[]);
    let decided = gates["evaluations"].as_array().and_then(|e| e.iter().rev().find(|e| e["gate"] == "qg-phase8")).expect("qg-phase8");
    let by: Vec<&str> = decided["decisions"].as_array().expect("decisions").iter().filter_map(|d| d["by"].as_str()).collect();
    assert!(by.contains(&"rhea") && by.contains(&"bea") && by.contains(&"hana"), "{decided:#}");
}

impl Lab {
    /// `phasegate serve` on the lab's store (killed when dropped): while it
    /// drives, every CLI command goes through it, as in the demo.
    fn serve(&self) -> crate::support::served::Server {
        crate::support::served::serve_with(self.command(), &self.db(), &self.dir.path().join("serve.log"))
    }

    /// Waits (bounded) until the instance's JSON status satisfies `done`.
    fn wait_for(&self, id: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
        crate::support::wait_until(what, || done(&self.status(id)));
    }

    fn history(&self, id: &str) -> String {
        self.ok(&["history", id])
    }

    fn signal(&self, id: &str, severity: &str) {
        self.ok(&[
            "--as",
            "pager",
            "signal",
            id,
            "incident",
            "--data",
            &format!(r#"{{"severity": "{severity}", "id": "INC-{severity}"}}"#),
        ]);
    }
}

fn phase_status<'a>(status: &'a serde_json::Value, phase: &str) -> &'a str {
    status["phases"].as_array().and_then(|p| p.iter().find(|p| p["id"] == phase)).and_then(|p| p["status"]["status"].as_str()).unwrap_or("")
}

/// Issue 17 (every trigger can fire, on the shipped definition): a refused
/// deploy loops back to staging (LAUNCH-001), a deploy that leaves the old
/// version live loops back to hardening (LAUNCH-003), a failed smoke test
/// loops back to hardening (LAUNCH-002); each time the release is
/// re-hardened and decided again, and the fourth launch goes live.
#[test]
fn the_launch_loop_backs_fire_on_the_shipped_definition() {
    let lab = Lab::new();
    lab.start("loops", &[]);
    let decide_again = || {
        lab.approve("loops", "quinn", "hardening/qa-sign-off");
        lab.ok(&["run", "--until-idle"]);
        lab.approve("loops", "uma", "go-no-go/user-go-no-go");
    };
    lab.ok(&["run", "--until-idle"]);
    for (fault, code, to) in [
        ("deploy_failures=1", "LAUNCH-001", "staging"),
        ("stale_deploys=1", "LAUNCH-003", "hardening"),
        ("page_failures=1", "LAUNCH-002", "hardening"),
    ] {
        decide_again();
        lab.inject_fault(fault);
        let ran = lab.ok(&["run", "--until-idle"]);
        assert!(ran.contains("hardening/qa-sign-off waits"), "{code}: the release is re-hardened and waits for QA again:\n{ran}");
        let history = lab.history("loops");
        assert!(history.contains(&format!("trigger launch/{} fired", code.to_lowercase())), "{code}:\n{history}");
        let status = lab.status("loops");
        let entered = status["phases"].as_array().and_then(|p| p.iter().find(|p| p["id"] == to)).map(|p| p["entered"].clone());
        assert!(entered.is_some_and(|e| e.as_str().is_some_and(|e| e.contains(code))), "{code}: {status:#}");
    }
    // The fourth launch goes live, and the target serves the release.
    decide_again();
    lab.ok(&["run", "--until-idle"]);
    let status = lab.status("loops");
    assert_eq!(phase_status(&status, "launch"), "passed", "{status:#}");
    assert_eq!(lab.target_state()["version"], "1.1.0");
    let loops = &status["loops"];
    assert_eq!(
        (loops["launch-001"].as_u64(), loops["launch-002"].as_u64(), loops["launch-003"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{loops}"
    );
}

/// Issue 17: the launch success criteria not met (LAUNCH-004) go back to the
/// go/no-go with the evidence, and a no-go there ends the release.
#[test]
fn launch_004_returns_to_the_go_no_go_and_a_no_go_ends_the_release() {
    let lab = Lab::new();
    // A success rate no launch can reach.
    lab.start("l4", &["--var", "launch_success_rate_min=1.01"]);
    through_go_no_go(&lab, "l4");
    let ran = lab.ok(&["run", "--until-idle"]);
    assert!(ran.contains("go-no-go/user-go-no-go waits"), "{ran}");
    assert!(lab.history("l4").contains("trigger launch/launch-004 fired"), "{}", lab.history("l4"));
    let status = lab.status("l4");
    let entered = status["phases"][2]["entered"].as_str().unwrap_or_default().to_owned();
    assert!(entered.contains("LAUNCH-004"), "the go/no-go says why it is decided again: {entered:?}");
    lab.ok(&["--as", "uma", "reject", "l4", "go-no-go/user-go-no-go", "--comment", "launch success rate below the bar: no-go"]);
    lab.exits(1, &["run", "--until-idle"]);
    assert_eq!(lab.status("l4")["effective_status"], "failed");
    // A release the user said no to is not ready, whatever its criteria said.
    let readiness = lab.report("l4", "readiness", &[]);
    assert_eq!(readiness["ready"], false, "{readiness:#}");
    assert!(readiness["blocked_by"].to_string().contains("gate go-no-go/user-go-no-go failed"), "{readiness:#}");

    // Decided "go" each time, the loop-back is taken max_loops (2) times; the
    // third shortfall fails the launch, and the ops report counts the two taken.
    lab.start("l4-again", &["--var", "launch_success_rate_min=1.01"]);
    through_go_no_go(&lab, "l4-again");
    for _ in 0..2 {
        let ran = lab.ok(&["run", "--until-idle"]);
        assert!(ran.contains("go-no-go/user-go-no-go waits"), "{ran}");
        lab.approve("l4-again", "uma", "go-no-go/user-go-no-go");
    }
    lab.exits(1, &["run", "--until-idle"]);
    let status = lab.status("l4-again");
    assert_eq!(status["effective_status"], "failed", "{status:#}");
    assert!(status["phases"][3]["status"]["reason"].as_str().is_some_and(|r| r.contains("max_loops = 2")), "{status:#}");
    let ops = lab.report("l4-again", "ops", &[]);
    let codes: Vec<&str> = ops["loop_backs"].as_array().expect("loop-backs").iter().filter_map(|l| l["code"].as_str()).collect();
    assert_eq!(codes, ["LAUNCH-004", "LAUNCH-004"], "only the loop-backs taken: {ops:#}");
}

/// Issue 17: the incident decision tree and the uptime breach on the
/// shipped definition, during the launch and after it: P2 runs a hotfix and
/// nothing rolls back, P1 halts for the on-call (a 15-minute clock) and the
/// approved rollback restores the target, P0 rolls back at once, and an
/// uptime breach halts for a rollback decision.
#[test]
fn the_incident_tree_and_the_uptime_breach_act_during_and_after_the_launch() {
    // During the launch: P2 then P1, with a server driving.
    let lab = Lab::new();
    lab.start("during", &["--var", "launch_soak=10m"]);
    through_go_no_go(&lab, "during");
    let server = lab.serve();
    lab.wait_for("during", "the launch soak to begin", |s| {
        s["phases"][3]["tasks"].as_array().is_some_and(|t| t.iter().any(|t| t["id"] == "soak" && t["status"]["status"] == "waiting"))
    });
    lab.signal("during", "P2");
    lab.wait_for("during", "the P2 hotfix to run", |s| {
        s["phases"][3]["tasks"].as_array().is_some_and(|t| t.iter().any(|t| t["id"] == "hotfix" && t["status"]["status"] == "succeeded"))
    });
    assert_eq!(lab.status("during")["effective_status"], "running", "a P2 does not roll back");
    lab.signal("during", "P1");
    lab.wait_for("during", "the P1 halt", |s| s["effective_status"] == "awaiting_approval");
    let approvals = lab.ok(&["approvals"]);
    assert!(approvals.contains("p1-rollback-in-15-minutes"), "{approvals}");
    lab.approve("during", "oscar", "launch/p1-rollback-in-15-minutes");
    lab.wait_for("during", "the P1 rollback", |s| s["effective_status"] == "rolled_back");
    assert_eq!(lab.target_state()["version"], "1.0.0", "the approved rollback restored the previous release");
    // The ops report says what each trigger did about each incident.
    let ops = lab.report("during", "ops", &[]);
    let reactions = ops["incidents"].to_string();
    assert!(
        reactions.contains("p2-hotfix: acted (run)") && reactions.contains("p1-rollback-in-15-minutes: acted (halt_for_approval)"),
        "{ops:#}"
    );
    assert!(reactions.contains("p1-rollback-in-15-minutes: approved by oscar"), "{ops:#}");
    // The go/no-go's certificate no longer authorizes the launch it allowed.
    let certificate = lab.report("during", "certificate", &["--phase", "go-no-go"]);
    assert_eq!(certificate["authorizes"], serde_json::json!([]), "{certificate:#}");
    assert!(
        certificate["void"].as_str().is_some_and(|v| v.starts_with("the release was rolled back after this phase passed")),
        "{certificate:#}"
    );
    let markdown = lab.ok(&["report", "during", "--kind", "certificate", "--phase", "go-no-go"]);
    assert!(
        markdown.contains("**Void: this certificate authorizes nothing:**") && !markdown.contains("Authorization to proceed"),
        "{markdown}"
    );
    drop(server);

    // After the launch, while QG-PHASE8 waits: P2 hotfixes, P1 and P0 roll back.
    let after = Lab::new();
    for id in ["p1-after", "p0-after"] {
        after.start(id, &[]);
        through_go_no_go(&after, id);
        after.ok(&["run", "--until-idle"]);
        assert_eq!(phase_status(&after.status(id), "post-launch"), "awaiting_approval");
    }
    after.signal("p1-after", "P2");
    after.ok(&["run", "--until-idle"]);
    assert!(after.history("p1-after").contains("task post-launch-hotfix succeeded"), "{}", after.history("p1-after"));
    after.signal("p1-after", "P1");
    after.ok(&["run", "--until-idle"]);
    assert!(after.ok(&["approvals"]).contains("launch/p1-rollback-in-15-minutes"), "the P1 halt is awaited after the launch");
    after.approve("p1-after", "lee", "launch/p1-rollback-in-15-minutes");
    after.exits(1, &["run", "--until-idle"]);
    assert_eq!(after.status("p1-after")["effective_status"], "rolled_back");
    after.signal("p0-after", "P0");
    after.exits(1, &["run", "--until-idle"]);
    let status = after.status("p0-after");
    assert_eq!(status["effective_status"], "rolled_back", "a P0 rolls back at once, no decision: {status:#}");
    assert!(after.history("p0-after").contains("trigger launch/p0-rollback-now fired"), "{}", after.history("p0-after"));

    // The uptime breach: the target goes down during the launch soak.
    let down = Lab::new();
    // An outage breaches both watches; a long error-rate window lets the uptime one speak first.
    down.start("down", &["--var", "launch_soak=10m", "--var", "error_rate_window=1h"]);
    through_go_no_go(&down, "down");
    let _server = down.serve();
    down.wait_for("down", "the launch soak to begin", |s| {
        s["phases"][3]["tasks"].as_array().is_some_and(|t| t.iter().any(|t| t["id"] == "soak" && t["status"]["status"] == "waiting"))
    });
    down.inject_fault("down_seconds=600");
    down.wait_for("down", "the uptime rollback halt", |s| s["effective_status"] == "awaiting_approval");
    assert!(down.history("down").contains("trigger launch/uptime-rollback fired"), "{}", down.history("down"));
    down.approve("down", "oscar", "launch/uptime-rollback");
    down.wait_for("down", "the uptime rollback", |s| s["effective_status"] == "rolled_back");
}

/// Issue 17 item 5 (people are told), on the shipped definition: each halt
/// that waits for a person reaches the inbox with the command that decides
/// it and who may; the P1 clock carries its 15-minute deadline; an
/// auto-rollback is announced when it acts; the inbox file holds them all.
#[test]
fn people_are_told_of_every_halt_and_rollback_through_the_notification_inbox() {
    let lab = Lab::new();
    lab.start("told", &[]);
    through_go_no_go(&lab, "told");
    for (gate, decide) in [
        ("qa-sign-off", "phasegate approve told hardening/qa-sign-off"),
        ("user-go-no-go", "phasegate approve told go-no-go/user-go-no-go"),
    ] {
        let told = lab.told("told", gate, "awaiting_decision").unwrap_or_else(|| panic!("{gate} announced: {:#?}", lab.inbox()));
        assert!(told["decide"].as_str().is_some_and(|d| d.starts_with(decide)), "{told:#}");
        assert!(told["approvers"].as_array().is_some_and(|a| !a.is_empty()), "who may decide: {told:#}");
    }
    lab.ok(&["run", "--until-idle"]);
    assert!(lab.told("told", "qg-phase8", "awaiting_decision").is_some(), "QG-PHASE8 is announced: {:#?}", lab.inbox());

    // The P1 clock: the halt is announced with its deadline and the people who decide.
    lab.signal("told", "P1");
    lab.ok(&["run", "--until-idle"]);
    let p1 = lab.told("told", "p1-rollback-in-15-minutes", "awaiting_decision").unwrap_or_else(|| panic!("{:#?}", lab.inbox()));
    assert_eq!(p1["approvers"], serde_json::json!(["role:devops-oncall", "role:lead"]), "{p1:#}");
    assert!(p1["deadline"].is_string(), "the 15-minute clock: {p1:#}");
    assert!(p1["decide"].as_str().is_some_and(|d| d.starts_with("phasegate approve told launch/p1-rollback-in-15-minutes")), "{p1:#}");
    lab.approve("told", "oscar", "launch/p1-rollback-in-15-minutes");
    lab.exits(1, &["run", "--until-idle"]);
    let acted = lab.told("told", "p1-rollback-in-15-minutes", "acted: rollback").unwrap_or_else(|| panic!("{:#?}", lab.inbox()));
    assert!(acted["text"].as_str().is_some_and(|t| t.contains("approved by oscar")), "{acted:#}");
    assert!(acted.get("decide").is_none(), "nothing left to decide: {acted:#}");

    // The inbox file is what the walk-through shows: one line per notification, each once.
    let file = std::fs::read_to_string(lab.dir.path().join("inbox.jsonl")).expect("the inbox file");
    assert_eq!(file.lines().count(), lab.inbox().len(), "{file}");
    assert_eq!(lab.get_json("/admin/notifications")["duplicates"], 0, "each notification delivered once");
}

/// Issue 17 item 6 (time as the seeds say): with re-validation on, QG-PHASE8
/// itself runs again after `revalidation_period` (every criterion, decided
/// again by its authority), not a shorter review; the instance is then
/// `scheduled`, never `completed`.
#[test]
fn quarterly_revalidation_runs_all_of_qg_phase8_again() {
    let lab = Lab::new();
    lab.start("quarterly", &["--var", "revalidate_quarterly=true", "--var", "revalidation_period=2s"]);
    through_go_no_go(&lab, "quarterly");
    lab.ok(&["run", "--until-idle"]);
    lab.approve("quarterly", "hana", "post-launch/qg-phase8");
    lab.approve("quarterly", "bea", "post-launch/qg-phase8");
    let _server = lab.serve();
    lab.wait_for("quarterly", "QG-PHASE8's second cycle to wait for its authority", |s| {
        let post = s["phases"].as_array().and_then(|p| p.iter().find(|p| p["id"] == "post-launch")).cloned().unwrap_or_default();
        post["attempt"] == 2 && post["status"]["status"] == "awaiting_approval"
    });
    let gates = lab.report("quarterly", "gate", &[]);
    let cycles: Vec<&serde_json::Value> =
        gates["evaluations"].as_array().expect("evaluations").iter().filter(|e| e["gate"] == "qg-phase8").collect();
    assert_eq!(cycles.len(), 2, "{gates:#}");
    let criteria = |e: &serde_json::Value| e["criteria"].as_array().map_or(0, Vec::len);
    assert!(criteria(cycles[0]) >= 20, "QG-PHASE8 has every Must/Should line: {:#}", cycles[0]);
    assert_eq!(criteria(cycles[1]), criteria(cycles[0]), "the re-validation judges every criterion again");
    assert!(lab.history("quarterly").contains("phase post-launch: scheduled cycle due"), "{}", lab.history("quarterly"));
    let approvals = lab.ok(&["approvals"]);
    assert!(approvals.contains("post-launch/qg-phase8") && approvals.contains("role:human-command-group 0 of 1"), "{approvals}");
}
