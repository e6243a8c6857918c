//! A CLI you can watch a release in (issue 20): shell completions for every
//! shell, instance ids completed from the store, and `--help` grouped by
//! what a person does.

use crate::support::{phasegate, run, stdout};

const FLOW: &str = "name = \"f\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n";

#[test]
fn completions_are_generated_for_every_shell_and_complete_instance_ids_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = run(dir.path(), &["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let code = stdout(&output);
        assert!(code.contains("COMPLETE") && code.contains("phasegate"), "{shell} registers the completer: {code}");
    }
    assert_eq!(run(dir.path(), &["completions", "tcsh"]).status.code(), Some(2), "an unknown shell is a usage error");

    // The bash completer, run as bash runs it, offers the store's instance ids.
    std::fs::write(dir.path().join("f.toml"), FLOW).expect("flow");
    for id in ["rel-1", "rel-2", "other"] {
        assert!(run(dir.path(), &["--db", "db", "start", "f.toml", "--id", id]).status.success());
    }
    let registration = stdout(&run(dir.path(), &["completions", "bash"]));
    std::fs::write(dir.path().join("complete.bash"), registration).expect("write");
    let script = r#"source complete.bash; COMP_WORDS=(phasegate status rel); COMP_CWORD=2; COMP_LINE="phasegate status rel"; COMP_POINT=${#COMP_LINE}; _clap_complete_phasegate phasegate rel status; printf '%s\n' "${COMPREPLY[@]}""#;
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .env("PHASEGATE_DB", dir.path().join("db"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("bash runs");
    let offered = stdout(&output);
    let mut words: Vec<&str> = offered.split_whitespace().collect();
    words.sort_unstable();
    assert_eq!(words, ["rel-1", "rel-2"], "instance ids starting with `rel`: {offered}{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn help_groups_the_commands_by_what_a_person_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = stdout(&phasegate(dir.path()).arg("--help").output().expect("help"));
    let mut at = 0;
    for heading in ["Define:", "Run and watch:", "Decide:", "Operate:", "Report and audit:", "Set up:"] {
        let found = help[at..].find(heading).unwrap_or_else(|| panic!("{heading} in order: {help}"));
        at += found;
    }
    assert!(help.contains("  approve ") && help.contains("  completions "), "{help}");
}
