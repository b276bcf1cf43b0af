//! `agora sim epoch` input: a JSON object (or `{"input": {...}}`) with the fields of
//! PROTOCOL §4. Every error names the field (and row/column) that is wrong.
//!
//! The bytes are parsed straight into typed structures, without a `serde_json::Value` tree:
//! a dense `n x n` matrix becomes sparse rows as it is read (an n = 4096 input is ~100 MB of
//! text and 16.7 million cells, almost all zero), lists become vectors of integers, and only
//! the few scalar fields are kept as values. Lengths that depend on `n` are checked after
//! the object is read, since `n` may come after the lists.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

const U64_LISTS: &[&str] = &["stake", "last_update", "block_at_registration"];
const BOOL_LISTS: &[&str] = &["validator_permit", "active"];
const MATRICES: &[&str] = &["weights", "bonds"];

/// A matrix as read: sparse rows of non-zero cells, and each row's length.
#[derive(Default)]
struct Matrix {
    rows: Vec<Vec<(u16, u16)>>,
    lens: Vec<usize>,
}

/// Everything read from the object; `None` where the field was absent or null.
#[derive(Default)]
struct Raw {
    scalars: Map<String, Value>,
    u64_lists: Vec<(&'static str, Vec<u64>)>,
    bool_lists: Vec<(&'static str, Vec<bool>)>,
    matrices: Vec<(&'static str, Matrix)>,
}

/// Where a typed visitor leaves the first problem it finds (the serde error that stops
/// the parse only carries text).
struct Ctx {
    problem: RefCell<Option<InputError>>,
    /// `n`, once read (messages say what length was expected).
    n: RefCell<Option<usize>>,
}

impl Ctx {
    fn fail<E: de::Error>(&self, e: InputError) -> E {
        let text = e.to_string();
        self.problem.borrow_mut().get_or_insert(e);
        E::custom(text)
    }
}

/// What a cell that is not what was expected looked like, as the message shows it.
enum Seen {
    Value(String),
    Kind(&'static str),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Value(v) => f.write_str(v),
            Seen::Kind(k) => f.write_str(k),
        }
    }
}

/// Any JSON value, reduced to what the element visitors need.
enum Cell {
    U64(u64),
    Bool(bool),
    Null,
    Other(Seen),
    Seq,
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
        Ok(match u64::try_from(v) {
            Ok(u) => Cell::U64(u),
            Err(_) => Cell::Other(Seen::Value(v.to_string())),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Other(Seen::Value(Value::from(v).to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
        Ok(Cell::Bool(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
        Ok(Cell::Other(Seen::Value(Value::from(v).to_string())))
    }
    fn visit_unit<E>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Other(Seen::Kind("an object")))
    }
}

impl<'de> de::Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

fn describe(c: &Cell) -> Seen {
    match c {
        Cell::U64(v) => Seen::Value(v.to_string()),
        Cell::Bool(b) => Seen::Value(b.to_string()),
        Cell::Null => Seen::Value("null".into()),
        Cell::Seq => Seen::Kind("a list"),
        Cell::Other(s) => match s {
            Seen::Value(v) => Seen::Value(v.clone()),
            Seen::Kind(k) => Seen::Kind(k),
        },
    }
}

/// The visit methods of a visitor that wants a list: every other JSON kind (but null,
/// which each visitor handles itself) is refused through `self.reject(kind)`.
macro_rules! refuse_non_lists {
    ($de:lifetime) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.reject("a number"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.reject("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.reject("a number"))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.reject("a boolean"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.reject("a string"))
        }
        fn visit_map<A: MapAccess<$de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.reject("an object"))
        }
    };
}

/// A list of elements, each checked by `each(index, cell)`; None for null.
struct ListSeed<'a, T, F: FnMut(usize, Cell) -> Result<T, InputError>> {
    ctx: &'a Ctx,
    name: &'static str,
    each: F,
}

impl<'de, T, F: FnMut(usize, Cell) -> Result<T, InputError>> DeserializeSeed<'de>
    for ListSeed<'_, T, F>
{
    type Value = Option<Vec<T>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T, F: FnMut(usize, Cell) -> Result<T, InputError>> Visitor<'de> for ListSeed<'_, T, F> {
    type Value = Option<Vec<T>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list for {}", self.name)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut i = 0usize;
        while let Some(cell) = seq.next_element::<Cell>()? {
            match (self.each)(i, cell) {
                Ok(v) => out.push(v),
                Err(e) => return Err(self.ctx.fail(e)),
            }
            i = i.saturating_add(1);
        }
        Ok(Some(out))
    }
    refuse_non_lists!('de);
}

impl<T, F: FnMut(usize, Cell) -> Result<T, InputError>> ListSeed<'_, T, F> {
    fn reject<E: de::Error>(&self, what: &str) -> E {
        self.ctx
            .fail(err(self.name, format!("{what} is not a list")))
    }
}

fn uint_cell(field: impl FnOnce() -> String, cell: Cell, max: u64) -> Result<u64, InputError> {
    match cell {
        Cell::U64(x) if x <= max => Ok(x),
        Cell::U64(x) => Err(err(field(), format!("{x} is out of range 0..={max}"))),
        other => Err(err(
            field(),
            format!("{} is not a non-negative integer", describe(&other)),
        )),
    }
}

/// One matrix row: sparse non-zero cells, and its length.
struct RowSeed<'a> {
    ctx: &'a Ctx,
    name: &'static str,
    i: usize,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = (Vec<(u16, u16)>, usize);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl RowSeed<'_> {
    fn reject<E: de::Error>(&self, what: &str) -> E {
        let n = self
            .ctx
            .n
            .borrow()
            .map_or("n".to_string(), |n| n.to_string());
        self.ctx.fail(err(
            format!("{}[{}]", self.name, self.i),
            format!("{what} is not a list (rows must be lists of {n} numbers)"),
        ))
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = (Vec<(u16, u16)>, usize);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a row of {}", self.name)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        let mut j = 0usize;
        while let Some(cell) = seq.next_element::<Cell>()? {
            let (name, i) = (self.name, self.i);
            let v = uint_cell(|| format!("{name}[{i}][{j}]"), cell, u64::from(u16::MAX))
                .map_err(|e| self.ctx.fail::<A::Error>(e))?;
            if v > 0 {
                out.push((
                    u16::try_from(j).unwrap_or(u16::MAX),
                    u16::try_from(v).unwrap_or(u16::MAX),
                ));
            }
            j = j.saturating_add(1);
        }
        Ok((out, j))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.reject("null"))
    }
    refuse_non_lists!('de);
}

/// A dense matrix, read row by row into sparse rows; None for null.
struct MatrixSeed<'a> {
    ctx: &'a Ctx,
    name: &'static str,
}

impl<'de> DeserializeSeed<'de> for MatrixSeed<'_> {
    type Value = Option<Matrix>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MatrixSeed<'_> {
    type Value = Option<Matrix>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a matrix for {}", self.name)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut m = Matrix::default();
        let mut i = 0usize;
        while let Some((row, len)) = seq.next_element_seed(RowSeed {
            ctx: self.ctx,
            name: self.name,
            i,
        })? {
            if let Some(n) = *self.ctx.n.borrow() {
                if len != n {
                    return Err(self.ctx.fail(ragged(self.name, i, len, n)));
                }
            }
            m.rows.push(row);
            m.lens.push(len);
            i = i.saturating_add(1);
        }
        Ok(Some(m))
    }
    refuse_non_lists!('de);
}

impl MatrixSeed<'_> {
    fn reject<E: de::Error>(&self, what: &str) -> E {
        self.ctx
            .fail(err(self.name, format!("{what} is not a list")))
    }
}

fn ragged(name: &str, i: usize, len: usize, n: usize) -> InputError {
    err(
        format!("{name}[{i}]"),
        format!("has {len} entries, expected n = {n} (ragged matrix)"),
    )
}

/// The epoch object, or `{"input": {...}}` around it.
struct ObjectSeed<'a> {
    ctx: &'a Ctx,
    /// Inside `{"input": ...}`: no second wrapper.
    inner: bool,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = Raw;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut raw = Raw::default();
        let mut wrapped: Option<Raw> = None;
        let mut others = false;
        while let Some(key) = map.next_key::<String>()? {
            let ctx = self.ctx;
            if key == "input" && !self.inner {
                if others {
                    return Err(ctx.fail(err("input", "unknown field")));
                }
                let inner = map.next_value_seed(InputSeed { ctx })?;
                wrapped = Some(inner);
                continue;
            }
            if wrapped.is_some() {
                return Err(ctx.fail(err("input", "unknown field")));
            }
            others = true;
            let Some(&name) = FIELDS.iter().find(|f| **f == key) else {
                return Err(ctx.fail(err(key, "unknown field")));
            };
            if U64_LISTS.contains(&name) {
                let seed = ListSeed {
                    ctx,
                    name,
                    each: |i, c| uint_cell(|| format!("{name}[{i}]"), c, u64::MAX),
                };
                if let Some(v) = map.next_value_seed(seed)? {
                    raw.u64_lists.push((name, v));
                }
            } else if BOOL_LISTS.contains(&name) {
                let seed = ListSeed {
                    ctx,
                    name,
                    each: |i, c| match c {
                        Cell::Bool(b) => Ok(b),
                        other => Err(err(
                            format!("{name}[{i}]"),
                            format!("{} is not true or false", describe(&other)),
                        )),
                    },
                };
                if let Some(v) = map.next_value_seed(seed)? {
                    raw.bool_lists.push((name, v));
                }
            } else if MATRICES.contains(&name) {
                if let Some(m) = map.next_value_seed(MatrixSeed { ctx, name })? {
                    raw.matrices.push((name, m));
                }
            } else {
                let v: Value = map.next_value()?;
                if name == "n" {
                    if let Some(n) = v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                        *ctx.n.borrow_mut() = Some(n);
                    }
                }
                raw.scalars.insert(key, v);
            }
        }
        Ok(wrapped.unwrap_or(raw))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Raw, A::Error> {
        Err(self.top_level("a list"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Raw, E> {
        Err(self.top_level("a number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Raw, E> {
        Err(self.top_level("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Raw, E> {
        Err(self.top_level("a number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Raw, E> {
        Err(self.top_level("a boolean"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Raw, E> {
        Err(self.top_level("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Err(self.top_level("null"))
    }
}

impl ObjectSeed<'_> {
    fn top_level<E: de::Error>(&self, what: &str) -> E {
        if self.inner {
            self.ctx.fail(err("input", "must be an object"))
        } else {
            self.ctx.fail(err(
                "(top level)",
                format!("expected an object, got {what}"),
            ))
        }
    }
}

/// The value of `"input"`.
struct InputSeed<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for InputSeed<'_> {
    type Value = Raw;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(ObjectSeed {
            ctx: self.ctx,
            inner: true,
        })
    }
}

fn uint_value(v: &Value, field: &str, max: u64) -> Result<u64, InputError> {
    match v.as_u64() {
        Some(x) if x <= max => Ok(x),
        Some(x) => Err(err(field, format!("{x} is out of range 0..={max}"))),
        None => Err(err(field, format!("{v} is not a non-negative integer"))),
    }
}

impl Raw {
    fn get(&self, name: &str) -> Option<&Value> {
        self.scalars.get(name).filter(|v| !v.is_null())
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

    fn take_list<T>(
        lists: &mut Vec<(&'static str, Vec<T>)>,
        name: &str,
        n: usize,
    ) -> Result<Option<Vec<T>>, InputError> {
        let Some(at) = lists.iter().position(|(k, _)| *k == name) else {
            return Ok(None);
        };
        let (_, v) = lists.swap_remove(at);
        if v.len() != n {
            return Err(err(
                name,
                format!("has {} entries, expected n = {n}", v.len()),
            ));
        }
        Ok(Some(v))
    }

    fn matrix(
        &mut self,
        name: &str,
        n: usize,
        required: bool,
    ) -> Result<Vec<Vec<(u16, u16)>>, InputError> {
        let Some(at) = self.matrices.iter().position(|(k, _)| *k == name) else {
            return if required {
                Err(err(name, "missing"))
            } else {
                Ok(vec![Vec::new(); n])
            };
        };
        let (_, m) = self.matrices.swap_remove(at);
        if m.rows.len() != n {
            return Err(err(
                name,
                format!("has {} entries, expected n = {n}", m.rows.len()),
            ));
        }
        if let Some((i, len)) = m.lens.iter().enumerate().find(|(_, l)| **l != n) {
            return Err(ragged(name, i, *len, n));
        }
        Ok(m.rows)
    }
}

/// Parse and validate one epoch's input from JSON bytes, without building a value tree.
pub fn parse_input_bytes(bytes: &[u8]) -> Result<EpochInput, InputError> {
    parse_from(serde_json::Deserializer::from_slice(bytes))
}

/// [`parse_input_bytes`] from a reader, holding none of the text in memory: what
/// `agora sim epoch` reads a file with (a 100 MB input costs its parsed size only).
pub fn parse_input_reader(reader: impl std::io::Read) -> Result<EpochInput, InputError> {
    parse_from(serde_json::Deserializer::from_reader(reader))
}

fn parse_from<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<EpochInput, InputError> {
    let ctx = Ctx {
        problem: RefCell::new(None),
        n: RefCell::new(None),
    };
    let raw = ObjectSeed {
        ctx: &ctx,
        inner: false,
    }
    .deserialize(&mut de)
    .and_then(|raw| de.end().map(|()| raw));
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            return Err(ctx
                .problem
                .into_inner()
                .unwrap_or_else(|| err("(json)", e.to_string())))
        }
    };
    validate(raw)
}

/// Parse and validate one epoch's input from a value already parsed.
pub fn parse_input(value: &Value) -> Result<EpochInput, InputError> {
    let bytes = serde_json::to_vec(value).map_err(|e| err("(json)", e.to_string()))?;
    parse_input_bytes(&bytes)
}

fn validate(mut raw: Raw) -> Result<EpochInput, InputError> {
    let n = usize::try_from(raw.uint("n", MAX_N as u64, None)?).unwrap_or(MAX_N);
    if n == 0 {
        return Err(err("n", "must be at least 1"));
    }
    let u16max = u64::from(u16::MAX);
    let current_block = raw.uint("current_block", u64::MAX, Some(0))?;
    let alpha_low = raw.uint("alpha_low", u16max, Some(u64::from(defaults::ALPHA_LOW)))? as u16;
    let alpha_high = raw.uint("alpha_high", u16max, Some(u64::from(defaults::ALPHA_HIGH)))? as u16;
    if alpha_low > alpha_high {
        return Err(err(
            "alpha_low",
            format!("{alpha_low} is above alpha_high {alpha_high}"),
        ));
    }
    let steepness = match raw.get("alpha_sigmoid_steepness") {
        None => defaults::ALPHA_SIGMOID_STEEPNESS,
        Some(v) => v
            .as_i64()
            .and_then(|x| i16::try_from(x).ok())
            .ok_or_else(|| err("alpha_sigmoid_steepness", format!("{v} is not an i16")))?,
    };
    let owner_uid = match raw.get("owner_uid") {
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
    // `active` is accepted for compatibility, then derived.
    Raw::take_list(&mut raw.bool_lists, "active", n)?;
    let stake =
        Raw::take_list(&mut raw.u64_lists, "stake", n)?.ok_or_else(|| err("stake", "missing"))?;
    let validator_permit = Raw::take_list(&mut raw.bool_lists, "validator_permit", n)?
        .unwrap_or_else(|| vec![false; n]);
    let last_update =
        Raw::take_list(&mut raw.u64_lists, "last_update", n)?.unwrap_or_else(|| vec![0; n]);
    let block_at_registration = Raw::take_list(&mut raw.u64_lists, "block_at_registration", n)?
        .unwrap_or_else(|| vec![0; n]);
    let max_allowed_validators = raw.uint(
        "max_allowed_validators",
        u16max,
        Some(u64::from(defaults::MAX_ALLOWED_VALIDATORS)),
    )? as u16;
    let weights = raw.matrix("weights", n, true)?;
    let bonds = raw.matrix("bonds", n, false)?;
    Ok(EpochInput {
        n,
        stake,
        validator_permit,
        max_allowed_validators,
        weights,
        bonds,
        kappa: raw.uint("kappa", u16max, Some(u64::from(defaults::KAPPA)))? as u16,
        bonds_moving_avg: raw.uint(
            "bonds_moving_avg",
            1_000_000,
            Some(defaults::BONDS_MOVING_AVG),
        )?,
        bonds_penalty: raw.uint(
            "bonds_penalty",
            u16max,
            Some(u64::from(defaults::BONDS_PENALTY)),
        )? as u16,
        stake_threshold: raw.uint("stake_threshold", u64::MAX, Some(defaults::STAKE_THRESHOLD))?,
        emission_rao: raw.uint("emission_rao", u64::MAX, Some(0))?,
        current_block,
        activity_cutoff: raw.uint("activity_cutoff", u64::MAX, Some(defaults::ACTIVITY_CUTOFF))?,
        last_update,
        block_at_registration,
        last_tempo: raw.uint(
            "last_tempo",
            u64::MAX,
            Some(current_block.saturating_sub(360)),
        )?,
        yuma3: raw.boolean("yuma3", defaults::YUMA3)?,
        liquid_alpha: raw.boolean("liquid_alpha", defaults::LIQUID_ALPHA)?,
        alpha_low,
        alpha_high,
        alpha_sigmoid_steepness: steepness,
        owner_uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming parser reads what a value tree would, in any field order, and a
    /// problem found mid-stream names its cell even when `n` comes last.
    #[test]
    fn fields_in_any_order_and_errors_mid_stream() {
        let a = br#"{"weights": [[0, 3], [5, 0]], "stake": [1, 2], "n": 2, "bonds": null}"#;
        let x = parse_input_bytes(a).unwrap();
        assert_eq!(x.weights, vec![vec![(1, 3)], vec![(0, 5)]]);
        assert_eq!(
            parse_input_reader(&a[..]).unwrap(),
            x,
            "from a reader: the same"
        );
        assert_eq!(x.bonds, vec![Vec::<(u16, u16)>::new(); 2]);
        let bad = br#"{"weights": [[0, 3], [5, "x"]], "stake": [1, 2], "n": 2}"#;
        let e = parse_input_bytes(bad).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.problem.as_str()),
            ("weights[1][1]", "\"x\" is not a non-negative integer")
        );
        let ragged = br#"{"weights": [[0, 3], [5]], "stake": [1, 2], "n": 2}"#;
        assert_eq!(parse_input_bytes(ragged).unwrap_err().field, "weights[1]");
        let early = br#"{"n": 2, "weights": [[0, 3, 4], [5, 0]], "stake": [1, 2]}"#;
        assert_eq!(parse_input_bytes(early).unwrap_err().field, "weights[0]");
        assert_eq!(parse_input_bytes(b"[1]").unwrap_err().field, "(top level)");
        assert_eq!(
            parse_input_bytes(b"{\"n\": 2,").unwrap_err().field,
            "(json)"
        );
        assert_eq!(
            parse_input_bytes(br#"{"input": 3}"#).unwrap_err().field,
            "input"
        );
        assert_eq!(
            parse_input_bytes(br#"{"input": {"n": 1}, "n": 1}"#)
                .unwrap_err()
                .field,
            "input"
        );
        assert_eq!(
            parse_input_bytes(br#"{"n": 1, "stake": [1], "weights": [[0]]} 7"#)
                .unwrap_err()
                .field,
            "(json)"
        );
    }
}
