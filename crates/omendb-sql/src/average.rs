//! PostgreSQL's `avg`: of integers and numerics it is a `numeric`, not a
//! float. Integer input is read as `numeric(38, 0)`; the average keeps at
//! least 16 fractional digits, rounded half away from zero. (PostgreSQL
//! picks the digits per value from the leading digits of sum and count: 16
//! for most averages from 1 to 9,999, up to 20 below, fewer above. Arrow's
//! decimal has one scale per column, so the scale here is fixed.) Sums
//! are kept in 256 bits, so they cannot overflow. Floats and intervals go
//! to DataFusion's `avg`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Decimal256Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DECIMAL128_MAX_PRECISION, DataType, Decimal128Type, Decimal256Type, Field, FieldRef,
    UInt64Type, i256,
};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Fractional digits an average keeps at least.
const MIN_SCALE: i8 = 16;

/// `avg(x)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericAvg {
    builtin: Avg,
    signature: Signature,
}

/// The `avg` to register in a session in place of DataFusion's.
pub(crate) fn avg_function() -> AggregateUDF {
    AggregateUDF::from(NumericAvg {
        builtin: Avg::new(),
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// Scale of the average of `numeric(_, scale)` values.
fn result_scale(scale: i8) -> i8 {
    scale.max(MIN_SCALE)
}

/// Type of the average of `numeric(_, scale)` values.
fn result_type(scale: i8) -> DataType {
    DataType::Decimal128(DECIMAL128_MAX_PRECISION, result_scale(scale))
}

fn sum_type(scale: i8) -> DataType {
    DataType::Decimal256(76, scale)
}

/// The scale of `input` when `avg` of it is computed here.
fn numeric_input(input: &DataType) -> Option<i8> {
    match input {
        DataType::Decimal128(_, scale) if *scale >= 0 => Some(*scale),
        _ => None,
    }
}

impl AggregateUDFImpl for NumericAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [input] = args else {
            return Err(DataFusionError::Plan(
                "No function matches avg with more than one argument".into(),
            ));
        };
        let coerced = match input {
            t if t.is_integer() => DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0),
            DataType::Decimal128(..) | DataType::Duration(_) => input.clone(),
            t if t.is_floating() || t.is_null() => DataType::Float64,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "No function matches the given name and argument types: avg({other})"
                )));
            }
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first().and_then(numeric_input) {
            Some(scale) => Ok(result_type(scale)),
            None => self.builtin.return_type(args),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let Some(input_scale) = numeric_input(args.expr_fields[0].data_type()) else {
            return self.builtin.accumulator(args);
        };
        Ok(Box::new(NumericAvgAccumulator {
            sum: i256::ZERO,
            count: 0,
            input_scale,
            distinct: args.is_distinct.then(HashSet::new),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let input = args.input_fields[0].data_type();
        let Some(input_scale) = numeric_input(input) else {
            return self.builtin.state_fields(args);
        };
        let field = |name: &str, ty: DataType| Arc::new(Field::new(name, ty, true));
        Ok(if args.is_distinct {
            let item = Field::new_list_field(input.clone(), true);
            vec![field("values", DataType::List(Arc::new(item)))]
        } else {
            vec![
                field("count", DataType::UInt64),
                field("sum", sum_type(input_scale)),
            ]
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match numeric_input(args.expr_fields[0].data_type()) {
            Some(_) => !args.is_distinct,
            None => self.builtin.groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let Some(input_scale) = numeric_input(args.expr_fields[0].data_type()) else {
            return self.builtin.create_groups_accumulator(args);
        };
        Ok(Box::new(NumericAvgGroups {
            sums: Vec::new(),
            counts: Vec::new(),
            input_scale,
        }))
    }

    fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
        datafusion::logical_expr::ReversedUDAF::Identical
    }
}

/// `sum / count` of values of scale `input_scale`, at the result scale,
/// rounded half away from zero.
fn average(sum: i256, count: u64, input_scale: i8) -> Result<i128> {
    let rescale = (result_scale(input_scale) - input_scale) as u32;
    let out_of_range =
        || DataFusionError::Execution("numeric field overflow: average out of range".into());
    let count = i256::from(i128::from(count));
    let factor = i256::from(10i128.pow(rescale));
    // `count` is never zero: a group with no rows has a NULL average.
    let (whole, rest) = (sum / count, sum % count);
    // |rest| < count < 2^64 and factor <= 10^38, so this fits in 256 bits.
    let fraction = rest * factor;
    let (mut digits, remainder) = (fraction / count, fraction % count);
    if remainder.wrapping_abs() * i256::from(2i128) >= count {
        digits += remainder.signum();
    }
    let value = whole
        .checked_mul(factor)
        .and_then(|v| v.checked_add(digits))
        .and_then(i256::to_i128)
        .ok_or_else(out_of_range)?;
    let limit = 10i128.pow(u32::from(DECIMAL128_MAX_PRECISION));
    if value.unsigned_abs() >= limit.unsigned_abs() {
        return Err(out_of_range());
    }
    Ok(value)
}

/// `avg` of numerics, for ungrouped aggregates, windows and DISTINCT.
#[derive(Debug)]
struct NumericAvgAccumulator {
    sum: i256,
    count: u64,
    input_scale: i8,
    /// Values seen so far, for `avg(DISTINCT x)`.
    distinct: Option<HashSet<i128>>,
}

impl NumericAvgAccumulator {
    fn add(&mut self, value: i128) {
        if let Some(seen) = &mut self.distinct
            && !seen.insert(value)
        {
            return;
        }
        self.sum += i256::from(value);
        self.count += 1;
    }

    fn values(array: &ArrayRef) -> Result<&Decimal128Array> {
        array
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| DataFusionError::Internal("avg expects numeric input".into()))
    }
}

impl Accumulator for NumericAvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        Self::values(&values[0])?
            .iter()
            .flatten()
            .for_each(|value| self.add(value));
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for value in Self::values(&values[0])?.iter().flatten() {
            self.sum -= i256::from(value);
            self.count -= 1;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        self.distinct.is_none()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if self.distinct.is_some() {
            for list in states[0].as_list::<i32>().iter().flatten() {
                self.update_batch(&[list])?;
            }
            return Ok(());
        }
        let counts = states[0].as_primitive::<UInt64Type>();
        let sums = states[1].as_primitive::<Decimal256Type>();
        for i in (0..counts.len()).filter(|&i| counts.is_valid(i)) {
            self.count += counts.value(i);
            self.sum += sums.value(i);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let input = DataType::Decimal128(DECIMAL128_MAX_PRECISION, self.input_scale);
        if let Some(seen) = &self.distinct {
            let values: Vec<ScalarValue> = seen
                .iter()
                .map(|v| {
                    ScalarValue::Decimal128(Some(*v), DECIMAL128_MAX_PRECISION, self.input_scale)
                })
                .collect();
            return Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
                &values, &input,
            ))]);
        }
        Ok(vec![
            ScalarValue::UInt64(Some(self.count)),
            ScalarValue::Decimal256(Some(self.sum), 76, self.input_scale),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value = match self.count {
            0 => None,
            count => Some(average(self.sum, count, self.input_scale)?),
        };
        ScalarValue::new_primitive::<Decimal128Type>(value, &result_type(self.input_scale))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.distinct.as_ref().map_or(0, |s| s.capacity() * 16)
    }
}

/// `avg` of numerics per group.
#[derive(Debug)]
struct NumericAvgGroups {
    sums: Vec<i256>,
    counts: Vec<u64>,
    input_scale: i8,
}

impl NumericAvgGroups {
    fn grow(&mut self, groups: usize) {
        self.sums.resize(groups, i256::ZERO);
        self.counts.resize(groups, 0);
    }
}

/// Whether row `row` passes the aggregate's FILTER clause.
fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

impl GroupsAccumulator for NumericAvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()> {
        self.grow(total_groups);
        let values = NumericAvgAccumulator::values(&values[0])?;
        for (row, &group) in groups.iter().enumerate() {
            if values.is_valid(row) && passes(filter, row) {
                self.sums[group] += i256::from(values.value(row));
                self.counts[group] += 1;
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        states: &[ArrayRef],
        groups: &[usize],
        total_groups: usize,
    ) -> Result<()> {
        self.grow(total_groups);
        let counts = states[0].as_primitive::<UInt64Type>();
        let sums = states[1].as_primitive::<Decimal256Type>();
        for (row, &group) in groups.iter().enumerate() {
            if counts.is_valid(row) {
                self.sums[group] += sums.value(row);
                self.counts[group] += counts.value(row);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let averages = sums
            .into_iter()
            .zip(counts)
            .map(|(sum, count)| match count {
                0 => Ok(None),
                count => average(sum, count, self.input_scale).map(Some),
            })
            .collect::<Result<Decimal128Array>>()?;
        Ok(Arc::new(
            averages.with_data_type(result_type(self.input_scale)),
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let sums = Decimal256Array::from(sums).with_data_type(sum_type(self.input_scale));
        Ok(vec![Arc::new(UInt64Array::from(counts)), Arc::new(sums)])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = NumericAvgAccumulator::values(&values[0])?;
        let counted = |row: usize| values.is_valid(row) && passes(filter, row);
        let counts: UInt64Array = (0..values.len())
            .map(|row| u64::from(counted(row)))
            .collect();
        let sums: Decimal256Array = (0..values.len())
            .map(|row| i256::from(if counted(row) { values.value(row) } else { 0 }))
            .collect();
        let sums = sums.with_data_type(sum_type(self.input_scale));
        Ok(vec![Arc::new(counts), Arc::new(sums)])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 32 + self.counts.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unscaled average of unscaled values of scale `input_scale`.
    fn avg(sum: i128, count: u64, input_scale: i8) -> i128 {
        average(i256::from(sum), count, input_scale).unwrap()
    }

    #[test]
    fn averages_keep_16_digits_rounding_half_away_from_zero() {
        assert_eq!(avg(3, 2, 15), 15);
        assert_eq!(avg(5, 3, 14), 167);
        assert_eq!(avg(4, 3, 14), 133);
        assert_eq!(avg(-5, 3, 14), -167);
        assert_eq!(avg(-3, 2, 16), -2);
        assert_eq!(avg(3, 2, 16), 2);
        // Beyond 16 digits the input's scale is kept.
        assert_eq!(avg(3, 2, 20), 2);
        assert_eq!(avg(1, 3, 0), 3_333_333_333_333_333);
    }

    #[test]
    fn averages_of_the_largest_integers_do_not_overflow() {
        let big = i128::from(i64::MAX);
        let sum = i256::from(big) * i256::from(1_000_000i128);
        let value = average(sum, 1_000_000, 0).unwrap();
        assert_eq!(value, big * 10i128.pow(16));
    }

    #[test]
    fn an_average_beyond_38_digits_is_an_error() {
        let sum = i256::from(10i128.pow(37));
        assert!(average(sum, 1, 0).is_err());
    }
}
