//! Deployment-wide settings of the dlp plugin (the gateway's `[dlp]` config) and the
//! [`Dlp`] resource through which the plugin gets them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use hoop_core::ConfigError;

use crate::engine::{CustomType, DlpError, Engine, EngineConfig, Style, builtin_types};

/// Engines kept per distinct `redact_types` list before the cache starts over.
const ENGINE_CACHE: usize = 256;

/// Settings shared by every connection of a deployment: masking styles, custom info types
/// and the key of the `hash` style.
///
/// Deserialises from the gateway's `[dlp]` table:
///
/// ```toml
/// [dlp]
/// default_style = "redact"                      # redact | mask | partial | hash
/// styles = { CREDIT_CARD_NUMBER = "partial" }   # per info type
///
/// [[dlp.custom_types]]
/// name = "EMPLOYEE_ID"
/// regex = "EMP-[0-9]{6}"
///
/// [[dlp.custom_types]]
/// name = "PROJECT_CODENAME"
/// keywords = ["bluebird", "nightjar"]
/// case_insensitive = true
/// ```
///
/// Its `Debug` never shows the hash key.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlpSettings {
    /// Style of every info type without an entry in `styles`.
    #[serde(default)]
    pub default_style: Style,
    /// Per-type styles; they apply on the connections that mask that type.
    #[serde(default)]
    pub styles: BTreeMap<String, Style>,
    /// Info types defined by this deployment; a connection masks one when its
    /// `redact_types` names it.
    #[serde(default)]
    pub custom_types: Vec<CustomTypeConfig>,
    /// Key of the `hash` style (the gateway derives it from its secret key, so tags are
    /// stable within a deployment). Never read from config.
    #[serde(skip)]
    pub hash_key: Vec<u8>,
}

impl std::fmt::Debug for DlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlpSettings")
            .field("default_style", &self.default_style)
            .field("styles", &self.styles)
            .field("custom_types", &self.custom_types)
            .field("hash_key", &crate::engine::RedactedKey(&self.hash_key))
            .finish()
    }
}

/// A custom info type as configured: a regex, or whole-word keywords.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTypeConfig {
    /// UPPER_SNAKE_CASE name, distinct from the built-in types.
    pub name: String,
    /// A regex (Rust `regex` syntax) matched within one line.
    #[serde(default)]
    pub regex: Option<String>,
    /// Keywords matched as whole words.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Match the keywords ignoring ASCII case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// What it detects, for listings.
    #[serde(default)]
    pub description: Option<String>,
    /// A value it detects, for listings.
    #[serde(default)]
    pub example: Option<String>,
}

impl CustomTypeConfig {
    fn to_engine(&self) -> CustomType {
        CustomType {
            name: self.name.clone(),
            regex: self.regex.clone(),
            keywords: self.keywords.clone(),
            case_insensitive: self.case_insensitive,
        }
    }
}

/// One info type as listed by `DlpService.ListInfoTypes` and `hoop dlp types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoTypeView {
    /// Name.
    pub name: String,
    /// What it detects.
    pub description: String,
    /// A value it detects.
    pub example: String,
    /// Defined by the deployment rather than built in.
    pub custom: bool,
    /// The style it is masked with.
    pub style: Style,
    /// The example once masked.
    pub masked_example: String,
}

/// Whether `name` could name a custom type (UPPER_SNAKE_CASE).
pub(crate) fn is_custom_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl DlpSettings {
    /// No custom types, every type redacted, no hash key.
    pub const EMPTY: DlpSettings = DlpSettings {
        default_style: Style::Redact,
        styles: BTreeMap::new(),
        custom_types: Vec::new(),
        hash_key: Vec::new(),
    };

    /// Every name a connection's `redact_types` may use: the built-in types (sorted), then
    /// the custom ones.
    pub fn valid_names(&self) -> Vec<String> {
        let mut names: Vec<String> = builtin_types().iter().map(|t| t.name.to_owned()).collect();
        names.sort();
        names.extend(self.custom_types.iter().map(|c| c.name.clone()));
        names
    }

    /// Checks the settings, naming the key at fault relative to the `[dlp]` table (e.g.
    /// `custom_types[1].regex`, `styles.SHOE_SIZE`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (i, custom) in self.custom_types.iter().enumerate() {
            if self.custom_types[..i].iter().any(|c| c.name == custom.name) {
                return Err(ConfigError::field(
                    format!("custom_types[{i}].name"),
                    format!("custom info type `{}` is defined twice", custom.name),
                ));
            }
            let single = EngineConfig {
                types: vec![custom.name.clone()],
                custom: vec![custom.to_engine()],
                ..EngineConfig::default()
            };
            if let Err(err) = Engine::new(single) {
                let key = match err {
                    DlpError::InvalidCustomName { .. } => format!("custom_types[{i}].name"),
                    DlpError::InvalidRegex { .. } => format!("custom_types[{i}].regex"),
                    _ => format!("custom_types[{i}]"),
                };
                return Err(ConfigError::field(key, err.to_string()));
            }
        }
        let valid = self.valid_names();
        for name in self.styles.keys() {
            if !valid.contains(name) {
                return Err(ConfigError::field(
                    format!("styles.{name}"),
                    format!(
                        "unknown info type `{name}`; valid types: {}",
                        valid.join(", ")
                    ),
                ));
            }
        }
        let uses_hash =
            self.default_style == Style::Hash || self.styles.values().any(|s| *s == Style::Hash);
        if uses_hash && self.hash_key.is_empty() {
            return Err(ConfigError::field(
                "default_style",
                "the `hash` style needs a hash key",
            ));
        }
        self.engine(&valid)
            .map(drop)
            .map_err(|e| ConfigError::new(None, e.to_string()))
    }

    /// An engine masking `types` with these settings: the styles and custom types of the
    /// other types are left out.
    ///
    /// # Errors
    /// [`DlpError`] for an unknown type or bad settings.
    pub fn engine(&self, types: &[String]) -> Result<Engine, DlpError> {
        let config = EngineConfig {
            types: types.to_vec(),
            default_style: self.default_style,
            styles: self
                .styles
                .iter()
                .filter(|(name, _)| types.contains(name))
                .map(|(name, style)| (name.clone(), *style))
                .collect(),
            custom: self
                .custom_types
                .iter()
                .filter(|c| types.contains(&c.name))
                .map(CustomTypeConfig::to_engine)
                .collect(),
            hash_key: self.hash_key.clone(),
        };
        Engine::new(config)
    }

    /// The style `name` is masked with.
    pub fn style_of(&self, name: &str) -> Style {
        self.styles.get(name).copied().unwrap_or(self.default_style)
    }

    /// Every info type with its description, example and style, sorted by name.
    pub fn info_types(&self) -> Vec<InfoTypeView> {
        let mut out: Vec<InfoTypeView> = builtin_types()
            .iter()
            .map(|t| self.view(t.name, t.description, t.example, false))
            .collect();
        for custom in &self.custom_types {
            out.push(self.view(
                &custom.name,
                custom.description.as_deref().unwrap_or("custom info type"),
                custom.example.as_deref().unwrap_or(""),
                true,
            ));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn view(&self, name: &str, description: &str, example: &str, custom: bool) -> InfoTypeView {
        let masked_example = match self.engine(&[name.to_owned()]) {
            Ok(engine) if !example.is_empty() => {
                String::from_utf8_lossy(&engine.redact(example.as_bytes()).output).into_owned()
            }
            _ => String::new(),
        };
        InfoTypeView {
            name: name.to_owned(),
            description: description.to_owned(),
            example: example.to_owned(),
            custom,
            style: self.style_of(name),
            masked_example,
        }
    }
}

/// What the dlp plugin gets from its host ([`hoop_core::Resources`]): the deployment's
/// settings, and engines built from them, kept per `redact_types` list so that opening a
/// session does not rebuild one.
#[derive(Debug, Default)]
pub struct Dlp {
    settings: DlpSettings,
    engines: Mutex<HashMap<Vec<String>, Engine>>,
}

impl Dlp {
    /// Checks `settings` and wraps them.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key at fault (see [`DlpSettings::check`]).
    pub fn new(settings: DlpSettings) -> Result<Self, ConfigError> {
        settings.check()?;
        Ok(Self {
            settings,
            engines: Mutex::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &DlpSettings {
        &self.settings
    }

    /// The engine masking `types`, built once per distinct list.
    ///
    /// # Errors
    /// [`DlpError`] for an unknown type.
    pub fn engine(&self, types: &[String]) -> Result<Engine, DlpError> {
        let mut engines = self
            .engines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(engine) = engines.get(types) {
            return Ok(engine.clone());
        }
        let engine = self.settings.engine(types)?;
        if engines.len() >= ENGINE_CACHE {
            engines.clear();
        }
        engines.insert(types.to_vec(), engine.clone());
        Ok(engine)
    }
}

/// The key of the `hash` style for a deployment whose secret is `secret` (the gateway's
/// `secret_key`): HMAC-SHA256 of a fixed label under the secret, so the tags are stable
/// within the deployment, differ between deployments, and reveal nothing of the secret.
pub fn hash_key_from_secret(secret: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    match <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(b"hoop-rs dlp hash key v1");
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => Vec::new(),
    }
}
