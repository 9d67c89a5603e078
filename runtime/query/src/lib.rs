//! `sluice query ARCHIVE "SQL"`: SQL over a sluice archive with Apache
//! DataFusion, for a responder who has nothing else installed.
//!
//! Every stream folder of the archive (`<archive>/<stream>/`, Hive partitions
//! such as `event_day=YYYYMMDD/hour=HH`) is a table named after the stream,
//! `_sluice` and `_volume` included; `events` is a view over every stream whose
//! name does not start with `_`, column by column (a column a stream lacks is
//! NULL there) — the same `events` as `examples/reports/run.py`. A WHERE on a
//! partition column (`event_day`, `hour`, or a stream's own) skips the folders
//! it excludes, and Parquet statistics skip row groups (e.g. on `time`).
//!
//! The archive is a local folder or `s3://bucket/prefix` (credentials and
//! endpoint from the `AWS_*` environment, as object_store reads them).

use anyhow::{Context, bail};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
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
    /// One JSON object per row.
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
    runtime.block_on(async {
        let ctx = context(archive).await?;
        let df = ctx.sql(sql).await.context("the query does not plan")?;
        let schema = Arc::new(df.schema().as_arrow().clone());
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
                write_text(format, &batches, std::io::BufWriter::new(file))?;
            }
            (format, None) => write_text(format, &batches, std::io::stdout().lock())?,
        }
        Ok(rows)
    })
}

fn write_text(format: Format, batches: &[RecordBatch], mut out: impl Write) -> anyhow::Result<()> {
    match format {
        Format::Table => writeln!(out, "{}", datafusion::arrow::util::pretty::pretty_format_batches(batches)?)?,
        Format::Csv => {
            let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut out);
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
        let url = ListingTableUrl::parse(format!("{}{stream}/", root.as_str()))?;
        // The stream's partition keys, from the path of one of its files.
        let first = store
            .list(Some(&url.prefix().clone()))
            .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
            .try_next()
            .await?;
        let Some(first) = first else { continue };
        let keys: Vec<(String, DataType)> = first
            .location
            .prefix_match(url.prefix())
            .into_iter()
            .flatten()
            .filter_map(|part| part.as_ref().split_once('=').map(|(k, _)| k.to_string()))
            .map(|key| {
                let kind = if key == "event_day" { DataType::Int64 } else { DataType::Utf8 };
                (key, kind)
            })
            .collect();
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(keys);
        let schema = options.infer_schema(&ctx.state(), &url).await?;
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
        ctx.register_table(stream.as_str(), Arc::new(ListingTable::try_new(config)?))?;
        if !stream.starts_with('_') {
            events.push(stream.clone());
        }
    }
    register_events(&ctx, &events).await?;
    Ok(ctx)
}

/// `events`: the streams, one after the other, column by column.
async fn register_events(ctx: &SessionContext, streams: &[String]) -> anyhow::Result<()> {
    let mut tables = Vec::new();
    let mut columns: Vec<(String, DataType)> = Vec::new();
    for stream in streams {
        let df = ctx.table(stream.as_str()).await?;
        for field in df.schema().fields() {
            if !columns.iter().any(|(name, _)| name == field.name()) {
                columns.push((field.name().clone(), field.data_type().clone()));
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
    Ok(ListingTableUrl::parse(format!("{}/", path.display()))?)
}
