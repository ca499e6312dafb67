//! The layer rule of ARCHITECTURE.md: every `crate::x` path in a module's non-test code
//! (doc links included) names a module of its own layer or of one below it, and the
//! top-level modules form no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom to top: a module may use its own line and the lines above it.
const LAYERS: &[&[&str]] = &[
    &["error", "config", "backend", "progress"],
    &["data"],
    &["model"],
    &["task"],
    &["run"],
    &["score"],
    &["report"],
    &["train"],
    &["serve"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|line| line.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a library file belongs to (`None`: the crate root, the binaries).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    match name.as_str() {
        "lib" | "main" | "cli" | "bin" => None,
        _ => Some(name),
    }
}

/// Where the item after `#[cfg(test)]` at byte `start` ends: at its first `;` or at the
/// brace that closes its first block, skipping strings, characters and comments.
fn item_end(s: &[u8], start: usize) -> usize {
    let mut i = start;
    let mut depth = 0usize;
    while i < s.len() {
        match s[i] {
            b'/' if s.get(i + 1) == Some(&b'/') => {
                while i < s.len() && s[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if s.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < s.len() && !(s[i] == b'*' && s[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                // A raw string: r"..." or r#"..."#.
                let mut hashes = 0;
                let mut j = i;
                while j > 0 && s[j - 1] == b'#' {
                    hashes += 1;
                    j -= 1;
                }
                let raw = j > 0 && s[j - 1] == b'r';
                i += 1;
                while i < s.len() {
                    if raw {
                        if s[i] == b'"' && s[i + 1..].iter().take(hashes).all(|&c| c == b'#') {
                            i += hashes;
                            break;
                        }
                    } else if s[i] == b'\\' {
                        i += 1;
                    } else if s[i] == b'"' {
                        break;
                    }
                    i += 1;
                }
            }
            // A character literal ('{', '\n', '\''); a lifetime has no closing quote.
            b'\'' if s.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if s.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < s.len() && s[i] != b'\'' {
                    i += 1;
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b';' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    s.len()
}

/// The file's text without the items marked `#[cfg(test)]`.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let end = item_end(rest.as_bytes(), at + "#[cfg(test)]".len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level modules named by `crate::x` paths in `code`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `$crate::` or `other_crate::`
        }
        let name: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            used.insert(name);
        }
    }
    used
}

/// Module -> the modules its non-test code uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let used = used_modules(&non_test_code(&text));
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(used.into_iter().filter(|m| *m != module));
    }
    graph
}

#[test]
fn imports_only_point_down_the_layers() {
    let graph = graph();
    assert!(graph.len() >= 10, "found only {:?}", graph.keys());
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        let Some(own) = layer_of(module) else {
            wrong.push(format!("src/{module} is in no layer of tests/layers.rs"));
            continue;
        };
        for other in used {
            match layer_of(other) {
                Some(layer) if layer <= own => {}
                Some(_) => wrong.push(format!("{module} uses {other}, a layer above it")),
                None => wrong.push(format!("{module} uses crate::{other}, in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = graph();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_test_code_and_paths() {
    let code = "use crate::data::Table;\n/// See [`crate::report::Report`].\nfn f() { let c = '{'; }\n#[cfg(test)]\nmod tests {\n    use crate::train::x;\n    fn g() { let s = \"}\"; }\n}\nfn h() -> crate::run::Manifest {}\n";
    let used = used_modules(&non_test_code(code));
    let expected: BTreeSet<String> = ["data", "report", "run"].map(String::from).into();
    assert_eq!(used, expected);
}

#[test]
fn the_tree_has_its_layer_folders() {
    let mut folders = 0;
    let mut top_files = 0;
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            folders += 1;
        } else if path.extension().is_some_and(|e| e == "rs") {
            top_files += 1;
        }
    }
    assert!(folders >= 5, "{folders} folders under src/");
    assert!(top_files <= 8, "{top_files} .rs files at the top of src/");
}
