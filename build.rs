// Migrations and the console's static files are embedded in the binary:
// rebuild when they change.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=console");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let console = root.join("console");
    let mut files = Vec::new();
    collect(&console, &console, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for (name, path) in &files {
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?}).as_slice()),\n",
            path.display().to_string()
        ));
    }
    table.push_str("]\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("out dir"));
    std::fs::write(out.join("console_files.rs"), table).expect("write console table");
}

/// Every file under `dir`, named by its path relative to `base` with `/`.
fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(base, &path, files);
        } else {
            let name = path
                .strip_prefix(base)
                .expect("under base")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, path));
        }
    }
}
