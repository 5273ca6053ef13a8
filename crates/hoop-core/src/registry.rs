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
use crate::plugin::{AttachPolicy, Plugin, PluginFactory};

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
    /// Plugins whose policy is [`AttachPolicy::Required`] (e.g. `audit`) are in every chain,
    /// whatever the attachments say: one missing from them is built with its default
    /// (empty) config, so no session runs without them.
    ///
    /// # Errors
    /// [`Error::UnknownPlugin`] or [`Error::Config`] naming the plugin at fault.
    pub fn build_chain<'a>(
        &self,
        attachments: impl IntoIterator<Item = (&'a str, &'a PluginConfig)>,
        resources: &Resources,
    ) -> Result<Chain, Error> {
        let default_config = PluginConfig::empty();
        let attachments: Vec<(&str, &PluginConfig)> = attachments.into_iter().collect();
        let required = self
            .factories
            .values()
            .map(|f| f.descriptor())
            .filter(|d| d.attach == AttachPolicy::Required)
            .filter(|d| !attachments.iter().any(|(name, _)| *name == d.name))
            .map(|d| (d.name, &default_config));
        let mut built: Vec<(i16, &'static str, Arc<dyn Plugin>)> = Vec::new();
        for (name, config) in attachments.iter().copied().chain(required) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::plugin::PluginDescriptor;

    /// A plugin that does nothing but answer to its name.
    #[derive(Debug)]
    struct Named(&'static str);

    impl Plugin for Named {
        fn name(&self) -> &str {
            self.0
        }
    }

    /// A factory of [`Named`] plugins: a config may only hold `{"ok": true}`.
    #[derive(Debug)]
    struct Factory(PluginDescriptor);

    impl PluginFactory for Factory {
        fn descriptor(&self) -> &PluginDescriptor {
            &self.0
        }

        fn build(
            &self,
            config: &PluginConfig,
            _resources: &Resources,
        ) -> Result<Arc<dyn Plugin>, ConfigError> {
            if config.as_map().iter().any(|(k, v)| k != "ok" || v != true) {
                return Err(ConfigError::new(None, "only `ok: true` is allowed"));
            }
            Ok(Arc::new(Named(self.0.name)))
        }
    }

    static RECORDER: Factory = Factory(
        PluginDescriptor::new("recorder", "records")
            .with_attach(AttachPolicy::Required)
            .with_order(1000),
    );
    static MASK: Factory = Factory(
        PluginDescriptor::new("mask", "masks")
            .with_attach(AttachPolicy::Default)
            .with_order(10),
    );

    fn registry() -> Registry {
        Registry::from_factories([&RECORDER as &dyn PluginFactory, &MASK]).unwrap()
    }

    fn names(chain: &Chain) -> Vec<&str> {
        chain.names().collect()
    }

    #[test]
    fn a_required_plugin_is_in_every_chain_whatever_the_attachments_say() {
        let registry = registry();
        let resources = Resources::new();
        let config = PluginConfig::empty();
        // No attachment at all, or only others: the required plugin is built anyway.
        let chain = registry.build_chain([], &resources).unwrap();
        assert_eq!(names(&chain), ["recorder"]);
        let chain = registry
            .build_chain([("mask", &config)], &resources)
            .unwrap();
        assert_eq!(names(&chain), ["mask", "recorder"]);
        // Attached: once, with its stored config.
        let chain = registry
            .build_chain([("recorder", &config), ("mask", &config)], &resources)
            .unwrap();
        assert_eq!(names(&chain), ["mask", "recorder"]);
        let stored = PluginConfig::from_value(serde_json::json!({"ok": true})).unwrap();
        let chain = registry
            .build_chain([("recorder", &stored)], &resources)
            .unwrap();
        assert_eq!(names(&chain), ["recorder"]);
        // A stored config it refuses fails the chain rather than leaving it out.
        let bad = PluginConfig::from_value(serde_json::json!({"ok": false})).unwrap();
        let err = registry
            .build_chain([("recorder", &bad)], &resources)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { plugin, .. } if plugin == "recorder"),
            "{err}"
        );
    }

    #[test]
    fn plugins_restrict_no_one_unless_they_say() {
        let user = crate::UserInfo::new("alice");
        let admission = MASK.admits(&PluginConfig::empty(), &user).unwrap();
        assert_eq!(admission, crate::Admission::Unrestricted);
        assert!(admission.lets_in());
        assert!(crate::Admission::Admitted.lets_in());
        assert!(!crate::Admission::Refused.lets_in());
    }

    #[test]
    fn managed_fields_map_config_paths_back_to_the_connection() {
        let duration = crate::ManagedField::new("access_max_duration", "access_max_duration_ms");
        assert_eq!(
            duration
                .connection_path("access_max_duration_ms")
                .as_deref(),
            Some("access_max_duration")
        );
        let list = crate::ManagedField::new("reviewers", "reviewers");
        assert_eq!(
            list.connection_path("reviewers[1]").as_deref(),
            Some("reviewers[1]")
        );
        let nested = crate::ManagedField::new("rules", "masking");
        assert_eq!(
            nested.connection_path("masking.x").as_deref(),
            Some("rules.x")
        );
        assert_eq!(list.connection_path("reviewers_extra"), None);
        assert_eq!(list.connection_path("min_approvals"), None);
    }
}
