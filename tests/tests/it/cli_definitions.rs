//! `phasegate validate`, `graph` and `schema` as a user runs them: exit codes,
//! messages on the right stream, and nothing written anywhere.

use crate::support::{run, snapshot, stderr, stdout, workspace_root};

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

#[test]
fn validate_accepts_the_shipped_workflows() {
    let root = workspace_root();
    let output = run(&root, &["validate", "workflows/hello.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("ok: workflows/hello.toml — workflow `hello` v1: 2 phases, 4 tasks"), "{}", stdout(&output));
}

#[test]
fn validate_reports_every_problem_with_file_line_and_hint_and_exits_1() {
    let dir = scratch();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "name = \"broken\"\n[[phases]]\nid = \"a\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"exce\"\ntimout = \"5m\"\n[[phases]]\nid = \"b\"\nafter = [\"c\"]\n",
    )
    .expect("write");
    let before = snapshot(dir.path());
    let output = run(dir.path(), &["validate", "broken.toml"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("error: broken.toml:6:1: phases[0].tasks[0].agent: unknown agent `exce`\n  hint: did you mean `exec`?"), "{err}");
    assert!(
        err.contains("error: broken.toml:7:1: phases[0].tasks[0].timout: unknown field `timout`\n  hint: did you mean `timeout`?"),
        "{err}"
    );
    assert!(err.contains("broken.toml:10:10: phases[1].after[0]: unknown phase `c`"), "{err}");
    assert!(err.contains("broken.toml:8:1: phases[1]: phase `b` has neither tasks nor gates"), "{err}");
    assert!(err.contains("1 of 1 file(s) invalid, 4 problem(s) in all"), "{err}");
    assert!(stdout(&output).is_empty());
    assert_eq!(snapshot(dir.path()), before, "validate must write nothing");
}

#[test]
fn validate_json_output_is_machine_readable() {
    let dir = scratch();
    std::fs::write(
        dir.path().join("w.json"),
        r#"{"name": "w", "phases": [{"id": "p", "tasks": [{"id": "t", "agent": "noop", "timeout": "never"}]}]}"#,
    )
    .expect("write");
    let output = run(dir.path(), &["--output", "json", "validate", "w.json"]);
    assert_eq!(output.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let diagnostic = &reports[0]["diagnostics"][0];
    assert_eq!(reports[0]["valid"], false);
    assert_eq!(diagnostic["kind"], "bad_duration");
    assert_eq!(diagnostic["path"], "phases[0].tasks[0].timeout");
    assert_eq!(diagnostic["line"], 1);
}

#[test]
fn io_and_usage_errors_exit_2() {
    let dir = scratch();
    let missing = run(dir.path(), &["validate", "missing.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("missing.toml: cannot read the file"), "{}", stderr(&missing));
    std::fs::write(dir.path().join("w.yaml"), "name: w").expect("write");
    let yaml = run(dir.path(), &["validate", "w.yaml"]);
    assert_eq!(yaml.status.code(), Some(2));
    assert!(stderr(&yaml).contains("unsupported file type"), "{}", stderr(&yaml));
    let usage = run(dir.path(), &["validate"]);
    assert_eq!(usage.status.code(), Some(2));
    let unknown = run(dir.path(), &["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    let bad_format = run(dir.path(), &["graph", "w.toml", "--format", "png"]);
    assert_eq!(bad_format.status.code(), Some(2));
    assert!(snapshot(dir.path()).len() == 1, "nothing but the yaml file exists");
}

#[test]
fn validate_survives_binary_garbage() {
    let dir = scratch();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(dir.path().join("garbage.toml"), &garbage).expect("write");
    std::fs::write(dir.path().join("garbage.json"), &garbage).expect("write");
    for file in ["garbage.toml", "garbage.json"] {
        let output = run(dir.path(), &["validate", file]);
        assert_eq!(output.status.code(), Some(1), "{file}: {}", stderr(&output));
        assert!(stderr(&output).contains(file), "{}", stderr(&output));
    }
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let root = workspace_root();
    let dot = run(&root, &["graph", "workflows/hello.toml", "--format", "dot"]);
    assert_eq!(dot.status.code(), Some(0), "{}", stderr(&dot));
    let text = stdout(&dot);
    assert!(text.starts_with("digraph \"hello\" {") && text.trim_end().ends_with('}'), "{text}");
    let mermaid = run(&root, &["graph", "workflows/hello.toml", "--format", "mermaid"]);
    assert!(stdout(&mermaid).contains("flowchart TB"), "{}", stdout(&mermaid));
}

#[test]
fn graph_refuses_an_invalid_definition() {
    let dir = scratch();
    std::fs::write(dir.path().join("w.toml"), "name = \"w\"\n").expect("write");
    let output = run(dir.path(), &["graph", "w.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).contains("w.toml:1:1: phases: the workflow has no `phases`"), "{}", stderr(&output));
}

#[test]
fn schema_matches_the_checked_in_copy() {
    let root = workspace_root();
    let output = run(&root, &["schema"]);
    assert_eq!(output.status.code(), Some(0));
    let checked_in = std::fs::read_to_string(root.join("docs/workflow.schema.json")).expect("docs/workflow.schema.json");
    assert_eq!(stdout(&output), checked_in);
    let schema: serde_json::Value = serde_json::from_str(&checked_in).expect("valid JSON");
    assert_eq!(schema["title"], "phasegate workflow definition");
}
