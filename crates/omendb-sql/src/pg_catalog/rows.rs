//! Catalog tables written as rows of cells and turned into Arrow batches.
//! A table's columns are declared as PostgreSQL's `\d` shows them
//! (`"oid:oid relname:name relkind:char ..."`); a new row starts with each
//! column's default (0, false, or NULL for text and arrays) and sets the
//! columns that matter by name.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Int16Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;

use crate::text::VECTOR_ITEM;

/// How a catalog column is held in Arrow.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `oid`, `regproc`, `xid`: `UInt32`, sent as PostgreSQL's `oid`.
    Oid,
    /// `name`, `text`, `"char"`, `pg_node_tree`, ...
    Text,
    Bool,
    Int2,
    Int4,
    /// `information_schema`'s `cardinal_number`: an `int4`, NULL unless set.
    Cardinal,
    Int8,
    Float4,
    Timestamptz,
    /// `smallint[]`.
    Int2s,
    /// `oid[]`.
    Oids,
    /// `int2vector`: a list whose text form is `1 2`, not `{1,2}`.
    Int2Vector,
    /// `oidvector`, likewise.
    OidVector,
    /// `text[]`, `aclitem[]`, `"char"[]` (always NULL here).
    Texts,
}

impl Kind {
    fn of(pg_type: &str) -> Kind {
        match pg_type {
            "oid" | "regproc" | "xid" => Kind::Oid,
            "bool" => Kind::Bool,
            "int2" => Kind::Int2,
            "int4" => Kind::Int4,
            "cardinal" => Kind::Cardinal,
            "int8" => Kind::Int8,
            "float4" => Kind::Float4,
            "timestamptz" => Kind::Timestamptz,
            "int2[]" => Kind::Int2s,
            "oid[]" => Kind::Oids,
            "int2vector" => Kind::Int2Vector,
            "oidvector" => Kind::OidVector,
            t if t.ends_with("[]") => Kind::Texts,
            _ => Kind::Text,
        }
    }

    fn arrow_type(self) -> DataType {
        let list = |element: DataType| DataType::List(Arc::new(Field::new("item", element, true)));
        let vector =
            |element: DataType| DataType::List(Arc::new(Field::new(VECTOR_ITEM, element, true)));
        match self {
            Kind::Oid => DataType::UInt32,
            Kind::Text => DataType::Utf8,
            Kind::Bool => DataType::Boolean,
            Kind::Int2 => DataType::Int16,
            Kind::Int4 | Kind::Cardinal => DataType::Int32,
            Kind::Int8 => DataType::Int64,
            Kind::Float4 => DataType::Float32,
            Kind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            Kind::Int2s => list(DataType::Int16),
            Kind::Oids => list(DataType::UInt32),
            Kind::Int2Vector => vector(DataType::Int16),
            Kind::OidVector => vector(DataType::UInt32),
            Kind::Texts => list(DataType::Utf8),
        }
    }

    fn default_cell(self) -> Cell {
        match self {
            Kind::Oid => Cell::Oid(0),
            Kind::Bool => Cell::Bool(false),
            Kind::Int2 | Kind::Int4 | Kind::Int8 => Cell::Int(0),
            Kind::Float4 => Cell::Float(0.0),
            _ => Cell::Null,
        }
    }
}

/// One value of a catalog row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    Oid(u32),
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f32),
    Int2s(Vec<i16>),
    Oids(Vec<u32>),
}

impl From<u32> for Cell {
    fn from(oid: u32) -> Cell {
        Cell::Oid(oid)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::Text(text)
    }
}

impl From<char> for Cell {
    fn from(c: char) -> Cell {
        Cell::Text(c.to_string())
    }
}

impl From<bool> for Cell {
    fn from(b: bool) -> Cell {
        Cell::Bool(b)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}

impl From<i32> for Cell {
    fn from(n: i32) -> Cell {
        Cell::Int(n.into())
    }
}

impl From<i16> for Cell {
    fn from(n: i16) -> Cell {
        Cell::Int(n.into())
    }
}

impl From<f32> for Cell {
    fn from(f: f32) -> Cell {
        Cell::Float(f)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Cell {
        value.map_or(Cell::Null, Into::into)
    }
}

/// The columns of a catalog table.
#[derive(Debug)]
pub(crate) struct Columns {
    names: Vec<&'static str>,
    kinds: Vec<Kind>,
}

impl Columns {
    /// Reads `"name:type name:type ..."`.
    pub(crate) fn parse(spec: &'static str) -> Columns {
        let (names, kinds) = spec
            .split_whitespace()
            .map(|column| match column.split_once(':') {
                Some((name, ty)) => (name, Kind::of(ty)),
                None => (column, Kind::Text),
            })
            .unzip();
        Columns { names, kinds }
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .names
            .iter()
            .zip(&self.kinds)
            .map(|(name, kind)| Field::new(*name, kind.arrow_type(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// A catalog table being filled.
#[derive(Debug)]
pub(crate) struct Table {
    columns: Columns,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub(crate) fn new(spec: &'static str) -> Table {
        Table {
            columns: Columns::parse(spec),
            rows: Vec::new(),
        }
    }

    /// Starts a row of defaults; set its columns on what this returns.
    pub(crate) fn row(&mut self) -> Row<'_> {
        let cells = self
            .columns
            .kinds
            .iter()
            .map(|k| k.default_cell())
            .collect();
        self.rows.push(cells);
        let last = self.rows.len() - 1;
        Row {
            names: &self.columns.names,
            cells: &mut self.rows[last],
        }
    }

    /// The rows as one batch.
    pub(crate) fn batch(&self) -> DfResult<RecordBatch> {
        let arrays = self
            .columns
            .kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| column(*kind, self.rows.iter().map(|row| &row[i])))
            .collect();
        Ok(RecordBatch::try_new(self.columns.schema(), arrays)?)
    }
}

/// A row of a [`Table`], its columns set by name.
pub(crate) struct Row<'a> {
    names: &'a [&'static str],
    cells: &'a mut Vec<Cell>,
}

impl Row<'_> {
    pub(crate) fn set(&mut self, column: &str, value: impl Into<Cell>) -> &mut Self {
        let position = self.names.iter().position(|n| *n == column);
        debug_assert!(position.is_some(), "catalog column {column} does not exist");
        if let Some(i) = position {
            self.cells[i] = value.into();
        }
        self
    }
}

/// The element field of a list kind's Arrow type.
fn item(kind: Kind) -> Arc<Field> {
    match kind.arrow_type() {
        DataType::List(field) => field,
        other => Arc::new(Field::new("item", other, true)),
    }
}

/// The Arrow array of one column's cells (a cell of another kind is NULL).
fn column<'a>(kind: Kind, cells: impl Iterator<Item = &'a Cell>) -> ArrayRef {
    macro_rules! build {
        ($builder:expr, $($pattern:pat => $value:expr),+) => {{
            let mut builder = $builder;
            for cell in cells {
                match cell {
                    $($pattern => builder.append_value($value),)+
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    match kind {
        Kind::Oid => build!(UInt32Builder::new(), Cell::Oid(v) => *v),
        Kind::Text => build!(StringBuilder::new(), Cell::Text(v) => v),
        Kind::Bool => build!(BooleanBuilder::new(), Cell::Bool(v) => *v),
        Kind::Int2 => {
            build!(Int16Builder::new(), Cell::Int(v) => i16::try_from(*v).unwrap_or(i16::MAX))
        }
        Kind::Int4 | Kind::Cardinal => {
            build!(Int32Builder::new(), Cell::Int(v) => i32::try_from(*v).unwrap_or(i32::MAX))
        }
        Kind::Int8 => build!(Int64Builder::new(), Cell::Int(v) => *v),
        Kind::Float4 => build!(Float32Builder::new(), Cell::Float(v) => *v),
        Kind::Timestamptz => build!(
            TimestampMicrosecondBuilder::new().with_timezone("+00:00"),
            Cell::Int(v) => *v
        ),
        Kind::Int2s | Kind::Int2Vector => build!(
            ListBuilder::new(Int16Builder::new()).with_field(item(kind)),
            Cell::Int2s(v) => v.iter().map(|x| Some(*x))
        ),
        Kind::Oids | Kind::OidVector => build!(
            ListBuilder::new(UInt32Builder::new()).with_field(item(kind)),
            Cell::Oids(v) => v.iter().map(|x| Some(*x))
        ),
        // No catalog here has a text array that is not NULL.
        Kind::Texts => {
            let mut builder = ListBuilder::new(StringBuilder::new());
            cells.for_each(|_| builder.append_null());
            Arc::new(builder.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int16Type, UInt32Type};

    use super::*;

    #[test]
    fn rows_start_from_defaults_and_set_columns_by_name() {
        let mut table = Table::new("oid:oid relname:name relnatts:int2 relacl:aclitem[]");
        table.row().set("relname", "t").set("oid", 16_384u32);
        table.row().set("relnatts", 3i16);
        let batch = table.batch().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let oids = batch.column(0).as_primitive::<UInt32Type>();
        assert_eq!((oids.value(0), oids.value(1)), (16_384, 0));
        let names = batch.column(1).as_string::<i32>();
        assert_eq!(names.value(0), "t");
        assert!(names.is_null(1));
        assert_eq!(batch.column(2).as_primitive::<Int16Type>().value(1), 3);
        assert_eq!(batch.column(3).data_type(), &Kind::Texts.arrow_type());
    }
}
