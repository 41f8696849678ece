//! gan_lab: a course kit for generative adversarial networks on tch (libtorch).

pub mod backend;
pub mod bench;
pub mod builders;
pub mod checkpoint;
pub mod cli;
pub mod course;
pub mod data;
pub mod device;
pub mod explore;
pub mod files;
pub mod history;
pub mod losses;
pub mod metrics;
pub mod models;
pub mod notebook;
pub mod optim;
pub mod progress;
pub mod rng;
pub mod step;
pub mod train;
pub mod tsne;
pub mod vae;
pub mod viz;

/// The error type of every fallible call, for notebooks that write their own helpers.
pub use anyhow;
pub use builders::{Acgan, Cdcgan, Dcgan, Infogan, Sagan, Vae};
pub use data::{Dataset, Source, Split};
/// The tch version gan_lab is built on, for notebooks that work with tensors directly.
pub use tch;
pub use train::{Gan, History};
pub use vae::VaeModel;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    type Graph = BTreeMap<String, BTreeSet<String>>;

    /// The library's top-level modules and the others each one's code (not its tests, not its
    /// comments) names as `crate::module`.
    fn module_graph(src: &Path) -> Graph {
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut walk = vec![src.to_path_buf()];
        while let Some(dir) = walk.pop() {
            for path in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
                if path.is_dir() {
                    walk.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && path != src.join("lib.rs") {
                    let top = path.strip_prefix(src).unwrap().components().next().unwrap();
                    let name = top.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
                    files.entry(name).or_default().push(std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let names: BTreeSet<String> = files.keys().cloned().collect();
        let mut graph = Graph::new();
        for (module, texts) in &files {
            let mut deps = BTreeSet::new();
            for text in texts {
                let code = code_of(text);
                for (at, _) in code.match_indices("crate::") {
                    let rest = &code[at + "crate::".len()..];
                    let named: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group[..group.find('}').unwrap_or(group.len())]
                            .split(',')
                            .map(|item| item.trim().split("::").next().unwrap_or(""))
                            .collect(),
                        None => vec![rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("")],
                    };
                    deps.extend(named.into_iter().filter(|n| names.contains(*n) && n != module).map(String::from));
                }
            }
            graph.insert(module.clone(), deps);
        }
        graph
    }

    /// Each cycle found by a depth-first search, as the path around it.
    fn cycles(graph: &Graph) -> Vec<Vec<String>> {
        fn visit(
            u: &str,
            graph: &Graph,
            done: &mut BTreeSet<String>,
            path: &mut Vec<String>,
            out: &mut Vec<Vec<String>>,
        ) {
            path.push(u.to_string());
            for v in &graph[u] {
                if let Some(at) = path.iter().position(|p| p == v) {
                    out.push([&path[at..], std::slice::from_ref(v)].concat());
                } else if !done.contains(v) {
                    visit(v, graph, done, path, out);
                }
            }
            path.pop();
            done.insert(u.to_string());
        }
        let (mut done, mut out) = (BTreeSet::new(), vec![]);
        for u in graph.keys() {
            if !done.contains(u) {
                visit(u, graph, &mut done, &mut vec![], &mut out);
            }
        }
        out
    }

    #[test]
    fn modules_import_each_other_one_way() {
        let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        assert!(graph["train"].contains("models") && graph["explore"].contains("train"), "the scan sees imports");
        let found = cycles(&graph);
        assert!(found.is_empty(), "modules that import each other in a circle: {found:?}");
        for below in ["train", "vae", "explore", "builders", "notebook"] {
            assert!(!graph["viz"].contains(below), "viz draws data types; it must not import {below}");
        }
        for above in ["vae", "explore", "builders", "viz"] {
            assert!(!graph["train"].contains(above), "the training loop must not import {above}");
        }
    }

    /// The code of `text` without its comments and tests.
    fn code_of(text: &str) -> String {
        let code = text.split("#[cfg(test)]").next().unwrap();
        code.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
    }

    /// The models are written with tch's layers; the speed techniques reach them through libtorch's
    /// dispatcher, so no model file names the backend (models/mod.rs's `leaky_relu` helper, which
    /// binds libtorch's op with its slope, is the one door). The lesson-1 exercises use only tch's
    /// layers, not the loss-families lesson's layer choices.
    #[test]
    fn model_files_name_no_speed_technique() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/models");
        for entry in std::fs::read_dir(&models).unwrap() {
            let path = entry.unwrap().path();
            let code = code_of(&std::fs::read_to_string(&path).unwrap());
            let allowed = usize::from(path.ends_with("mod.rs"));
            assert_eq!(code.matches("backend").count(), allowed, "{} names the backend", path.display());
        }
        // The master marks the bodies as solutions; the student edition as exercises (stubs).
        let dcgan = std::fs::read_to_string(models.join("dcgan.rs"))
            .unwrap()
            .replace("// BEGIN EXERCISE", "// BEGIN SOLUTION")
            .replace("// END EXERCISE", "// END SOLUTION");
        let bodies: Vec<&str> =
            dcgan.split("// BEGIN SOLUTION").skip(1).map(|b| b.split("// END SOLUTION").next().unwrap()).collect();
        assert!(bodies.len() >= 5, "the scan sees the exercise bodies");
        for body in bodies {
            for kit in ["up_layer", "norm_layer", "UpLayer", "NormLayer", "fuse"] {
                assert!(!body.contains(kit), "an exercise body names `{kit}`:\n{body}");
            }
        }
    }

    #[test]
    fn a_circle_of_imports_is_found() {
        let edge = |deps: &[&str]| deps.iter().map(|d| d.to_string()).collect::<BTreeSet<_>>();
        let graph: Graph = [("train", edge(&["viz"])), ("viz", edge(&["metrics"])), ("metrics", edge(&["train"]))]
            .into_iter()
            .map(|(m, d)| (m.to_string(), d))
            .collect();
        assert_eq!(cycles(&graph), [["metrics", "train", "viz", "metrics"]]);
        let mut one_way = graph.clone();
        one_way.get_mut("metrics").unwrap().clear();
        assert!(cycles(&one_way).is_empty());
    }
}
