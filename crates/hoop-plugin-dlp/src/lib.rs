//! The `dlp` plugin: masks sensitive data (info types) in session output, in-process and on
//! the stream.
//!
//! Present on every connection and configured only through the connection's
//! `redact_types`: active iff that list is non-empty. The config the gateway hands the
//! factory is `{"redact_types": [...]}`; deployment-wide settings (masking styles, custom
//! info types, the key of the `hash` style) come from the gateway's config as the [`Dlp`]
//! resource.
//!
//! The detection and masking live in [`engine`], usable on their own (e.g. by a proxy that
//! masks column values). The plugin keeps one [`StreamRedactor`](engine::StreamRedactor) per
//! output stream of a session: a value split across chunks is still masked, at most
//! [`MAX_HOLDBACK`](engine::MAX_HOLDBACK) bytes wait for the rest of a possible value, and
//! they are released after [`HOLDBACK`] of quiet output and when the stream ends. Counts
//! per info type go to the session's metrics as `dlp.<TYPE>`, with `dlp.masked_bytes`.
//!
//! It fails closed: if masking fails (or panics), the hook returns an error and the chain
//! ends the session without passing the chunk on.

pub mod engine;
mod settings;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use hoop_core::{
    Activation, AttachPolicy, Chunk, CloseReason, ConfigError, Implementation, ManagedField,
    Plugin, PluginConfig, PluginDescriptor, PluginError, PluginFactory, Resources, ResultRows,
    SessionCtx, Stream, Verdict,
};

use crate::engine::{Engine, StreamRedactor};
pub use crate::settings::{CustomTypeConfig, Dlp, DlpSettings, InfoTypeView, hash_key_from_secret};

/// Registry name of the plugin.
pub const NAME: &str = "dlp";

/// The connection field that configures the plugin: it is active iff the list is
/// non-empty.
pub const FIELD: &str = "redact_types";

/// The connection fields the plugin's config is made of: `redact_types`, under its own
/// name.
pub const MANAGED_FIELDS: &[ManagedField] = &[ManagedField::new(FIELD, FIELD)];

/// How long quiet output may stay held back waiting for the rest of a value.
pub const HOLDBACK: Duration = Duration::from_millis(50);

/// Metric prefix: `dlp.<INFO_TYPE>` counts masked values, `dlp.masked_bytes` their bytes.
pub const METRIC_PREFIX: &str = "dlp.";

static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new(
    NAME,
    "Masks sensitive data in session output (live data masking).",
)
.with_configuration(
    "managed by the connection's `redact_types` (info types); active iff non-empty",
    r#"{"redact_types":["EMAIL_ADDRESS","CREDIT_CARD_NUMBER"]}"#,
)
.with_attach(AttachPolicy::Managed {
    field: FIELD,
    fields: MANAGED_FIELDS,
})
.with_order(-100)
.with_implementation(Implementation::Complete);

/// The dlp plugin's config, derived from the connection's `redact_types`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlpConfig {
    /// Info types to mask.
    #[serde(default)]
    pub redact_types: Vec<String>,
}

impl DlpConfig {
    /// Parses the config and checks the names of `redact_types`: duplicates are refused,
    /// and, when `settings` are given, so is any name that is neither built in nor one of
    /// their custom types. Without settings (no deployment at hand) a custom-looking name
    /// is left for the build to check.
    fn checked(config: &PluginConfig, settings: Option<&DlpSettings>) -> Result<Self, ConfigError> {
        let parsed: Self = config.parse()?;
        let valid = settings.map(DlpSettings::valid_names);
        for (i, info_type) in parsed.redact_types.iter().enumerate() {
            let known = match &valid {
                Some(valid) => valid.iter().any(|v| v == info_type),
                None => {
                    engine::builtin_types().iter().any(|t| t.name == info_type)
                        || settings::is_custom_name(info_type)
                }
            };
            if !known {
                let valid = valid.clone().unwrap_or_else(|| {
                    let mut names: Vec<String> = engine::builtin_types()
                        .iter()
                        .map(|t| t.name.to_owned())
                        .collect();
                    names.sort();
                    names
                });
                return Err(ConfigError::field(
                    format!("{FIELD}[{i}]"),
                    format!(
                        "unknown info type `{info_type}`; valid types: {}",
                        valid.join(", ")
                    ),
                ));
            }
            if parsed.redact_types[..i].contains(info_type) {
                return Err(ConfigError::field(
                    format!("{FIELD}[{i}]"),
                    format!("info type `{info_type}` is listed twice"),
                ));
            }
        }
        Ok(parsed)
    }
}

/// Factory of the dlp plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct DlpFactory;

/// The dlp plugin on one connection.
#[derive(Debug)]
pub struct DlpPlugin {
    engine: Engine,
}

impl DlpPlugin {
    /// A plugin masking with `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// The info types this plugin masks.
    pub fn redact_types(&self) -> &[String] {
        self.engine.active_types()
    }
}

/// Per-session state: one redactor per output stream.
struct Redactors {
    stdout: StreamRedactor,
    stderr: StreamRedactor,
}

impl Redactors {
    fn of(&mut self, stream: Stream) -> Option<&mut StreamRedactor> {
        match stream {
            Stream::Stdout => Some(&mut self.stdout),
            Stream::Stderr => Some(&mut self.stderr),
            _ => None,
        }
    }
}

fn redactors(cx: &mut SessionCtx) -> Result<&mut Redactors, PluginError> {
    cx.extensions
        .get_mut::<Redactors>()
        .ok_or_else(|| PluginError::new("dlp: output before the session opened"))
}

/// Per-session counts of values masked in result rows (database sessions).
#[derive(Default)]
struct RowCounts {
    counts: std::collections::BTreeMap<String, u64>,
    masked_bytes: u64,
}

/// Connection types whose output chunks a protocol-aware host renders from result rows it
/// passed through [`Plugin::on_rows`] first: already masked, recorded as they are.
const ROW_MASKED_TYPES: &[&str] = &["postgres"];

/// Runs `f` on the redactor, turning a panic into an error: the chunk is then not passed
/// on (fail closed) and the session ends with the reason.
fn masked(f: impl FnOnce(&mut Vec<u8>), capacity: usize) -> Result<Vec<u8>, PluginError> {
    let mut out = Vec::with_capacity(capacity);
    std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut out)))
        .map_err(|_| PluginError::new("dlp: the masking engine failed on this output"))?;
    Ok(out)
}

#[async_trait::async_trait]
impl Plugin for DlpPlugin {
    fn name(&self) -> &str {
        NAME
    }

    async fn on_open(&self, cx: &mut SessionCtx) -> Result<Verdict, PluginError> {
        cx.extensions.insert(Redactors {
            stdout: self.engine.stream(),
            stderr: self.engine.stream(),
        });
        Ok(Verdict::Allow)
    }

    async fn on_output(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        if ROW_MASKED_TYPES.contains(&cx.info().connection.kind.as_str()) {
            return Ok(Verdict::Allow);
        }
        // Taken out first: on any error the chunk is left empty, so nothing unmasked can
        // travel on even if a host ignored the error.
        let data = std::mem::take(&mut chunk.data);
        let Some(redactor) = redactors(cx)?.of(chunk.stream) else {
            chunk.data = data;
            return Ok(Verdict::Allow);
        };
        let out = masked(|out| redactor.push(&data, out), data.len() + 64)?;
        chunk.data = out.into();
        Ok(Verdict::Allow)
    }

    async fn on_rows(
        &self,
        cx: &mut SessionCtx,
        rows: &mut ResultRows,
    ) -> Result<Verdict, PluginError> {
        let mut counts = cx.extensions.remove::<RowCounts>().unwrap_or_default();
        let engine = &self.engine;
        let columns = &rows.columns;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut out = Vec::new();
            for row in &mut rows.rows {
                for (value, column) in row.iter_mut().zip(columns) {
                    if !column.text || column.masked {
                        continue;
                    }
                    let Some(v) = value.as_ref() else { continue };
                    out.clear();
                    let stats = engine.redact_into(v, &mut out);
                    if stats.masked_bytes > 0 || out.as_slice() != v.as_ref() {
                        *value = Some(bytes::Bytes::copy_from_slice(&out));
                        for (t, n) in stats.counts {
                            *counts.counts.entry(t).or_default() += n;
                        }
                        counts.masked_bytes += stats.masked_bytes;
                    }
                }
            }
        }));
        cx.extensions.insert(counts);
        if result.is_err() {
            // Fail closed: nothing of these rows may travel on.
            rows.rows.clear();
            return Err(PluginError::new(
                "dlp: the masking engine failed on these rows",
            ));
        }
        Ok(Verdict::Allow)
    }

    fn output_holdback(&self) -> Option<Duration> {
        Some(HOLDBACK)
    }

    async fn on_output_flush(
        &self,
        cx: &mut SessionCtx,
        chunk: &mut Chunk,
    ) -> Result<Verdict, PluginError> {
        let Some(redactor) = redactors(cx)?.of(chunk.stream) else {
            return Ok(Verdict::Allow);
        };
        if redactor.held() == 0 {
            return Ok(Verdict::Allow);
        }
        let released = masked(|out| redactor.flush(out), engine::MAX_HOLDBACK + 64)?;
        let mut data = Vec::with_capacity(chunk.data.len() + released.len());
        data.extend_from_slice(&chunk.data);
        data.extend_from_slice(&released);
        chunk.data = data.into();
        Ok(Verdict::Allow)
    }

    async fn on_close(&self, cx: &mut SessionCtx, _reason: &CloseReason) {
        // What is still held back when the session ends abruptly is dropped, not shown.
        let rows = cx.extensions.remove::<RowCounts>().unwrap_or_default();
        let Some(redactors) = cx.extensions.remove::<Redactors>() else {
            return;
        };
        let mut masked_bytes = rows.masked_bytes;
        for (info_type, n) in rows.counts {
            cx.metrics.add(format!("{METRIC_PREFIX}{info_type}"), n);
        }
        for redactor in [&redactors.stdout, &redactors.stderr] {
            for (info_type, n) in redactor.counts() {
                cx.metrics.add(format!("{METRIC_PREFIX}{info_type}"), n);
            }
            masked_bytes += redactor.masked_bytes();
        }
        cx.metrics
            .add(format!("{METRIC_PREFIX}masked_bytes"), masked_bytes);
    }
}

impl PluginFactory for DlpFactory {
    fn descriptor(&self) -> &PluginDescriptor {
        &DESCRIPTOR
    }

    fn validate(&self, config: &PluginConfig) -> Result<(), ConfigError> {
        DlpConfig::checked(config, None).map(drop)
    }

    fn validate_with(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<(), ConfigError> {
        let settings = resources.get::<Dlp>().map(Dlp::settings);
        DlpConfig::checked(config, Some(settings.unwrap_or(&DlpSettings::EMPTY))).map(drop)
    }

    fn activation(&self, config: &PluginConfig) -> Activation {
        match DlpConfig::checked(config, None) {
            Ok(c) if !c.redact_types.is_empty() => {
                Activation::Active(format!("masks {}", c.redact_types.join(", ")))
            }
            _ => Activation::Inactive(
                "no redact_types on the connection: set them to activate masking".to_owned(),
            ),
        }
    }

    fn build(
        &self,
        config: &PluginConfig,
        resources: &Resources,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let fallback;
        let dlp = match resources.get::<Dlp>() {
            Some(dlp) => dlp,
            None => {
                fallback = Dlp::default();
                &fallback
            }
        };
        let DlpConfig { redact_types } = DlpConfig::checked(config, Some(dlp.settings()))?;
        let engine = dlp
            .engine(&redact_types)
            .map_err(|e| ConfigError::field(FIELD, e.to_string()))?;
        Ok(Arc::new(DlpPlugin::new(engine)))
    }
}

hoop_core::register_plugin!(pub static REGISTRATION = DlpFactory);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(types: &[&str]) -> PluginConfig {
        PluginConfig::from_value(serde_json::json!({ "redact_types": types })).unwrap()
    }

    #[test]
    fn active_iff_types_are_set() {
        assert!(!DlpFactory.activation(&PluginConfig::empty()).is_active());
        assert!(!DlpFactory.activation(&config(&[])).is_active());
        let active = DlpFactory.activation(&config(&["EMAIL_ADDRESS"]));
        assert_eq!(active, Activation::Active("masks EMAIL_ADDRESS".into()));
    }

    #[test]
    fn unknown_info_types_are_named() {
        let err = DlpFactory
            .validate(&config(&["EMAIL_ADDRESS", "shoe_size"]))
            .unwrap_err();
        assert_eq!(err.field_path(), Some("redact_types[1]"));
        assert!(
            err.message()
                .starts_with("unknown info type `shoe_size`; valid types: AWS_ACCESS_KEY_ID"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let err = DlpFactory.validate(&config(&["URL", "URL"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.redact_types[1]: info type `URL` is listed twice"
        );
    }

    #[test]
    fn redact_types_is_the_managed_field() {
        let AttachPolicy::Managed { field, fields } = DlpFactory.descriptor().attach else {
            panic!("dlp is managed by the connection");
        };
        assert_eq!(field, FIELD);
        assert_eq!(fields, [ManagedField::new("redact_types", "redact_types")]);
    }
}
