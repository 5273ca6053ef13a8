//! The registry of plugin factories.
//!
//! Plugin crates add their factory to [`PLUGINS`] at compile time with
//! [`register_plugin!`](crate::register_plugin); [`Registry::builtin`] collects them. A binary
//! must reference each plugin crate it wants (e.g. through its registration static) so the
//! linker keeps the registration.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::chain::Chain;
use crate::config::PluginConfig;
use crate::context::Resources;
use crate::error::Error;
use crate::plugin::{Plugin, PluginFactory};

/// Every factory registered with [`register_plugin!`](crate::register_plugin) in the crates
/// linked into the binary.
#[linkme::distributed_slice]
pub static PLUGINS: [&'static dyn PluginFactory];

/// Registers a plugin factory in the compile-time registry.
///
/// ```
/// # use std::sync::Arc;
/// # use hoop_core::{Plugin, PluginConfig, PluginDescriptor, PluginFactory, ConfigError, Resources};
/// #[derive(Debug)]
/// struct NoopFactory;
/// #[derive(Debug)]
/// struct Noop;
/// impl Plugin for Noop { fn name(&self) -> &str { "noop" } }
///
/// static DESCRIPTOR: PluginDescriptor = PluginDescriptor::new("noop", "does nothing");
///
/// impl PluginFactory for NoopFactory {
///     fn descriptor(&self) -> &PluginDescriptor { &DESCRIPTOR }
///     fn build(&self, _: &PluginConfig, _: &Resources) -> Result<Arc<dyn Plugin>, ConfigError> {
///         Ok(Arc::new(Noop))
///     }
/// }
///
/// hoop_core::register_plugin!(pub static NOOP_REGISTRATION = NoopFactory);
///
/// let registry = hoop_core::Registry::builtin().unwrap();
/// assert!(registry.get("noop").is_some());
/// ```
#[macro_export]
macro_rules! register_plugin {
    ($vis:vis static $name:ident = $factory:expr) => {
        #[$crate::__private::linkme::distributed_slice($crate::registry::PLUGINS)]
        #[linkme(crate = $crate::__private::linkme)]
        $vis static $name: &'static dyn $crate::PluginFactory = &$factory;
    };
}

/// A set of plugin factories, looked up by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, &'static dyn PluginFactory>,
}

impl Registry {
    /// The factories registered at compile time.
    ///
    /// # Errors
    /// [`Error::DuplicatePlugin`] if two factories share a name.
    pub fn builtin() -> Result<Self, Error> {
        Self::from_factories(PLUGINS.iter().copied())
    }

    /// A registry of the given factories (for embedders who do not use the global one).
    ///
    /// # Errors
    /// [`Error::DuplicatePlugin`] if two factories share a name.
    pub fn from_factories(
        factories: impl IntoIterator<Item = &'static dyn PluginFactory>,
    ) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for factory in factories {
            let name = factory.descriptor().name;
            if map.insert(name, factory).is_some() {
                return Err(Error::DuplicatePlugin(name.to_owned()));
            }
        }
        Ok(Self { factories: map })
    }

    /// The factory named `name`.
    pub fn get(&self, name: &str) -> Option<&'static dyn PluginFactory> {
        self.factories.get(name).copied()
    }

    /// Every factory, in chain order (then by name).
    pub fn factories(&self) -> Vec<&'static dyn PluginFactory> {
        let mut all: Vec<_> = self.factories.values().copied().collect();
        all.sort_by_key(|f| (f.descriptor().order, f.descriptor().name));
        all
    }

    /// Names of every plugin, in chain order.
    pub fn names(&self) -> Vec<&'static str> {
        self.factories()
            .into_iter()
            .map(|f| f.descriptor().name)
            .collect()
    }

    /// Builds the chain for a connection from its attachments (plugin name and config), with
    /// the host's `resources`: only active plugins are built, sorted into chain order.
    ///
    /// # Errors
    /// [`Error::UnknownPlugin`] or [`Error::Config`] naming the plugin at fault.
    pub fn build_chain<'a>(
        &self,
        attachments: impl IntoIterator<Item = (&'a str, &'a PluginConfig)>,
        resources: &Resources,
    ) -> Result<Chain, Error> {
        let mut built: Vec<(i16, &'static str, Arc<dyn Plugin>)> = Vec::new();
        for (name, config) in attachments {
            let factory = self
                .get(name)
                .ok_or_else(|| Error::UnknownPlugin(name.to_owned()))?;
            let config_error = |source| Error::Config {
                plugin: name.to_owned(),
                source,
            };
            factory
                .validate_with(config, resources)
                .map_err(config_error)?;
            if !factory.activation(config).is_active() {
                continue;
            }
            let plugin = factory.build(config, resources).map_err(config_error)?;
            let descriptor = factory.descriptor();
            built.push((descriptor.order, descriptor.name, plugin));
        }
        built.sort_by_key(|(order, name, _)| (*order, *name));
        Ok(Chain::new(built.into_iter().map(|(_, _, p)| p).collect()))
    }
}
