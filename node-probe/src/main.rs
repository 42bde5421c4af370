//! The node agent binary: black-box spans from the microVMs' tap devices, joined to the
//! sidecars' spans, relayed with them to the collector.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use node_probe::config::{Config, Settings};

/// The Threadline node agent: watches the microVMs' tap devices, receives the sidecars' spans
/// over OTLP, joins them by 4-tuple and relays everything to the collector.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// TOML configuration file (see the documented example in the config module). Without
    /// one, the defaults: receiver on 127.0.0.1:4318 (HTTP) and :4317 (gRPC), taps matching
    /// tap* and fc-*; the collector then comes from OTEL_EXPORTER_OTLP_ENDPOINT.
    #[arg(short, long, env = "NODE_PROBE_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration (file plus OTEL_* variables) and exit.
    #[arg(long)]
    check_config: bool,
    /// Run the receiver and the relay only, without loading the TC programs (no privileges
    /// needed).
    #[arg(long)]
    no_kernel: bool,
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
            eprintln!("node-probe: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        let config = &settings.config;
        println!(
            "node-probe: configuration ok: receiver {}{}, interfaces {:?}, {} workload mapping(s), export to {}{}",
            config.receiver.http,
            config
                .receiver
                .grpc
                .map(|g| format!(" and {g} (gRPC)"))
                .unwrap_or_default(),
            config.kernel.interfaces,
            config.workloads.len(),
            settings.target.describe(),
            settings
                .artifact
                .as_ref()
                .map(|a| format!(", artifact sha256 {}", a.sha256_hex()))
                .unwrap_or_default(),
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("node-probe: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop.send(true);
        });
        node_probe::agent::run(settings, !args.no_kernel, stopped, None).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("node-probe: {error}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (what an orchestrator sends) or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C through tokio's own is all that is left.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
