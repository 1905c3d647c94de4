//! Loading policies from disk. `warden-policy` reads no files; this is the
//! [`Sources`] that does, confined to the root policy's directory.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use warden_policy::{
    CompiledPolicy, Diagnostic, PolicyError, Pos, Sources, limits::MAX_POLICY_BYTES,
};

/// Policy files under one directory. Paths are relative to the process's
/// working directory, as the user typed them; every file read must resolve
/// (after symlinks) inside the root policy's directory.
#[derive(Debug, Clone)]
pub struct DirSources {
    root_dir: Option<PathBuf>,
    /// Every path asked for, in order, whether it could be read or not.
    asked: Arc<Mutex<Vec<String>>>,
}

/// The directory of the policy file at `path`, as given (`.` for a bare
/// file name, whose parent is empty).
pub fn dir_of(path: &str) -> &Path {
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

impl DirSources {
    /// Sources confined to the directory of `root`.
    pub fn for_root(root: &str) -> DirSources {
        DirSources {
            root_dir: fs::canonicalize(dir_of(root)).ok(),
            asked: Arc::default(),
        }
    }

    /// Every path read or tried so far (the root and its includes, as
    /// resolved), in order: the files a change to which changes the policy.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Sources for DirSources {
    fn read(&self, path: &str) -> Result<String, String> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_string());
        let real = fs::canonicalize(path).map_err(|e| e.to_string())?;
        match &self.root_dir {
            Some(dir) if real.starts_with(dir) => {}
            _ => {
                return Err(format!(
                    "{} resolves outside the policy's directory",
                    real.display()
                ));
            }
        }
        let file = fs::File::open(&real).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        // Read one byte past the limit to tell "at the limit" from "over it".
        file.take(MAX_POLICY_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(format!("file is larger than {MAX_POLICY_BYTES} bytes"));
        }
        String::from_utf8(bytes).map_err(|e| {
            format!(
                "not valid UTF-8 (first bad byte at offset {})",
                e.utf8_error().valid_up_to()
            )
        })
    }
}

/// Loads and compiles the policy file at `path` with its includes.
pub fn load_policy(path: &str) -> Result<CompiledPolicy, PolicyError> {
    load_policy_reading(path).0
}

/// [`load_policy`], and the files it read or tried to (see
/// [`DirSources::asked`]), whether it succeeded or not: what a watcher of
/// the policy watches.
pub fn load_policy_reading(path: &str) -> (Result<CompiledPolicy, PolicyError>, Vec<String>) {
    let sources = DirSources::for_root(path);
    let loaded = compile_file(path, &sources);
    (loaded, sources.asked())
}

fn compile_file(path: &str, sources: &DirSources) -> Result<CompiledPolicy, PolicyError> {
    if !Path::new(path).is_file() {
        return Err(PolicyError {
            diagnostics: vec![Diagnostic {
                file: path.to_string(),
                line: Pos::default().line,
                column: Pos::default().column,
                message: "cannot read policy: no such file".to_string(),
                hint: Some("check the path".to_string()),
            }],
        });
    }
    warden_policy::load_compiled(path, sources)
}
