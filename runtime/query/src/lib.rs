//! `sluice query ARCHIVE "SQL"`: SQL over a sluice archive with Apache
//! DataFusion, for a responder who has nothing else installed.
//!
//! Every stream folder of the archive that holds files (`<archive>/<stream>/`,
//! Hive partitions such as `event_day=YYYYMMDD/hour=HH`) is a table named after
//! the stream, `_sluice` and `_volume` included; `events` is a view over every
//! stream whose name does not start with `_`, column by column (a column a
//! stream lacks is NULL there; one typed differently by two streams takes a
//! type both cast to: a wider number, else text). A WHERE on a partition key
//! (`event_day`, `hour`, `tenant_uid`, ...) skips the folders it excludes, and
//! Parquet statistics skip row groups (e.g. on `time`).
//!
//! The archive is a local folder or `s3://bucket/prefix` (credentials and
//! endpoint from the `AWS_*` environment, as object_store reads them).

use anyhow::{Context, bail};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::prelude::*;
use futures::TryStreamExt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row (NULLs written out).
    Json,
    /// A Parquet file (needs an output path).
    Parquet,
}

/// Folders of an archive that are not streams.
const NOT_STREAMS: &[&str] = &["_state", "_integrity", "_quarantine"];

/// Runs `sql` over the archive and writes the result to `out` (a file for
/// Parquet; else standard output when `None`). Returns the number of rows.
pub fn run(archive: &str, sql: &str, format: Format, out: Option<&Path>) -> anyhow::Result<usize> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if format == Format::Parquet && out.is_none() {
        bail!("--format parquet needs --out FILE");
    }
    runtime.block_on(async {
        let ctx = context(archive).await.with_context(|| format!("cannot read the archive {archive}"))?;
        let df = ctx.sql(sql).await.context("the query does not plan")?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        if format == Format::Csv
            && let Some(nested) = schema.fields().iter().find(|f| f.data_type().is_nested())
        {
            bail!(
                "CSV cannot hold column `{}` ({}): leave it out of the SELECT, or use --format json or parquet",
                nested.name(),
                nested.data_type()
            );
        }
        let batches = df.collect().await.context("the query failed")?;
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        match (format, out) {
            (Format::Parquet, None) => bail!("--format parquet needs --out FILE"),
            (Format::Parquet, Some(path)) => {
                let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
                let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
                for batch in &batches {
                    writer.write(batch)?;
                }
                writer.close()?;
            }
            (format, Some(path)) => {
                let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
                write_text(format, &schema, &batches, std::io::BufWriter::new(file))?;
            }
            (format, None) => write_text(format, &schema, &batches, std::io::stdout().lock())?,
        }
        Ok(rows)
    })
}

fn write_text(format: Format, schema: &SchemaRef, batches: &[RecordBatch], mut out: impl Write) -> anyhow::Result<()> {
    match format {
        Format::Table => writeln!(out, "{}", datafusion::arrow::util::pretty::pretty_format_batches(batches)?)?,
        Format::Csv => {
            let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?; // the header alone
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow_json::writer::LineDelimited>(&mut out);
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
        }
        Format::Parquet => unreachable!("Parquet is written to a file"),
    }
    out.flush()?;
    Ok(())
}

/// A session with every stream of the archive registered, and `events`.
pub async fn context(archive: &str) -> anyhow::Result<SessionContext> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    let root = root_url(&ctx, archive)?;
    let store = ctx.runtime_env().object_store(&root)?;
    let listing = store
        .list_with_delimiter(Some(root.prefix()))
        .await
        .with_context(|| format!("cannot list the archive {archive}"))?;
    let mut streams: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .filter(|name| !name.starts_with('.') && !NOT_STREAMS.contains(&name.as_str()))
        .collect();
    streams.sort();
    if streams.is_empty() {
        bail!("{archive} holds no streams (is it a sluice archive?)");
    }

    let mut events = Vec::new();
    for stream in &streams {
        if register_stream(&ctx, &store, &root, stream).await.with_context(|| format!("stream `{stream}`"))?
            && !stream.starts_with('_')
        {
            events.push(stream.clone());
        }
    }
    register_events(&ctx, &events).await?;
    Ok(ctx)
}

/// Registers one stream folder as a table; false when it has no files yet.
///
/// Partition keys come from the files' paths, and all of them are partition
/// columns (pruned by a WHERE). `event_day` and `hour` live only there; a key
/// that is also a column inside the files (`tenant_uid`, `class_uid`, ...)
/// keeps the files' type, and the path's no-value marker reads as NULL.
async fn register_stream(
    ctx: &SessionContext,
    store: &Arc<dyn object_store::ObjectStore>,
    root: &ListingTableUrl,
    stream: &str,
) -> anyhow::Result<bool> {
    let url = ListingTableUrl::try_new(AsRef::<url::Url>::as_ref(root).join(&format!("{stream}/"))?, None)?;
    let files: Vec<object_store::ObjectMeta> = store
        .list(Some(url.prefix()))
        .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
        .try_collect()
        .await?;
    let mut layouts: Vec<Vec<String>> = Vec::new();
    for file in &files {
        let keys: Vec<String> = file
            .location
            .prefix_match(url.prefix())
            .into_iter()
            .flatten()
            .filter_map(|part| part.as_ref().split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        if !layouts.contains(&keys) {
            layouts.push(keys);
        }
    }
    let keys = match layouts.as_slice() {
        [] => {
            eprintln!("note: stream `{stream}` has no files yet; it is not a table");
            return Ok(false);
        }
        [keys] => keys.clone(),
        several => bail!(
            "its files are in {} partition layouts ({}); `sluice query` reads one layout per stream \
             (DuckDB's read_parquet reads any)",
            several.len(),
            several.iter().map(|k| k.join("/")).collect::<Vec<_>>().join(", ")
        ),
    };
    let format = || ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let file_schema = format().infer_schema(&ctx.state(), &url).await?;
    // Every key of the path is a partition column (DataFusion matches the
    // path's segments in order); a key the files also hold is taken out of the
    // file schema and restored below from the path, typed as in the files.
    let in_files: Vec<(String, DataType)> = keys
        .iter()
        .filter_map(|k| file_schema.field_with_name(k).ok().map(|f| (k.clone(), f.data_type().clone())))
        .collect();
    let partitions: Vec<(String, DataType)> = keys
        .iter()
        .map(|key| {
            let from_path_only = !in_files.iter().any(|(k, _)| k == key);
            let kind = if key == "event_day" && from_path_only { DataType::Int64 } else { DataType::Utf8 };
            (key.clone(), kind)
        })
        .collect();
    let table_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
        file_schema
            .fields()
            .iter()
            .filter(|f| !in_files.iter().any(|(k, _)| k == f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let options = format().with_table_partition_cols(partitions);
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(table_schema);
    let table = Arc::new(ListingTable::try_new(config)?);
    if in_files.is_empty() {
        ctx.register_table(TableReference::bare(stream), table)?;
        return Ok(true);
    }
    // The stream's columns in the files' order, each path-borne key back in its
    // place: `__HIVE_DEFAULT_PARTITION__` (no value) as NULL, the rest cast.
    let df = ctx.read_table(table)?;
    let mut select: Vec<Expr> = Vec::new();
    for field in file_schema.fields() {
        let name = field.name();
        select.push(match in_files.iter().find(|(k, _)| k == name) {
            None => ident(name),
            Some((_, kind)) => when(ident(name).eq(lit(HIVE_NULL)), lit(ScalarValue::try_from(kind)?))
                .otherwise(cast(ident(name), kind.clone()))?
                .alias(name),
        });
    }
    for key in keys.iter().filter(|k| file_schema.field_with_name(k).is_err()) {
        select.push(ident(key));
    }
    ctx.register_table(TableReference::bare(stream), df.select(select)?.into_view())?;
    Ok(true)
}

/// How a path spells a partition key without a value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// `events`: the streams, one after the other, column by column.
async fn register_events(ctx: &SessionContext, streams: &[String]) -> anyhow::Result<()> {
    let mut tables = Vec::new();
    let mut columns: Vec<(String, DataType)> = Vec::new();
    for stream in streams {
        let df = ctx.table(TableReference::bare(stream.as_str())).await?;
        for field in df.schema().fields() {
            match columns.iter_mut().find(|(name, _)| name == field.name()) {
                None => columns.push((field.name().clone(), field.data_type().clone())),
                // streams that typed one column differently meet in a type both
                // cast to (a wider number, else text)
                Some((_, kind)) if kind != field.data_type() => {
                    let both_numbers = kind.is_numeric() && field.data_type().is_numeric();
                    *kind = match both_numbers {
                        true => comparison_coercion(kind, field.data_type()).unwrap_or(DataType::Utf8),
                        false => DataType::Utf8,
                    };
                }
                Some(_) => {}
            }
        }
        tables.push(df);
    }
    let mut union: Option<DataFrame> = None;
    for df in tables {
        let present = df.schema().clone();
        let select: Vec<Expr> = columns
            .iter()
            .map(|(name, kind)| match present.field_with_unqualified_name(name) {
                Ok(field) if field.data_type() == kind => ident(name),
                Ok(_) => cast(ident(name), kind.clone()).alias(name),
                Err(_) => lit(ScalarValue::try_from(kind).unwrap_or(ScalarValue::Null)).alias(name),
            })
            .collect();
        let df = df.select(select)?;
        union = Some(match union {
            None => df,
            Some(all) => all.union(df)?,
        });
    }
    if let Some(all) = union {
        ctx.register_table("events", all.into_view())?;
    }
    Ok(())
}

/// The archive's root as a listing URL (with a trailing slash), its object
/// store registered: a local folder, or `s3://bucket/prefix`.
fn root_url(ctx: &SessionContext, archive: &str) -> anyhow::Result<ListingTableUrl> {
    if let Some(rest) = archive.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or_default();
        if bucket.is_empty() {
            bail!("{archive}: no bucket");
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
        let url = url::Url::parse(&format!("s3://{bucket}"))?;
        ctx.register_object_store(&url, Arc::new(s3));
        return Ok(ListingTableUrl::parse(format!("{}/", archive.trim_end_matches('/')))?);
    }
    if archive.contains("://") {
        bail!("{archive}: `sluice query` reads a local folder or s3://bucket/prefix");
    }
    let path = Path::new(archive).canonicalize().with_context(|| format!("cannot open the archive {archive}"))?;
    // from a URL, not a string: `*`, `?` or `[` in a folder name are not globs
    let url = url::Url::from_directory_path(&path)
        .map_err(|()| anyhow::anyhow!("{} is not a folder path", path.display()))?;
    Ok(ListingTableUrl::try_new(url, None)?)
}
