//! The core locations: weighted selection, active health checks, and picking another healthy
//! location for a retry.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{BackendSelection, Consistent, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{self, HealthCheckKind, Selection, for_the_process};
use crate::metrics::{UPSTREAM_ATTEMPTS, UPSTREAM_HEALTHY};

/// One load balancer, whichever selection it uses.
enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Hash(Arc<LoadBalancer<Consistent>>),
}

/// How an upstream attempt ended.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// The upstream answered.
    Response = 0,
    /// No connection could be made.
    ConnectError = 1,
    /// The exchange failed after connecting.
    Error = 2,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Response, Outcome::ConnectError, Outcome::Error];

    /// The label and the error type on spans.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Response => "response",
            Outcome::ConnectError => "connect_error",
            Outcome::Error => "error",
        }
    }
}

/// One core location, with what each request needs of it prepared once.
pub struct Location {
    /// Its name.
    pub name: &'static str,
    /// Its address.
    pub address: SocketAddr,
    /// Its IP address as text, for span attributes.
    pub host: &'static str,
    attempts: [prometheus::IntCounter; 3],
}

impl Location {
    /// Counts an attempt's outcome in `edge_upstream_attempts_total`.
    pub fn count(&self, outcome: Outcome) {
        self.attempts[outcome as usize].inc();
    }
}

/// The core locations.
pub struct Upstreams {
    balancer: Balancer,
    locations: Vec<Location>,
    /// Retries after the first attempt.
    pub retries: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
}

fn balancer<S>(
    backends: BTreeSet<Backend>,
    settings: &config::Upstreams,
) -> Result<Arc<LoadBalancer<S>>, String>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let mut lb = LoadBalancer::<S>::from_backends(Backends::new(Static::new(backends)));
    lb.update()
        .now_or_never()
        .ok_or("static discovery blocked")?
        .map_err(|e| format!("upstreams: {e}"))?;
    let check = &settings.health_check;
    let health_check: Box<dyn HealthCheck + Send + Sync> = match check.kind {
        HealthCheckKind::Tcp => TcpHealthCheck::new(),
        HealthCheckKind::Http => {
            let mut http = HttpHealthCheck::new(&check.host, false);
            http.req.set_uri(
                check
                    .path
                    .parse()
                    .map_err(|e| format!("upstreams.health_check.path: {e}"))?,
            );
            Box::new(http)
        }
    };
    lb.set_health_check(health_check);
    lb.health_check_frequency = Some(Duration::from_millis(check.interval_ms));
    Ok(Arc::new(lb))
}

impl Upstreams {
    /// Builds the balancer over `locations` (name, address, weight).
    pub fn new(
        settings: &config::Upstreams,
        locations: &[(String, SocketAddr, usize)],
    ) -> Result<Self, String> {
        let mut backends = BTreeSet::new();
        for (name, address, weight) in locations {
            let backend = Backend::new_with_weight(&address.to_string(), *weight)
                .map_err(|e| format!("{name}: {e}"))?;
            backends.insert(backend);
        }
        let locations = locations
            .iter()
            .map(|(name, address, _)| Location {
                name: for_the_process(name),
                address: *address,
                host: for_the_process(&address.ip().to_string()),
                attempts: Outcome::ALL
                    .map(|outcome| UPSTREAM_ATTEMPTS.with_label_values(&[name, outcome.as_str()])),
            })
            .collect();
        let balancer = match settings.selection {
            Selection::RoundRobin => Balancer::RoundRobin(balancer(backends, settings)?),
            Selection::ConsistentHash => Balancer::Hash(balancer(backends, settings)?),
        };
        Ok(Self {
            balancer,
            locations,
            retries: settings.retries,
            connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
            read_timeout: Duration::from_millis(settings.read_timeout_ms),
        })
    }

    /// A healthy location not in `tried` (indices into [`Self::location`]), picked by the
    /// client's address when hashing.
    pub fn select(&self, client: Option<IpAddr>, tried: &[usize]) -> Option<usize> {
        let accept = |backend: &Backend, healthy: bool| {
            healthy
                && backend
                    .addr
                    .as_inet()
                    .and_then(|a| self.index_of(a))
                    .is_some_and(|i| !tried.contains(&i))
        };
        let backend = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(b"", 256, accept),
            Balancer::Hash(lb) => {
                let (v4, v6);
                let key: &[u8] = match client {
                    Some(IpAddr::V4(ip)) => {
                        v4 = ip.octets();
                        &v4
                    }
                    Some(IpAddr::V6(ip)) => {
                        v6 = ip.octets();
                        &v6
                    }
                    None => &[],
                };
                lb.select_with(key, 256, accept)
            }
        }?;
        self.index_of(backend.addr.as_inet()?)
    }

    /// The location at `index`, as returned by [`Self::select`].
    pub fn location(&self, index: usize) -> &Location {
        &self.locations[index]
    }

    fn index_of(&self, address: &SocketAddr) -> Option<usize> {
        self.locations.iter().position(|l| l.address == *address)
    }

    /// Runs the health checks, and keeps `edge_upstream_healthy` current.
    pub fn health_service(self: &Arc<Self>) -> HealthService {
        HealthService(self.clone())
    }

    fn publish_health(&self) {
        match &self.balancer {
            Balancer::RoundRobin(lb) => publish(lb, &self.locations),
            Balancer::Hash(lb) => publish(lb, &self.locations),
        }
    }
}

/// Sets `edge_upstream_healthy` for every backend of `lb`.
fn publish<S>(lb: &LoadBalancer<S>, locations: &[Location])
where
    S: BackendSelection + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let backends = lb.backends();
    for backend in backends.get_backend().iter() {
        if let Some(location) = backend
            .addr
            .as_inet()
            .and_then(|a| locations.iter().find(|l| l.address == *a))
        {
            UPSTREAM_HEALTHY
                .with_label_values(&[location.name])
                .set(i64::from(backends.ready(backend)));
        }
    }
}

/// The background service that health-checks the upstreams.
pub struct HealthService(Arc<Upstreams>);

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let upstreams = &self.0;
        let interval = match &upstreams.balancer {
            Balancer::RoundRobin(lb) => lb.health_check_frequency,
            Balancer::Hash(lb) => lb.health_check_frequency,
        }
        .unwrap_or(Duration::from_secs(1));
        // Locations are presumed healthy until the first check, one interval after start, so
        // upstreams that start beside the proxy are not evicted by a race.
        upstreams.publish_health();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            match &upstreams.balancer {
                Balancer::RoundRobin(lb) => lb.backends().run_health_check(true).await,
                Balancer::Hash(lb) => lb.backends().run_health_check(true).await,
            }
            upstreams.publish_health();
        }
    }
}
