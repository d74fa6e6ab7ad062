//! PostgreSQL's `sum`: of `bigint` it is a `numeric`, so it cannot
//! overflow (DataFusion's sums `bigint` into a `bigint` that wraps). The
//! input is read as `numeric(38, 0)` and DataFusion's decimal sum does the
//! rest; `smallint` and `integer` still sum into a `bigint`, floats into a
//! `double precision`, numerics and intervals into their own type, as in
//! PostgreSQL.
//!
//! Argument coercion must be idempotent (DataFusion coerces an aggregate's
//! arguments again when it recomputes a plan's schema), so `smallint` and
//! `integer` arguments are not cast to `bigint` (a `bigint` argument then
//! means a `numeric` sum): the accumulators cast each batch instead.

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DECIMAL128_MAX_PRECISION, DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Operator,
    ReversedUDAF, SetMonotonicity, Signature, Volatility,
};

/// `sum(x)`: DataFusion's, over PostgreSQL's argument types.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSum {
    builtin: Sum,
    signature: Signature,
}

/// The `sum` to register in a session in place of DataFusion's.
pub(crate) fn sum_function() -> AggregateUDF {
    AggregateUDF::from(PgSum {
        builtin: Sum::new(),
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

impl AggregateUDFImpl for PgSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [input] = args else {
            return Err(DataFusionError::Plan(
                "No function matches sum with more than one argument".into(),
            ));
        };
        let coerced = match input {
            t if is_small_integer(t) => input.clone(),
            t if t.is_integer() => DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0),
            DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_)
            | DataType::Interval(_) => input.clone(),
            t if t.is_floating() || t.is_null() => DataType::Float64,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "No function matches the given name and argument types: sum({other})"
                )));
            }
        };
        Ok(vec![coerced])
    }

    // Everything else is DataFusion's, on the coerced types (small
    // integers cast batch by batch).

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t] if is_small_integer(t) => Ok(DataType::Int64),
            _ => self.builtin.return_type(args),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let to = input_cast(&args);
        Ok(cast_input(to, self.builtin.accumulator(args)?))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.builtin.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.builtin.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let to = input_cast(&args);
        let inner = self.builtin.create_groups_accumulator(args)?;
        Ok(match to {
            Some(to) => Box::new(CastGroupsInput { inner, to }),
            None => inner,
        })
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let to = input_cast(&args);
        Ok(cast_input(
            to,
            self.builtin.create_sliding_accumulator(args)?,
        ))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.builtin.reverse_expr()
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.builtin.order_sensitivity()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.builtin.set_monotonicity(data_type)
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &AggregateFunction,
        arg: &Expr,
        op: Operator,
        lit: &Expr,
        arg_is_left: bool,
    ) -> Result<Option<Expr>> {
        self.builtin
            .simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }
}

/// `smallint` or `integer` (or a narrower unsigned type): summed into a
/// `bigint`.
fn is_small_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16
    )
}

/// The type the accumulators sum in, when the input must be cast to it.
fn input_cast(args: &AccumulatorArgs) -> Option<DataType> {
    let input = args.expr_fields.first()?.data_type();
    is_small_integer(input).then(|| args.return_field.data_type().clone())
}

fn cast_all(values: &[ArrayRef], to: &DataType) -> Result<Vec<ArrayRef>> {
    values
        .iter()
        .map(|v| Ok(cast(v, to)?))
        .collect::<Result<Vec<_>>>()
}

/// `inner`, fed its input cast to `to` if given.
fn cast_input(to: Option<DataType>, inner: Box<dyn Accumulator>) -> Box<dyn Accumulator> {
    match to {
        Some(to) => Box::new(CastInput { inner, to }),
        None => inner,
    }
}

/// An accumulator fed its input cast to the type it sums in.
#[derive(Debug)]
struct CastInput {
    inner: Box<dyn Accumulator>,
    to: DataType,
}

impl Accumulator for CastInput {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&cast_all(values, &self.to)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(&cast_all(values, &self.to)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}

/// A groups accumulator fed its input cast to the type it sums in.
struct CastGroupsInput {
    inner: Box<dyn GroupsAccumulator>,
    to: DataType,
}

impl GroupsAccumulator for CastGroupsInput {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let values = cast_all(values, &self.to)?;
        self.inner
            .update_batch(&values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.inner.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner
            .convert_to_state(&cast_all(values, &self.to)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}
