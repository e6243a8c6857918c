//! Crash test: the real `phasegate run` is killed with SIGKILL at random
//! moments (some during recovery) and restarted, many times, while it drives a
//! workflow of 120 tasks over four phases whose exec tasks append their
//! idempotency key to a ledger. Afterwards the store must show: every task
//! completed; every key that ran is a recorded dispatch and every completed
//! attempt's key ran; duplicates only from re-dispatch after a kill; no gap in
//! the sequence numbers; phase order respected; and a replay of the log equal
//! to the state loaded from snapshots.
//!
//! `PHASEGATE_CRASH_CYCLES=500` runs longer; `PHASEGATE_CRASH_SEED` replays a run.

use phasegate_engine::machine::payload;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::phasegate;
use phasegate_engine::machine::{self, Event, TaskStatus};
use phasegate_engine::{Engine, Mode};

const PHASES: [(&str, &[&str]); 4] = [("prepare", &[]), ("left", &["prepare"]), ("right", &["prepare"]), ("finish", &["left", "right"])];
const TASKS_PER_PHASE: usize = 30;

/// The task every exec step runs: append the attempt's key and a nonce unique
/// to this execution to the ledger, fail the first attempt when asked, sleep,
/// and return the nonce as output. The nonce tells executions of the same
/// attempt apart, which the causal check below needs.
const TASK_SCRIPT: &str = r#"nonce="$$-$(cat /proc/sys/kernel/random/uuid)"
printf '%s %s\n' "$PHASEGATE_IDEMPOTENCY_KEY" "$nonce" >> "$LEDGER"
if [ "$2" = flaky ] && [ "$PHASEGATE_ATTEMPT" -lt 2 ]; then exit 3; fi
sleep "$1"
printf '{"nonce": "%s"}\n' "$nonce"
"#;

fn definition(ledger: &Path, script: &Path) -> String {
    let mut toml = String::from("name = \"crash\"\nversion = 1\n");
    for (phase, after) in PHASES {
        toml.push_str(&format!("\n[[phases]]\nid = \"{phase}\"\nafter = {after:?}\n"));
        for i in 0..TASKS_PER_PHASE {
            // Mostly chains (so the run outlasts the kill loop), with a few
            // tasks in parallel; every fifth task fails its first attempt, so
            // retries and their timers cross kills too.
            let depends = if i > 0 && i % 4 != 1 { format!("depends_on = [\"{phase}-{}\"]\n", i - 1) } else { String::new() };
            let mode = if i % 5 == 4 { "flaky" } else { "steady" };
            let sleep = ["0.05", "0.1", "0.15", "0.2"][i % 4];
            toml.push_str(&format!(
                "[[phases.tasks]]\nid = \"{phase}-{i}\"\nagent = \"exec\"\n{depends}retry = {{ max_attempts = 5, initial = \"50ms\", max = \"200ms\" }}\n\
                 params = {{ argv = [\"sh\", {script:?}, \"{sleep}\", \"{mode}\"], env = {{ LEDGER = {ledger:?} }} }}\n",
                script = script.display().to_string(),
                ledger = ledger.display().to_string(),
            ));
        }
    }
    toml
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The test's directory; with `PHASEGATE_CRASH_KEEP` set it is kept (and
/// its path printed) so a store that fails can be inspected afterwards.
fn scratch_dir() -> tempfile::TempDir {
    let mut dir = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("PHASEGATE_CRASH_KEEP").is_some() {
        eprintln!("crash test directory (kept): {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    dir
}

/// Starts `phasegate run --until-idle` and sends it SIGKILL after a random
/// wait, unless it finished first; says whether it was killed. A quarter of
/// the kills land within the first milliseconds, while the process is opening
/// the store and recovering.
fn run_and_kill(dir: &Path, db_arg: &str, rng: &mut Rng, cycle: usize, spread_ms: u64) -> bool {
    let mut child = phasegate(dir)
        .args(["--db", db_arg, "run", "--until-idle"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");
    let wait = if cycle.is_multiple_of(4) { rng.below(15) } else { 10 + rng.below(spread_ms) };
    std::thread::sleep(Duration::from_millis(wait));
    let killed = child.try_wait().expect("poll").is_none();
    if killed {
        child.kill().expect("SIGKILL");
    }
    child.wait().expect("reaped");
    killed
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let cycles: usize = std::env::var("PHASEGATE_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("PHASEGATE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7) | 1
    });
    eprintln!("crash test: {cycles} cycles, PHASEGATE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = scratch_dir();
    let ledger = dir.path().join("ledger");
    let db = dir.path().join("db");
    let file = dir.path().join("crash.toml");
    let script = dir.path().join("task.sh");
    std::fs::write(&script, TASK_SCRIPT).expect("write task script");
    std::fs::write(&file, definition(&ledger, &script)).expect("write definition");
    let db_arg = db.to_str().expect("utf-8 path");

    let started = phasegate(dir.path()).args(["--db", db_arg, "start", "crash.toml", "--id", "crash-1"]).output().expect("start runs");
    assert!(started.status.success(), "start failed: {}", String::from_utf8_lossy(&started.stderr));

    let mut kills = 0;
    let mut finished_alone = 0;
    for cycle in 0.. {
        if kills >= cycles || finished_alone >= 2 {
            break;
        }
        if run_and_kill(dir.path(), db_arg, &mut rng, cycle, 200) {
            kills += 1;
        } else {
            finished_alone += 1;
        }
    }
    // Let orphaned attempts of the last killed process finish writing.
    std::thread::sleep(Duration::from_millis(300));
    let last = phasegate(dir.path()).args(["--db", db_arg, "run", "--until-idle"]).output().expect("final run");
    assert!(last.status.success(), "final run failed: {}", String::from_utf8_lossy(&last.stderr));
    std::thread::sleep(Duration::from_millis(300));
    eprintln!("crash test: {kills} processes killed");
    assert!(kills >= cycles, "only {kills} runs were still working when killed; the workflow is too short for {cycles} kills");

    check_invariants(&db, &ledger);
}

fn check_invariants(db: &Path, ledger: &Path) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = Engine::builder().store_path(db).mode(Mode::Passive).build().await.expect("store opens");
        let (instance, workflow) = engine.instance("crash-1").expect("instance loads");
        let records = engine.history("crash-1").expect("history");
        // The audit chain survived every kill: each record links to the one
        // before it, and the state's end of the chain is the last record's.
        let audit = engine.audit("crash-1", None).expect("audit");
        assert!(audit.ok() && audit.unlinked == 0, "the audit chain after the kills: {audit:?}");
        assert_eq!(audit.head.as_ref().map(|h| h.hash.as_str()), Some(instance.chain.as_str()), "the chain's end");
        engine.shutdown().await;

        // Every task completed.
        assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed, "final status");
        for phase in &instance.phases {
            for task in &phase.tasks {
                assert!(matches!(task.status, TaskStatus::Succeeded { .. }), "{} is {:?}", task.id, task.status);
            }
        }
        // No sequence gaps.
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.seq(), i as u64 + 1, "sequence gap at {i}");
        }
        // Nothing acknowledged lost, nothing ran undeclared.
        let ledger_lines: Vec<(String, String)> = std::fs::read_to_string(ledger)
            .expect("ledger")
            .lines()
            .filter_map(|line| line.split_once(' ').map(|(k, n)| (k.to_owned(), n.to_owned())))
            .collect();
        let ran_set: BTreeSet<&str> = ledger_lines.iter().map(|(key, _)| key.as_str()).collect();
        let mut dispatched: BTreeMap<(String, u32), String> = BTreeMap::new();
        let mut result_nonce: BTreeMap<String, String> = BTreeMap::new();
        for record in &records {
            match record.event() {
                Event::TaskDispatched(payload::TaskDispatched { task, attempt, key, .. }) => {
                    dispatched.insert((task.clone(), *attempt), key.clone());
                }
                Event::TaskSucceeded(payload::TaskSucceeded { task, attempt, output, .. }) => {
                    let key = dispatched
                        .get(&(task.clone(), *attempt))
                        .unwrap_or_else(|| panic!("{task}#{attempt} completed without a dispatch"));
                    let nonce = output["nonce"].as_str().unwrap_or_else(|| panic!("{task} output lacks its nonce: {output}"));
                    assert!(ledger_lines.iter().any(|(k, n)| k == key && n == nonce), "{key} ({nonce}) is recorded as run but never ran");
                    result_nonce.insert(task.clone(), nonce.to_owned());
                }
                Event::TaskFailed(payload::TaskFailed { task, attempt, .. }) => {
                    let key =
                        dispatched.get(&(task.clone(), *attempt)).unwrap_or_else(|| panic!("{task}#{attempt} failed without a dispatch"));
                    assert!(ran_set.contains(key.as_str()), "{key} is recorded as run but never ran");
                }
                _ => {}
            }
        }
        let declared: BTreeSet<&str> = dispatched.values().map(String::as_str).collect();
        for key in &ran_set {
            assert!(declared.contains(key), "{key} ran without a durable dispatch");
        }
        // Causality: a task runs only after its dependencies' results are
        // durable, and a durable result is never replaced. So the execution
        // whose result the log kept must appear in the ledger before any
        // execution of a task that depends on it. A result acknowledged
        // before its flush and then lost shows up here: the dependency ran
        // again after its dependant had already started.
        let first_run = |task: &str| ledger_lines.iter().position(|(key, _)| key.split('/').nth(2) == Some(task));
        let kept_run = |task: &str| {
            let nonce = &result_nonce[task];
            ledger_lines.iter().position(|(_, n)| n == nonce).unwrap_or(usize::MAX)
        };
        for (p, phase) in workflow.phases.iter().enumerate() {
            for task in &phase.tasks {
                let mut upstream: Vec<&str> = task.depends_on.iter().map(|&d| phase.tasks[d].id.as_str()).collect();
                if task.depends_on.is_empty() {
                    for &u in &workflow.phases[p].after {
                        upstream.extend(workflow.phases[u].tasks.iter().map(|t| t.id.as_str()));
                    }
                }
                let Some(started) = first_run(&task.id) else { panic!("{} never ran", task.id) };
                for dependency in upstream {
                    assert!(
                        kept_run(dependency) < started,
                        "{} ran before the execution of {dependency} whose result the log kept",
                        task.id
                    );
                }
            }
        }
        let duplicates = ledger_lines.len() - ran_set.len();
        eprintln!("crash test: {} executions, {duplicates} re-runs after kills, {} events", ledger_lines.len(), records.len());

        // Phase order.
        let position = |kind: &str, phase: &str| {
            records.iter().position(|r| match r.event() {
                Event::PhaseStarted(payload::PhaseStarted { phase: p, .. }) if kind == "start" => p == phase,
                Event::PhaseCompleted(payload::PhaseCompleted { phase: p }) if kind == "done" => p == phase,
                _ => false,
            })
        };
        for (phase, after) in PHASES {
            let start = position("start", phase).expect("phase started");
            for upstream in after {
                let done = position("done", upstream).expect("upstream completed");
                assert!(done < start, "{phase} started before {upstream} completed");
            }
        }
        // The state loaded from snapshots equals a replay of the whole log.
        // (The chain's end is the runtime's, from the stored bytes, checked above.)
        let mut replayed = machine::replay("crash-1", &workflow, &records).expect("the log replays");
        replayed.chain.clone_from(&instance.chain);
        assert_eq!(replayed, instance, "snapshot-based state differs from a full replay");
    });
}

/// A rollback under kill -9: compensations run one at a time in reverse
/// completion order, a restart resumes the rollback, and a compensation whose
/// success is durable never runs again.
#[test]
fn kill_9_during_a_rollback_resumes_it_and_repeats_no_finished_compensation() {
    const STEPS: usize = 24;
    let cycles: usize = std::env::var("PHASEGATE_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).map_or(25, |c: usize| c.min(25));
    let seed: u64 = std::env::var("PHASEGATE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(11) | 1
    });
    eprintln!("rollback crash test: {cycles} cycles, PHASEGATE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = scratch_dir();
    let ledger = dir.path().join("ledger");
    let script = dir.path().join("undo.sh");
    std::fs::write(&script, TASK_SCRIPT).expect("write script");
    let mut toml = String::from("name = \"undo\"\n[[phases]]\nid = \"release\"\n");
    for i in 0..STEPS {
        let depends = if i > 0 { format!("depends_on = [\"step-{}\"]\n", i - 1) } else { String::new() };
        let sleep = ["0.05", "0.1", "0.15"][i % 3];
        toml.push_str(&format!(
            "[[phases.tasks]]\nid = \"step-{i}\"\nagent = \"noop\"\n{depends}\
             rollback = {{ id = \"undo-{i}\", agent = \"exec\", retry = {{ max_attempts = 5, initial = \"50ms\", max = \"200ms\" }}, \
             params = {{ argv = [\"sh\", {script:?}, \"{sleep}\", \"steady\"], env = {{ LEDGER = {ledger:?} }} }} }}\n",
            script = script.display().to_string(),
            ledger = ledger.display().to_string(),
        ));
    }
    toml.push_str("[[phases.gates]]\nid = \"hold-the-release\"\napproval = { approvers = [\"nobody\"] }\n");
    std::fs::write(dir.path().join("undo.toml"), toml).expect("write definition");
    let db = dir.path().join("db");
    let db_arg = db.to_str().expect("utf-8 path");
    let cli = |args: &[&str]| {
        let output = phasegate(dir.path()).arg("--db").arg(db_arg).args(args).output().expect("phasegate runs");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    cli(&["start", "undo.toml", "--id", "undo-1"]);
    cli(&["run", "--until-idle"]);
    cli(&["rollback", "undo-1", "--reason", "crash test"]);

    let mut kills = 0;
    for cycle in 0..cycles * 3 {
        if kills >= cycles {
            break;
        }
        if run_and_kill(dir.path(), db_arg, &mut rng, cycle, 150) {
            kills += 1;
        }
    }
    // The release ends rolled back, which `run` reports with exit status 1.
    let last = phasegate(dir.path()).arg("--db").arg(db_arg).args(["run", "--until-idle"]).output().expect("phasegate runs");
    assert_eq!(last.status.code(), Some(1), "{}", String::from_utf8_lossy(&last.stderr));
    eprintln!("rollback crash test: {kills} processes killed");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (instance, records) = runtime.block_on(async {
        let engine = Engine::builder().store_path(&db).mode(Mode::Passive).build().await.expect("store opens");
        let found = (engine.instance("undo-1").expect("loads").0, engine.history("undo-1").expect("history"));
        engine.shutdown().await;
        found
    });
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::RolledBack);
    let ledger_lines: Vec<(String, String)> = std::fs::read_to_string(&ledger)
        .expect("ledger")
        .lines()
        .filter_map(|line| line.split_once(' ').map(|(k, n)| (k.to_owned(), n.to_owned())))
        .collect();
    let mut succeeded = Vec::new();
    let mut dispatched = BTreeMap::new();
    for record in &records {
        match record.event() {
            Event::CompensationDispatched(payload::CompensationDispatched { id, attempt, key, .. }) => {
                dispatched.insert((id.clone(), *attempt), key.clone());
            }
            Event::CompensationSucceeded(payload::CompensationSucceeded { id, attempt, output, .. }) => {
                let key = dispatched.get(&(id.clone(), *attempt)).unwrap_or_else(|| panic!("{id}#{attempt} without a dispatch")).clone();
                let nonce = output["nonce"].as_str().unwrap_or_default().to_owned();
                let kept = ledger_lines
                    .iter()
                    .position(|(k, n)| *k == key && *n == nonce)
                    .unwrap_or_else(|| panic!("{key} ({nonce}) is recorded as run but never ran"));
                // Durable success: that key never ran again afterwards.
                assert!(!ledger_lines[kept + 1..].iter().any(|(k, _)| *k == key), "{key} ran again after its success was recorded");
                succeeded.push((id.clone(), kept));
            }
            _ => {}
        }
    }
    let order: Vec<String> = succeeded.iter().map(|(id, _)| id.clone()).collect();
    let expected: Vec<String> = (0..STEPS).rev().map(|i| format!("undo-{i}")).collect();
    assert_eq!(order, expected, "every compensation once, in reverse completion order");
    // One at a time: each compensation's kept execution precedes the first
    // execution of the next one.
    for pair in succeeded.windows(2) {
        let next = format!("-{}", pair[1].0);
        let first_next = ledger_lines
            .iter()
            .position(|(k, _)| k.split('/').nth(2).is_some_and(|step| step.ends_with(&next)))
            .unwrap_or_else(|| panic!("{} never ran", pair[1].0));
        assert!(pair[0].1 < first_next, "{} started before {} finished", pair[1].0, pair[0].0);
    }
    let declared: BTreeSet<&str> = dispatched.values().map(String::as_str).collect();
    for (key, _) in &ledger_lines {
        assert!(declared.contains(key.as_str()), "{key} ran without a durable dispatch");
    }
    eprintln!("rollback crash test: {} executions for {STEPS} compensations", ledger_lines.len());
}
