//! Turning parse and validation failures into `file:line:col: key.path: message`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem in an experiment file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column (characters); (1, 1) when the key is absent from the file; (0, 0)
    /// when the error is not in a file (an override: `file` then names it).
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `train.epochs`; empty for a syntax error outside any key.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: not in a file (an override on the command line), named by `file` alone.
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one experiment file (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(file: &Path, message: String) -> Self {
        Self(vec![ConfigError {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            key: String::new(),
            message,
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A TOML syntax or type error, with the key it concerns and a hint for misspelt keys.
pub(super) fn from_toml_error(file: &Path, source: &str, error: &toml::de::Error) -> ConfigErrors {
    let span = error.span().unwrap_or(0..0);
    let parsed = DeTable::parse(source);
    let mut key = parsed
        .as_ref()
        .map(|doc| key_path_at(doc, span.start))
        .unwrap_or_default();
    let mut message = error.message().trim().replace('\n', " ");
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        // A table missing a field is reported at its header; the document itself, at an
        // empty span, which would otherwise be taken for the first key of the file.
        key = if key.is_empty() || span.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
    }
    if parsed.is_err() {
        // A syntax error: quote the line, since no key can be named.
        message = format!("{message}, in `{}`", excerpt(source, span.start));
    }
    if let Some(rest) = message.strip_prefix("invalid value: integer `") {
        // serde's wording for a negative number given to an unsigned key.
        if let Some(value) = rest.split('`').next().filter(|v| v.starts_with('-')) {
            message = format!("must be ≥ 0 (got {value})");
        }
    }
    if let Some(range) = out_of_range(&message) {
        message = range;
    }
    if let Some(hint) = unknown_key_hint(&message) {
        message.push_str(&hint);
    }
    let (line, column) = line_column(source, span.start);
    ConfigErrors(vec![ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        key,
        message,
    }])
}

/// Validation problems, each located at its key (or at 1:1 when the key was left to default).
pub(super) fn from_problems(
    file: &Path,
    source: &str,
    problems: Vec<(String, String)>,
) -> ConfigErrors {
    let doc = DeTable::parse(source).ok();
    ConfigErrors(
        problems
            .into_iter()
            .map(|(key, message)| {
                let offset = doc
                    .as_ref()
                    .and_then(|d| span_of_key(d, &key))
                    .map_or(0, |s| s.start);
                let (line, column) = line_column(source, offset);
                ConfigError {
                    file: file.to_path_buf(),
                    line,
                    column,
                    key,
                    message,
                }
            })
            .collect(),
    )
}

/// The first control character TOML allows nowhere (all but tab, line feed and carriage
/// return), located: a file holding one is binary or damaged, and the parser's own message
/// would blame the string or key around it.
pub(super) fn control_character(file: &Path, source: &str) -> Option<ConfigErrors> {
    let (offset, c) = source
        .char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r') && (c as u32) < 0x80)?;
    let (line, column) = line_column(source, offset);
    let name = if c == '\0' { " (NUL)" } else { "" };
    Some(ConfigErrors(vec![ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        key: String::new(),
        message: format!(
            "control character U+{:04X}{name} in the file: TOML allows none but tab and line breaks; is this a binary or damaged file?",
            c as u32
        ),
    }]))
}

/// A file that is not UTF-8 text, located at its first invalid byte (`valid` bytes in).
pub(super) fn not_text(file: &Path, bytes: &[u8], valid: usize) -> ConfigErrors {
    let text = std::str::from_utf8(&bytes[..valid]).expect("valid up to here");
    let (line, column) = line_column(text, text.len());
    ConfigErrors(vec![ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        key: String::new(),
        message: format!(
            "byte 0x{:02X} is not UTF-8 text: a TOML file is text; is this a binary or damaged file?",
            bytes[valid]
        ),
    }])
}

/// serde's wording for an integer beyond 64 bits ("invalid type: integer `N` as i128,
/// expected usize"), said as the range it is out of.
fn out_of_range(message: &str) -> Option<String> {
    let (value, rest) = message
        .strip_prefix("invalid type: integer `")?
        .split_once('`')?;
    let expected = rest.strip_prefix(" as i128, expected ")?;
    if value.starts_with('-') {
        return Some(format!("must be ≥ 0 (got {value})"));
    }
    let max = match expected {
        "usize" | "u64" => u64::MAX.to_string(),
        "u32" => u32::MAX.to_string(),
        "i64" => i64::MAX.to_string(),
        _ => return Some(format!("is out of range (got {value})")),
    };
    Some(format!("must be at most {max} (got {value})"))
}

/// `"; did you mean `x`?"` for the candidate closest to `word`, if any is close.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min()
        .map(|(_, c)| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// serde says "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (word, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    Some(did_you_mean(word, &candidates)).filter(|h| !h.is_empty())
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The line around byte `offset`, cut to at most `QUOTE` characters on each side of it.
fn excerpt(source: &str, offset: usize) -> String {
    const QUOTE: usize = 40;
    let mut at = offset.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before: Vec<char> = source[..at]
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .chars()
        .collect();
    let after: Vec<char> = source[at..]
        .split('\n')
        .next()
        .unwrap_or("")
        .chars()
        .collect();
    let mut text = String::new();
    if before.len() > QUOTE {
        text.push('…');
    }
    text.extend(&before[before.len().saturating_sub(QUOTE)..]);
    text.extend(&after[..after.len().min(QUOTE)]);
    if after.len() > QUOTE {
        text.push('…');
    }
    text.trim().to_string()
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The dotted path of the innermost key whose key or value span holds `offset`. A table's own
/// span covers only its header, so every table is searched.
fn key_path_at(doc: &Spanned<DeTable<'_>>, offset: usize) -> String {
    fn search(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table.iter() {
            path.push(key.get_ref().to_string());
            if let DeValue::Table(inner) = value.get_ref() {
                if search(inner, offset, path) {
                    return true;
                }
            }
            if key.span().contains(&offset) || value.span().contains(&offset) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    search(doc.get_ref(), offset, &mut path);
    path.join(".")
}

/// Where the key `a.b.c` (or its deepest present ancestor) is written in `source`.
pub(super) fn key_offset(source: &str, dotted: &str) -> Option<usize> {
    let doc = DeTable::parse(source).ok()?;
    span_of_key(&doc, dotted).map(|s| s.start)
}

/// The span of the key `a.b.c`, or of its deepest present ancestor.
fn span_of_key(doc: &Spanned<DeTable<'_>>, dotted: &str) -> Option<Range<usize>> {
    let mut table = doc.get_ref();
    let mut found = None;
    for part in dotted.split('.') {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == part) else {
            break;
        };
        found = Some(key.span());
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("epoch", "epochs"), 1);
        assert_eq!(edit_distance("lr", "lr"), 0);
        assert_eq!(edit_distance("batchsize", "batch_size"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn line_column_is_one_based_and_counts_characters() {
        let s = "a = 1\n[train]\n  épochs = 2\n";
        assert_eq!(line_column(s, 0), (1, 1));
        let offset = s.find("pochs").unwrap();
        assert_eq!(line_column(s, offset), (3, 4));
    }

    #[test]
    fn a_long_line_is_quoted_around_the_error_only() {
        let line = format!("x = [{}", "1, ".repeat(30_000));
        let quoted = excerpt(&line, 50_000);
        assert!(quoted.chars().count() <= 82, "{quoted}");
        assert!(quoted.starts_with('…') && quoted.ends_with('…'));
        assert_eq!(excerpt("a = 1\nb = =\n", 10), "b = =");
    }

    #[test]
    fn key_paths_are_found_by_span() {
        let s = "name = \"x\"\n[train]\nepochs = 3\n";
        let doc = DeTable::parse(s).unwrap();
        assert_eq!(key_path_at(&doc, s.find("3").unwrap()), "train.epochs");
        assert_eq!(
            span_of_key(&doc, "train.epochs").unwrap().start,
            s.find("epochs").unwrap()
        );
        assert_eq!(
            span_of_key(&doc, "train.lr").unwrap().start,
            s.find("train").unwrap()
        );
    }
}
