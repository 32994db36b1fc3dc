//! The crate's layout: which module imports which, read from the `use` lines and `crate::` /
//! `super::` paths of `src/`. Data flows one way, so no module may import one that imports it
//! back (a child using its parent's items does not count: the parent declares it). Should a
//! cycle ever have to stay for a while, it is listed, so that no other can appear and a removed
//! one must be struck off the list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Cycles that remain, each as its modules in order; none may be added.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// `src/probe/tls.rs` → `probe::tls`, `src/probe/mod.rs` → `probe`, `src/lib.rs` → ``.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, root: &Path, found: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            // Test modules may reach anywhere; comments name modules without importing them.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let text = code
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            found.insert(module_of(relative), text);
        }
    }
}

/// Every path a `use` tree names: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap().trim();
        return vec![path.trim_end_matches("::self").to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(|item| match item.trim() {
            "self" => vec![prefix.to_owned()],
            item => expand(item)
                .into_iter()
                .map(|rest| format!("{prefix}::{rest}"))
                .collect(),
        })
        .collect()
}

/// The paths a module's text names: its `use` trees, and `crate::…` / `super::…` paths
/// written in place.
fn paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let after = &rest[at + 4..];
        let line_start = rest[..at].rfind('\n').map_or(0, |n| n + 1);
        let is_statement = rest[line_start..at]
            .trim()
            .trim_start_matches("pub(crate)")
            .trim_start_matches("pub(super)")
            .trim_start_matches("pub")
            .is_empty();
        let Some(end) = after.find(';') else { break };
        if is_statement {
            found.extend(expand(&after[..end]));
        }
        rest = &after[end..];
    }
    // Paths written in place: `crate::…`, `super::…`, and `child::…` relative to the module
    // (whatever starts a path: not after `::` or inside an identifier).
    for (at, _) in text.match_indices("::") {
        let start = text[..at]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        if text[..start].ends_with("::") || start == at {
            continue;
        }
        let path: String = text[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        found.push(path);
    }
    found
}

/// The module a path lands in, from `module`: the longest known module it names.
fn target(path: &str, module: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = match segments.first() {
        Some(&"crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some(&"super") => {
            let mut base: Vec<&str> = module.split("::").collect();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
            base
        }
        Some(&"self") => {
            segments.remove(0);
            module.split("::").filter(|s| !s.is_empty()).collect()
        }
        // A path relative to the module (2018 edition): only when it starts with a child.
        Some(first) if modules.contains(&child(module, first)) => {
            module.split("::").filter(|s| !s.is_empty()).collect()
        }
        _ => return None,
    };
    let mut best = Some(base.join("::")).filter(|m| modules.contains(m));
    for segment in segments {
        base.push(segment);
        let candidate = base.join("::");
        if modules.contains(&candidate) {
            best = Some(candidate);
        } else {
            break;
        }
    }
    best
}

/// `module::name`, or `name` at the crate root.
fn child(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_owned()
    } else {
        format!("{module}::{name}")
    }
}

fn is_ancestor(ancestor: &str, of: &str) -> bool {
    ancestor.is_empty() || of.starts_with(&format!("{ancestor}::"))
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: BTreeSet<Vec<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, node: &'a str) {
        let next = walk.index.len();
        walk.index.insert(node, next);
        walk.low.insert(node, next);
        walk.stack.push(node);
        for to in walk.edges.get(node).into_iter().flatten() {
            let to = to.as_str();
            if !walk.index.contains_key(to) {
                visit(walk, to);
                let low = walk.low[node].min(walk.low[to]);
                walk.low.insert(node, low);
            } else if walk.stack.contains(&to) {
                let low = walk.low[node].min(walk.index[to]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut component = Vec::new();
            while let Some(top) = walk.stack.pop() {
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                walk.found.insert(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: BTreeSet::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node.as_str()) {
            visit(&mut walk, node);
        }
    }
    walk.found
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut texts = BTreeMap::new();
    sources(&root, &root, &mut texts);
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &texts {
        let entry = edges.entry(module.clone()).or_default();
        for path in paths(text) {
            let Some(to) = target(&path, module, &modules) else {
                continue;
            };
            // A child may use its parent's items (the parent declares and re-exports it); a
            // parent that uses a child's items depends on it like anyone else.
            if to != *module && !is_ancestor(&to, module) {
                entry.insert(to);
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_one_that_imports_it_back_beyond_the_known_cycles() {
    let edges = import_graph();
    assert!(
        edges
            .get("probe::component_flow")
            .is_some_and(|e| e.contains("probe::steps"))
            && edges.get("http").is_some_and(|e| e.contains("supervisor")),
        "the graph was not read: {edges:#?}"
    );
    let found = cycles(&edges);
    let known: BTreeSet<Vec<String>> = KNOWN_CYCLES
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    assert!(new.is_empty(), "new import cycles: {new:?}");
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "cycles taken apart: strike them off KNOWN_CYCLES: {gone:?}"
    );
}

#[test]
fn use_trees_expand_to_every_path() {
    assert_eq!(
        expand("super::{cert::{self, CertInput}, connect, Failure}"),
        [
            "super::cert",
            "super::cert::CertInput",
            "super::connect",
            "super::Failure"
        ]
    );
    assert_eq!(
        expand("crate::probe::tls::TlsClient as Client"),
        ["crate::probe::tls::TlsClient"]
    );
    let modules: BTreeSet<String> = ["probe", "probe::tls", "config", ""]
        .map(String::from)
        .into();
    assert_eq!(
        target("super::tls::TlsClient", "probe::cert", &modules).as_deref(),
        Some("probe::tls")
    );
    assert_eq!(
        target("crate::config::Watch", "probe::client_flow", &modules).as_deref(),
        Some("config")
    );
    assert_eq!(
        target("super::Failure", "probe::cert", &modules).as_deref(),
        Some("probe")
    );
}
