//! The loaded object and its attachments: both programs on each matching interface, kept
//! in step with the interfaces as they come and go.

use std::collections::BTreeMap;
use std::sync::Arc;

use aya::Ebpf;
use aya::programs::tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions, qdisc_add_clsact};
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType};
use node_probe_common::{TAP_EGRESS, TAP_INGRESS};

use super::Stats;
use super::checks::Resolved;
use super::netlink::LinkEvent;
use super::pattern::Patterns;

/// The clsact filter priority: lower runs first, and 1 is the lowest there is.
const NETLINK_PRIORITY: u16 = 1;

/// The programs' two links on one interface.
#[derive(Debug)]
struct Attachment {
    name: String,
    ingress: SchedClassifierLinkId,
    egress: SchedClassifierLinkId,
}

/// Why an interface could not be attached.
#[derive(Debug)]
enum AttachError {
    /// The program is not in the object (checked at start, so not expected here).
    NoProgram(&'static str),
    /// The kernel refused the attachment.
    Program(&'static str, ProgramError),
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoProgram(name) => write!(f, "program {name} is not in the object"),
            Self::Program(name, error) => write!(f, "attaching {name}: {error}"),
        }
    }
}

/// The loaded object, and which interfaces its programs are attached to.
pub(crate) struct Attacher {
    ebpf: Ebpf,
    mode: Resolved,
    patterns: Patterns,
    links: BTreeMap<u32, Attachment>,
    stats: Arc<Stats>,
}

impl Attacher {
    /// Takes the object, its programs already loaded into the kernel.
    pub(crate) fn new(ebpf: Ebpf, mode: Resolved, patterns: Patterns, stats: Arc<Stats>) -> Self {
        Self {
            ebpf,
            mode,
            patterns,
            links: BTreeMap::new(),
            stats,
        }
    }

    /// The attached interfaces, by index.
    pub(crate) fn attached(&self) -> Vec<(u32, String)> {
        self.links
            .iter()
            .map(|(&index, attachment)| (index, attachment.name.clone()))
            .collect()
    }

    /// Applies one link event.
    pub(crate) fn apply(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Present { index, name } => self.present(index, &name),
            LinkEvent::Gone { index } => {
                if self.links.contains_key(&index) {
                    self.stats.count(&self.stats.interfaces_vanished);
                    self.detach(index, "interface vanished");
                }
            }
        }
    }

    /// Brings the attachments in line with the interfaces that exist now: after start, and
    /// whenever notifications may have been lost.
    pub(crate) fn resync(&mut self, interfaces: &[(u32, String)]) {
        let gone: Vec<u32> = self
            .links
            .keys()
            .filter(|index| !interfaces.iter().any(|(i, _)| i == *index))
            .copied()
            .collect();
        for index in gone {
            self.apply(LinkEvent::Gone { index });
        }
        for (index, name) in interfaces {
            self.present(*index, name);
        }
    }

    /// Detaches from every interface (at shutdown).
    pub(crate) fn detach_all(&mut self) {
        let indices: Vec<u32> = self.links.keys().copied().collect();
        for index in indices {
            self.detach(index, "shutting down");
        }
    }

    /// An interface that exists as `name`: attach when it matches and is new, detach when a
    /// rename took it out of the patterns, or just note its new name.
    fn present(&mut self, index: u32, name: &str) {
        let matches = self.patterns.matches(name);
        if let Some(attachment) = self.links.get_mut(&index) {
            if matches {
                if attachment.name != name {
                    attachment.name = name.to_owned();
                }
            } else {
                self.detach(index, "renamed out of the patterns");
            }
            return;
        }
        if !matches {
            return;
        }
        // aya attaches by name; a name that no longer resolves to this index belongs to
        // another interface (this one was renamed or replaced since), whose own event follows.
        if nix::net::if_::if_nametoindex(name).ok() != Some(index) {
            return;
        }
        match self.attach(name) {
            Ok((ingress, egress)) => {
                self.stats.count(&self.stats.attached);
                tracing::info!(interface = name, ifindex = index, mode = ?self.mode, "attached");
                self.links.insert(
                    index,
                    Attachment {
                        name: name.to_owned(),
                        ingress,
                        egress,
                    },
                );
            }
            Err(error) => {
                self.stats.count(&self.stats.attach_failures);
                tracing::warn!(interface = name, ifindex = index, %error, "cannot attach");
            }
        }
    }

    /// Attaches both programs to `name`, or neither.
    fn attach(
        &mut self,
        name: &str,
    ) -> Result<(SchedClassifierLinkId, SchedClassifierLinkId), AttachError> {
        if self.mode == Resolved::Netlink {
            // Fails when the qdisc is already there, which is fine; when it really is missing,
            // the attach below says so.
            let _ = qdisc_add_clsact(name);
        }
        let ingress = self.attach_one(TAP_INGRESS, name, TcAttachType::Ingress)?;
        match self.attach_one(TAP_EGRESS, name, TcAttachType::Egress) {
            Ok(egress) => Ok((ingress, egress)),
            Err(error) => {
                let _ = self.detach_one(TAP_INGRESS, ingress);
                Err(error)
            }
        }
    }

    fn attach_one(
        &mut self,
        program: &'static str,
        name: &str,
        attach_type: TcAttachType,
    ) -> Result<SchedClassifierLinkId, AttachError> {
        let options = match self.mode {
            Resolved::Tcx => TcAttachOptions::TcxOrder(LinkOrder::first()),
            Resolved::Netlink => TcAttachOptions::Netlink(NlOptions {
                priority: NETLINK_PRIORITY,
                ..NlOptions::default()
            }),
        };
        self.classifier(program)?
            .attach_with_options(name, attach_type, options)
            .map_err(|error| AttachError::Program(program, error))
    }

    fn detach(&mut self, index: u32, why: &'static str) {
        let Some(attachment) = self.links.remove(&index) else {
            return;
        };
        // A vanished interface took its TCX links with it, and its clsact filters too, so
        // an error here means only that there was nothing left to detach.
        let ingress = self.detach_one(TAP_INGRESS, attachment.ingress);
        let egress = self.detach_one(TAP_EGRESS, attachment.egress);
        self.stats.count(&self.stats.detached);
        match ingress.and(egress) {
            Ok(()) => tracing::info!(
                interface = attachment.name,
                ifindex = index,
                why,
                "detached"
            ),
            Err(error) => tracing::info!(
                interface = attachment.name,
                ifindex = index,
                why,
                %error,
                "detached (the kernel had already removed the link)"
            ),
        }
    }

    fn detach_one(
        &mut self,
        program: &'static str,
        link: SchedClassifierLinkId,
    ) -> Result<(), AttachError> {
        self.classifier(program)?
            .detach(link)
            .map_err(|error| AttachError::Program(program, error))
    }

    fn classifier(&mut self, name: &'static str) -> Result<&mut SchedClassifier, AttachError> {
        self.ebpf
            .program_mut(name)
            .and_then(|program| <&mut SchedClassifier>::try_from(program).ok())
            .ok_or(AttachError::NoProgram(name))
    }
}
