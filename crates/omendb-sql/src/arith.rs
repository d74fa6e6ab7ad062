//! Integer arithmetic with PostgreSQL's types and errors. DataFusion wraps
//! on overflow and types integer literals as `bigint`; PostgreSQL types a
//! literal that fits as `integer`, computes in the wider operand's type and
//! fails with 22003 ("integer out of range") on overflow. An expression
//! planner turns `+ - *` between integers into checked functions in that
//! type.

use std::sync::Arc;

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::error::{ErrorClass, SqlError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    /// `mod(a, b)`, PostgreSQL's function for `%`.
    Mod,
}

/// `a op b` on integers of one type, failing on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedArith {
    op: Op,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedArith {
    fn name(&self) -> &str {
        match self.op {
            Op::Add => "int_add",
            Op::Sub => "int_sub",
            Op::Mul => "int_mul",
            Op::Mod => "mod",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        args.first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("integer arithmetic without operands".into()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [left, right] = arrays.as_slice() else {
            return Err(DataFusionError::Internal(
                "integer arithmetic takes two operands".into(),
            ));
        };
        let result = match self.op {
            Op::Add => numeric::add(left, right),
            Op::Sub => numeric::sub(left, right),
            Op::Mul => numeric::mul(left, right),
            Op::Mod => numeric::rem(left, right),
        };
        match result {
            Ok(array) => Ok(ColumnarValue::Array(array)),
            Err(ArrowError::ArithmeticOverflow(_)) => {
                Err(DataFusionError::External(Box::new(SqlError::new(
                    ErrorClass::NumericValueOutOfRange,
                    format!("{} out of range", pg_type_name(left.data_type())),
                ))))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `mod` takes any two numbers: integers compute in the wider type,
    /// anything else in `float8`. (The planned `+ - *` come cast already.)
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let ty = match args {
            [a, b] if a.is_integer() && b.is_integer() => {
                if rank(a) >= rank(b) {
                    a.clone()
                } else {
                    b.clone()
                }
            }
            [a, b] if a.is_numeric() && b.is_numeric() => DataType::Float64,
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "function {}({args:?}) does not exist",
                    self.name()
                )));
            }
        };
        Ok(vec![ty.clone(), ty])
    }
}

/// `mod(a, b)`.
pub(crate) fn mod_function() -> ScalarUDF {
    ScalarUDF::from(CheckedArith {
        op: Op::Mod,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

fn pg_type_name(ty: &DataType) -> &'static str {
    match ty {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        _ => "bigint",
    }
}

/// Plans `+ - *` between integer operands as checked arithmetic.
#[derive(Debug)]
pub(crate) struct IntegerArithmetic {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
}

impl IntegerArithmetic {
    pub(crate) fn new() -> IntegerArithmetic {
        let udf = |op| {
            Arc::new(ScalarUDF::from(CheckedArith {
                op,
                signature: Signature::any(2, Volatility::Immutable),
            }))
        };
        IntegerArithmetic {
            add: udf(Op::Add),
            sub: udf(Op::Sub),
            mul: udf(Op::Mul),
        }
    }
}

/// An operand's type as PostgreSQL sees it: an integer literal that fits
/// in 32 bits is an `integer`.
fn operand_type(expr: &Expr, schema: &DFSchema) -> Option<DataType> {
    if let Expr::Literal(ScalarValue::Int64(Some(v)), _) = expr
        && i32::try_from(*v).is_ok()
    {
        return Some(DataType::Int32);
    }
    let ty = expr.get_type(schema).ok()?;
    matches!(ty, DataType::Int16 | DataType::Int32 | DataType::Int64).then_some(ty)
}

fn rank(ty: &DataType) -> u8 {
    match ty {
        DataType::Int16 => 1,
        DataType::Int32 => 2,
        _ => 3,
    }
}

impl ExprPlanner for IntegerArithmetic {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let udf = match expr.op {
            BinaryOperator::Plus => &self.add,
            BinaryOperator::Minus => &self.sub,
            BinaryOperator::Multiply => &self.mul,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let (Some(left), Some(right)) = (
            operand_type(&expr.left, schema),
            operand_type(&expr.right, schema),
        ) else {
            return Ok(PlannerResult::Original(expr));
        };
        let ty = if rank(&left) >= rank(&right) {
            left
        } else {
            right
        };
        let args = vec![
            expr.left.cast_to(&ty, schema)?,
            expr.right.cast_to(&ty, schema)?,
        ];
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf.clone(), args),
        )))
    }
}
