//! Time-series functions: `time_bucket(interval, ts [, origin])` with
//! TimescaleDB's semantics (buckets of days and smaller aligned to
//! 2000-01-03, a Monday; month buckets to 2000-01-01), and the `first(value,
//! time)` / `last(value, time)` aggregates (the value at the earliest or
//! latest time; rows with a NULL time are ignored). `date_bin` and
//! `date_trunc` are DataFusion's.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, IntervalMonthDayNano, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use crate::text::civil_from_days;

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// 2000-01-03 00:00:00 UTC, TimescaleDB's origin for buckets without months.
const DEFAULT_ORIGIN: i64 = 946_857_600_000_000;

/// `time_bucket(interval, ts [, origin])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeBucket {
    signature: Signature,
}

fn plan_error(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(message.into())
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        "time_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.get(1) {
            Some(DataType::Timestamp(_, tz)) => {
                Ok(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
            }
            other => Err(plan_error(format!(
                "time_bucket(interval, timestamp) got {other:?} as its time"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ColumnarValue::Scalar(width) = &args.args[0] else {
            return Err(plan_error("time_bucket needs a constant bucket width"));
        };
        let width = match width.cast_to(&DataType::Interval(
            datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
        ))? {
            ScalarValue::IntervalMonthDayNano(Some(w)) => w,
            _ => return Err(plan_error("time_bucket needs a bucket width")),
        };
        let out_type = args.return_field.data_type().clone();
        let times = args.args[1].to_array(args.number_rows)?;
        let times = cast(&times, &out_type)?;
        let times = times.as_primitive::<TimestampMicrosecondType>();
        let origin = match args.args.get(2) {
            None => None,
            Some(ColumnarValue::Scalar(origin)) => match origin.cast_to(&out_type)? {
                ScalarValue::TimestampMicrosecond(v, _) => v,
                _ => return Err(plan_error("time_bucket origin must be a timestamp")),
            },
            Some(_) => return Err(plan_error("time_bucket needs a constant origin")),
        };
        let bucket = bucketer(width, origin)?;
        let mut out = Vec::with_capacity(times.len());
        for i in 0..times.len() {
            out.push(times.is_valid(i).then(|| bucket(times.value(i))).flatten());
        }
        let tz = match &out_type {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let array = TimestampMicrosecondArray::from(out).with_timezone_opt(tz);
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// The start of the bucket holding a time, for a bucket width.
fn bucketer(
    width: IntervalMonthDayNano,
    origin: Option<i64>,
) -> Result<Box<dyn Fn(i64) -> Option<i64>>> {
    if width.months != 0 {
        if width.days != 0 || width.nanoseconds != 0 || width.months < 0 {
            return Err(plan_error(
                "month intervals cannot have day or time component",
            ));
        }
        let stride = i64::from(width.months);
        let origin_months = origin
            .map_or(Some(2000 * 12), month_index)
            .unwrap_or(2000 * 12);
        return Ok(Box::new(move |t| {
            let months = month_index(t)?;
            let start = origin_months + (months - origin_months).div_euclid(stride) * stride;
            Some(month_start(start))
        }));
    }
    let stride = i64::from(width.days) * MICROS_PER_DAY + width.nanoseconds / 1000;
    if stride <= 0 {
        return Err(plan_error("interval must be greater than zero"));
    }
    let origin = origin.unwrap_or(DEFAULT_ORIGIN);
    Ok(Box::new(move |t| {
        let offset = t.checked_sub(origin)?;
        origin.checked_add(offset.div_euclid(stride) * stride)
    }))
}

/// Months since year 0 of the month holding `micros`.
fn month_index(micros: i64) -> Option<i64> {
    let (year, month, _) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    Some(year * 12 + i64::from(month) - 1)
}

/// The first microsecond of month `index` (months since year 0).
fn month_start(index: i64) -> i64 {
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    days_from_civil(year, month as u32, 1) * MICROS_PER_DAY
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `first(value, time)` or `last(value, time)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FirstLast {
    last: bool,
    signature: Signature,
}

impl AggregateUDFImpl for FirstLast {
    fn name(&self) -> &str {
        if self.last { "last" } else { "first" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        args.first()
            .cloned()
            .ok_or_else(|| plan_error(format!("{}(value, time) takes two arguments", self.name())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(FirstLastAccumulator {
            last: self.last,
            best: None,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let time = args
            .input_fields
            .get(1)
            .map(|f| f.data_type().clone())
            .ok_or_else(|| plan_error("first/last take two arguments"))?;
        Ok(vec![
            Arc::new(Field::new(
                "value",
                args.return_field.data_type().clone(),
                true,
            )),
            Arc::new(Field::new("time", time, true)),
        ])
    }
}

#[derive(Debug)]
struct FirstLastAccumulator {
    last: bool,
    /// (time, value) of the best row so far.
    best: Option<(ScalarValue, ScalarValue)>,
}

impl FirstLastAccumulator {
    fn offer(&mut self, values: &ArrayRef, times: &ArrayRef) -> Result<()> {
        for i in 0..times.len() {
            if times.is_null(i) {
                continue;
            }
            let time = ScalarValue::try_from_array(times, i)?;
            let better = match &self.best {
                None => true,
                Some((best, _)) => match time.partial_cmp(best) {
                    Some(Ordering::Less) => !self.last,
                    Some(Ordering::Greater) => self.last,
                    _ => false,
                },
            };
            if better {
                self.best = Some((time, ScalarValue::try_from_array(values, i)?));
            }
        }
        Ok(())
    }
}

impl Accumulator for FirstLastAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match values {
            [value, time] => self.offer(value, time),
            _ => Err(plan_error("first/last take two arguments")),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(match &self.best {
            Some((time, value)) => vec![value.clone(), time.clone()],
            None => vec![ScalarValue::Null, ScalarValue::Null],
        })
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self
            .best
            .as_ref()
            .map_or(ScalarValue::Null, |(_, value)| value.clone()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.best.as_ref().map_or(0, |(t, v)| t.size() + v.size())
    }
}

/// The time-series functions, to register in a session.
pub(crate) fn scalar_functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(TimeBucket {
        signature: Signature::variadic_any(Volatility::Immutable),
    })]
}

pub(crate) fn aggregate_functions() -> Vec<AggregateUDF> {
    [false, true]
        .into_iter()
        .map(|last| {
            AggregateUDF::from(FirstLast {
                last,
                signature: Signature::any(2, Volatility::Immutable),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 10_957, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
