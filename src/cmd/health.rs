//! `iamd health`: whether a running daemon serves.

use std::process::ExitCode;

use super::client::DaemonArgs;
use super::runtime;

/// `iamd health` options.
#[derive(Debug, clap::Args)]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    pub(crate) daemon: DaemonArgs,
    /// The service to ask about (`iamd.v1.Authorizer`,
    /// `envoy.service.auth.v3.Authorization`); the whole server by default.
    #[arg(long, default_value = "")]
    pub(crate) service: String,
}

/// `iamd health`: asks `grpc.health.v1`; exit 0 when serving, 1 when not,
/// 2 when the daemon cannot be reached. For container health checks (the
/// image has no shell) and people.
pub(crate) fn run(args: &HealthArgs) -> ExitCode {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = match args.daemon.endpoint() {
        Ok(e) => e.connect_timeout(std::time::Duration::from_secs(2)),
        Err(e) => {
            eprintln!("iamd: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let service = args.service.clone();
    let answer = rt.block_on(async move {
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut request = tonic::Request::new(HealthCheckRequest { service });
        request.set_timeout(std::time::Duration::from_secs(2));
        HealthClient::new(channel)
            .check(request)
            .await
            .map(|r| r.into_inner().status())
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    });
    match answer {
        Ok(status) => {
            println!("{}", status.as_str_name());
            if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!(
                "iamd: cannot reach the daemon at `{}`: {e}",
                args.daemon.url()
            );
            ExitCode::from(2)
        }
    }
}
