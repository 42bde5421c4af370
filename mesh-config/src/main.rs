//! `mesh-config`: checks a site file and renders the Kuma policies, the Envoy bootstrap and
//! the Kubernetes manifests that deploy Threadline. Exit code 2 on a bad site file, with the
//! field named; 1 on a failure to write.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh_config::checked::Checked;
use mesh_config::site::Site;
use mesh_config::{FieldError, kuma, render};

/// Renders one Threadline site description into every artifact that deploys it.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the site file (and optionally a cluster's MeshTraces) without writing anything.
    Check {
        #[command(flatten)]
        site: SiteArgs,
        /// The cluster's MeshTraces (`kubectl get meshtraces -A -o yaml`), checked against
        /// each mesh's tracing mode.
        #[arg(long, value_name = "FILE")]
        meshtraces: Option<PathBuf>,
    },
    /// Check the site file and write every artifact into DIR.
    Render {
        #[command(flatten)]
        site: SiteArgs,
        /// Output directory: empty, new, or an earlier render (which is replaced).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct SiteArgs {
    /// The site file (TOML).
    site: PathBuf,
    /// The filter artifact, instead of the site's `filter.artifact`.
    #[arg(long, value_name = "WASM")]
    filter: Option<PathBuf>,
}

fn load(args: &SiteArgs) -> Result<Checked, String> {
    let shown = args.site.display();
    let text = std::fs::read_to_string(&args.site).map_err(|e| format!("{shown}: {e}"))?;
    let site = Site::from_toml(&text).map_err(|e| format!("{shown}: {e}"))?;
    let dir = args.site.parent().unwrap_or(Path::new("."));
    site.validate(dir, args.filter.as_deref())
        .map_err(|e| format!("{shown}: {e}"))
}

fn warn(warnings: &[FieldError]) {
    for w in warnings {
        eprintln!("mesh-config: warning: {w}");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let site = match &args.command {
        Command::Check { site, .. } | Command::Render { site, .. } => site,
    };
    let checked = match load(site) {
        Ok(checked) => checked,
        Err(error) => {
            eprintln!("mesh-config: invalid site: {error}");
            return ExitCode::from(2);
        }
    };
    warn(&checked.warnings);
    match &args.command {
        Command::Check { meshtraces, .. } => {
            if let Some(path) = meshtraces {
                let warnings = std::fs::read_to_string(path)
                    .map_err(|e| FieldError::new("meshtraces", format!("{}: {e}", path.display())))
                    .and_then(|text| kuma::meshtrace_warnings(&checked, &text));
                match warnings {
                    Ok(warnings) => warn(&warnings),
                    Err(error) => {
                        eprintln!("mesh-config: {error}");
                        return ExitCode::from(2);
                    }
                }
            }
            println!(
                "mesh-config: site {:?} ok: {} mesh(es), {} environment(s), filter sha256 {}",
                checked.site.name,
                checked.meshes.len(),
                checked.site.environments.len(),
                checked.artifact.sha256
            );
            ExitCode::SUCCESS
        }
        Command::Render { output, .. } => {
            let files = match render::render(&checked) {
                Ok(files) => files,
                Err(error) => {
                    eprintln!("mesh-config: {error}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(error) = render::write(output, &files) {
                eprintln!("mesh-config: {error}");
                return ExitCode::FAILURE;
            }
            println!(
                "mesh-config: wrote {} files to {}",
                files.len(),
                output.display()
            );
            ExitCode::SUCCESS
        }
    }
}
