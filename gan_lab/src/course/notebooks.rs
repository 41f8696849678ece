//! Notebooks: the student edition of the instructors' notebooks (`solutions/` → `notebooks/`) and
//! re-executing them through the kernel to refresh their stored outputs.

use super::markers;
use super::release::stub;
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What replaces an instructor's answer (a markdown cell tagged `solution`).
pub const ANSWER: &str = "*Your answer here.*";

fn source_text(cell: &Value) -> String {
    match &cell["source"] {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// nbformat stores sources as lists of lines.
fn source_lines(text: &str) -> Value {
    Value::Array(text.split_inclusive('\n').map(|l| Value::String(l.to_string())).collect())
}

/// Checks the parts of nbformat 4 that the tool relies on.
pub fn check_notebook(nb: &Value, what: &str) -> Result<()> {
    ensure!(nb["nbformat"] == 4, "{what}: not an nbformat 4 notebook (nbformat = {})", nb["nbformat"]);
    let cells = nb["cells"].as_array().with_context(|| format!("{what}: no `cells` list"))?;
    for (i, cell) in cells.iter().enumerate() {
        let kind = cell["cell_type"].as_str();
        ensure!(
            matches!(kind, Some("code" | "markdown" | "raw")),
            "{what}: cell {} has cell_type {}, expected code, markdown or raw",
            i + 1,
            cell["cell_type"]
        );
        ensure!(cell["source"].is_string() || cell["source"].is_array(), "{what}: cell {} has no source", i + 1);
    }
    Ok(())
}

/// The first PNG a code cell's outputs hold, base64: an `image/png` output, or the first picture
/// of an HTML panel.
fn first_png(cell: &Value) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(parts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    };
    cell["outputs"].as_array()?.iter().find_map(|o| {
        if let Some(png) = text(&o["data"]["image/png"]) {
            return Some(png.split_whitespace().collect());
        }
        let html = text(&o["data"]["text/html"])?;
        let start = html.find("data:image/png;base64,")? + "data:image/png;base64,".len();
        let len = html[start..].find(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c)))?;
        Some(html[start..start + len].to_string())
    })
}

/// For a code cell tagged `reference` in a notebook the instructors ran in full
/// (`tools/execute_notebooks.py --full` records the run in the notebook's and the cell's
/// `gan_lab` metadata): a markdown cell that shows what a correct run of it looks like (its first
/// picture) and how long it took on which CPU. Student editions clear outputs; this stays.
fn reference_cell(nb: &Value, cell: &Value) -> Option<Value> {
    let run = &nb["metadata"]["gan_lab"];
    if run["mode"] != "full" || !cell["metadata"]["tags"].as_array()?.iter().any(|t| t == "reference") {
        return None;
    }
    let png = first_png(cell)?;
    let seconds = cell["metadata"]["gan_lab"]["seconds"].as_f64()?;
    let took = match seconds {
        s if s < 90.0 => format!("{s:.0} s"),
        s => format!("{:.0} min", s / 60.0),
    };
    let cpu = run["cpu"].as_str().unwrap_or("a CPU");
    let cores = run["cores"].as_u64().map(|c| format!(", {c} cores")).unwrap_or_default();
    let text = format!(
        "*What a correct run of the next cell looks like.* It took {took} on {cpu}{cores}, with the \
         course's solutions; yours differs in the details, not in kind.\n\n![a correct run](attachment:reference.png)"
    );
    let id = cell["id"].as_str().map(|id| format!("{id}-reference")).unwrap_or_else(|| "reference".into());
    Some(json!({
        "attachments": {"reference.png": {"image/png": png}},
        "cell_type": "markdown",
        "id": id,
        "metadata": {"tags": ["reference"]},
        "source": source_lines(&text),
    }))
}

/// The student version of a notebook: answers emptied, solution regions stubbed, outputs
/// cleared, and before each cell tagged `reference` a picture of a correct run.
pub fn student_notebook(nb: &Value, what: &str) -> Result<Value> {
    check_notebook(nb, what)?;
    let references: Vec<Option<Value>> =
        nb["cells"].as_array().expect("checked").iter().map(|c| reference_cell(nb, c)).collect();
    let mut nb = nb.clone();
    if let Some(meta) = nb["metadata"].as_object_mut() {
        meta.remove("gan_lab");
    }
    for (i, cell) in nb["cells"].as_array_mut().expect("checked").iter_mut().enumerate() {
        let where_ = format!("{what} (cell {})", i + 1);
        let tags: Vec<String> = cell["metadata"]["tags"]
            .as_array()
            .map(|t| t.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        if let Some(meta) = cell["metadata"].as_object_mut() {
            meta.remove("execution");
            meta.remove("gan_lab");
        }
        match cell["cell_type"].as_str() {
            Some("markdown") if tags.iter().any(|t| t == "solution") => {
                cell["source"] = source_lines(ANSWER);
                cell["metadata"]["tags"] = json!(["answer"]);
            }
            Some("code") => {
                let text = source_text(cell);
                let stripped = markers::strip(&text, &where_, |r| match r.id {
                    Some(_) => stub(r, &where_),
                    None => Ok("// YOUR CODE HERE\ntodo!()".to_string()),
                })?;
                cell["source"] = source_lines(&stripped);
                cell["outputs"] = json!([]);
                cell["execution_count"] = Value::Null;
            }
            _ => {
                let text = source_text(cell);
                if let Some(line) = text.lines().position(markers::looks_like_marker) {
                    bail!(
                        "{where_}:{}: markers belong in code cells; answers are markdown cells tagged `solution`",
                        line + 1
                    );
                }
            }
        }
    }
    let cells = nb["cells"].as_array_mut().expect("checked");
    for (i, reference) in references.into_iter().enumerate().rev() {
        if let Some(reference) = reference {
            cells.insert(i, reference);
        }
    }
    Ok(nb)
}

/// Notebook JSON as nbformat writes it: sorted keys, one-space indent, final newline.
pub fn to_text(nb: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(b" "));
    serde::Serialize::serialize(nb, &mut ser).expect("JSON values serialize");
    String::from_utf8(buf).expect("JSON is UTF-8") + "\n"
}

/// (file name, student notebook text) for every notebook in `solutions_dir`.
pub fn student_edition(solutions_dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for path in notebooks_in(solutions_dir)? {
        let what = path.display().to_string();
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {what}"))?;
        let nb: Value = serde_json::from_str(&text).with_context(|| format!("{what}: not valid notebook JSON"))?;
        let name = path.file_name().expect("file").to_string_lossy().into_owned();
        out.push((name, to_text(&student_notebook(&nb, &what)?)));
    }
    Ok(out)
}

/// The `.ipynb` files of a folder, sorted.
pub fn notebooks_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Regenerates `notebooks/` from `solutions/` in `root`; with `check`, writes nothing and lists
/// the student notebooks that are out of date.
pub fn write_student_notebooks(root: &Path, check: bool) -> Result<Vec<PathBuf>> {
    let mut stale = Vec::new();
    // Everything is generated before anything is written: a bad notebook changes nothing.
    for (name, text) in student_edition(&root.join("solutions"))? {
        let dest = root.join("notebooks").join(&name);
        if std::fs::read_to_string(&dest).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if !check {
            crate::files::write_atomic(&dest, text.as_bytes())?;
        }
        stale.push(dest);
    }
    Ok(stale)
}

/// Re-runs the instructors' notebooks (all, or the ones in `names`) through the gan-lab kernel
/// and stores their outputs (quick mode unless `full`), via `tools/execute_notebooks.py` in the project's Python.
pub fn execute(root: &Path, full: bool, names: &[String]) -> Result<()> {
    let python =
        std::env::var("GAN_LAB_PYTHON").unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(root.join("tools/execute_notebooks.py"));
    if full {
        cmd.arg("--full");
    }
    cmd.args(names);
    let status =
        cmd.status().with_context(|| format!("cannot run {python}: run scripts/lab or scripts/test once to set up"))?;
    ensure!(status.success(), "executing the notebooks failed ({status})");
    Ok(())
}
