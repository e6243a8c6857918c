//! The definition format end to end: every kind of validation error with its
//! message, path and line; TOML/JSON equivalence; the schema file; the shipped
//! workflows; and a loader that never panics.

use phasegate_engine::model::{json_schema_text, Diagnostic, Format, Kind, Source};
use phasegate_engine::plan::{self, AgentNames, Workflow};

fn load(text: &str, format: Format) -> Result<Workflow, Vec<Diagnostic>> {
    plan::load_source(&Source::from_text(text, format), &AgentNames::builtin()).map_err(|d| d.0)
}

/// Asserts that `toml` has exactly one problem, of `kind` at `path` on
/// `line`, whose message contains `message`.
#[track_caller]
fn check(toml: &str, kind: Kind, path: &str, line: usize, message: &str) -> Diagnostic {
    let problems = load(toml, Format::Toml).expect_err("the definition should be refused");
    assert_eq!(problems.len(), 1, "expected one problem, got:\n{problems:#?}");
    let problem = problems.into_iter().next().expect("one problem");
    assert_eq!(problem.kind, kind, "{problem:#?}");
    assert_eq!(problem.path, path, "{problem:#?}");
    assert_eq!(problem.line, Some(line), "{problem:#?}");
    assert!(problem.message.contains(message), "message {:?} lacks {message:?}", problem.message);
    assert!(problem.hint.is_some(), "every problem says what to do: {problem:#?}");
    problem
}

const HEADER: &str = "name = \"w\"\n";

fn one_phase(body: &str) -> String {
    format!("{HEADER}[[phases]]\nid = \"p\"\n{body}")
}

#[test]
fn syntax_errors_give_the_line() {
    check("name = \"w\"\nphases = [\n", Kind::Syntax, "", 2, "invalid TOML");
    let problems = load("{\"name\": \"w\",\n \"phases\": [,]}", Format::Json).expect_err("bad JSON");
    assert_eq!(problems[0].kind, Kind::Syntax);
    assert_eq!(problems[0].line, Some(2));
    assert!(problems[0].message.starts_with("invalid JSON"), "{}", problems[0].message);
}

#[test]
fn wrong_types_name_the_field() {
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\ndepends_on = \"x\"\n");
    check(&toml, Kind::Type, "phases[0].tasks[0].depends_on", 7, "invalid type: string \"x\", expected a sequence");
    check("name = \"w\"\nphases = 3\n", Kind::Type, "phases", 2, "must be an array of tables");
    check(
        "name = \"w\"\nversion = \"one\"\n[[phases]]\nid = \"p\"\n[[phases.gates]]\nid = \"g\"\napproval = { approvers = [\"a\"] }\n",
        Kind::Type,
        "version",
        2,
        "expected u32",
    );
}

#[test]
fn unknown_fields_suggest_the_right_name() {
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\ndepend_on = [\"x\"]\n");
    let problem = check(&toml, Kind::UnknownField, "phases[0].tasks[0].depend_on", 7, "unknown field `depend_on`");
    assert_eq!(problem.hint.as_deref(), Some("did you mean `depends_on`?"));
    let toml = one_phase("[[phases.gates]]\nid = \"g\"\n[phases.gates.approval]\napprovers = [\"a\"]\nself_aproval = true\n");
    let problem = check(&toml, Kind::UnknownField, "phases[0].gates[0].approval.self_aproval", 8, "self_aproval");
    assert_eq!(problem.hint.as_deref(), Some("did you mean `self_approval`?"));
}

#[test]
fn missing_fields_are_named() {
    check("name = \"w\"\n", Kind::MissingField, "phases", 1, "has no `phases`");
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\n");
    check(&toml, Kind::MissingField, "phases[0].tasks[0]", 4, "missing field `agent`");
    let toml = one_phase("[[phases.gates]]\nid = \"g\"\ncriteria = [{ label = \"x\" }]\n");
    check(&toml, Kind::MissingField, "phases[0].gates[0].criteria[0]", 6, "needs `must` or `should`");
}

#[test]
fn duplicate_ids_are_refused() {
    let toml = format!("{HEADER}[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n[[phases]]\nid = \"q\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n");
    check(&toml, Kind::DuplicateId, "phases[1].tasks[0].id", 10, "duplicate task id `t` (also in phase `p`)");
    let toml = format!("{HEADER}[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"u\"\nagent = \"noop\"\n");
    check(&toml, Kind::DuplicateId, "phases[1].id", 8, "duplicate phase id `p`");
}

#[test]
fn ids_must_be_plain() {
    let toml = one_phase("[[phases.tasks]]\nid = \"two words\"\nagent = \"noop\"\n");
    check(&toml, Kind::BadId, "phases[0].tasks[0].id", 5, "is not a plain identifier");
    let toml = format!("{HEADER}[vars]\n\"bad-name\" = 1\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n");
    check(&toml, Kind::BadId, "vars.bad-name", 3, "is not an identifier");
}

#[test]
fn unknown_references_are_named_with_hints() {
    let task = "[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n";
    let toml = one_phase(&format!("after = [\"nowhere\"]\n{task}"));
    check(&toml, Kind::UnknownReference, "phases[0].after[0]", 4, "unknown phase `nowhere`");
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\ndepends_on = [\"u\"]\n");
    check(&toml, Kind::UnknownReference, "phases[0].tasks[0].depends_on[0]", 7, "unknown task `u`");
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"exce\"\n");
    let problem = check(&toml, Kind::UnknownReference, "phases[0].tasks[0].agent", 6, "unknown agent `exce`");
    assert_eq!(problem.hint.as_deref(), Some("did you mean `exec`?"));
    let toml = one_phase(&format!("{task}[[phases.triggers]]\non = \"error-rate\"\naction = \"rollback\"\n"));
    check(&toml, Kind::UnknownReference, "phases[0].triggers[0].on", 8, "`error-rate` is not a watch of phase `p`");
    let toml = one_phase(&format!("{task}[[phases.triggers]]\non = \"signal:incident\"\naction = \"rollback\"\n"));
    let problem = check(&toml, Kind::UnknownReference, "phases[0].triggers[0].on", 8, "unknown signal `incident`");
    assert!(problem.hint.as_deref().is_some_and(|h| h.contains("[signals.incident]")));
    let toml = one_phase(&format!("{task}[[phases.gates]]\nid = \"g\"\ncriteria = [{{ must = \"vars.nope > 1\", label = \"x\" }}]\n"));
    check(&toml, Kind::BadExpression, "phases[0].gates[0].criteria[0].must", 9, "unknown variable `nope`");
    let toml =
        one_phase(&format!("{task}[[phases.gates]]\nid = \"g\"\ncriteria = [{{ must = \"metrics.latency.value < 1\", label = \"x\" }}]\n"));
    check(&toml, Kind::BadExpression, "phases[0].gates[0].criteria[0].must", 9, "unknown watch `latency`");
}

#[test]
fn cycles_are_named() {
    let toml = format!(
        "{HEADER}[[phases]]\nid = \"a\"\nafter = [\"b\"]\n[[phases.tasks]]\nid = \"t1\"\nagent = \"noop\"\n[[phases]]\nid = \"b\"\nafter = [\"a\"]\n[[phases.tasks]]\nid = \"t2\"\nagent = \"noop\"\n"
    );
    check(&toml, Kind::Cycle, "phases[0].after", 4, "a → b → a");
    let toml = one_phase(
        "[[phases.tasks]]\nid = \"x\"\nagent = \"noop\"\ndepends_on = [\"z\"]\n[[phases.tasks]]\nid = \"y\"\nagent = \"noop\"\ndepends_on = [\"x\"]\n[[phases.tasks]]\nid = \"z\"\nagent = \"noop\"\ndepends_on = [\"y\"]\n",
    );
    check(&toml, Kind::Cycle, "phases[0].tasks[0].depends_on", 7, "x → z → y → x");
    let toml = one_phase("after = [\"p\"]\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n");
    check(&toml, Kind::Cycle, "phases[0].after[0]", 4, "runs after itself");
}

#[test]
fn bad_durations_and_schedules() {
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\ntimeout = \"5 parsecs\"\n");
    check(&toml, Kind::BadDuration, "phases[0].tasks[0].timeout", 7, "invalid duration `5 parsecs`");
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\ntimeout = \"0s\"\n");
    check(&toml, Kind::BadDuration, "phases[0].tasks[0].timeout", 7, "is zero");
    let toml = one_phase("schedule = { cron = \"61 * * * *\" }\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n");
    check(&toml, Kind::BadSchedule, "phases[0].schedule.cron", 4, "invalid cron expression");
    let toml = one_phase("schedule = { every = \"90d\" }\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n");
    assert!(load(&toml, Format::Toml).is_ok());
}

#[test]
fn bad_expressions_carry_the_parser_message() {
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n[[phases.gates]]\nid = \"g\"\ncriteria = [{ must = \"tasks.t.output.x >\", label = \"x\" }]\n");
    check(&toml, Kind::BadExpression, "phases[0].gates[0].criteria[0].must", 9, "cannot parse the expression: 1:19: Syntax error");
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\nwhen = \"value > 1\"\n");
    check(&toml, Kind::BadExpression, "phases[0].tasks[0].when", 7, "unknown name `value`");
}

#[test]
fn empty_phases_and_gates() {
    check(&one_phase("title = \"nothing\"\n"), Kind::EmptyPhase, "phases[0]", 2, "has neither tasks nor gates");
    let toml = one_phase("[[phases.gates]]\nid = \"g\"\n");
    check(&toml, Kind::EmptyGate, "phases[0].gates[0]", 4, "has neither criteria nor an approval");
}

#[test]
fn quorum_cannot_exceed_the_approvers() {
    let toml = one_phase("[[phases.gates]]\nid = \"g\"\n[phases.gates.approval]\napprovers = [\"alice\", \"bob\"]\nrequired = 3\n");
    check(&toml, Kind::QuorumTooLarge, "phases[0].gates[0].approval.required", 8, "required = 3 but only 2 approvers");
    let with_role = one_phase("[[phases.gates]]\nid = \"g\"\n[phases.gates.approval]\napprovers = [\"role:sre\"]\nrequired = 3\n");
    assert!(load(&with_role, Format::Toml).is_ok(), "a role may hold any number of people");
}

#[test]
fn goto_must_target_an_upstream_phase() {
    let toml = format!(
        "{HEADER}[[phases]]\nid = \"a\"\n[[phases.tasks]]\nid = \"t1\"\nagent = \"noop\"\n[[phases.triggers]]\non = \"task_failed\"\naction = \"goto\"\nphase = \"b\"\n[[phases]]\nid = \"b\"\nafter = [\"a\"]\n[[phases.tasks]]\nid = \"t2\"\nagent = \"noop\"\n"
    );
    check(&toml, Kind::GotoNotUpstream, "phases[0].triggers[0].phase", 10, "phase `b` is not `a` itself or a phase it runs after");
}

#[test]
fn contradictory_fields_are_invalid_values() {
    let task = "[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n";
    let toml = one_phase(&format!("{task}[[phases.triggers]]\non = \"task_failed\"\naction = \"rollback\"\ncode = \"X-1\"\n"));
    check(&toml, Kind::InvalidValue, "phases[0].triggers[0].code", 10, "`code` does not apply to action `rollback`");
    let toml = one_phase(&format!(
        "{task}[[phases.gates]]\nid = \"g\"\n[phases.gates.approval]\napprovers = [\"a\"]\ntimeout = \"1h\"\non_timeout = \"escalate\"\n"
    ));
    check(&toml, Kind::InvalidValue, "phases[0].gates[0].approval.on_timeout", 12, "no escalation levels");
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\nretry = { max_attempts = 0 }\n");
    check(&toml, Kind::InvalidValue, "phases[0].tasks[0].retry.max_attempts", 7, "max_attempts is 0");
    let toml = one_phase("[[phases.gates]]\nid = \"g\"\n[phases.gates.approval]\napprovers = [\"a\"]\non_timeout = \"explode\"\n");
    check(&toml, Kind::InvalidValue, "phases[0].gates[0].approval.on_timeout", 8, "unknown variant `explode`");
    let toml = format!("{HEADER}[vars]\nn = {{ type = \"integer\", default = \"five\" }}\n[[phases]]\nid = \"p\"\n{task}");
    check(&toml, Kind::Type, "vars.n.default", 3, "is \"five\", not a integer");
}

/// Issue 17: variables declare bounds, so `--var error_rate_max=10` (meant
/// as 10 %) or an empty target is refused rather than a threshold that
/// never breaches; a default out of its bounds, and a bound that does not
/// fit the type, are refused at validate.
#[test]
fn variables_keep_their_declared_bounds() {
    let task = "[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n";
    let with = |vars: &str| format!("{HEADER}[vars]\n{vars}\n{task}");
    let workflow = load(
        &with("share = { type = \"number\", default = 0.1, min = 0.0, max = 1.0 }\nurl = { type = \"string\", default = \"http://x\", min_length = 1 }"),
        Format::Toml,
    )
    .expect("valid");
    let share = &workflow.vars["share"];
    assert_eq!(share.parse("0.25"), Ok(serde_json::json!(0.25)));
    assert_eq!(share.parse("10"), Err("10 is above the variable's max 1".to_owned()));
    assert_eq!(share.parse("-3"), Err("-3 is below the variable's min 0".to_owned()));
    assert_eq!(workflow.vars["url"].parse(""), Err("it is empty; give a value".to_owned()));
    check(
        &with("share = { type = \"number\", default = 5.0, max = 1.0 }"),
        Kind::InvalidValue,
        "vars.share.default",
        3,
        "5 is above the variable's max 1",
    );
    check(
        &with("share = { type = \"number\", default = 0.5, min = 1.0, max = 0.0 }"),
        Kind::InvalidValue,
        "vars.share.max",
        3,
        "max 0 is below min 1",
    );
    check(
        &with("name = { type = \"string\", default = \"x\", max = 3.0 }"),
        Kind::InvalidValue,
        "vars.name.max",
        3,
        "`max` does not apply to `name`, a string variable",
    );
    check(
        &with("n = { type = \"integer\", default = 1, min_length = 1 }"),
        Kind::InvalidValue,
        "vars.n.min_length",
        3,
        "`min_length` does not apply",
    );
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let toml = format!(
        "{HEADER}[[phases]]\nid = \"a\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"exce\"\ntimeout = \"soon\"\ndepend_on = []\n[[phases]]\nid = \"b\"\n"
    );
    let problems = load(&toml, Format::Toml).expect_err("invalid");
    let kinds: Vec<Kind> = problems.iter().map(|p| p.kind).collect();
    // In the order a reader meets them in the file.
    assert_eq!(kinds, [Kind::UnknownReference, Kind::BadDuration, Kind::UnknownField, Kind::EmptyPhase]);
    let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [Some(6), Some(7), Some(8), Some(9)], "{problems:#?}");
}

#[test]
fn toml_and_json_load_the_same_workflow() {
    let root = workspace_root();
    let toml_text = std::fs::read_to_string(root.join("workflows/hello.toml")).expect("hello.toml");
    let from_toml = load(&toml_text, Format::Toml).expect("valid TOML");
    let json_text = serde_json::to_string_pretty(&from_toml.definition).expect("serialises");
    let from_json = load(&json_text, Format::Json).expect("valid JSON");
    assert_eq!(from_toml.definition, from_json.definition);
    assert_eq!(plan::to_dot(&from_toml), plan::to_dot(&from_json));
    // And a definition written by hand in JSON equals its TOML twin.
    let json = r#"{"name": "w", "vars": {"limit": 3}, "phases": [{"id": "p", "tasks": [{"id": "t", "agent": "noop", "timeout": "5s"}]}]}"#;
    let toml =
        "name = \"w\"\n[vars]\nlimit = 3\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\ntimeout = \"5s\"\n";
    assert_eq!(load(json, Format::Json).expect("json").definition, load(toml, Format::Toml).expect("toml").definition);
}

/// Definitions live directly under workflows/; a subdirectory holds a
/// workflow's scripts and records (workflows/release-lifecycle/).
#[test]
fn every_shipped_workflow_validates() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("workflows")).expect("workflows/ is readable") {
        let path = entry.expect("entry").path();
        if path.is_file() && Format::from_path(&path).is_some() {
            if let Err(problems) = plan::load(&path, &AgentNames::builtin()) {
                panic!("{} is invalid:\n{problems}", path.display());
            }
            checked.push(path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned());
        }
    }
    checked.sort();
    assert_eq!(checked, ["hello.toml", "release-lifecycle.toml"]);
}

#[test]
fn the_checked_in_schema_is_current() {
    let path = workspace_root().join("docs/workflow.schema.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == json_schema_text(),
        "docs/workflow.schema.json is stale: run `cargo run -p phasegate-engine -- schema > docs/workflow.schema.json`"
    );
}

#[test]
fn graphs_mark_gates_watches_and_loop_backs() {
    let text = std::fs::read_to_string(workspace_root().join("workflows/hello.toml")).expect("hello.toml");
    let workflow = load(&text, Format::Toml).expect("valid");
    let dot = plan::to_dot(&workflow);
    assert!(dot.starts_with("digraph \"hello\" {"), "{dot}");
    assert!(dot.contains("subgraph cluster_p0 {") && dot.contains("subgraph cluster_p1 {"));
    assert!(dot.contains("p0_g0 [label=\"gate: checks-green\\n2 criteria\\napproval 1 of role:reviewer\", shape=octagon"), "{dot}");
    assert!(dot.contains("p1_w0 [label=\"watch: error-rate"), "{dot}");
    assert!(dot.contains("p1_r2 -> p0_t0 [style=dashed, color=red"), "{dot}");
    assert!(dot.contains("label=\"SHIP-001 (max 2)\""), "{dot}");
    assert!(dot.contains("p0_g0 -> p1_t0 [penwidth=2, ltail=cluster_p0, lhead=cluster_p1]"), "{dot}");
    let mermaid = plan::to_mermaid(&workflow);
    assert!(mermaid.contains("flowchart TB"));
    assert!(mermaid.contains("  p0 ==> p1\n"), "{mermaid}");
    assert!(mermaid.contains("p1_r2 -.->|\"SHIP-001 (max 2)\"| p0"), "{mermaid}");
    assert!(mermaid.contains("class p0_g0 approval"), "{mermaid}");
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("engine/ has a parent").to_path_buf()
}

mod never_panics {
    //! The loader and the expression checker meet arbitrary bytes: whatever
    //! comes in, they answer with diagnostics, never a panic.

    use super::*;
    use phasegate_engine::expr::{Expr, Names, Scope};
    use proptest::prelude::*;
    use serde_json::Value;

    fn hello_json() -> Value {
        let text = std::fs::read_to_string(workspace_root().join("workflows/hello.toml")).expect("hello.toml");
        let workflow = load(&text, Format::Toml).expect("valid");
        serde_json::to_value(&workflow.definition).expect("serialises")
    }

    /// A tiny deterministic generator so a failing seed replays exactly.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    const NASTY: &[&str] = &[
        "",
        " ",
        "-1",
        "0s",
        "2m",
        "99999999999999999999d",
        "role:",
        "tasks.compile.output.x ==",
        "((((((((",
        "vars.nope",
        "has(",
        "signal:incident",
        "watch:error-rate",
        "task_failed:hotfix",
        "goto",
        "halt_for_approval",
        "ship",
        "build",
        "\u{0}",
        "é",
        "role:sre",
        "* * * * *",
        "61 * * * *",
        "[1,2,3].all(x, x > 0)",
    ];

    fn random_value(rng: &mut Rng, depth: usize) -> Value {
        match rng.below(if depth > 2 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => Value::from(rng.next() as i64),
            3 => Value::from(-(rng.below(1000) as f64) / 7.0),
            4 | 5 => Value::from(NASTY[rng.below(NASTY.len())]),
            6 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..rng.below(4) {
                    map.insert(NASTY[rng.below(NASTY.len())].to_owned(), random_value(rng, depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    /// Applies one random edit somewhere in the tree.
    fn mutate(value: &mut Value, rng: &mut Rng) {
        let descend = rng.below(4) != 0;
        match value {
            Value::Object(map) if descend && !map.is_empty() => {
                let index = rng.below(map.len());
                if let Some((_, child)) = map.iter_mut().nth(index) {
                    mutate(child, rng);
                }
            }
            Value::Array(items) if descend && !items.is_empty() => {
                let index = rng.below(items.len());
                mutate(&mut items[index], rng);
            }
            Value::Object(map) => match rng.below(3) {
                0 if !map.is_empty() => {
                    let key = map.keys().nth(rng.below(map.len())).cloned().unwrap_or_default();
                    map.remove(&key);
                }
                1 => {
                    map.insert(NASTY[rng.below(NASTY.len())].to_owned(), random_value(rng, 0));
                }
                _ => *value = random_value(rng, 0),
            },
            Value::Array(items) => match rng.below(3) {
                0 if !items.is_empty() => {
                    let copy = items[rng.below(items.len())].clone();
                    items.push(copy);
                }
                1 if !items.is_empty() => {
                    items.remove(rng.below(items.len()));
                }
                _ => *value = random_value(rng, 0),
            },
            _ => *value = random_value(rng, 0),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let _ = load(&text, Format::Toml);
            let _ = load(&text, Format::Json);
        }

        #[test]
        fn mutated_definitions_never_panic(seed in 1u64.., edits in 1usize..8) {
            let mut rng = Rng(seed);
            let mut value = hello_json();
            for _ in 0..edits {
                mutate(&mut value, &mut rng);
            }
            let json = serde_json::to_string_pretty(&value).expect("serialises");
            let _ = load(&json, Format::Json);
            if let Ok(toml) = toml::to_string(&value) {
                let _ = load(&toml, Format::Toml);
            }
        }

        #[test]
        fn mutated_toml_text_never_panics(seed in 1u64.., edits in 1usize..16) {
            let mut rng = Rng(seed);
            let mut bytes = std::fs::read(workspace_root().join("workflows/hello.toml")).expect("hello.toml");
            for _ in 0..edits {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => { bytes.remove(at); }
                    1 => bytes.insert(at, b"[]{}\"=.,#\n\\"[rng.below(11)]),
                    _ => bytes[at] = rng.next() as u8,
                }
            }
            let _ = load(&String::from_utf8_lossy(&bytes), Format::Toml);
        }

        #[test]
        fn random_expressions_never_panic(source in "[a-z_.()\\[\\]{}'\"0-9 <>=!&|+*/%?:,-]{0,80}") {
            let names = Names { tasks: ["t".to_owned()].into(), ..Names::default() };
            if let Ok(expr) = Expr::compile(&source, &names, Scope::Condition) {
                let evidence = serde_json::json!({"tasks": {"t": {"output": {"x": 1, "l": [1, 2]}}}, "vars": {}});
                let _ = expr.evaluate(evidence.as_object().expect("object"));
            }
        }
    }
}

#[test]
fn criterion_labels_may_show_only_declared_variables() {
    let gate = |label: &str| {
        format!(
            "{HEADER}[vars]\nerror_rate_max = 0.1\n[[phases]]\nid = \"p\"\n[[phases.gates]]\nid = \"g\"\n[[phases.gates.criteria]]\nid = \"c\"\nlabel = \"{label}\"\nmust = \"vars.error_rate_max < 1\"\n"
        )
    };
    assert!(load(&gate("Error rate under {{ vars.error_rate_max }}"), Format::Toml).is_ok());
    let problem = check(
        &gate("Error rate under {{ vars.error_rate }}"),
        Kind::UnknownReference,
        "phases[0].gates[0].criteria[0].label",
        10,
        "unknown variable `error_rate`",
    );
    assert_eq!(problem.hint.as_deref(), Some("did you mean `error_rate_max`?"));
    check(&gate("run {{ instance.id }}"), Kind::UnknownReference, "phases[0].gates[0].criteria[0].label", 10, "cannot be shown in a label");
}

#[test]
fn placeholders_name_declared_variables() {
    let task = |params: &str| {
        format!("{HEADER}[vars]\ntarget_url = \"http://127.0.0.1:8080\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"exec\"\nparams = {params}\n")
    };
    let ok = task("{ argv = [\"probe\", \"{{ vars.target_url }}/healthz\", \"{{ instance.id }}\"] }");
    assert!(load(&ok, Format::Toml).is_ok());
    let problem = check(
        &task("{ argv = [\"probe\", \"{{ vars.target_ulr }}\"] }"),
        Kind::UnknownReference,
        "phases[0].tasks[0].params.argv[1]",
        9,
        "unknown variable `target_ulr`",
    );
    assert_eq!(problem.hint.as_deref(), Some("did you mean `target_url`?"));
    check(
        &task("{ argv = [\"{{ env.HOME }}\"] }"),
        Kind::UnknownReference,
        "phases[0].tasks[0].params.argv[0]",
        9,
        "unknown placeholder `{{ env.HOME }}`",
    );
}

#[test]
fn watch_durations_may_be_duration_variables() {
    let watch = |vars: &str, sustain: &str| {
        format!(
            "{HEADER}[vars]\n{vars}\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n[[phases.watches]]\nid = \"w\"\nagent = \"noop\"\ninterval = \"15s\"\ncondition = \"value > 1.0\"\nfor = \"{sustain}\"\n"
        )
    };
    let workflow = load(&watch("window = { type = \"duration\", default = \"2m\" }", "{{ vars.window }}"), Format::Toml).expect("valid");
    let plan = &workflow.phases[0].watches[0];
    assert_eq!(plan.sustain, std::time::Duration::from_secs(120));
    let mut vars = serde_json::Map::new();
    vars.insert("window".into(), serde_json::json!("5s"));
    assert_eq!(plan.sustain_for(&vars), std::time::Duration::from_secs(5), "each instance uses its own value");
    check(&watch("window = 3", "{{ vars.window }}"), Kind::Type, "phases[0].watches[0].for", 14, "is not a duration with a default");
}

#[test]
fn a_schedule_may_be_conditional() {
    let toml = one_phase("[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n[phases.schedule]\nevery = \"90d\"\nwhen = \"vars.nope\"\n");
    check(&toml, Kind::BadExpression, "phases[0].schedule.when", 9, "unknown variable");
}

#[test]
fn scores_need_positive_weights_and_ordered_bands() {
    let gate = |score: &str, weight: &str| {
        one_phase(&format!(
            "[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n[[phases.gates]]\nid = \"g\"\nscore = {score}\ncriteria = [{{ should = \"tasks.t.output.ok\", label = \"ok\", weight = {weight} }}]\n"
        ))
    };
    assert!(load(&gate("{ pass = 90, warning = 75 }", "2.5"), Format::Toml).is_ok());
    check(
        &gate("{ pass = 90, warning = 75 }", "0"),
        Kind::InvalidValue,
        "phases[0].gates[0].criteria[0].weight",
        10,
        "weight 0 is not a positive number",
    );
    check(
        &gate("{ pass = 90, warning = 75 }", "-1"),
        Kind::InvalidValue,
        "phases[0].gates[0].criteria[0].weight",
        10,
        "weight -1 is not a positive number",
    );
    check(
        &gate("{ pass = 75, warning = 90 }", "1"),
        Kind::InvalidValue,
        "phases[0].gates[0].score.warning",
        9,
        "the warning band (90) is above the pass band (75)",
    );
    check(&gate("{ pass = 150, warning = 0 }", "1"), Kind::InvalidValue, "phases[0].gates[0].score", 9, "must lie between 0 and 100");
}

#[test]
fn baselines_are_read_with_a_path_and_pct_change_is_known() {
    let gate = |criterion: &str| {
        one_phase(&format!(
            "[[phases.tasks]]\nid = \"perf\"\nagent = \"noop\"\n[[phases.gates]]\nid = \"g\"\ncriteria = [{{ should = \"{criterion}\", label = \"no regression\" }}]\n"
        ))
    };
    let workflow = load(&gate("pct_change(tasks.perf.output.p95, baseline.tasks.perf.output.p95) <= 0.10"), Format::Toml).expect("valid");
    assert_eq!(
        workflow.phases[0].gates[0].baseline_paths,
        [vec!["tasks".to_owned(), "perf".to_owned(), "output".to_owned(), "p95".to_owned()]]
    );
    check(&gate("baseline.tasks > 1"), Kind::BadExpression, "phases[0].gates[0].criteria[0].should", 9, "`baseline` is read with a path");
    check(&gate("baseline.tasks.perff.output.p95 > 1"), Kind::BadExpression, "phases[0].gates[0].criteria[0].should", 9, "perff");
}
