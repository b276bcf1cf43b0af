//! `agora sim epoch` input: a JSON object (or `{"input": {...}}`) with the fields of
//! PROTOCOL §4. Every error names the field (and row/column) that is wrong.

use serde_json::{Map, Value};

use super::{defaults, EpochInput};

/// Largest accepted `n` (uids are u16).
pub const MAX_N: usize = 65_535;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InputError {
    pub field: String,
    pub problem: String,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> InputError {
    InputError {
        field: field.into(),
        problem: problem.into(),
    }
}

const FIELDS: &[&str] = &[
    "n",
    "stake",
    "validator_permit",
    "max_allowed_validators",
    "weights",
    "bonds",
    "kappa",
    "bonds_moving_avg",
    "bonds_penalty",
    "stake_threshold",
    "emission_rao",
    "current_block",
    "activity_cutoff",
    "last_update",
    "block_at_registration",
    "last_tempo",
    "yuma3",
    "liquid_alpha",
    "alpha_low",
    "alpha_high",
    "alpha_sigmoid_steepness",
    "owner_uid",
    "active",
];

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn uint(&self, name: &str, max: u64, default: Option<u64>) -> Result<u64, InputError> {
        match self.get(name) {
            None => default.ok_or_else(|| err(name, "missing")),
            Some(v) => uint_value(v, name, max),
        }
    }

    fn boolean(&self, name: &str, default: bool) -> Result<bool, InputError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(err(name, format!("{v} is not true or false"))),
        }
    }

    fn list(&self, name: &str, n: usize) -> Result<Option<&Vec<Value>>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) if a.len() == n => Ok(Some(a)),
            Some(Value::Array(a)) => Err(err(
                name,
                format!("has {} entries, expected n = {n}", a.len()),
            )),
            Some(v) => Err(err(name, format!("{} is not a list", kind(v)))),
        }
    }

    fn uint_list(
        &self,
        name: &str,
        n: usize,
        max: u64,
        default: u64,
    ) -> Result<Vec<u64>, InputError> {
        match self.list(name, n)? {
            None => Ok(vec![default; n]),
            Some(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| uint_value(v, &format!("{name}[{i}]"), max))
                .collect(),
        }
    }

    fn bool_list(&self, name: &str, n: usize) -> Result<Vec<bool>, InputError> {
        match self.list(name, n)? {
            None => Ok(vec![false; n]),
            Some(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_bool().ok_or_else(|| {
                        err(format!("{name}[{i}]"), format!("{v} is not true or false"))
                    })
                })
                .collect(),
        }
    }

    /// Dense `n x n` u16 matrix -> sparse rows of non-zero entries.
    fn matrix(
        &self,
        name: &str,
        n: usize,
        required: bool,
    ) -> Result<Vec<Vec<(u16, u16)>>, InputError> {
        let Some(rows) = self.list(name, n)? else {
            return if required {
                Err(err(name, "missing"))
            } else {
                Ok(vec![Vec::new(); n])
            };
        };
        rows.iter()
            .enumerate()
            .map(|(i, row)| {
                let Value::Array(cells) = row else {
                    return Err(err(
                        format!("{name}[{i}]"),
                        format!(
                            "{} is not a list (rows must be lists of {n} numbers)",
                            kind(row)
                        ),
                    ));
                };
                if cells.len() != n {
                    return Err(err(
                        format!("{name}[{i}]"),
                        format!(
                            "has {} entries, expected n = {n} (ragged matrix)",
                            cells.len()
                        ),
                    ));
                }
                let mut out = Vec::new();
                for (j, c) in cells.iter().enumerate() {
                    let v = uint_value(c, &format!("{name}[{i}][{j}]"), u64::from(u16::MAX))?;
                    if v > 0 {
                        out.push((
                            u16::try_from(j).unwrap_or(u16::MAX),
                            u16::try_from(v).unwrap_or(u16::MAX),
                        ));
                    }
                }
                Ok(out)
            })
            .collect()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn uint_value(v: &Value, field: &str, max: u64) -> Result<u64, InputError> {
    match v.as_u64() {
        Some(x) if x <= max => Ok(x),
        Some(x) => Err(err(field, format!("{x} is out of range 0..={max}"))),
        None => Err(err(field, format!("{v} is not a non-negative integer"))),
    }
}

/// Parse and validate one epoch's input.
pub fn parse_input(value: &Value) -> Result<EpochInput, InputError> {
    let obj = match value {
        Value::Object(m) => match m.get("input") {
            Some(Value::Object(inner)) if m.len() == 1 => inner,
            Some(_) if m.len() == 1 => return Err(err("input", "must be an object")),
            _ => m,
        },
        other => {
            return Err(err(
                "(top level)",
                format!("expected an object, got {}", kind(other)),
            ))
        }
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(err(unknown.clone(), "unknown field"));
    }
    let f = Fields(obj);
    let n = f.uint("n", MAX_N as u64, None)? as usize;
    if n == 0 {
        return Err(err("n", "must be at least 1"));
    }
    let u16max = u64::from(u16::MAX);
    let current_block = f.uint("current_block", u64::MAX, Some(0))?;
    let alpha_low = f.uint("alpha_low", u16max, Some(u64::from(defaults::ALPHA_LOW)))? as u16;
    let alpha_high = f.uint("alpha_high", u16max, Some(u64::from(defaults::ALPHA_HIGH)))? as u16;
    if alpha_low > alpha_high {
        return Err(err(
            "alpha_low",
            format!("{alpha_low} is above alpha_high {alpha_high}"),
        ));
    }
    let steepness = match f.get("alpha_sigmoid_steepness") {
        None => defaults::ALPHA_SIGMOID_STEEPNESS,
        Some(v) => v
            .as_i64()
            .and_then(|x| i16::try_from(x).ok())
            .ok_or_else(|| err("alpha_sigmoid_steepness", format!("{v} is not an i16")))?,
    };
    let owner_uid = match f.get("owner_uid") {
        None => None,
        Some(v) => {
            let uid = uint_value(v, "owner_uid", u16max)?;
            if uid as usize >= n {
                return Err(err(
                    "owner_uid",
                    format!("{uid} is not a uid below n = {n}"),
                ));
            }
            Some(uid as u16)
        }
    };
    f.bool_list("active", n)?; // accepted for compatibility, then derived
    Ok(EpochInput {
        n,
        stake: f.uint_list("stake", n, u64::MAX, 0).and_then(|s| {
            if f.get("stake").is_none() {
                Err(err("stake", "missing"))
            } else {
                Ok(s)
            }
        })?,
        validator_permit: f.bool_list("validator_permit", n)?,
        max_allowed_validators: f.uint(
            "max_allowed_validators",
            u16max,
            Some(u64::from(defaults::MAX_ALLOWED_VALIDATORS)),
        )? as u16,
        weights: f.matrix("weights", n, true)?,
        bonds: f.matrix("bonds", n, false)?,
        kappa: f.uint("kappa", u16max, Some(u64::from(defaults::KAPPA)))? as u16,
        bonds_moving_avg: f.uint(
            "bonds_moving_avg",
            1_000_000,
            Some(defaults::BONDS_MOVING_AVG),
        )?,
        bonds_penalty: f.uint(
            "bonds_penalty",
            u16max,
            Some(u64::from(defaults::BONDS_PENALTY)),
        )? as u16,
        stake_threshold: f.uint("stake_threshold", u64::MAX, Some(defaults::STAKE_THRESHOLD))?,
        emission_rao: f.uint("emission_rao", u64::MAX, Some(0))?,
        current_block,
        activity_cutoff: f.uint("activity_cutoff", u64::MAX, Some(defaults::ACTIVITY_CUTOFF))?,
        last_update: f.uint_list("last_update", n, u64::MAX, 0)?,
        block_at_registration: f.uint_list("block_at_registration", n, u64::MAX, 0)?,
        last_tempo: f.uint(
            "last_tempo",
            u64::MAX,
            Some(current_block.saturating_sub(360)),
        )?,
        yuma3: f.boolean("yuma3", defaults::YUMA3)?,
        liquid_alpha: f.boolean("liquid_alpha", defaults::LIQUID_ALPHA)?,
        alpha_low,
        alpha_high,
        alpha_sigmoid_steepness: steepness,
        owner_uid,
    })
}
