//! # edge-proxy
//!
//! The Pingora edge load balancer of Threadline. It assigns each request's root trace ID and
//! sampling decision, records a SERVER span per request and a CLIENT span per upstream attempt,
//! propagates the context to a healthy core location, and exports its spans over OTLP.
//!
//! With no configuration file it runs an embedded default: it listens on 127.0.0.1:8080 in
//! front of a built-in demo upstream and prints each finished span to the terminal.

#![forbid(unsafe_code)]

mod access_log;
mod admin;
mod config;
mod demo;
mod export;
mod metrics;
mod proxy;
mod request_trace;
mod trust;
mod upstreams;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::config::{Config, Settings};

/// Where the embedded default's demo upstream listens.
const DEMO_UPSTREAM: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081));

/// The Threadline edge proxy: assigns the root trace and forwards to healthy core locations.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// TOML configuration file. Without one, the embedded default runs: 127.0.0.1:8080 in
    /// front of a demo upstream on 127.0.0.1:8081, spans printed to the terminal.
    #[arg(short, long, env = "EDGE_PROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration (file plus OTEL_* variables) and exit.
    #[arg(long)]
    check_config: bool,
    /// Take over the listeners of a running edge-proxy (graceful upgrade); send the old one
    /// SIGQUIT first.
    #[arg(long)]
    upgrade: bool,
}

fn load(args: &Args) -> Result<Settings, String> {
    let text = match &args.config {
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let name = args.config.as_ref().map(|p| p.display().to_string());
    let file = name.as_deref().zip(text.as_deref());
    let (settings, warnings) = trace_core::config::load(
        file,
        &|name| std::env::var(name).ok(),
        Config::from_toml,
        |config, var| config.apply_env(var),
        Config::validate,
    )?;
    for warning in &warnings {
        tracing::warn!(variable = %warning.field, "{}", warning.reason);
    }
    Ok(settings)
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = match load(&args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("edge-proxy: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!(
            "edge-proxy: configuration ok: {} listener(s), {} core location(s), tracing {}, export to {}",
            settings.config.listen.http.len() + settings.config.listen.tls.len(),
            settings.config.upstreams.locations.len(),
            if settings.config.export.enabled {
                "on"
            } else {
                "off"
            },
            settings
                .config
                .export
                .traces_url()
                .as_deref()
                .unwrap_or("the terminal"),
        );
        return ExitCode::SUCCESS;
    }
    match run(settings, args.upgrade) {
        Ok(never) => match never {},
        Err(error) => {
            eprintln!("edge-proxy: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: Settings, upgrade: bool) -> Result<std::convert::Infallible, String> {
    metrics::init();
    let config = &settings.config;
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_seconds),
        upgrade_sock: config.server.upgrade_socket.clone(),
        pid_file: config.server.pid_file.clone(),
        work_stealing: config.server.work_stealing,
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut demo_service = None;
    let locations: Vec<(String, SocketAddr, usize)> = if settings.demo_upstream {
        let address = DEMO_UPSTREAM;
        demo_service = Some(server.add_service(demo::DemoService::new(address)));
        tracing::info!(%address, "no upstreams configured: serving the built-in demo upstream");
        vec![("demo".into(), address, 1)]
    } else {
        config
            .upstreams
            .locations
            .iter()
            .map(|l| (l.name.clone(), l.address, l.weight))
            .collect()
    };
    let upstreams = Arc::new(upstreams::Upstreams::new(&config.upstreams, &locations)?);
    server.add_service(background_service(
        "health checks",
        upstreams.health_service(),
    ));

    let sink = if config.export.enabled {
        let (sink, exporter) = export::pipeline(&config.export)?;
        server.add_service(background_service("span exporter", exporter));
        Some(sink)
    } else {
        tracing::info!("tracing is off (export.enabled = false or OTEL_SDK_DISABLED=true)");
        None
    };

    let access_log = if config.access_log.enabled {
        let (log, flush) = access_log::AccessLog::start(
            config.access_log.buffer_bytes,
            std::io::stdout(),
            metrics::ACCESS_LOG_DROPPED.clone(),
        )
        .map_err(|e| format!("access log writer: {e}"))?;
        server.add_service(background_service(
            "access log",
            access_log::AccessLogService::new(flush),
        ));
        Some(log)
    } else {
        None
    };

    let settings = Arc::new(settings);
    let proxy = proxy::EdgeProxy::new(upstreams, sink, settings.clone(), access_log);
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, proxy);
    if settings.config.listen.h2c
        && let Some(logic) = service.app_logic_mut()
    {
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        logic.server_options = Some(options);
    }
    for address in &settings.config.listen.http {
        // Plain HTTP is parsed straight from the socket: a read buffer in front of the parser
        // only adds a copy, and 64 KiB of memory per client connection.
        let unbuffered_reads = L4BufferSettings::default().read(0);
        service.add_listener(ListenerConfig::tcp(address.to_string()).l4_buffer(unbuffered_reads));
    }
    for tls in &settings.config.listen.tls {
        let cert = tls.certificate.to_string_lossy();
        let key = tls.key.to_string_lossy();
        let mut tls_settings = pingora::listeners::tls::TlsSettings::intermediate(&cert, &key)
            .map_err(|e| format!("listen.tls {}: {e}", tls.address))?;
        tls_settings.enable_h2();
        service.add_tls_with_settings(&tls.address.to_string(), None, tls_settings);
    }
    let proxy_service = server.add_service(service);
    // The embedded default's proxy listens only once its demo upstream does.
    if let Some(demo) = &demo_service {
        proxy_service.add_dependency(demo);
    }

    let (listen, admin) = (&settings.config.listen.http, settings.config.admin.address);
    if let Some(admin) = admin {
        let mut service = Service::new("admin".into(), admin::Admin);
        service.add_tcp(&admin.to_string());
        server.add_service(service);
    }
    tracing::info!(?listen, ?admin, "edge-proxy starting");
    server.run_forever()
}
