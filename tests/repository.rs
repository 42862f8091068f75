//! What a newcomer reads is consistent with the repository: the LICENSE matches Cargo.toml, the
//! Rust version is the same in Cargo.toml, the README and the container, code cites the
//! repository's own docs (docs/architecture.md) and nothing outside it, and the README's shell
//! examples use only variables they define (or the demo prints) and no fixed dates.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn manifest_value(manifest: &str, key: &str) -> String {
    let line = manifest.lines().find(|l| l.starts_with(&format!("{key} ="))).unwrap_or_else(|| panic!("no {key}"));
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn the_license_file_matches_the_manifests() {
    assert_eq!(manifest_value(&read("Cargo.toml"), "license"), "MIT");
    assert_eq!(manifest_value(&read("bench/Cargo.toml"), "license"), "MIT");
    let license = read("LICENSE");
    assert!(license.starts_with("MIT License") && license.contains("Permission is hereby granted, free of charge"));
}

#[test]
fn the_rust_version_is_the_same_everywhere() {
    let version = manifest_value(&read("Cargo.toml"), "rust-version");
    assert!(read("README.md").contains(&format!("**Rust {version} or newer**")));
    assert!(read("docker/Dockerfile").contains(&format!("ARG RUST_VERSION={version}")));
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| ["rs", "js", "mjs", "sh", "toml", "html", "css"].iter().any(|x| e == *x)) {
            out.push(path);
        }
    }
}

#[test]
fn code_cites_the_repositorys_own_docs() {
    let mut all = Vec::new();
    for dir in ["src", "bench/src", "static", "tests", "docker", "scripts"] {
        files(&Path::new(ROOT).join(dir), &mut all);
    }
    let this = Path::new(ROOT).join("tests/repository.rs");
    let (design, shared) = (["DESIGN", ".md"].concat(), ["/shared", "/"].concat());
    for path in all.iter().filter(|p| **p != this) {
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let cites_outside = line.contains(&design) || line.contains("DESIGN §") || line.contains(&shared);
            assert!(!cites_outside, "{}:{}: {line}", path.display(), n + 1);
            if let Some(at) = line.find("docs/architecture.md §") {
                let section =
                    line[at + "docs/architecture.md §".len()..].split(|c: char| !c.is_ascii_digit() && c != '.').next().unwrap();
                let heading = format!("## {}. ", section.trim_end_matches('.'));
                let sub = format!("### {} ", section.trim_end_matches('.'));
                let doc = read("docs/architecture.md");
                assert!(doc.contains(&heading) || doc.contains(&sub), "{}:{}: no section §{section}", path.display(), n + 1);
            }
        }
    }
}

/// The README's `sh` blocks.
fn shell_blocks(readme: &str) -> Vec<String> {
    readme.split("```sh\n").skip(1).map(|b| b.split("\n```").next().unwrap().to_string()).collect()
}

#[test]
fn readme_examples_define_their_variables_and_compute_their_dates() {
    let readme = read("README.md");
    let blocks = shell_blocks(&readme);
    let mut defined: Vec<String> = vec!["SOURCE_TOKEN".into(), "ADMIN_TOKEN".into()]; // printed by serve --demo
    assert!(read("src/main.rs").contains("export SOURCE_TOKEN={} ADMIN_TOKEN={}"));
    let script = blocks.join("\n");
    for word in script.split(|c: char| c.is_whitespace() || c == ';' || c == '(' || c == '&') {
        if let Some((name, _)) = word.split_once('=') {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                defined.push(name.to_string());
            }
        }
    }
    for (i, block) in blocks.iter().enumerate() {
        for used in block.split('$').skip(1) {
            let name: String =
                used.trim_start_matches('{').chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if name.is_empty() || name.chars().any(|c| c.is_ascii_lowercase()) {
                continue; // $(command), $1, shell-local lower-case names
            }
            assert!(defined.contains(&name), "${name} is used in README sh block {i} but defined nowhere:\n{block}");
        }
        let fixed_date = block
            .as_bytes()
            .windows(11)
            .any(|w| w[..4].iter().all(u8::is_ascii_digit) && w[4] == b'-' && w[7] == b'-' && w[10] == b'T' && w[0] == b'2');
        assert!(!fixed_date, "README sh block {i} has a fixed date; compute it (date -u -d '+1 hour' +%FT%TZ):\n{block}");
    }
    let layout = readme.split("## Layout").nth(1).expect("a Layout section");
    assert_eq!(layout.matches("\nsrc/http/").count(), 1, "src/http/ is listed once");
    assert!(readme.contains("(docs/architecture.md)") && Path::new(ROOT).join("docs/architecture.md").is_file());
}
