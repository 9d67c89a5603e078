//! The canonical encoding of one event row, which its `event_hash` is taken
//! over: a JSON object with the columns in sorted order, null columns left
//! out, integers and timestamps (µs) as JSON integers, text as JSON strings,
//! lists of structs as arrays of objects (sorted keys, nulls left out). The
//! `event_hash` column itself is not part of it. There are no floats, so the
//! text is also the RFC 8785 (JCS) form of the same object.

use super::merkle::{Hash, leaf_hash};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ListArray, PrimitiveArray, RecordBatch, StringArray};
use arrow_schema::DataType;
// strings as serde_json writes them, most copied whole after an eight-byte check
use sluice_plugin_sdk::json::write_str;

pub const EVENT_HASH: &str = "event_hash";

fn push_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `"name":`, as it is written before a value.
fn key(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 3);
    write_str(&mut out, name);
    out.push(b':');
    out
}

/// One column, looked up and downcast once per batch rather than per row.
enum Column<'a> {
    Int32(&'a PrimitiveArray<Int32Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
    Time(&'a PrimitiveArray<TimestampMicrosecondType>),
    Text(&'a StringArray),
    /// A list of structs of strings (`resources`, `redactions`), with the
    /// struct's fields in sorted order.
    Structs(&'a ListArray, Vec<(Vec<u8>, &'a StringArray)>),
}

/// The columns of a batch in canonical order (sorted by name), without
/// `event_hash`, each with its key written out: worked out once per batch,
/// then [`Canonical::write`] for each row.
pub(crate) struct Canonical<'a> {
    columns: Vec<(Vec<u8>, Column<'a>)>,
}

impl<'a> Canonical<'a> {
    /// All columns of `batch` but `event_hash`.
    pub(crate) fn new(batch: &'a RecordBatch) -> Self {
        Self::with(batch, |_| true)
    }

    /// The columns of `batch` that `keep` accepts, never `event_hash`.
    pub(crate) fn with(batch: &'a RecordBatch, keep: impl Fn(&str) -> bool) -> Self {
        let schema = batch.schema();
        let mut names: Vec<(usize, &str)> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.name().as_str()))
            .filter(|(_, name)| *name != EVENT_HASH && keep(name))
            .collect();
        names.sort_by_key(|(_, name)| *name);
        let columns = names
            .into_iter()
            .map(|(i, name)| {
                let col = batch.column(i);
                let column = match col.data_type() {
                    DataType::Int32 => Column::Int32(col.as_primitive()),
                    DataType::Int64 => Column::Int64(col.as_primitive()),
                    DataType::Timestamp(..) => Column::Time(col.as_primitive()),
                    DataType::Utf8 => Column::Text(col.as_string()),
                    DataType::List(_) => {
                        let list = col.as_list::<i32>();
                        let items = list.values().as_struct();
                        let mut fields: Vec<(Vec<u8>, &StringArray)> = items
                            .fields()
                            .iter()
                            .zip(items.columns())
                            .map(|(f, c)| (key(f.name()), c.as_string::<i32>()))
                            .collect();
                        fields.sort_by(|a, b| a.0.cmp(&b.0));
                        Column::Structs(list, fields)
                    }
                    other => unreachable!("the file schema has no {other} column"),
                };
                (key(name), column)
            })
            .collect();
        Canonical { columns }
    }

    /// The canonical text of row `row`.
    pub(crate) fn text(&self, row: usize) -> String {
        let mut out = Vec::with_capacity(1024);
        self.write(row, &mut out);
        String::from_utf8(out).expect("JSON text of strings is UTF-8")
    }

    /// Appends the canonical text of row `row` to `out`.
    pub(crate) fn write(&self, row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (key, column) in &self.columns {
            let valid = match column {
                Column::Int32(c) => c.is_valid(row),
                Column::Int64(c) => c.is_valid(row),
                Column::Time(c) => c.is_valid(row),
                Column::Text(c) => c.is_valid(row),
                Column::Structs(c, _) => c.is_valid(row),
            };
            if !valid {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            match column {
                Column::Int32(c) => push_int(out, c.value(row).into()),
                Column::Int64(c) => push_int(out, c.value(row)),
                Column::Time(c) => push_int(out, c.value(row)),
                Column::Text(c) => write_str(out, c.value(row)),
                Column::Structs(list, fields) => {
                    let offsets = list.value_offsets();
                    out.push(b'[');
                    for item in offsets[row] as usize..offsets[row + 1] as usize {
                        if item > offsets[row] as usize {
                            out.push(b',');
                        }
                        write_struct(out, fields, item);
                    }
                    out.push(b']');
                }
            }
        }
        out.push(b'}');
    }
}

/// One struct of a list: an object with its non-null fields in sorted order.
fn write_struct(out: &mut Vec<u8>, fields: &[(Vec<u8>, &StringArray)], item: usize) {
    out.push(b'{');
    let mut first = true;
    for (key, col) in fields {
        if col.is_null(item) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(key);
        write_str(out, col.value(item));
    }
    out.push(b'}');
}

/// Rows hashed together by one thread of the pool.
const HASH_CHUNK_ROWS: usize = 128;

/// The RFC 9162 leaf hash of every row's canonical text, in row order; on
/// the threads of the current rayon pool when there are many rows.
pub fn event_hashes(batch: &RecordBatch) -> Vec<Hash> {
    use rayon::prelude::*;
    let canonical = Canonical::new(batch);
    (0..batch.num_rows())
        .into_par_iter()
        .with_min_len(HASH_CHUNK_ROWS)
        .map_init(
            || Vec::with_capacity(2048),
            |text, row| {
                text.clear();
                canonical.write(row, text);
                leaf_hash(text)
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{BatchBuilder, StreamSchema, check_event, file_batch};

    /// The canonical form is what every archived `event_hash` was taken over:
    /// it may never change. These hashes pin it for every kind of column:
    /// integers, timestamps, text with escapes, lists of structs with null
    /// fields, an empty list, null columns, and a stream's extra columns.
    #[test]
    fn the_canonical_form_of_every_kind_of_column_is_pinned() {
        let schema = StreamSchema::new(vec![("extra_n".into(), crate::schema::Kind::Int64)]);
        let events = [
            r#"{"time":"2026-11-01T13:00:00.123456Z","class_uid":3002,"severity_id":2,"actor_user_name":"al\"ice\n\u00e9\u2028","extra_n":-5,
                "resources":[{"type":"pod","name":"a"},{"uid":"u1"}],
                "redactions":[{"path":"message","rule":"jwt","action":"mask"}],"message":"m","unmapped":{"z":[1,{"y":null}]}}"#,
            r#"{"time":1793538000000000,"resources":[]}"#,
        ];
        let mut builder = BatchBuilder::new(&schema);
        for (i, e) in events.iter().enumerate() {
            builder.push(check_event(e, 1_700_000_000_000_000 + i as i64, "auth", &schema).unwrap());
        }
        let (batch, hashes) = file_batch(builder.finish(), 41, &schema);
        let canonical = Canonical::new(&batch);
        for row in 0..batch.num_rows() {
            println!("{}", canonical.text(row));
        }
        let hex: Vec<String> = hashes.iter().map(hex::encode).collect();
        assert_eq!(
            hex,
            [
                "f82f5d733dd4123d0ad65e67076170169393e98ae731c668a98b2b1bc40a16c5",
                "b9cb627e3c24bf7a195239640876794e764f1fedc2936bbdef6d3377e4d119e4"
            ]
        );
    }
}
