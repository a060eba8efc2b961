//! The diagnostic document: the script embedded verbatim, run safely; and the
//! files the template names.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cfn::{read, root, strings};
use crate::{fleet, set};

const SCRIPT: &str = "crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh";
const HEREDOC_END: &str = "ECS_ORPHAN_DIAGNOSTIC_EOF";

/// The script's own validation patterns, from its header:
/// `#   region       ^...$` and `#   instance id  ^...$`.
fn script_pattern(script: &str, label: &str) -> String {
    script
        .lines()
        .find_map(|l| {
            l.strip_prefix("#   ")
                .and_then(|rest| rest.strip_prefix(label))
                .map(|p| p.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("{SCRIPT}: no '{label}' pattern in the header"))
}

/// Rewrites the embedded copy from the script (UPDATE_TEMPLATE=1).
fn embed_script(template: &str, script: &str) -> String {
    let lines: Vec<&str> = template.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains(&format!("exec bash -s <<'{HEREDOC_END}'")))
        .expect("the runCommand prelude");
    assert_eq!(
        lines[start + 1].trim(),
        "- |",
        "the script block follows the prelude"
    );
    let end = start
        + 2
        + lines[start + 2..]
            .iter()
            .position(|l| l.trim() == format!("- {HEREDOC_END}"))
            .expect("the heredoc's end");
    let indent = " ".repeat(lines[start + 1].find('-').unwrap() + 2);
    let mut out: Vec<String> = lines[..start + 2].iter().map(|l| l.to_string()).collect();
    for l in script.lines() {
        out.push(if l.is_empty() {
            String::new()
        } else {
            format!("{indent}{l}")
        });
    }
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

#[test]
fn the_diagnostic_document_embeds_the_script_verbatim() {
    let script = read(SCRIPT);
    // What a YAML literal block (`|`) can hold verbatim.
    assert!(script.ends_with('\n') && !script.ends_with("\n\n"));
    assert!(!script.starts_with(' '));
    assert!(
        script.lines().all(|l| l.is_empty() || !l.trim().is_empty()),
        "{SCRIPT}: whitespace-only lines do not survive a YAML block"
    );

    let stack = fleet();
    let doc = &stack.resources()["OrphanDiagnosticDocument"]["Properties"];
    assert_eq!(doc["DocumentType"], "Command");
    let content = &doc["Content"];
    assert_eq!(content["schemaVersion"], "2.2");
    let steps = content["mainSteps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["action"], "aws:runShellScript");
    let run = strings(&steps[0]["inputs"]["runCommand"]);
    assert_eq!(run.len(), 3);

    if run[1] != script {
        if std::env::var_os("UPDATE_TEMPLATE").is_some() {
            let path = root().join("template.yaml");
            let updated = embed_script(&read("template.yaml"), &script);
            std::fs::write(&path, updated).unwrap();
            let again = fleet();
            let doc = &again.resources()["OrphanDiagnosticDocument"]["Properties"];
            assert_eq!(
                strings(&doc["Content"]["mainSteps"][0]["inputs"]["runCommand"])[1],
                script
            );
            eprintln!("template.yaml: the embedded diagnostic script was refreshed from {SCRIPT}");
        } else {
            panic!(
                "template.yaml's copy of {SCRIPT} is out of date: run `UPDATE_TEMPLATE=1 cargo test --test template`"
            );
        }
    }

    // The script is fed to bash on stdin by a quoted heredoc: no expansion, and
    // its own lines never end the heredoc.
    assert_eq!(
        run[0],
        format!(
            "REGION='{{{{ Region }}}}' INSTANCE_ID='{{{{ InstanceId }}}}' exec bash -s <<'{HEREDOC_END}'"
        )
    );
    assert_eq!(run[2], HEREDOC_END);
    assert!(script.lines().all(|l| l != HEREDOC_END));

    // The two parameters the verifier sends, validated by SSM (API and agent)
    // with the script's own patterns, which admit no quote.
    let params = content["parameters"].as_object().unwrap();
    assert_eq!(
        params.keys().cloned().collect::<BTreeSet<_>>(),
        set(["InstanceId", "Region"])
    );
    for (name, label) in [("Region", "region"), ("InstanceId", "instance id")] {
        let pattern = params[name]["allowedPattern"].as_str().unwrap();
        assert_eq!(pattern, script_pattern(&script, label), "{name}");
        assert!(
            !pattern.contains('\'') && !pattern.contains('.'),
            "{name}: {pattern}"
        );
        assert_eq!(params[name]["type"], "String");
    }

    // SSM substitutes {{ Name }} for declared parameters only (names are
    // [a-zA-Z0-9]+); the script's docker --format templates start with '.'.
    let mut rest = script.as_str();
    while let Some(i) = rest.find("{{") {
        let inner = rest[i + 2..].trim_start();
        assert!(
            inner.starts_with('.'),
            "{SCRIPT}: SSM would read {:?}",
            &rest[i..i + 20]
        );
        rest = &rest[i + 2..];
    }

    // A Command document holds at most 64 KB.
    let size = serde_json::to_string(content).unwrap().len();
    assert!(size < 64 * 1024, "document content is {size} bytes");
}

/// The template's files exist where it says: the script, and each CodeUri.
#[test]
fn paths_in_the_template_exist() {
    assert!(Path::new(&root().join(SCRIPT)).is_file());
    let text = read("template.yaml");
    for line in text.lines() {
        if let Some(uri) = line.trim().strip_prefix("CodeUri: ") {
            assert!(root().join(uri).join("Cargo.toml").is_file(), "{uri}");
        }
    }
}
