//! Session settings: the parameters drivers set and show (`search_path`,
//! `TimeZone`, `DateStyle`, `client_encoding`, `application_name`,
//! `statement_timeout`, `extra_float_digits`, ...), transactional as in
//! PostgreSQL: a ROLLBACK undoes the block's SETs, and `SET LOCAL` lasts
//! until the block ends. Also `current_setting()` and `set_config()`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{ErrorClass, Result, SqlError};
use crate::provider::ReaderSlot;
use crate::schemas;

/// Every parameter: its name as PostgreSQL spells it, its default, and
/// whether a session may change it.
const PARAMETERS: &[(&str, &str, bool)] = &[
    ("application_name", "", true),
    ("client_encoding", "UTF8", true),
    ("client_min_messages", "notice", true),
    ("DateStyle", "ISO, MDY", true),
    ("default_transaction_isolation", "read committed", true),
    ("default_transaction_read_only", "off", false),
    ("extra_float_digits", "1", true),
    ("idle_in_transaction_session_timeout", "0", true),
    ("in_hot_standby", "off", false),
    ("integer_datetimes", "on", false),
    ("IntervalStyle", "postgres", true),
    ("is_superuser", "on", false),
    ("max_identifier_length", "63", false),
    ("search_path", "\"$user\", public", true),
    ("server_encoding", "UTF8", false),
    ("server_version", "15.0", false),
    ("server_version_num", "150000", false),
    ("standard_conforming_strings", "on", true),
    ("statement_timeout", "0", true),
    ("TimeZone", "UTC", true),
];

/// The parameters a client is told of (ParameterStatus) at startup and
/// whenever they change: PostgreSQL 15's `GUC_REPORT` set, less
/// `session_authorization` (the server's, it knows the user).
const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "default_transaction_read_only",
    "in_hot_standby",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "standard_conforming_strings",
    "TimeZone",
];

/// The canonical spelling and default of parameter `name` (any case).
fn parameter(name: &str) -> Result<(&'static str, &'static str, bool)> {
    PARAMETERS
        .iter()
        .find(|(p, _, _)| p.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            SqlError::new(
                ErrorClass::UndefinedObject,
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })
}

/// A session's settings.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    /// Values that differ from the defaults, by canonical name.
    values: BTreeMap<&'static str, String>,
    /// Inside a transaction block: what to restore at its end, oldest
    /// first, with whether the change was `LOCAL` (undone at COMMIT too).
    undo: Vec<(&'static str, Option<String>, bool)>,
    in_block: bool,
}

impl Settings {
    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Result<String> {
        self.value(name).map(String::from)
    }

    /// The value of `name`, borrowed.
    pub(crate) fn value(&self, name: &str) -> Result<&str> {
        let (name, default, _) = parameter(name)?;
        Ok(self.values.get(name).map_or(default, String::as_str))
    }

    /// The duration setting `name` (`statement_timeout`, ...); `None`
    /// for 0, no limit.
    pub(crate) fn timeout(&self, name: &str) -> Option<std::time::Duration> {
        let ms = milliseconds(self.value(name).ok()?)?;
        (ms > 0).then(|| std::time::Duration::from_millis(ms.unsigned_abs()))
    }

    /// Sets `name` to `value` (its default when `None`), for the session
    /// or, with `local`, for the current block.
    pub(crate) fn set(&mut self, name: &str, value: Option<&str>, local: bool) -> Result<String> {
        let (name, _, settable) = parameter(name)?;
        if !settable {
            return Err(SqlError::new(
                ErrorClass::CantChangeParameter,
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        if local && !self.in_block {
            // PostgreSQL warns and does nothing.
            return self.get(name);
        }
        let value = value.map(|v| normalize(name, v)).transpose()?;
        if self.in_block {
            self.undo
                .push((name, self.values.get(name).cloned(), local));
        }
        match value {
            Some(v) => self.values.insert(name, v),
            None => self.values.remove(name),
        };
        self.get(name)
    }

    /// Every setting back to its default (`RESET ALL`).
    pub(crate) fn reset_all(&mut self) -> Result<()> {
        for (name, _, settable) in PARAMETERS {
            if *settable {
                self.set(name, None, false)?;
            }
        }
        Ok(())
    }

    pub(crate) fn begin_block(&mut self) {
        self.in_block = true;
        self.undo.clear();
    }

    /// Ends the block: a commit keeps its session-level changes, a
    /// rollback none.
    pub(crate) fn end_block(&mut self, committed: bool) {
        for (name, old, local) in std::mem::take(&mut self.undo).into_iter().rev() {
            if !committed || local {
                match old {
                    Some(v) => self.values.insert(name, v),
                    None => self.values.remove(name),
                };
            }
        }
        self.in_block = false;
    }

    /// Every parameter and its value, by name.
    pub(crate) fn all(&self) -> Vec<(&'static str, String)> {
        PARAMETERS
            .iter()
            .map(|(name, default, _)| {
                let value = self.values.get(name).cloned();
                (*name, value.unwrap_or_else(|| default.to_string()))
            })
            .collect()
    }

    /// The reported parameters and their values.
    pub(crate) fn reported(&self) -> Vec<(&'static str, String)> {
        let mut all = self.all();
        all.retain(|(name, _)| REPORTED.contains(name));
        all
    }
}

/// A value as PostgreSQL shows it back, checked where PostgreSQL checks.
fn normalize(name: &str, value: &str) -> Result<String> {
    let invalid = || {
        SqlError::new(
            ErrorClass::InvalidParameterValue,
            format!("invalid value for parameter \"{name}\": \"{value}\""),
        )
    };
    Ok(match name {
        "extra_float_digits" => {
            let digits: i32 = value.trim().parse().map_err(|_| invalid())?;
            if !(-15..=3).contains(&digits) {
                return Err(SqlError::new(
                    ErrorClass::InvalidParameterValue,
                    format!(
                        "{digits} is outside the valid range for parameter \"extra_float_digits\" (-15 .. 3)"
                    ),
                ));
            }
            digits.to_string()
        }
        "statement_timeout" | "idle_in_transaction_session_timeout" => {
            duration_text(milliseconds(value).ok_or_else(invalid)?)
        }
        "client_encoding" => match value.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
            "UTF8" | "UNICODE" => "UTF8".into(),
            // What libpq asks for in a C locale: bytes pass unconverted,
            // as PostgreSQL passes them.
            "SQLASCII" => "SQL_ASCII".into(),
            _ => return Err(invalid()),
        },
        "DateStyle" => match value.to_ascii_uppercase().replace(' ', "").as_str() {
            "ISO" | "ISO,MDY" | "MDY,ISO" => "ISO, MDY".into(),
            "ISO,DMY" | "DMY,ISO" => "ISO, DMY".into(),
            "ISO,YMD" | "YMD,ISO" => "ISO, YMD".into(),
            _ => return Err(invalid()),
        },
        _ => value.to_string(),
    })
}

/// Milliseconds from `100`, `100ms`, `5s`, `2min`, `1h`.
fn milliseconds(value: &str) -> Option<i64> {
    let value = value.trim();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let number: i64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number
        .checked_mul(scale)
        .filter(|&ms| ms <= i64::from(i32::MAX))
}

/// A duration as PostgreSQL shows it: in the largest unit that divides it.
fn duration_text(ms: i64) -> String {
    for (unit, scale) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % scale == 0 {
            return format!("{}{unit}", ms / scale);
        }
    }
    if ms == 0 {
        "0".into()
    } else {
        format!("{ms}ms")
    }
}

/// Settings shared by a session and its SQL functions.
#[derive(Debug, Default)]
pub(crate) struct SharedSettings(Mutex<Settings>);

impl SharedSettings {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Settings> {
        // Every method leaves the settings consistent before it can fail.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `current_setting(name [, missing_ok])` and `set_config(name, value,
/// is_local)`.
#[derive(Debug)]
struct SettingFunction {
    settings: Arc<SharedSettings>,
    set: bool,
    signature: Signature,
}

impl PartialEq for SettingFunction {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.settings, &other.settings) && self.set == other.set
    }
}

impl Eq for SettingFunction {}

impl std::hash::Hash for SettingFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.set.hash(state);
    }
}

impl ScalarUDFImpl for SettingFunction {
    fn name(&self) -> &str {
        if self.set {
            "set_config"
        } else {
            "current_setting"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = |i: usize| -> DfResult<ArrayRef> {
            let array = arrays.get(i).ok_or_else(|| {
                DataFusionError::Plan(format!("{} needs more arguments", self.name()))
            })?;
            Ok(datafusion::arrow::compute::cast(array, &DataType::Utf8)?)
        };
        let names = text(0)?;
        let names = names.as_string::<i32>();
        let mut out = Vec::with_capacity(names.len());
        let mut settings = self.settings.lock();
        let to_df = |e: SqlError| DataFusionError::External(Box::new(e));
        // set_config(name, value, is_local); current_setting(name, missing_ok).
        let (values, flags) = if self.set {
            (Some(text(1)?), arrays.get(2))
        } else {
            (None, arrays.get(1))
        };
        let flags = flags
            .map(|a| datafusion::arrow::compute::cast(a, &DataType::Boolean))
            .transpose()?;
        for row in 0..names.len() {
            if names.is_null(row) {
                out.push(None);
                continue;
            }
            let name = names.value(row);
            let flag = flags.as_ref().is_some_and(|f| {
                let f = f.as_boolean();
                f.is_valid(row) && f.value(row)
            });
            out.push(match &values {
                Some(values) => {
                    let values = values.as_string::<i32>();
                    let value = values.is_valid(row).then(|| values.value(row));
                    Some(settings.set(name, value, flag).map_err(to_df)?)
                }
                None => match settings.get(name) {
                    Ok(v) => Some(v),
                    Err(_) if flag => None,
                    Err(e) => return Err(to_df(e)),
                },
            });
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// A function of no arguments answering from the session:
/// `current_schema()`, `current_database()`, `version()`.
#[derive(Debug)]
struct SessionInfo {
    name: &'static str,
    settings: Arc<SharedSettings>,
    /// The running statement's catalog (which schemas exist).
    reader: Arc<ReaderSlot>,
    signature: Signature,
}

impl PartialEq for SessionInfo {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.settings, &other.settings)
    }
}

impl Eq for SessionInfo {}

impl std::hash::Hash for SessionInfo {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for SessionInfo {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let value = match self.name {
            "current_database" => Some("omendb".to_string()),
            "version" => Some(format!(
                "PostgreSQL 15.0 (OmenDB {}) on {}-{}, compiled by rustc",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            )),
            // The first schema of the search path that exists.
            _ => {
                let path = self
                    .settings
                    .lock()
                    .get("search_path")
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let reader = self.reader.get();
                schemas::search_path(&path).into_iter().find(|schema| {
                    schemas::SYSTEM_SCHEMAS.contains(&schema.as_str())
                        || reader
                            .as_ref()
                            .is_some_and(|r| r.catalog().has_schema(schema))
                })
            }
        };
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Utf8(value),
        ))
    }
}

/// The setting and session functions of a session.
pub(crate) fn functions(
    settings: &Arc<SharedSettings>,
    reader: &Arc<ReaderSlot>,
) -> Vec<ScalarUDF> {
    let setting = [false, true].into_iter().map(|set| {
        ScalarUDF::from(SettingFunction {
            settings: settings.clone(),
            set,
            signature: Signature::variadic_any(Volatility::Volatile),
        })
    });
    let info = ["current_schema", "current_database", "version"]
        .into_iter()
        .map(|name| {
            ScalarUDF::from(SessionInfo {
                name,
                settings: settings.clone(),
                reader: reader.clone(),
                signature: Signature::nullary(Volatility::Stable),
            })
        });
    setting.chain(info).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_in_their_largest_whole_unit() {
        for (input, shown) in [
            ("0", "0"),
            ("1000", "1s"),
            ("1500", "1500ms"),
            ("60000", "1min"),
            ("2h", "2h"),
            ("90s", "90s"),
        ] {
            assert_eq!(
                duration_text(milliseconds(input).unwrap()),
                shown,
                "{input}"
            );
        }
        assert_eq!(milliseconds("5 parsecs"), None);
    }

    #[test]
    fn rollback_undoes_a_blocks_sets_and_commit_undoes_only_local_ones() {
        let mut s = Settings::default();
        s.set("application_name", Some("before"), false).unwrap();
        s.begin_block();
        s.set("application_name", Some("inside"), false).unwrap();
        s.set("search_path", Some("x"), true).unwrap();
        s.end_block(false);
        assert_eq!(s.get("application_name").unwrap(), "before");
        s.begin_block();
        s.set("application_name", Some("kept"), false).unwrap();
        s.set("search_path", Some("x"), true).unwrap();
        s.end_block(true);
        assert_eq!(s.get("application_name").unwrap(), "kept");
        assert_eq!(s.get("search_path").unwrap(), "\"$user\", public");
        assert_eq!(
            s.set("server_version", Some("1"), false)
                .unwrap_err()
                .sqlstate(),
            "55P02"
        );
        assert_eq!(s.get("nope").unwrap_err().sqlstate(), "42704");
    }
}
