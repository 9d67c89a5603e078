//! The canonical encoding of one event row, which its `event_hash` is taken
//! over: a JSON object with the columns in sorted order, null columns left
//! out, integers and timestamps (µs) as JSON integers, text as JSON strings,
//! lists of structs as arrays of objects (sorted keys, nulls left out). The
//! `event_hash` column itself is not part of it. There are no floats, so the
//! text is also the RFC 8785 (JCS) form of the same object.

use super::merkle::{Hash, leaf_hash};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::DataType;

pub const EVENT_HASH: &str = "event_hash";

fn push_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to memory cannot fail");
}

fn push_int(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    write!(out, "{v}").expect("writing to memory cannot fail");
}

fn push_struct(out: &mut Vec<u8>, s: &StructArray, i: usize) {
    let mut fields: Vec<(usize, &str)> = s.fields().iter().enumerate().map(|(j, f)| (j, f.name().as_str())).collect();
    fields.sort_by_key(|(_, n)| *n);
    out.push(b'{');
    let mut first = true;
    for (j, name) in fields {
        let col = s.column(j);
        if col.is_null(i) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        push_str(out, name);
        out.push(b':');
        push_str(out, col.as_string::<i32>().value(i));
    }
    out.push(b'}');
}

/// The columns of a file batch in canonical order (sorted by name), without
/// `event_hash`: worked out once per batch, not per row.
pub(crate) fn canonical_order(batch: &RecordBatch) -> Vec<(usize, String)> {
    let mut columns: Vec<(usize, String)> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != EVENT_HASH)
        .map(|(i, f)| (i, f.name().clone()))
        .collect();
    columns.sort_by(|a, b| a.1.cmp(&b.1));
    columns
}

/// The canonical text of row `row`, columns in [`canonical_order`].
pub(crate) fn text_in_order(batch: &RecordBatch, row: usize, columns: &[(usize, String)]) -> String {
    let mut out = Vec::with_capacity(1024);
    write_in_order(batch, row, columns, &mut out);
    String::from_utf8(out).expect("JSON text of strings is UTF-8")
}

/// Appends the canonical text of row `row` to `out`.
fn write_in_order(batch: &RecordBatch, row: usize, columns: &[(usize, String)], out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (i, name) in columns {
        let col = batch.column(*i);
        if col.is_null(row) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        push_str(out, name);
        out.push(b':');
        match col.data_type() {
            DataType::Int32 => push_int(out, col.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => push_int(out, col.as_primitive::<Int64Type>().value(row)),
            DataType::Timestamp(..) => push_int(out, col.as_primitive::<TimestampMicrosecondType>().value(row)),
            DataType::Utf8 => push_str(out, col.as_string::<i32>().value(row)),
            DataType::List(_) => {
                let items = col.as_list::<i32>().value(row);
                let items = items.as_struct();
                out.push(b'[');
                for j in 0..items.len() {
                    if j > 0 {
                        out.push(b',');
                    }
                    push_struct(out, items, j);
                }
                out.push(b']');
            }
            other => unreachable!("the file schema has no {other} column"),
        }
    }
    out.push(b'}');
}

/// The RFC 9162 leaf hash of every row's canonical text, in row order.
pub fn event_hashes(batch: &RecordBatch) -> Vec<Hash> {
    let columns = canonical_order(batch);
    let mut text = Vec::with_capacity(2048);
    (0..batch.num_rows())
        .map(|row| {
            text.clear();
            write_in_order(batch, row, &columns, &mut text);
            leaf_hash(&text)
        })
        .collect()
}
