//! The crate's modules import each other without a cycle, so the stages depend on what
//! comes before them and on the shared leaf types, never back. Read from the source text:
//! every `crate::…` and `super::…` path, and a parent's `use child::…`, is an arrow from
//! the file to the module it names (through a parent's `pub use` to the child that
//! defines the name).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root: `["pipeline", "sink"]`.
type Module = Vec<String>;

struct Crate {
    /// Each module's source text.
    files: BTreeMap<Module, String>,
}

impl Crate {
    /// The modules of the crate rooted at `root` (`lib.rs` or `main.rs`), except other
    /// crate roots beside it.
    fn read(root: &Path) -> Crate {
        let dir = root.parent().unwrap();
        let mut files = BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    if folder == dir && path != root && is_root(&path) {
                        continue;
                    }
                    let mut text = std::fs::read_to_string(&path).unwrap();
                    // A file's unit tests (its last item, by the house style) see it as
                    // `super`: they are not the file's imports.
                    if let Some(at) = text.find("#[cfg(test)]\nmod tests") {
                        text.truncate(at);
                    }
                    // Comments name modules without importing them.
                    let text: String = text
                        .lines()
                        .filter(|l| !l.trim_start().starts_with("//"))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    files.insert(module_of(dir, &path), text);
                }
            }
        }
        Crate { files }
    }

    /// The arrows: module → the modules it names.
    fn imports(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut arrows = BTreeMap::new();
        for (module, text) in &self.files {
            let mut to = BTreeSet::new();
            for path in paths(text) {
                let absolute = match path.first().map(String::as_str) {
                    Some("crate") => path[1..].to_vec(),
                    Some("super") => {
                        let mut up = self.parent(module);
                        up.extend(path[1..].iter().cloned());
                        up
                    }
                    Some(child) if self.files.contains_key(&child_of(module, child)) => {
                        let mut down = module.clone();
                        down.extend(path.iter().cloned());
                        down
                    }
                    _ => continue,
                };
                if let Some(target) = self.resolve(&absolute) {
                    if &target != module {
                        to.insert(target);
                    }
                }
            }
            arrows.insert(module.clone(), to);
        }
        arrows
    }

    /// The module a file's `super` names: a file's folder module, or a `mod.rs`'s parent.
    fn parent(&self, module: &Module) -> Module {
        module[..module.len().saturating_sub(1)].to_vec()
    }

    /// The module that defines what `path` names: its longest prefix that is a module,
    /// followed through that module's `pub use child::name` when it re-exports the name.
    fn resolve(&self, path: &[String]) -> Option<Module> {
        let known = (0..=path.len())
            .rev()
            .find(|n| self.files.contains_key(&path[..*n]))?;
        let module = path[..known].to_vec();
        let Some(name) = path.get(known) else {
            return Some(module);
        };
        let re_exported = paths_of(&self.files[&module], "pub use ")
            .into_iter()
            .find(|p| p.len() > 1 && p.last() == Some(name))
            .map(|p| {
                let mut child = module.clone();
                child.extend(p[..p.len() - 1].iter().cloned());
                child
            })
            .filter(|child| self.files.contains_key(child));
        Some(re_exported.unwrap_or(module))
    }
}

fn is_root(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("main.rs" | "lib.rs")
    )
}

fn module_of(dir: &Path, path: &Path) -> Module {
    let relative: PathBuf = path.strip_prefix(dir).unwrap().with_extension("");
    let mut parts: Module = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn child_of(module: &Module, child: &str) -> Module {
    let mut path = module.clone();
    path.push(child.to_owned());
    path
}

/// Every `crate::…`/`super::…` path in `text`, and the paths of its `use` lines.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut all = paths_of(text, "use ");
    for start in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(at) = rest.find(start) {
            let path: String = rest[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            all.push(segments(&path));
            rest = &rest[at + start.len()..];
        }
    }
    all
}

/// The paths of the lines of `text` starting with `prefix` (`use `, `pub use `), braces
/// expanded one level: `use a::{b, c::d};` gives `a::b` and `a::c::d`.
fn paths_of(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for line in text.lines().map(str::trim_start) {
        let Some(item) = line.strip_prefix(prefix) else {
            continue;
        };
        let item = item.trim_end_matches(';');
        match item.split_once('{') {
            Some((head, tail)) => {
                for name in tail.trim_end_matches('}').split(',') {
                    let name = name.trim();
                    if !name.is_empty() {
                        all.push(segments(&format!("{head}{name}")));
                    }
                }
            }
            None => all.push(segments(item)),
        }
    }
    all
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| s.split_whitespace().next().unwrap_or_default().to_owned())
        .filter(|s| !s.is_empty() && s != "self" && s != "*")
        .collect()
}

/// A cycle of arrows, if any: the modules on it, the first again at the end.
fn cycle(arrows: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        at: &Module,
        arrows: &BTreeMap<Module, BTreeSet<Module>>,
        done: &mut BTreeSet<Module>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = stack.iter().position(|m| m == at) {
            let mut found = stack[i..].to_vec();
            found.push(at.clone());
            return Some(found);
        }
        if !done.insert(at.clone()) {
            return None;
        }
        stack.push(at.clone());
        for next in arrows.get(at).into_iter().flatten() {
            if let Some(found) = visit(next, arrows, done, stack) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    arrows
        .keys()
        .find_map(|m| visit(m, arrows, &mut done, &mut Vec::new()))
}

fn assert_no_cycle(root: &str) {
    let krate = Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(root));
    let arrows = krate.imports();
    assert!(arrows.len() > 5, "{root}: read {} modules", arrows.len());
    if let Some(found) = cycle(&arrows) {
        let names: Vec<String> = found
            .iter()
            .map(|m| format!("crate::{}", m.join("::")))
            .collect();
        panic!("{root}: an import cycle: {}", names.join(" -> "));
    }
}

#[test]
fn the_library_has_no_import_cycle() {
    assert_no_cycle("src/lib.rs");
}

#[test]
fn the_benchmark_has_no_import_cycle() {
    assert_no_cycle("bench/main.rs");
}

#[test]
fn a_cycle_through_a_re_export_is_found() {
    let files = [
        (vec![], "pub mod sink;\npub mod source;"),
        (
            vec!["sink"],
            "mod operator;\npub use operator::{sink, Acks};",
        ),
        (
            vec!["sink", "operator"],
            "use crate::source::Input;\npub fn sink() {}",
        ),
        (vec!["source"], "use crate::sink::Acks;\npub struct Input;"),
    ];
    let krate = Crate {
        files: files
            .iter()
            .map(|(m, text)| (m.iter().map(|s| s.to_string()).collect(), text.to_string()))
            .collect(),
    };
    let found = cycle(&krate.imports()).expect("the cycle");
    let found: Vec<String> = found.iter().map(|m| m.join("::")).collect();
    assert!(
        found.contains(&"sink::operator".to_owned()) && found.contains(&"source".to_owned()),
        "{found:?}"
    );
}
