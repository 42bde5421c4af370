//! Every Kuma resource mesh-config renders, validated against the openAPIV3Schema of Kuma's
//! own CRDs (3.x main and the latest 2.x, `tests/crds/`) with unknown fields refused, by
//! `validate_kuma.py` in the venv of `tests/setup.sh`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{crate_dir, example, example_local, render, run, venv, write};

fn validate(resources: &[PathBuf]) -> (bool, String) {
    let crds = crate_dir().join("tests/crds");
    run(Command::new(venv().join("bin/python"))
        .arg(crate_dir().join("tests/validate_kuma.py"))
        .arg(crds.join("main"))
        .arg(crds.join("v2.14.3"))
        .arg("--")
        .args(resources))
}

fn kuma_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("kuma"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn rendered_kuma_resources_match_both_kuma_lines_crds() {
    for (site, count) in [(example(), 3), (example_local(), 4)] {
        let out = write(&render(&site));
        let files = kuma_files(out.path());
        assert_eq!(files.len(), count);
        let (ok, report) = validate(&files);
        assert!(ok, "{report}");
        // Each resource against each line's CRD.
        assert!(
            report.contains(&format!("{} checked, 0 failed", 2 * count)),
            "{report}"
        );
    }
}

#[test]
fn an_unknown_field_or_a_3x_only_target_is_refused() {
    let out = write(&render(&example()));
    let file = kuma_files(out.path()).remove(0);
    let text = std::fs::read_to_string(&file).unwrap();
    let typo = out.path().join("typo.yaml");
    std::fs::write(
        &typo,
        text.replace("appendModifications:", "appendModification:"),
    )
    .unwrap();
    let (ok, report) = validate(&[typo]);
    assert!(!ok && report.contains("appendModification"), "{report}");
    let nested = out.path().join("nested.yaml");
    std::fs::write(
        &nested,
        text.replace(
            "operation: AddBefore",
            "operation: AddBefore\n        priority: 1",
        ),
    )
    .unwrap();
    let (ok, report) = validate(&[nested]);
    assert!(!ok && report.contains("priority"), "{report}");
    let kind = out.path().join("kind.yaml");
    std::fs::write(&kind, text.replace("kind: Dataplane", "kind: MeshService")).unwrap();
    let (ok, report) = validate(&[kind]);
    // 2.x still takes MeshService; 3.x does not: a resource must pass both.
    assert!(
        !ok && report.contains("main") && !report.contains("v2.14.3):"),
        "{report}"
    );
}

#[test]
fn the_meshtrace_fixture_is_a_real_meshtrace() {
    let (ok, report) = validate(&[crate_dir().join("tests/fixtures/meshtraces.yaml")]);
    assert!(ok, "{report}");
}
