//! MCP client configuration files: which servers a desktop assistant or IDE
//! starts, and how.
//!
//! | file | servers under | entry |
//! |---|---|---|
//! | `claude_desktop_config.json` | `mcpServers` | `command`, `args`, `env` |
//! | `.cursor/mcp.json` | `mcpServers` | `command`, `args`, `env`, or `url` |
//! | `.mcp.json` (Claude Code) | `mcpServers` | optional `type`, then as above |
//! | `.vscode/mcp.json` | `servers` | `type: stdio` (`command`, `args`, `env`) or `type: http`/`sse` (`url`) |
//!
//! Every format is read the same way, whatever the file is called: the
//! servers are under `mcpServers`, `servers`, or both. Comments and trailing
//! commas (VS Code writes JSONC) are accepted. Files are untrusted input:
//! at most [`MAX_CONFIG_BYTES`], nested at most [`MAX_CONFIG_DEPTH`] deep,
//! UTF-8; anything else is a [`ConfigError`] naming the file.
//!
//! ```
//! use std::path::Path;
//! use warden_mcp::config::parse_client_config;
//!
//! let servers = parse_client_config(
//!     Path::new(".mcp.json"),
//!     br#"{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."]}}}"#,
//! )?;
//! assert_eq!(servers[0].name, "fs");
//! assert_eq!(servers[0].command.as_deref(), Some("npx"));
//! # Ok::<(), warden_mcp::config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Largest configuration file read (4 MiB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Deepest nesting of arrays and objects accepted in a configuration file.
pub const MAX_CONFIG_DEPTH: usize = 64;

/// One server entry of a client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The entry's name (the key under `mcpServers`/`servers`).
    pub name: String,
    /// The program to start, for a stdio server.
    pub command: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables set for it (on top of the caller's).
    pub env: BTreeMap<String, String>,
    /// The endpoint, for an HTTP (or SSE) server.
    pub url: Option<String>,
    /// The file the entry came from.
    pub source: PathBuf,
}

impl ServerConfig {
    /// `stdio` when the entry starts a program, else `http`.
    pub fn transport(&self) -> &'static str {
        if self.command.is_some() {
            "stdio"
        } else {
            "http"
        }
    }
}

/// A configuration file that could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("{}: larger than {limit} bytes; is this an MCP client configuration?", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The file is not UTF-8.
    #[error("{}: not UTF-8 (invalid byte at offset {offset}); save it as UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// Arrays and objects nest deeper than [`MAX_CONFIG_DEPTH`].
    #[error("{}:{line}:{column}: nested deeper than {limit} levels", path.display())]
    TooDeep {
        /// The file.
        path: PathBuf,
        /// 1-based line of the bracket that went too deep.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The limit.
        limit: usize,
    },
    /// The file is not valid JSON (or JSONC).
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// Valid JSON, but not the shape of an MCP client configuration.
    #[error("{}: {at}: {message}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// Where in the document, e.g. `mcpServers.fs.args[1]`.
        at: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// Reads the servers of one client configuration file: those under
/// `mcpServers`, then those under `servers`, each by name.
pub fn read_client_config(path: &Path) -> Result<Vec<ServerConfig>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    parse_client_config(path, &bytes)
}

/// [`read_client_config`] over bytes already read; `path` is for messages
/// and [`ServerConfig::source`].
pub fn parse_client_config(path: &Path, bytes: &[u8]) -> Result<Vec<ServerConfig>, ConfigError> {
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let json = strip_jsonc(text);
    check_depth(path, &json)?;
    let doc: Value = serde_json::from_str(&json).map_err(|e| ConfigError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    let shape = |at: &str, message: &str| ConfigError::Shape {
        path: path.to_path_buf(),
        at: at.to_string(),
        message: message.to_string(),
    };
    let Value::Object(root) = &doc else {
        return Err(shape(
            "(top level)",
            "expected a JSON object with \"mcpServers\" or \"servers\"",
        ));
    };
    let mut servers = Vec::new();
    for key in ["mcpServers", "servers"] {
        let Some(entries) = root.get(key) else {
            continue;
        };
        let Value::Object(entries) = entries else {
            return Err(shape(
                key,
                "expected an object of server name → server entry",
            ));
        };
        for (name, entry) in entries {
            servers.push(server_entry(path, &format!("{key}.{name}"), name, entry)?);
        }
    }
    Ok(servers)
}

fn server_entry(
    path: &Path,
    at: &str,
    name: &str,
    entry: &Value,
) -> Result<ServerConfig, ConfigError> {
    let shape = |at: String, message: &str| ConfigError::Shape {
        path: path.to_path_buf(),
        at,
        message: message.to_string(),
    };
    let Value::Object(entry) = entry else {
        return Err(shape(
            at.into(),
            "expected an object (command/args/env, or url)",
        ));
    };
    let string = |key: &str| -> Result<Option<String>, ConfigError> {
        match entry.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(shape(format!("{at}.{key}"), "expected a string")),
        }
    };
    let command = string("command")?;
    let url = string("url")?.or(string("serverUrl")?);
    let kind = string("type")?;
    let args = match entry.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(shape(format!("{at}.args[{i}]"), "expected a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape(format!("{at}.args"), "expected an array of strings")),
    };
    let env = match entry.get("env") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(vars)) => vars
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                _ => Err(shape(format!("{at}.env.{k}"), "expected a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape(format!("{at}.env"), "expected an object of strings")),
    };
    match kind.as_deref() {
        None | Some("stdio") if command.is_some() => {}
        Some("stdio") => return Err(shape(at.into(), "\"type\": \"stdio\" needs a \"command\"")),
        None | Some("http" | "sse" | "streamable-http" | "streamableHttp") if url.is_some() => {}
        Some("http" | "sse" | "streamable-http" | "streamableHttp") => {
            return Err(shape(at.into(), "an HTTP server entry needs a \"url\""));
        }
        None => {
            return Err(shape(
                at.into(),
                "needs a \"command\" (stdio) or a \"url\" (HTTP)",
            ));
        }
        Some(_) => {
            return Err(shape(
                format!("{at}.type"),
                "expected \"stdio\", \"http\" or \"sse\"",
            ));
        }
    }
    Ok(ServerConfig {
        name: name.to_string(),
        command,
        args,
        env,
        url,
        source: path.to_path_buf(),
    })
}

/// Where MCP clients keep their configurations, in the order scanned:
/// Claude Desktop's file for this platform, Cursor's global file, then the
/// project files in the current directory (`.mcp.json`, `.cursor/mcp.json`,
/// `.vscode/mcp.json`). Not every one exists.
pub fn default_config_paths() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut paths = Vec::new();
    if cfg!(target_os = "macos") {
        if let Some(home) = &home {
            paths.push(home.join("Library/Application Support/Claude/claude_desktop_config.json"));
        }
    } else if cfg!(windows) {
        if let Some(appdata) = std::env::var_os("APPDATA") {
            paths.push(
                PathBuf::from(appdata)
                    .join("Claude")
                    .join("claude_desktop_config.json"),
            );
        }
    } else {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        if let Some(config) = config {
            paths.push(config.join("Claude/claude_desktop_config.json"));
        }
    }
    if let Some(home) = &home {
        paths.push(home.join(".cursor/mcp.json"));
    }
    paths.push(PathBuf::from(".mcp.json"));
    paths.push(PathBuf::from(".cursor/mcp.json"));
    paths.push(PathBuf::from(".vscode/mcp.json"));
    paths
}

/// JSONC to JSON: `//` and `/* */` comments become spaces (newlines kept,
/// so line and column numbers stay right) and a comma directly before `}`
/// or `]` is dropped (replaced by a space).
fn strip_jsonc(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    let mut in_string = false;
    // The position of the last comma outside strings with only whitespace
    // or comments since.
    let mut pending_comma: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                pending_comma = None;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |e| i + 2 + e + 2);
                for (j, byte) in out.iter_mut().enumerate().take(end).skip(i) {
                    if bytes[j] != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
                continue;
            }
            b',' => pending_comma = Some(i),
            b'}' | b']' => {
                if let Some(c) = pending_comma.take() {
                    out[c] = b' ';
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => pending_comma = None,
        }
        i += 1;
    }
    // Only ASCII bytes outside strings were replaced by ASCII spaces, and a
    // multi-byte character is never split (its bytes are all >= 0x80).
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Refuses nesting deeper than [`MAX_CONFIG_DEPTH`] before parsing, so the
/// parser never recurses that far.
fn check_depth(path: &Path, json: &str) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let (mut line, mut column) = (1, 0);
    for c in json.chars() {
        if c == '\n' {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth > MAX_CONFIG_DEPTH {
                    return Err(ConfigError::TooDeep {
                        path: path.to_path_buf(),
                        line,
                        column,
                        limit: MAX_CONFIG_DEPTH,
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// serde_json's message without its trailing " at line L column C" (the
/// error already says where).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ServerConfig>, ConfigError> {
        parse_client_config(Path::new("cfg.json"), text.as_bytes())
    }

    #[test]
    fn reads_claude_desktop_and_cursor_entries() {
        let servers = parse(
            r#"{"mcpServers": {
                "fs": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"], "env": {"A": "1"}},
                "remote": {"url": "https://example.com/mcp"}
            }, "otherSetting": true}"#,
        )
        .unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].name, "fs");
        assert_eq!(servers[0].args, ["-y", "server-filesystem", "/tmp"]);
        assert_eq!(servers[0].env.get("A").map(String::as_str), Some("1"));
        assert_eq!(servers[0].transport(), "stdio");
        assert_eq!(servers[1].url.as_deref(), Some("https://example.com/mcp"));
        assert_eq!(servers[1].transport(), "http");
        assert_eq!(servers[1].source, Path::new("cfg.json"));
    }

    #[test]
    fn reads_vscode_servers_with_comments_and_trailing_commas() {
        let servers = parse(
            "{\n  // VS Code writes JSONC\n  \"servers\": {\n    \"fs\": {\"type\": \"stdio\", \"command\": \"node\", \"args\": [\"a // not a comment\",],},\n    /* block */ \"web\": {\"type\": \"http\", \"url\": \"http://127.0.0.1:3001/mcp\"},\n  },\n  \"inputs\": []\n}",
        )
        .unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].args, ["a // not a comment"]);
        assert_eq!(servers[1].url.as_deref(), Some("http://127.0.0.1:3001/mcp"));
    }

    #[test]
    fn a_file_without_servers_has_none() {
        assert!(parse(r#"{"theme": "dark"}"#).unwrap().is_empty());
    }

    #[test]
    fn malformed_json_names_the_file_and_place() {
        let err = parse("{\n  \"mcpServers\": {\"fs\": }\n}").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cfg.json:2:"), "{text}");
        assert!(text.contains("invalid JSON"), "{text}");
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_offset() {
        let err = parse_client_config(Path::new("x.json"), b"{\"a\": \"\xff\"}").unwrap_err();
        assert!(
            matches!(err, ConfigError::NotUtf8 { offset: 7, .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("x.json: not UTF-8"));
    }

    #[test]
    fn nesting_over_the_limit_is_refused_before_parsing() {
        let deep = "[".repeat(MAX_CONFIG_DEPTH + 1) + &"]".repeat(MAX_CONFIG_DEPTH + 1);
        let err = parse(&deep).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::TooDeep {
                    line: 1,
                    column: 65,
                    ..
                }
            ),
            "{err}"
        );
        let ok = "[".repeat(MAX_CONFIG_DEPTH) + &"]".repeat(MAX_CONFIG_DEPTH);
        // At the limit it parses (and then is not an object).
        assert!(matches!(parse(&ok).unwrap_err(), ConfigError::Shape { .. }));
        // Brackets inside strings do not count.
        let quoted = format!(r#"{{"mcpServers": {{}}, "x": "{}"}}"#, "[".repeat(1000));
        assert!(parse(&quoted).unwrap().is_empty());
    }

    #[test]
    fn files_over_the_size_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        std::fs::write(&path, vec![b' '; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let err = read_client_config(&path).unwrap_err();
        assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("big.json"));
    }

    #[test]
    fn wrong_shapes_say_where() {
        let err =
            parse(r#"{"mcpServers": {"fs": {"command": "x", "args": ["a", 2]}}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cfg.json: mcpServers.fs.args[1]: expected a string"
        );
        let err = parse(r#"{"mcpServers": {"fs": {}}}"#).unwrap_err();
        assert!(err.to_string().contains("needs a \"command\""), "{err}");
        let err = parse(r#"{"servers": {"w": {"type": "http"}}}"#).unwrap_err();
        assert!(err.to_string().contains("needs a \"url\""), "{err}");
        let err = parse(r#"[1]"#).unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
    }

    #[test]
    fn default_paths_cover_every_client() {
        let paths = default_config_paths();
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        assert!(
            names
                .iter()
                .any(|p| p.ends_with("claude_desktop_config.json")),
            "{names:?}"
        );
        for project in [".mcp.json", ".cursor/mcp.json", ".vscode/mcp.json"] {
            assert!(
                names.iter().any(|p| p == project),
                "{project} missing from {names:?}"
            );
        }
    }
}
