//! The `tributary` binary: argument parsing, logging, signals, exit codes.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tributary::cli::{CheckpointAction, Cli, Command};
use tributary::config::{Config, LogFormat};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM.
fn cancel_on_signals(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing the batch and stopping"),
            _ = int.recv() => tracing::info!("SIGINT: finishing the batch and stopping"),
        }
        token.cancel();
    });
    Ok(())
}

async fn real_main(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            init_logging(config.daemon.log_format);
            let shutdown = CancellationToken::new();
            cancel_on_signals(shutdown.clone())?;
            tributary::pipeline::run(config, shutdown).await?;
            Ok(true)
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            init_logging(config.daemon.log_format);
            let report = tributary::cli::check::check(&config).await;
            print!("{}", report.text);
            Ok(report.ok)
        }
        Command::Snapshot {
            config,
            source,
            tables,
            reset,
        } => {
            let config = Config::load(&config)?;
            let text = tributary::cli::snapshot::request(&config, &source, &tables, reset)
                .await
                .map_err(anyhow::Error::msg)?;
            println!("{text}");
            Ok(true)
        }
        Command::Checkpoint { action } => match action {
            CheckpointAction::Show { config, source } => {
                let config = Config::load(&config)?;
                let text = tributary::cli::checkpoint::show(&config, source.as_deref())
                    .await
                    .map_err(anyhow::Error::msg)?;
                print!("{text}");
                Ok(true)
            }
            CheckpointAction::Reset { config, source, to } => {
                let config = Config::load(&config)?;
                let text = tributary::cli::checkpoint::reset(&config, &source, &to)
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!("{text}");
                Ok(true)
            }
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(real_main(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
