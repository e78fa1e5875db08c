//! One override from the command line: `key=value` (or `--key=value`), its value read as
//! TOML, a comma list (outside brackets and quotes) trying each value.

use toml::{Table, Value};

/// `key=value` (or `--key=value`) → the key and its values (a comma list sweeps).
pub(super) fn parse_override(text: &str) -> Result<(String, Vec<Value>), String> {
    let body = text.strip_prefix("--").unwrap_or(text);
    let Some((key, value)) = body.split_once('=') else {
        return Err("an override is key=value, e.g. train.lr=0.05 or seed=0,1,2".into());
    };
    let key = key.trim();
    if key.is_empty()
        || key.split(['.', '+']).any(|part| {
            part.is_empty()
                || !part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    {
        return Err(format!(
            "{key:?} is not a key: dotted names of letters, digits, '_' and '-', e.g. train.lr (keys that vary together joined by '+')"
        ));
    }
    let values = split_top_level(value)
        .into_iter()
        .map(|item| {
            let item = item.trim();
            if item.is_empty() {
                Err("an empty value (a stray comma?)".to_string())
            } else {
                Ok(parse_value(item))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((key.to_string(), values))
}

/// `item` as a TOML value (`0.05`, `true`, `[1, 64]`, `"a,b"`); a bracketed list of bare words
/// (`[l1,dfpc]`) as a list of strings; any other bare word as a string.
fn parse_value(item: &str) -> Value {
    if let Ok(mut table) = toml::from_str::<Table>(&format!("v = {item}")) {
        if let Some(value) = table.remove("v") {
            return value;
        }
    }
    if let Some(inner) = item.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
        let items = split_top_level(inner);
        if items.iter().all(|i| i.trim().is_empty()) {
            return Value::Array(Vec::new());
        }
        return Value::Array(items.iter().map(|i| parse_value(i.trim())).collect());
    }
    Value::String(item.to_string())
}

/// `text` split at the commas outside brackets and quotes.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists_split_outside_brackets_and_quotes() {
        let (key, values) = parse_override("--saliency.criteria=[l1,dfpc],[\"taylor\"]").unwrap();
        assert_eq!(key, "saliency.criteria");
        assert_eq!(values.len(), 2);
        assert_eq!(values[0].to_string(), "[\"l1\", \"dfpc\"]");
        assert_eq!(values[1].to_string(), "[\"taylor\"]");
        let (_, values) = parse_override("train.lr=0.1,5e-2").unwrap();
        assert_eq!(values, [Value::Float(0.1), Value::Float(0.05)]);
        let (_, values) = parse_override("model.arch=resnet20,\"a,b\"").unwrap();
        assert_eq!(values[1], Value::String("a,b".into()));
        assert!(parse_override("seed=0,,1").is_err());
        assert!(parse_override("train.=1").is_err());
        assert!(parse_override("seed").is_err());
    }
}
