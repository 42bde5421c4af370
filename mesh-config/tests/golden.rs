//! The rendered output of the documented example, file by file, against `tests/golden/`.
//! `MESH_CONFIG_BLESS=1 cargo test -p mesh-config --test golden` rewrites the golden files
//! after an intended change; review their diff before committing it.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::{crate_dir, example, example_local, render};

fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

fn check(name: &str, site: &str) {
    let rendered = render(site);
    let dir = crate_dir().join("tests/golden").join(name);
    if std::env::var_os("MESH_CONFIG_BLESS").is_some() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        mesh_config::render::write(&dir, &rendered).unwrap();
        return;
    }
    let golden = read_tree(&dir);
    let rendered_paths: Vec<_> = rendered.keys().collect();
    let golden_paths: Vec<_> = golden.keys().collect();
    assert_eq!(
        rendered_paths, golden_paths,
        "{name}: the files differ (MESH_CONFIG_BLESS=1 rewrites them)"
    );
    for (path, text) in &rendered {
        assert!(
            golden.get(path) == Some(text),
            "{name}/{path} differs from its golden file (MESH_CONFIG_BLESS=1 rewrites it):\n{text}"
        );
    }
}

#[test]
fn the_example_renders_as_its_golden_files() {
    check("remote", &example());
}

#[test]
fn the_example_with_local_delivery_renders_as_its_golden_files() {
    check("local", &example_local());
}
