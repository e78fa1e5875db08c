//! Grids: `key=value` overrides on the command line (Hydra's grammar: a comma list sweeps) and a
//! `[grid]` table in the file. Each axis is a dotted key with its values; the points are the
//! cartesian product, the last axis varying fastest: the `[grid]` axes in the order written,
//! then the overrides in the order given (an override of a `[grid]` key replaces that axis in
//! its place). Every point is validated exactly like a file, and its errors are located at the
//! override or the `[grid]` key that made them.

use std::path::Path;

use sha2::{Digest, Sha256};
use toml::{Table, Value};

mod overrides;

use overrides::parse_override;

use super::locate::{self, ConfigError, ConfigErrors};
use super::Experiment;

/// Where an axis was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The n-th override on the command line (1-based).
    Override(usize),
    /// The `[grid]` table of the file.
    Grid,
}

/// One varying (or fixed) key of a grid, or keys that vary together (`seed+oracle.images.seed`,
/// each value a list with one value per key).
#[derive(Debug, Clone)]
struct Axis {
    key: String,
    values: Vec<Value>,
    origin: Origin,
}

impl Axis {
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.key.split('+')
    }

    /// The settings of the axis's `n`-th value.
    fn settings(&self, n: usize) -> Vec<(String, Value)> {
        let value = &self.values[n];
        match (self.key.contains('+'), value) {
            (true, Value::Array(each)) => self
                .keys()
                .zip(each)
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            _ => vec![(self.key.clone(), value.clone())],
        }
    }

    /// Linked keys need a list of one value per key for every value.
    fn shape_problem(&self) -> Option<String> {
        let n = self.keys().count();
        let fits = |v: &Value| matches!(v, Value::Array(each) if each.len() == n);
        (n > 1 && !self.values.iter().all(fits)).then(|| {
            format!(
                "links {n} keys: give each value as a list of {n} values, one per key, e.g. [0, 1]"
            )
        })
    }
}

/// One resolved point of a grid.
#[derive(Debug, Clone)]
pub struct Point {
    /// Its settings, `key = value`, in the axes' order.
    pub settings: Vec<(String, Value)>,
    pub experiment: Experiment,
    /// `sha256:…` of the resolved experiment, without what does not change its results
    /// (threads, `[slurm]`).
    pub hash: String,
}

impl Point {
    /// The first 8 hex digits of the hash: the point's folder under `runs/`.
    pub fn hash8(&self) -> &str {
        &self.hash["sha256:".len().."sha256:".len() + 8]
    }

    /// `key=value` per line, as the command line would say it, by key: the same point gives
    /// the same text however its overrides were ordered.
    pub fn overrides_text(&self) -> String {
        let mut lines: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={}\n", inline(v)))
            .collect();
        lines.sort();
        lines.concat()
    }

    /// The settings on one line: `seed=1 train.lr=0.05`.
    pub fn label(&self) -> String {
        self.overrides_text().trim_end().replace('\n', " ")
    }
}

/// An experiment file with its overrides: one experiment, or a grid of points.
#[derive(Debug)]
pub enum Loaded {
    /// No overrides and no `[grid]`: today's single run in `results/<name>/`.
    Single(Box<Experiment>),
    Grid(Vec<Point>),
}

/// Reads `path`, applies `overrides` (`key=value`, `--key=value`) and expands the grid.
/// The file alone need not be a whole experiment when the grid completes it.
pub fn load(path: &Path, overrides: &[String]) -> Result<Loaded, ConfigErrors> {
    let source = Experiment::read_source(path)?;
    let mut table: Table = match toml::from_str(&source) {
        Ok(table) => table,
        // The typed parse says more (a number beyond its key's range, with the range).
        Err(e) => {
            return Err(Experiment::parse(path, &source)
                .err()
                .unwrap_or_else(|| locate::from_toml_error(path, &source, &e)))
        }
    };
    let grid = match table.remove("grid") {
        None if overrides.is_empty() => {
            return Experiment::parse(path, &source).map(|e| Loaded::Single(Box::new(e)))
        }
        None => Table::new(),
        Some(Value::Table(grid)) => grid,
        Some(other) => {
            let message = format!(
                "must be a table of keys, each with the list of values to try (got {})",
                inline(&other)
            );
            return Err(ConfigErrors(vec![in_file(path, &source, "grid", &message)]));
        }
    };
    expand(path, &source, &table, &grid, overrides).map(Loaded::Grid)
}

fn expand(
    path: &Path,
    source: &str,
    table: &Table,
    grid: &Table,
    overrides: &[String],
) -> Result<Vec<Point>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut axes = Vec::new();
    grid_axes(grid, "", &mut axes, &mut |key, message| {
        errors.push(in_file(path, source, &format!("grid.{key}"), message))
    });
    // In the order written (a quoted dotted key is found by its table, `grid`).
    axes.sort_by_key(|a| locate::key_offset(source, &format!("grid.{}", a.key)));
    for (i, text) in overrides.iter().enumerate() {
        match parse_override(text) {
            Ok((key, values)) => {
                let axis = Axis {
                    key,
                    values,
                    origin: Origin::Override(i + 1),
                };
                match axes.iter_mut().find(|a| a.key == axis.key) {
                    Some(same) if same.origin == Origin::Grid => *same = axis,
                    Some(_) => errors.push(at_override(
                        i + 1,
                        &axis.key,
                        "is given twice; give it once, with a comma list to try several values",
                    )),
                    None => axes.push(axis),
                }
            }
            Err(message) => errors.push(at_override(i + 1, "", &format!("{text:?}: {message}"))),
        }
    }
    for axis in &axes {
        if let Some(problem) = axis.shape_problem() {
            errors.push(at_axis(path, source, axis, &problem));
        }
        if axis.keys().any(|k| k == "name") {
            errors.push(at_axis(
                path,
                source,
                axis,
                "names the whole grid and cannot vary",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    // Each axis alone first, so that every mistyped key is reported, not only the first (the
    // parse stops at one); other errors wait for the points, which have every axis set.
    for axis in &axes {
        let settings = axis.settings(0);
        if let Err(e) = resolve(path, source, table, &settings, &axes) {
            errors.extend(e.0.into_iter().filter(|error| {
                error.message.starts_with("unknown key")
                    && axis.keys().any(|k| related(k, &error.key))
            }));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(dedup(errors)));
    }
    let count: usize = axes.iter().map(|a| a.values.len()).product();
    let mut points: Vec<Point> = Vec::with_capacity(count);
    for index in 0..count {
        let settings = settings_of(&axes, index);
        match resolve(path, source, table, &settings, &axes) {
            Ok(experiment) => {
                let point = Point {
                    hash: content_hash(&experiment),
                    settings,
                    experiment,
                };
                if let Some(j) = points.iter().position(|p| p.hash == point.hash) {
                    errors.push(ConfigError {
                        file: path.to_path_buf(),
                        line: 0,
                        column: 0,
                        key: String::new(),
                        message: format!(
                            "grid points {j} ({}) and {index} ({}) are the same experiment: each point must differ in what it computes",
                            points[j].label(),
                            point.label()
                        ),
                    });
                }
                points.push(point);
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(dedup(errors)));
    }
    Ok(points)
}

/// The settings of point `index`: mixed radix, the last axis fastest.
fn settings_of(axes: &[Axis], mut index: usize) -> Vec<(String, Value)> {
    let mut chosen = vec![0; axes.len()];
    for (slot, axis) in chosen.iter_mut().zip(axes).rev() {
        let n = axis.values.len();
        *slot = index % n;
        index /= n;
    }
    axes.iter()
        .zip(chosen)
        .flat_map(|(axis, n)| axis.settings(n))
        .collect()
}

/// The experiment `table` with `settings` applied, validated; errors located at their origin.
fn resolve(
    path: &Path,
    source: &str,
    table: &Table,
    settings: &[(String, Value)],
    axes: &[Axis],
) -> Result<Experiment, ConfigErrors> {
    let mut resolved = table.clone();
    let mut errors = Vec::new();
    for (key, value) in settings {
        if let Err(message) = set(&mut resolved, key, value.clone()) {
            let axis = axes
                .iter()
                .find(|a| a.keys().any(|k| k == key))
                .expect("an axis");
            errors.push(at_axis(path, source, axis, &message));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let text = toml::to_string(&resolved).expect("a TOML table serialises");
    Experiment::parse(path, &text).map_err(|e| {
        ConfigErrors(
            e.0.into_iter()
                .map(|error| relocate(path, source, settings, axes, error))
                .collect(),
        )
    })
}

/// An error of a resolved point, told where the user gave what caused it.
fn relocate(
    path: &Path,
    source: &str,
    settings: &[(String, Value)],
    axes: &[Axis],
    error: ConfigError,
) -> ConfigError {
    let axis_key = axes
        .iter()
        .find_map(|a| a.keys().find(|k| related(k, &error.key)).map(|k| (a, k)));
    match axis_key {
        Some((axis, axis_key)) => {
            // An unknown table on the way to the axis's key is said of the whole key.
            let key = if axis_key.starts_with(&error.key) {
                axis_key.to_string()
            } else {
                error.key.clone()
            };
            let message = unknown_key(&error, &key).unwrap_or(error.message.clone());
            let mut located = at_axis(path, source, axis, &message);
            located.key = match axis.origin {
                Origin::Grid => format!("grid.{key}"),
                Origin::Override(_) => key,
            };
            located
        }
        None => {
            let message = unknown_key(&error, &error.key).unwrap_or(error.message.clone());
            let mut located = in_file(path, source, &error.key, &message);
            if !settings.is_empty() {
                let words: Vec<String> = settings
                    .iter()
                    .map(|(k, v)| format!("{k}={}", inline(v)))
                    .collect();
                located.message = format!("{message} (at the grid point {})", words.join(" "));
            }
            located
        }
    }
}

/// Whether an error at `key` concerns the axis `axis` (the same key, one inside it, or the
/// table holding it).
fn related(axis: &str, key: &str) -> bool {
    key == axis
        || key.starts_with(&format!("{axis}."))
        || !key.is_empty() && axis.starts_with(&format!("{key}."))
}

/// serde's "unknown field `lrr`, expected one of `lr`, …" at `error.key`, said of the dotted
/// `key` it lies on: "unknown key (did you mean train.lr?)", the unknown part replaced by the
/// closest known one.
fn unknown_key(error: &ConfigError, key: &str) -> Option<String> {
    let rest = error.message.strip_prefix("unknown field `")?;
    let (word, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let depth = error.key.split('.').count() - 1;
    let closest = candidates
        .iter()
        .map(|c| (locate::edit_distance(word, c), *c))
        .filter(|&(d, c)| d <= 2.min(c.len().max(word.len()) / 2))
        .min();
    Some(match closest {
        Some((_, c)) => {
            let mut parts: Vec<&str> = key.split('.').collect();
            if let Some(part) = parts.get_mut(depth) {
                *part = c;
            }
            format!("unknown key (did you mean {}?)", parts.join("."))
        }
        None => format!("unknown key (known here: {})", candidates.join(", ")),
    })
}

/// Sets the dotted `key` of `table` to `value`, making the tables on the way.
fn set(table: &mut Table, key: &str, value: Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("a key has a part");
    let mut here = table;
    let mut walked = String::new();
    for part in parts {
        walked = if walked.is_empty() {
            part.to_string()
        } else {
            format!("{walked}.{part}")
        };
        let next = here
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        here = match next {
            Value::Table(inner) => inner,
            other => {
                return Err(format!(
                    "{walked} is a value ({}), not a table of keys",
                    inline(other)
                ))
            }
        };
    }
    here.insert(last.to_string(), value);
    Ok(())
}

/// The axes of a `[grid]` table: each key (nested tables or quoted dotted keys) with a list.
fn grid_axes(table: &Table, prefix: &str, axes: &mut Vec<Axis>, fail: &mut impl FnMut(&str, &str)) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(inner) => grid_axes(inner, &key, axes, fail),
            Value::Array(values) if values.is_empty() => fail(
                &key,
                "is an empty list: the grid would have zero points; give at least one value",
            ),
            Value::Array(values) => axes.push(Axis {
                key,
                values: values.clone(),
                origin: Origin::Grid,
            }),
            other => fail(
                &key,
                &format!(
                    "must be a list of the values to try (got {}); a fixed value goes in its own table",
                    inline(other)
                ),
            ),
        }
    }
}

/// `sha256:…` of what `experiment` computes: its resolved settings without threads and `[slurm]`.
pub fn content_hash(experiment: &Experiment) -> String {
    let mut e = experiment.clone();
    e.threads = None;
    e.slurm = None;
    e.grid = None;
    let json = serde_json::to_vec(&e).expect("an experiment serialises");
    format!(
        "sha256:{}",
        crate::util::fingerprint::hex(&Sha256::digest(&json))
    )
}

/// A value on one line, as it would be written after `=`.
pub fn inline(value: &Value) -> String {
    match value {
        Value::String(s) if !s.contains([',', '"', ' ', '=']) && !s.is_empty() => s.clone(),
        other => other.to_string(),
    }
}

fn at_override(n: usize, key: &str, message: &str) -> ConfigError {
    ConfigError {
        file: format!("override {n}").into(),
        line: 0,
        column: 0,
        key: key.to_string(),
        message: message.to_string(),
    }
}

fn at_axis(path: &Path, source: &str, axis: &Axis, message: &str) -> ConfigError {
    match axis.origin {
        Origin::Override(n) => at_override(n, &axis.key, message),
        Origin::Grid => {
            let mut located = in_file(path, source, &format!("grid.{}", axis.key), message);
            located.key = format!("grid.{}", axis.key);
            located
        }
    }
}

fn in_file(path: &Path, source: &str, key: &str, message: &str) -> ConfigError {
    locate::from_problems(path, source, vec![(key.to_string(), message.to_string())])
        .0
        .remove(0)
}

fn dedup(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    let mut kept: Vec<ConfigError> = Vec::new();
    for e in errors {
        if !kept.contains(&e) {
            kept.push(e);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_enumerate_the_last_axis_fastest() {
        let axis = |key: &str, n: i64| Axis {
            key: key.into(),
            values: (0..n).map(Value::Integer).collect(),
            origin: Origin::Grid,
        };
        let axes = [axis("a", 2), axis("b", 3)];
        let seen: Vec<(i64, i64)> = (0..6)
            .map(|i| {
                let s = settings_of(&axes, i);
                (s[0].1.as_integer().unwrap(), s[1].1.as_integer().unwrap())
            })
            .collect();
        assert_eq!(seen, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    }

    #[test]
    fn setting_through_a_value_is_refused() {
        let mut table: Table = toml::from_str("seed = 1\n[train]\nlr = 0.1\n").unwrap();
        set(&mut table, "train.lr", Value::Float(0.05)).unwrap();
        set(&mut table, "oracle.batch", Value::Integer(8)).unwrap();
        assert_eq!(table["train"]["lr"], Value::Float(0.05));
        assert_eq!(table["oracle"]["batch"], Value::Integer(8));
        let error = set(&mut table, "seed.x", Value::Integer(1)).unwrap_err();
        assert_eq!(error, "seed is a value (1), not a table of keys");
    }
}
