//! The house's floors, checked from the source text.
//!
//! Every file under `src/` is a module; every path it names through `crate::`,
//! `super::`, `self::` or a child module is an edge to the longest module that
//! path reaches. Each module sits on a declared floor (longest prefix wins) and
//! may only look down or sideways; no two files may reach each other through a
//! chain of edges. A second check caps file length. Comments and string
//! literals are blanked first, so doc links and messages never count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// From the ground up. A module sits on the floor of the longest prefix listed
/// here; a module no prefix covers is itself a violation, so a new top-level
/// module has to be placed on purpose.
const FLOORS: &[(&str, &[&str])] = &[
    (
        "ground",
        &[
            "config",
            "domain",
            "error",
            "limits",
            "metrics",
            "client_ip",
            "pending",
            // A primitive: HKDF and AES-GCM over bytes, no I/O; the storage
            // floor seals and opens columns with it.
            "crypto::master",
            // What `error` maps to answers; nothing else of `db` is below it.
            "db::error",
            // A value type (the secret, its hash and checks), no I/O; the
            // key store keeps its hash.
            "keys::secret",
        ],
    ),
    (
        "storage",
        &[
            "db",
            "audit",
            "usage",
            "keys::store",
            "tenants::store",
            "crypto::check",
            "crypto::rotate",
            "tokens::signing::store",
            "grants::store",
            // The outbox is written by `audit::write`, in the change's own
            // transaction.
            "events::store",
            "leaks::store",
        ],
    ),
    ("crypto/tokens", &["crypto", "tokens"]),
    ("validator", &["validator"]),
    (
        "services",
        &[
            "keys",
            "tenants",
            "grants",
            // The capability types and the `Principal` that hands them out;
            // `auth` (HTTP) only builds the principal from a request.
            "powers",
            "pagination",
            "signing_keys",
            "bootstrap",
            "janitor",
            // Token Status Lists: built from `keys::store`, signed with the
            // key ring; served by `routes::status_lists`.
            "status_lists",
            // Security events: the delivery worker, the receiver guard and
            // the event-stream admin service.
            "events",
            // Leak reports in: verified, then answered from `keys::store`.
            "leaks",
        ],
    ),
    ("app", &["app"]),
    (
        "http",
        &["input", "auth", "routes", "openapi::schemas", "telemetry"],
    ),
    // `openapi` assembles the document from every handler, so it sits on
    // top; the routes name only `openapi::schemas`.
    ("top", &["openapi", "startup", "cli", "main", "crate"]),
];

/// Files allowed past [`MAX_LINES`], each with the reason.
const LONG_FILES: &[(&str, &str)] = &[];

const MAX_LINES: usize = 500;

#[test]
fn every_import_looks_down_and_no_module_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&root);
    let graph = Graph::build(&files);
    let mut problems = graph.floor_violations(FLOORS);
    problems.extend(graph.cycles());
    assert!(
        problems.is_empty(),
        "{} architecture violation(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// What builds or runs a query: the table DSL of `db::schema` and raw SQL.
const QUERY_MARKERS: &[&str] = &[
    "schema::",
    "sql_query",
    "insert_into",
    "diesel::update",
    "diesel::delete",
];

/// No query outside the storage floor: services and handlers call a store.
#[test]
fn queries_live_only_on_the_storage_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let storage = FLOORS
        .iter()
        .position(|(name, _)| *name == "storage")
        .expect("a storage floor");
    let mut out = Vec::new();
    for (module, file) in read_tree(&root) {
        if floor_of(&module, FLOORS) == Some(storage) {
            continue;
        }
        let code = blank_comments_and_strings(&file.text);
        for (n, line) in code.lines().enumerate() {
            if let Some(marker) = QUERY_MARKERS.iter().find(|m| line.contains(*m)) {
                out.push(format!("{}:{}: `{marker}`", file.path.display(), n + 1));
            }
        }
    }
    assert!(
        out.is_empty(),
        "queries outside the storage floor:\n  {}",
        out.join("\n  ")
    );
}

/// The floors that must never see a request: they take typed values, so
/// they can be called from the CLI, the background loops and tests alike.
const NO_HTTP_FLOORS: &[&str] = &["storage", "crypto/tokens", "services"];

#[test]
fn storage_tokens_and_services_never_read_http() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for (module, file) in read_tree(&root) {
        let Some(floor) = floor_of(&module, FLOORS) else {
            continue;
        };
        if !NO_HTTP_FLOORS.contains(&FLOORS[floor].0) {
            continue;
        }
        let code = blank_comments_and_strings(&file.text);
        for (n, line) in code.lines().enumerate() {
            if line.contains("actix_web") {
                out.push(format!("{}:{} ({module})", file.path.display(), n + 1));
            }
        }
    }
    assert!(
        out.is_empty(),
        "actix_web below the HTTP floor:\n  {}",
        out.join("\n  ")
    );
}

#[test]
fn no_source_file_is_too_long() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for (module, file) in read_tree(&root) {
        let lines = file.text.lines().count();
        let allowed = LONG_FILES.iter().any(|(path, _)| file.path.ends_with(path));
        if lines > MAX_LINES && !allowed {
            long.push(format!("{} ({module}): {lines} lines", file.path.display()));
        }
    }
    for (path, _) in LONG_FILES {
        assert!(
            root.join(path).exists(),
            "LONG_FILES names {path}, which is gone"
        );
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them or add them to LONG_FILES with a reason):\n  {}",
        long.join("\n  ")
    );
}

/// The checker itself catches what it is for, on a tiny made-up tree.
#[test]
fn self_check_catches_an_upward_import_and_a_cycle() {
    let floors: &[(&str, &[&str])] = &[("low", &["a", "b"]), ("high", &["c"])];
    let tree = [
        // Upward: a (low) names c (high), inside a grouped import.
        ("a.rs", "use crate::{b::Thing, c::{self, Other}};\n"),
        // b and its child b::d reach each other: a cycle between files.
        (
            "b/mod.rs",
            "pub mod d;\npub use d::Inner; // crate::c in a comment\n",
        ),
        ("b/d.rs", "fn f() -> super::Thing { todo!(\"crate::c\") }\n"),
        ("c.rs", "use crate::b;\nmod tests { use super::*; }\n"),
    ];
    let files: BTreeMap<String, SourceFile> = tree
        .iter()
        .map(|(path, text)| {
            let path = PathBuf::from(path);
            (
                module_of(&path),
                SourceFile {
                    path,
                    text: text.to_string(),
                },
            )
        })
        .collect();
    let graph = Graph::build(&files);
    let up = graph.floor_violations(floors);
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(
        up[0].contains("a.rs") && up[0].contains("crate::c"),
        "{up:?}"
    );
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].contains("b/mod.rs") && cycles[0].contains("b/d.rs"),
        "{cycles:?}"
    );
    // c -> b is downward and c's test module naming its own file is no edge.
    assert_eq!(graph.edges["c"].len(), 1);
}

#[test]
fn self_check_reads_paths_like_the_compiler() {
    let text = blank_comments_and_strings(
        "let s = \"crate::x\"; let c = '\"'; let r = r#\"crate::y\"#; /* crate::z */ crate::w::f();",
    );
    assert!(!text.contains("crate::x") && !text.contains("crate::y") && !text.contains("crate::z"));
    assert!(text.contains("crate::w::f"));
    let paths = paths_in(
        "use crate::{a::{self, b}, c::*};\nfn f<'a>() { $crate::d::e!() }",
        "m",
        &BTreeSet::new(),
    );
    let paths: Vec<String> = paths.into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(paths, ["a", "a::b", "c", "d::e"]);
}

struct SourceFile {
    path: PathBuf,
    text: String,
}

/// Every `.rs` file under `root`, keyed by module path (`crate` for lib.rs).
fn read_tree(root: &Path) -> BTreeMap<String, SourceFile> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable src/") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("utf-8 source");
                let rel = path.strip_prefix(root).expect("under src").to_path_buf();
                out.insert(module_of(&rel), SourceFile { path: rel, text });
            }
        }
    }
    out
}

/// `keys/mod.rs` → `keys`, `keys/store.rs` → `keys::store`, `lib.rs` → `crate`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "lib" => "crate".to_string(),
        _ => parts.join("::"),
    }
}

struct Graph<'a> {
    files: &'a BTreeMap<String, SourceFile>,
    /// module → (module it names, the first path naming it, its line)
    edges: BTreeMap<String, Vec<(String, String, usize)>>,
}

impl<'a> Graph<'a> {
    fn build(files: &'a BTreeMap<String, SourceFile>) -> Self {
        let modules: BTreeSet<String> = files.keys().cloned().collect();
        let mut edges = BTreeMap::new();
        for (module, file) in files {
            let mut out = Vec::new();
            for (path, line) in paths_in(&file.text, module, &modules) {
                if let Some(target) = resolve(&path, &modules)
                    && target != *module
                    && !out.iter().any(|(t, _, _)| *t == target)
                {
                    out.push((target, format!("crate::{}", path.join("::")), line));
                }
            }
            edges.insert(module.clone(), out);
        }
        Graph { files, edges }
    }

    fn floor_violations(&self, floors: &[(&str, &[&str])]) -> Vec<String> {
        let mut out = Vec::new();
        for (module, edges) in &self.edges {
            let file = self.files[module].path.display();
            let Some(from) = floor_of(module, floors) else {
                out.push(format!("{file}: module `{module}` is on no declared floor"));
                continue;
            };
            for (target, written, line) in edges {
                if let Some(to) = floor_of(target, floors)
                    && to > from
                {
                    out.push(format!(
                        "{file}:{line}: `{written}` reaches up from {} ({module}) to {} ({target})",
                        floors[from].0, floors[to].0
                    ));
                }
            }
        }
        out
    }

    /// Strongly connected components of more than one file (Tarjan).
    fn cycles(&self) -> Vec<String> {
        struct State<'g> {
            graph: BTreeMap<&'g str, Vec<&'g str>>,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            on_stack: BTreeSet<&'g str>,
            found: Vec<Vec<&'g str>>,
        }
        fn visit<'g>(s: &mut State<'g>, v: &'g str) {
            let i = s.index.len();
            s.index.insert(v, i);
            s.low.insert(v, i);
            s.stack.push(v);
            s.on_stack.insert(v);
            for w in s.graph[v].clone() {
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    s.found.push(component);
                }
            }
        }
        let graph = self
            .edges
            .iter()
            .map(|(m, e)| (m.as_str(), e.iter().map(|(t, _, _)| t.as_str()).collect()))
            .collect();
        let mut s = State {
            graph,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            found: Vec::new(),
        };
        for v in self.edges.keys() {
            if !s.index.contains_key(v.as_str()) {
                visit(&mut s, v);
            }
        }
        s.found
            .iter()
            .map(|component| {
                let members: BTreeSet<&str> = component.iter().copied().collect();
                let mut lines = vec![format!("cycle between {} files:", component.len())];
                for m in component {
                    for (target, written, line) in &self.edges[*m] {
                        if members.contains(target.as_str()) {
                            lines.push(format!(
                                "      {}:{line}: `{written}`",
                                self.files[*m].path.display()
                            ));
                        }
                    }
                }
                lines.join("\n")
            })
            .collect()
    }
}

/// The rank of the floor whose longest prefix covers `module`.
fn floor_of(module: &str, floors: &[(&str, &[&str])]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (rank, (_, prefixes)) in floors.iter().enumerate() {
        for prefix in *prefixes {
            let hit = module == *prefix || module.starts_with(&format!("{prefix}::"));
            if hit && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), rank));
            }
        }
    }
    best.map(|(_, rank)| rank)
}

/// The longest module a path (segments below `crate`) reaches.
fn resolve(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// Replaces comments and the contents of string and char literals with spaces,
/// keeping newlines so line numbers survive.
fn blank_comments_and_strings(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(chars[i - 1]))
        {
            // Raw string: r"…" or r#…#"…"#…#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let rest: String = chars[j + 1..].iter().collect();
            let end = rest.find(&close).map_or(chars.len(), |at| {
                j + 1 + rest[..at].chars().count() + close.len()
            });
            out.extend(chars[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let step = if chars[i] == '\\' { 2 } else { 1 };
                out.extend(
                    chars[i..(i + step).min(chars.len())]
                        .iter()
                        .map(|&c| blank(c)),
                );
                i += step;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..chars.len())
                    .find(|&k| chars[k] == '\'')
                    .map(|k| k + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..end {
                        out.push(' ');
                    }
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Colons,
    Open,
    Close,
    Other(char),
}

fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if is_ident(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Tok::Colons, line));
            i += 2;
        } else {
            out.push((
                match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    other => Tok::Other(other),
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// Every path the file names into the crate, as segments below `crate`, with
/// its line. `module` is the file's own module path.
fn paths_in(text: &str, module: &str, modules: &BTreeSet<String>) -> Vec<(Vec<String>, usize)> {
    let toks = tokenize(&blank_comments_and_strings(text));
    let own: Vec<String> = if module == "crate" {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    let mut out = Vec::new();
    // Inline `mod name {` blocks: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Open => depth += 1,
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Tok::Ident(word) if word == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((Tok::Open, _))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Tok::Ident(word) => {
                let after_colons = i > 0 && toks[i - 1].0 == Tok::Colons;
                let starts_path = toks.get(i + 1).is_some_and(|(t, _)| *t == Tok::Colons);
                if !after_colons && starts_path {
                    let here: Vec<String> = own
                        .iter()
                        .cloned()
                        .chain(inline.iter().map(|(n, _)| n.clone()))
                        .collect();
                    let mut base: Option<Vec<String>> = match word.as_str() {
                        "crate" => Some(Vec::new()),
                        "self" => Some(here.clone()),
                        "super" => here.split_last().map(|(_, parent)| parent.to_vec()),
                        child => {
                            let mut p = here.clone();
                            p.push(child.to_string());
                            modules.contains(&p.join("::")).then_some(p)
                        }
                    };
                    let mut j = i + 1;
                    // super::super::…
                    while word == "super"
                        && toks.get(j).is_some_and(|(t, _)| *t == Tok::Colons)
                        && matches!(toks.get(j + 1), Some((Tok::Ident(s), _)) if s == "super")
                    {
                        base = base.and_then(|b| b.split_last().map(|(_, p)| p.to_vec()));
                        j += 2;
                    }
                    if let Some(base) = base {
                        let line = toks[i].1;
                        let mut leaves = Vec::new();
                        j = use_tree(&toks, j, base, &mut leaves);
                        out.extend(leaves.into_iter().map(|leaf| (leaf, line)));
                        i = j;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Reads `::seg::seg…` optionally ending in `::{tree, …}` or `::*` from `at`
/// (which points at the first `::`), pushing each leaf; returns where it ended.
fn use_tree(
    toks: &[(Tok, usize)],
    mut at: usize,
    mut prefix: Vec<String>,
    leaves: &mut Vec<Vec<String>>,
) -> usize {
    while toks.get(at).is_some_and(|(t, _)| *t == Tok::Colons) {
        match toks.get(at + 1) {
            Some((Tok::Ident(seg), _)) => {
                if seg != "self" {
                    prefix.push(seg.clone());
                }
                at += 2;
            }
            Some((Tok::Other('*'), _)) => {
                at += 2;
                break;
            }
            Some((Tok::Open, _)) => {
                at += 2;
                loop {
                    match toks.get(at) {
                        Some((Tok::Close, _)) | None => return at + 1,
                        Some((Tok::Other(','), _)) => at += 1,
                        Some((Tok::Ident(word), _)) if word == "as" => at += 2,
                        Some((Tok::Ident(seg), _)) => {
                            let mut sub = prefix.clone();
                            if seg != "self" {
                                sub.push(seg.clone());
                            }
                            at = use_tree(toks, at + 1, sub, leaves);
                        }
                        Some((Tok::Other('*'), _)) => {
                            leaves.push(prefix.clone());
                            at += 1;
                        }
                        Some(_) => at += 1,
                    }
                }
            }
            _ => break,
        }
    }
    if !prefix.is_empty() {
        leaves.push(prefix);
    }
    at
}
