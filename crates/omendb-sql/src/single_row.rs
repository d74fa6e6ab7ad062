//! `omendb_single_row(x)`: the one value of a scalar subquery. DataFusion
//! plans a correlated scalar subquery only when it is aggregated;
//! PostgreSQL runs any, failing with 21000 when one returns more than one
//! row. `pg_syntax` wraps the value of an unaggregated scalar subquery in
//! this aggregate, which is exactly that: the value of the group's one
//! row, NULL for none, 21000 for more.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use crate::error::{ErrorClass, SqlError};

/// The aggregate's name.
pub(crate) const SINGLE_ROW: &str = "omendb_single_row";

#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleRow {
    signature: Signature,
}

/// The aggregate to register in a session.
pub(crate) fn single_row_function() -> AggregateUDF {
    AggregateUDF::from(SingleRow {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl AggregateUDFImpl for SingleRow {
    fn name(&self) -> &str {
        SINGLE_ROW
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Null))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneRow {
            value: ScalarValue::try_from(args.return_field.data_type())?,
            rows: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new("value", args.return_type().clone(), true)),
            Arc::new(Field::new("rows", DataType::UInt64, false)),
        ])
    }
}

#[derive(Debug)]
struct OneRow {
    value: ScalarValue,
    rows: u64,
}

impl OneRow {
    fn add(&mut self, rows: u64, value: impl FnOnce() -> Result<ScalarValue>) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows;
        if self.rows > 1 {
            return Err(DataFusionError::External(Box::new(SqlError::new(
                ErrorClass::CardinalityViolation,
                "more than one row returned by a subquery used as an expression",
            ))));
        }
        self.value = value()?;
        Ok(())
    }
}

impl Accumulator for OneRow {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(array) = values.first() else {
            return Ok(());
        };
        self.add(array.len() as u64, || ScalarValue::try_from_array(array, 0))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [values, rows] = states else {
            return Ok(());
        };
        let rows = rows.as_primitive::<UInt64Type>();
        for i in 0..rows.len() {
            self.add(rows.value(i), || ScalarValue::try_from_array(values, i))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;

    use super::*;

    #[test]
    fn one_row_gives_its_value_none_null_and_more_an_error() {
        let mut none = OneRow {
            value: ScalarValue::Int64(None),
            rows: 0,
        };
        none.update_batch(&[Arc::new(Int64Array::from(Vec::<i64>::new()))])
            .unwrap();
        assert_eq!(none.evaluate().unwrap(), ScalarValue::Int64(None));

        let mut one = OneRow {
            value: ScalarValue::Int64(None),
            rows: 0,
        };
        one.update_batch(&[Arc::new(Int64Array::from(vec![7]))])
            .unwrap();
        assert_eq!(one.evaluate().unwrap(), ScalarValue::Int64(Some(7)));
        let error = one
            .update_batch(&[Arc::new(Int64Array::from(vec![8]))])
            .unwrap_err();
        assert_eq!(
            SqlError::from(error).class,
            ErrorClass::CardinalityViolation
        );
    }
}
