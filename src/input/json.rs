//! Reading admin JSON bodies so that every bad field is named at once:
//! the body is an object of known members, no deeper than 16 levels, and
//! each member is read with its own bound. Errors collect; the caller asks
//! [`Body::finish`] for them all in one 400.

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

pub const MAX_DEPTH: usize = 16;

/// A list's `limit`: 1..200, default 50; a bad value is recorded in `errors`.
pub fn page_limit(raw: Option<&str>, errors: &mut Vec<FieldError>) -> i64 {
    match raw {
        None => 50,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 200",
                ));
                50
            }
        },
    }
}

/// A member of a merge patch: absent, `null`, or a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// A merge-patch member that may be removed: `None` leaves it as it is,
    /// `Some(None)` clears it.
    pub fn nullable(self) -> Option<Option<T>> {
        match self {
            Self::Absent => None,
            Self::Null => Some(None),
            Self::Value(v) => Some(Some(v)),
        }
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub struct Body {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

/// Whether the request says it carries JSON (or a JSON merge patch).
pub fn is_json(req: &HttpRequest, merge_patch: bool) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (merge_patch && v == "application/merge-patch+json")
        })
}

impl Body {
    /// Parses `bytes` as a JSON object whose members are all in `allowed`.
    pub fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("the body is not valid JSON: {}", e.classify_text()))
        })?;
        if depth(&value) > MAX_DEPTH {
            return Err(ApiError::bad_request(format!(
                "the body is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let Value::Object(map) = value else {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        };
        let errors = map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| FieldError::new(crate::domain::text::ascii_quote(k), "unknown field"))
            .collect();
        Ok(Self { map, errors })
    }

    pub fn empty() -> Self {
        Self {
            map: Map::new(),
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// A merge-patch member that may change but not be removed: `null` is
    /// recorded as an error of `name`.
    pub fn not_null<T>(&mut self, name: &str, field: Field<T>) -> Option<T> {
        match field {
            Field::Null => {
                self.error(name, "cannot be null");
                None
            }
            other => other.value(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    fn take(&mut self, name: &str) -> Field<Value> {
        match self.map.remove(name) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(v) => Field::Value(v),
        }
    }

    /// A string of 1..=`max` characters (`min_len` 0 allows empty).
    pub fn string(&mut self, name: &str, min_len: usize, max: usize) -> Field<String> {
        match self.take(name) {
            Field::Value(Value::String(s)) => {
                let len = s.chars().count();
                if len < min_len || len > max {
                    self.error(name, format!("must be {min_len} to {max} characters"));
                    Field::Absent
                } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                    self.error(name, "must not contain control characters");
                    Field::Absent
                } else {
                    Field::Value(s)
                }
            }
            Field::Value(_) => {
                self.error(name, "must be a string");
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    pub fn integer(&mut self, name: &str, min: i64, max: i64) -> Field<i64> {
        match self.take(name) {
            Field::Value(Value::Number(n)) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Field::Value(v),
                _ => {
                    self.error(name, format!("must be a whole number from {min} to {max}"));
                    Field::Absent
                }
            },
            Field::Value(_) => {
                self.error(name, format!("must be a whole number from {min} to {max}"));
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    pub fn positive_number(&mut self, name: &str, max: f64) -> Field<f64> {
        match self.take(name) {
            Field::Value(Value::Number(n)) => match n.as_f64() {
                Some(v) if v > 0.0 && v <= max && v.is_finite() => Field::Value(v),
                _ => {
                    self.error(name, format!("must be a positive number up to {max}"));
                    Field::Absent
                }
            },
            Field::Value(_) => {
                self.error(name, "must be a number");
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    pub fn boolean(&mut self, name: &str) -> Field<bool> {
        match self.take(name) {
            Field::Value(Value::Bool(b)) => Field::Value(b),
            Field::Value(_) => {
                self.error(name, "must be true or false");
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    pub fn timestamp(&mut self, name: &str) -> Field<DateTime<Utc>> {
        match self.take(name) {
            Field::Value(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
                Ok(t) => Field::Value(t.with_timezone(&Utc)),
                Err(_) => {
                    self.error(
                        name,
                        "must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z",
                    );
                    Field::Absent
                }
            },
            Field::Value(_) => {
                self.error(name, "must be an RFC 3339 date-time string");
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    /// A list of strings, at most `max_items`, each checked by `valid`.
    pub fn strings(
        &mut self,
        name: &str,
        max_items: usize,
        valid: impl Fn(&str) -> Result<(), String>,
    ) -> Field<Vec<String>> {
        match self.take(name) {
            Field::Value(Value::Array(items)) => {
                if items.len() > max_items {
                    self.error(name, format!("at most {max_items} entries"));
                    return Field::Absent;
                }
                let mut out: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    let Value::String(s) = item else {
                        self.error(name, "must be a list of strings");
                        return Field::Absent;
                    };
                    if let Err(why) = valid(&s) {
                        self.error(name, why);
                        return Field::Absent;
                    }
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                Field::Value(out)
            }
            Field::Value(_) => {
                self.error(name, "must be a list of strings");
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    /// A list of at most `max_items` whole numbers, each `min..=max`.
    pub fn integers(
        &mut self,
        name: &str,
        max_items: usize,
        min: i64,
        max: i64,
    ) -> Field<Vec<i64>> {
        let message =
            format!("must be a list of at most {max_items} whole numbers from {min} to {max}");
        match self.take(name) {
            Field::Value(Value::Array(items)) => {
                let numbers: Option<Vec<i64>> = (items.len() <= max_items)
                    .then(|| {
                        items
                            .iter()
                            .map(|v| v.as_i64().filter(|n| (min..=max).contains(n)))
                            .collect()
                    })
                    .flatten();
                match numbers {
                    Some(numbers) => Field::Value(numbers),
                    None => {
                        self.error(name, message);
                        Field::Absent
                    }
                }
            }
            Field::Value(_) => {
                self.error(name, message);
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    /// A JSON object whose serialised size is at most `max_bytes`.
    pub fn object(&mut self, name: &str, max_bytes: usize) -> Field<Value> {
        match self.take(name) {
            Field::Value(v @ Value::Object(_)) => {
                if v.to_string().len() > max_bytes {
                    self.error(name, format!("must be at most {max_bytes} bytes"));
                    Field::Absent
                } else {
                    Field::Value(v)
                }
            }
            Field::Value(_) => {
                self.error(name, "must be a JSON object");
                Field::Absent
            }
            other => other.map_value(),
        }
    }

    /// Every error found, as one 400; or nothing.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

impl Field<Value> {
    fn map_value<T>(self) -> Field<T> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            // Callers handle values before reaching here.
            Field::Value(_) => Field::Absent,
        }
    }
}

/// Serde's message without the input it quotes.
trait ClassifyText {
    fn classify_text(&self) -> String;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> String {
        format!(
            "{:?} error at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
    }
}
