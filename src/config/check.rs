//! Reading and checking: the `Checker` that collects every problem with its field path (and
//! the warnings), bounded file reads, `${NAME}` expansion, and messages that never echo a
//! value.

use super::*;

/// Collects problems with their field paths while the raw config is checked.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<String>,
    pub(super) warnings: Vec<String>,
    /// What a field is called where it came from, when not in a file (a command-line flag).
    pub(super) rename: Option<fn(&str) -> Option<&'static str>>,
}

impl Checker {
    pub(super) fn problem(&mut self, field: &str, message: impl fmt::Display) {
        let field = self
            .rename
            .and_then(|rename| rename(field))
            .unwrap_or(field);
        self.problems.push(format!("{field}: {message}"));
    }

    /// A duration within `(min, max)`, or the default with a problem noted.
    pub(super) fn duration(
        &mut self,
        field: &str,
        value: Option<&str>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value.trim()) {
            Ok(d) if d < min || d > max => {
                self.problem(
                    field,
                    format!(
                        "must be from {} to {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    field,
                    format!("is not a duration like \"30s\" or \"1m30s\" ({e})"),
                );
                default
            }
        }
    }

    /// A secret from exactly one of `sources` (key, value); the value itself never enters a
    /// message. `alternative` is said after the list when none or several are set.
    pub(super) fn secret<const N: usize>(
        &mut self,
        field: &str,
        sources: [(&str, Option<&str>); N],
        alternative: &str,
    ) -> Option<Secret> {
        let set: Vec<(&str, &str)> = sources
            .iter()
            .filter_map(|(key, value)| Some((*key, (*value)?)))
            .collect();
        let [(key, value)] = set.as_slice() else {
            let keys: Vec<&str> = sources.iter().map(|(key, _)| *key).collect();
            self.problem(
                field,
                format!("set exactly one of {} {alternative}", keys.join(", ")).trim_end(),
            );
            return None;
        };
        let origin = format!("{field}.{key}");
        let text = match *key {
            k if k.ends_with("_file") => {
                let bytes = self.read_file(&origin, value)?;
                match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(_) => {
                        self.problem(&origin, format!("{value} is not UTF-8 text"));
                        return None;
                    }
                }
            }
            k if k.ends_with("_env") => match std::env::var(value) {
                Ok(text) => text,
                Err(_) => {
                    self.problem(
                        &origin,
                        format!("environment variable {value} is not set or not UTF-8"),
                    );
                    return None;
                }
            },
            _ => {
                self.warnings.push(format!(
                    "{origin}: the secret is inline in the config file; prefer a file or the environment"
                ));
                (*value).to_owned()
            }
        };
        // Files usually end with a newline that is not part of the secret.
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            self.problem(&origin, "the secret is empty");
            return None;
        }
        if text.len() > MAX_SECRET_BYTES {
            self.problem(
                &origin,
                format!("the secret is longer than {MAX_SECRET_BYTES} bytes"),
            );
            return None;
        }
        Some(Secret::new(text))
    }

    pub(super) fn read_file(&mut self, field: &str, path: &str) -> Option<Vec<u8>> {
        match read_bounded(Path::new(path), MAX_FILE_BYTES) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problem(field, format!("cannot read {path}: {e}"));
                None
            }
        }
    }
}

/// A regular file of at most `limit` bytes. Anything else is refused before it is opened:
/// opening a FIFO waits for a writer, and a device never ends.
pub(super) fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let regular = |metadata: std::fs::Metadata| {
        if metadata.is_file() {
            Ok(())
        } else {
            Err(std::io::Error::other(
                "not a regular file (a directory, FIFO, socket or device)",
            ))
        }
    };
    regular(std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    // What was opened, in case the name changed in between.
    regular(file.metadata()?)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// `${NAME}` replaced by the environment variable NAME (a `$` elsewhere stays as it is).
pub(super) fn expand_environment(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').ok_or("has a ${ without its closing }")?;
        let name = &after[..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err("names a variable that is not like ${HOSTNAME}".to_owned());
        }
        let value = std::env::var(name).map_err(|_| {
            "names an environment variable that is not set (or not UTF-8)".to_owned()
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// serde's messages quote the offending value (`invalid type: string "…"`, "integer `5`"): it
/// may be a secret typed into the wrong field, so only its kind is kept.
pub(super) fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let kinds = [
            "string \"",
            "integer `",
            "floating point `",
            "character `",
            "variant `",
        ];
        let Some((at, kind)) = kinds
            .iter()
            .filter_map(|kind| rest.find(kind).map(|at| (at, *kind)))
            .min()
        else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(kind.trim_end_matches(['"', '`', ' ']));
        let quote = kind.chars().last().unwrap_or('"');
        let value = &rest[at + kind.len()..];
        // The closing quote; a string's inner quotes are escaped.
        let mut escaped = false;
        let end = value.char_indices().find(|&(_, c)| {
            let close = c == quote && !escaped;
            escaped = c == '\\' && !escaped;
            close
        });
        match end {
            Some((end, _)) => rest = &value[end + 1..],
            None => return out,
        }
    }
}

pub(super) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}
