//! The interface an event crossed: its name, and the workload (VM) behind it.

use std::collections::HashMap;
use std::sync::Arc;

use trace_core::semconv;
use trace_core::span::{KeyValue, Resource};

/// Interface names by index. The kernel layer knows them from netlink; [`SysfsNames`] reads
/// them from `/sys/class/net` otherwise.
pub trait InterfaceNames: Send {
    /// The name of interface `ifindex`, if it exists.
    fn name(&self, ifindex: u32) -> Option<String>;
}

/// Names from `/sys/class/net/<name>/ifindex`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SysfsNames;

impl InterfaceNames for SysfsNames {
    fn name(&self, ifindex: u32) -> Option<String> {
        let entries = std::fs::read_dir("/sys/class/net").ok()?;
        entries.flatten().find_map(|entry| {
            let index = std::fs::read_to_string(entry.path().join("ifindex")).ok()?;
            (index.trim().parse::<u32>().ok()? == ifindex)
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
    }
}

/// Which workload runs behind which interfaces: exact names, or prefixes written `name*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadMap {
    entries: Vec<(String, String)>,
}

impl WorkloadMap {
    /// A map from `(interface pattern, workload)` pairs; an exact name wins over a prefix,
    /// and a longer prefix over a shorter one.
    pub fn new(entries: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries
            .sort_by_key(|(pattern, _)| (pattern.ends_with('*'), std::cmp::Reverse(pattern.len())));
        Self { entries }
    }

    /// The workload behind interface `name`.
    pub fn workload(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == name,
            })
            .map(|(_, workload)| workload.as_str())
    }
}

/// What spans of one interface share.
#[derive(Debug)]
pub struct Interface {
    /// Its name, when known.
    pub name: Option<Arc<str>>,
    /// The workload behind it, when configured.
    pub workload: Option<Arc<str>>,
    /// The resource of its black-box spans: `service.name` is the workload's.
    pub resource: Arc<Resource>,
}

/// Interfaces by index, resolved once and forgotten every [`Interfaces::REFRESH_NS`], since an
/// index is reused once its interface is gone.
pub struct Interfaces {
    names: Box<dyn InterfaceNames>,
    workloads: WorkloadMap,
    default_service: String,
    resource_attributes: Vec<(String, String)>,
    known: HashMap<u32, Arc<Interface>>,
    refreshed_ns: u64,
}

impl Interfaces {
    /// How long a resolved interface is kept.
    pub const REFRESH_NS: u64 = 30_000_000_000;

    /// Interfaces named by `names`, their workloads from `workloads`. A span of an interface
    /// with no workload gets `default_service` as its `service.name`.
    pub fn new(
        names: Box<dyn InterfaceNames>,
        workloads: WorkloadMap,
        default_service: String,
        resource_attributes: Vec<(String, String)>,
    ) -> Self {
        Self {
            names,
            workloads,
            default_service,
            resource_attributes,
            known: HashMap::new(),
            refreshed_ns: 0,
        }
    }

    /// Interface `ifindex`, resolved now if it is not known, as of monotonic `now_ns`.
    pub fn get(&mut self, ifindex: u32, now_ns: u64) -> Arc<Interface> {
        if now_ns.saturating_sub(self.refreshed_ns) >= Self::REFRESH_NS {
            self.known.clear();
            self.refreshed_ns = now_ns;
        }
        if let Some(known) = self.known.get(&ifindex) {
            return known.clone();
        }
        let name = self.names.name(ifindex);
        let workload = name
            .as_deref()
            .and_then(|n| self.workloads.workload(n))
            .map(Arc::<str>::from);
        let service = workload
            .as_deref()
            .map_or_else(|| self.default_service.clone(), str::to_owned);
        let mut attributes = vec![KeyValue::new(semconv::SERVICE_NAME, service)];
        attributes.extend(
            self.resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        );
        let interface = Arc::new(Interface {
            name: name.map(Arc::from),
            workload,
            resource: Arc::new(Resource { attributes }),
        });
        self.known.insert(ifindex, interface.clone());
        interface
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_win_over_prefixes() {
        let map = WorkloadMap::new([
            ("fc-*".to_owned(), "any".to_owned()),
            ("fc-orders-*".to_owned(), "orders".to_owned()),
            ("fc-orders-7".to_owned(), "orders-7".to_owned()),
        ]);
        assert_eq!(map.workload("fc-orders-7"), Some("orders-7"));
        assert_eq!(map.workload("fc-orders-1"), Some("orders"));
        assert_eq!(map.workload("fc-x"), Some("any"));
        assert_eq!(map.workload("tap0"), None);
    }

    #[test]
    fn loopback_is_found_in_sysfs() {
        // Index 1 is the loopback interface on Linux.
        assert_eq!(SysfsNames.name(1).as_deref(), Some("lo"));
        assert_eq!(SysfsNames.name(u32::MAX), None);
    }
}
